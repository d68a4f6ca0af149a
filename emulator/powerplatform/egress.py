"""The attacker's own web server, `collector.attacker.example`: where the attack table's HTTP action
posts a secret value. Flow runs never really send (runner.py `_http` keeps an `Egress` record); this host
answers what arrived, by secret name only, so a test or the demo can count what left without any value
crossing the wire or reaching a log.

    GET https://collector.attacker.example/received[?run={run}]
        -> {"value": [{"flow", "run", "action", "method", "path", "secrets": [names]}]}

Not an Azure or Power Platform service: no public source applies (docs/fidelity.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulator.wire import Request, Response

if TYPE_CHECKING:
    from emulator.core import Emulator

COLLECTOR = "collector.attacker.example"


def register(emulator: Emulator) -> None:
    state = emulator.state

    def received(request: Request) -> Response:
        run = request.query.get("run")
        with state.lock:
            value = [
                {
                    "flow": e.flow,
                    "run": e.run,
                    "action": e.action,
                    "method": e.method,
                    "path": e.path,
                    "secrets": list(e.secrets),
                }
                for e in state.powerplatform.egress
                if e.host == COLLECTOR and (run is None or e.run == run)
            ]
        return Response.json(200, {"value": value})

    emulator.router.add(r"collector\.attacker\.example", "GET", r"/received", received, "collector.received")
