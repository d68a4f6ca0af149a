"""`Emulator`: the CA, the proxy server, the state, the router, faults and the request log."""

from __future__ import annotations

import json
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from emulator import azure, powerplatform
from emulator.azure.eventgrid import EventGrid
from emulator.azure.throttling import Limits
from emulator.ca import LocalCA
from emulator.faults import ConnectionReset, FaultRule, Faults
from emulator.log import LoggedRequest, RequestLog
from emulator.server import ProxyServer, sleep
from emulator.state import State
from emulator.tokens import bearer_claims
from emulator.wire import HttpError, Request, Response, Router

Middleware = Callable[[Request], Response | None]


class Emulator:
    """`with Emulator() as emu:` then use `emu.env` as the client environment.

    `emu.state` is the live state, `emu.requests` the request log, `emu.faults` the fault rules.
    """

    def __init__(
        self,
        state: State | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = None,
        keep_log: bool = True,
    ) -> None:
        self.state = state if state is not None else State()
        self.router = Router()
        self.requests = RequestLog(keep=keep_log)
        self.faults = Faults(seed)
        # Azure's real request limits (ARM token buckets, Key Vault windows); tune or disable here.
        self.limits = Limits()
        # Run before routing (throttling, auth challenges); the first non-None response wins.
        self.middlewares: list[Middleware] = []
        # Key Vault events to webhooks (Event Grid system topics); nothing is sent until a subscription.
        self.event_grid = EventGrid()
        self._host = host
        self._port = port
        self._ca: LocalCA | None = None
        self._server: ProxyServer | None = None
        azure.register(self)
        powerplatform.register(self)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Emulator:
        self._ca = LocalCA()
        self._server = ProxyServer((self._host, self._port), self._ca.server_context(), self.dispatch)
        self._server.start()
        return self

    def stop(self) -> None:
        self.event_grid.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._ca is not None:
            self._ca.cleanup()
            self._ca = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def proxy_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def ca_bundle(self) -> str:
        if self._ca is None:
            raise RuntimeError("the emulator is not started")
        return self._ca.bundle_path

    @property
    def env(self) -> dict[str, str]:
        """What a client process needs: proxy, CA bundle and the admin principal's credentials."""
        az = self.state.azure
        return {
            "HTTPS_PROXY": self.proxy_url,
            "https_proxy": self.proxy_url,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "REQUESTS_CA_BUNDLE": self.ca_bundle,
            "SSL_CERT_FILE": self.ca_bundle,
            "CURL_CA_BUNDLE": self.ca_bundle,
            "AZURE_TENANT_ID": az.tenant_id,
            "AZURE_SUBSCRIPTION_ID": az.subscription_id,
            "AZURE_CLIENT_ID": az.admin_client_id,
            "AZURE_CLIENT_SECRET": az.admin_client_secret,
        }

    def dump(self, path: str | Path) -> None:
        """Writes the state as a scenario file (JSON) that `load_scenario_file` reads back."""
        from emulator.scenario import dump_scenario

        with self.state.lock:
            data = dump_scenario(self.state)
        Path(path).write_text(json.dumps(data, indent=1))

    # -- request handling --------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response:
        """The response to `request`, answered no sooner than the latency its fault rules model.

        Latency is time to answer (docs/fidelity.md, "Latency"): a real service's latency already
        includes its own work, so only what is left of the modelled delay after building the response
        is slept, never less than 0. A response that takes longer to build than the model is late by
        that much, as an overloaded service is."""
        started = time.perf_counter()
        decision = self.faults.decide(request.method, request.host, request.path)
        answer = self._answer(request, decision.rule)
        sleep(decision.delay_s - (time.perf_counter() - started))
        self._log(request, answer.status, started, answer.fault, answer.route)
        if answer.response is None:
            raise ConnectionReset()
        return answer.response

    def _answer(self, request: Request, rule: FaultRule | None) -> _Answer:
        """The handler's response, or the injected fault's (`response` None: reset the connection)."""
        if rule is not None and not rule.after:
            if rule.kind == "reset":
                return _Answer(None, 0, "reset", None)
            return _Answer(
                _fault_response(rule.status, rule.retry_after), rule.status, f"status:{rule.status}", None
            )
        route_name: str | None = None
        try:
            response = self._run_middlewares(request)
            if response is None:
                route, params = self.router.resolve(request)
                route_name = route.name
                request.params = params
                response = route.handler(request)
        except HttpError as error:
            response = error.to_response()
        except Exception:  # an emulator bug: say so loudly, answer like a server fault
            traceback.print_exc(file=sys.stderr)
            response = HttpError(500, "InternalServerError", "Emulator error.").to_response()
        if request.response_headers:
            response.headers.update(request.response_headers)
        if rule is None:
            return _Answer(response, response.status, None, route_name)
        # Handled (a write took effect); the client never sees the answer.
        if rule.kind == "reset":
            return _Answer(None, 0, "reset-after", route_name)
        return _Answer(
            _fault_response(rule.status, rule.retry_after),
            rule.status,
            f"status-after:{rule.status}",
            route_name,
        )

    def _run_middlewares(self, request: Request) -> Response | None:
        for middleware in self.middlewares:
            response = middleware(request)
            if response is not None:
                return response
        return None

    def _log(
        self, request: Request, status: int, started: float, fault: str | None, route: str | None
    ) -> None:
        claims = (
            request.caller
            if request.caller is not None
            else bearer_claims(request.headers.get("authorization"))
        )
        self.requests.add(
            LoggedRequest(
                method=request.method,
                host=request.host,
                path=request.path,
                query=request.query,
                caller_oid=(claims or {}).get("oid"),
                status=status,
                latency_ms=(time.perf_counter() - started) * 1000.0,
                body=request.body if request.method != "GET" else b"",
                fault=fault,
                route=route,
            )
        )


@dataclass(frozen=True)
class _Answer:
    """What `dispatch` sends (None: the connection is reset) and what it logs."""

    response: Response | None
    status: int
    fault: str | None
    route: str | None


def _fault_response(status: int, retry_after: float | None) -> Response:
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
    return HttpError(status, _fault_code(status), "Injected fault.", headers).to_response()


def _fault_code(status: int) -> str:
    return {
        429: "TooManyRequests",
        500: "InternalServerError",
        502: "BadGateway",
        503: "ServiceUnavailable",
        504: "GatewayTimeout",
    }.get(status, "InjectedFault")
