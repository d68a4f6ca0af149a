"""The emulator in its own process for the benchmark, with a generated tenant.

    python -m bench.emulator_proc '{"vaults": 5000, "secrets_per_vault": 40, ...}'

Prints one JSON line {"env": {...}, "control": "http://127.0.0.1:PORT", "generated": {...}} when it
serves. The control port (localhost only, a separate plain-HTTP server, never one of the emulated
hosts) answers:

- GET  /counts  request counters since the last reset: per service and method, per vault, statuses,
                and the emulator process's CPU seconds
- POST /reset   zero the counters
- GET  /state   what the tenant looks like now (vaults whose access policies still grant `list`)

Requests are counted by wrapping the request log's `add` (entries are not kept, so memory stays flat).
"""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from emulator.azure.generator import Generated, generate
from emulator.azure.state import AccessPolicy
from emulator.core import Emulator
from emulator.log import LoggedRequest
from emulator.powerplatform.generator import generate as generate_powerplatform

_VAULT_IN_ARM_PATH = re.compile(r"/providers/Microsoft\.KeyVault/vaults/([^/]+)", re.IGNORECASE)

# Host regex per latency key. The login host is left at 0 (token acquisition happens once per process).
LATENCY_HOSTS = {
    "arm": r"management\.azure\.com",
    "kv": r"[a-z0-9-]+\.vault\.azure\.net",
    "graph": r"graph\.microsoft\.com",
    # Power Platform, including each environment's Dataverse Web API ({org}[.api].crm4.dynamics.com).
    "pp": r"api\.(flow\.microsoft|powerapps|bap\.microsoft|powerplatform)\.com|.*\.api\.powerplatform\.com"
    r"|[a-z0-9]+\.(api\.)?crm\d*\.dynamics\.com",
}


def service_of(host: str) -> str:
    if host == "management.azure.com":
        return "arm"
    if host.endswith(".vault.azure.net"):
        return "kv"
    if host == "graph.microsoft.com":
        return "graph"
    if host == "login.microsoftonline.com":
        return "login"
    return "pp"


class Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with getattr(self, "lock", threading.Lock()):
            self.by_service: Counter[str] = Counter()  # "kv GET"
            self.by_status: Counter[str] = Counter()  # "kv 429"
            self.kv_per_vault: Counter[str] = Counter()
            self.arm_per_vault: Counter[str] = Counter()  # per-vault ARM calls (GET/PUT on one vault)
            self.arm_writes_per_vault: Counter[str] = Counter()
            # GETs of a vault after a write to it (since the reset): the writes' verification reads.
            self.arm_vault_gets_after_write = 0
            self.arm_routes: Counter[str] = Counter()
            self.span_by_service: dict[str, list[float]] = {}  # service -> [first, last]
            self.started = time.perf_counter()
            self.cpu_started = time.process_time()
            self.first: float | None = None
            self.last: float | None = None

    def add(self, entry: LoggedRequest) -> None:
        service = service_of(entry.host)
        now = time.perf_counter()
        with self.lock:
            self.first = now if self.first is None else self.first
            self.last = now
            self.by_service[f"{service} {entry.method}"] += 1
            self.by_status[f"{service} {entry.status}"] += 1
            span = self.span_by_service.setdefault(service, [now, now])
            span[1] = now
            if service == "kv":
                self.kv_per_vault[entry.host.split(".", 1)[0]] += 1
            elif service == "arm":
                self.arm_routes[f"{entry.method} {entry.route}"] += 1
                match = _VAULT_IN_ARM_PATH.search(entry.path)
                if match:
                    vault = match.group(1).lower()
                    self.arm_per_vault[vault] += 1
                    if entry.is_write:
                        self.arm_writes_per_vault[vault] += 1
                    elif entry.route == "get_vault" and self.arm_writes_per_vault[vault]:
                        self.arm_vault_gets_after_write += 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "by_service": dict(self.by_service),
                "by_status": dict(self.by_status),
                "kv_vaults": len(self.kv_per_vault),
                "kv_max_per_vault": max(self.kv_per_vault.values(), default=0),
                "arm_vaults_touched": len(self.arm_per_vault),
                "arm_max_per_vault": max(self.arm_per_vault.values(), default=0),
                "arm_max_writes_per_vault": max(self.arm_writes_per_vault.values(), default=0),
                "arm_routes": dict(self.arm_routes),
                "arm_vault_gets_after_write": self.arm_vault_gets_after_write,
                "cpu_s": time.process_time() - self.cpu_started,
                "span_s": (self.last - self.first) if self.first is not None and self.last else 0.0,
                # [first, last] request per service, seconds since the reset: each half's wall time in one run
                "span_by_service_s": {
                    k: [first - self.started, last - self.started]
                    for k, (first, last) in self.span_by_service.items()
                },
                "requests": sum(self.by_service.values()),
            }


def _state_summary(emu: Emulator) -> dict[str, Any]:
    with emu.state.lock:
        vaults = list(emu.state.azure.vaults.values())
        listing = [
            v.name
            for v in vaults
            if any(
                "list" in {p.lower() for p in ap.permissions.get("secrets", [])} for ap in v.access_policies
            )
        ]
    return {"vaults": len(vaults), "vaults_granting_list": len(listing)}


def azure_tenant(**spec: Any) -> Generated:
    """The bench's Azure tenant (`spec`: the generator's arguments): the generated vaults, each
    access-policy vault also granting the sweeping identity (the emulator's admin app) `list` on
    secrets, as vaultguard's managed identity needs to read metadata; the bench policy allows it.
    Pure data: tests/unit/test_bench_quick_equals_deep.py plans on it without an emulator."""
    generated = generate(**spec)
    az = generated.state.azure
    for vault in az.vaults.values():
        if not vault.enable_rbac_authorization:
            vault.access_policies.append(
                AccessPolicy(az.tenant_id, az.admin_object_id, None, {"secrets": ["List"]})
            )
    return generated


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    spec: dict[str, Any] = json.loads(args[0]) if args else {}
    latency: dict[str, float] = spec.pop("latency_ms", {})
    pp_spec = {k: int(spec.pop(k, 0)) for k in ("environments", "flows", "connections")}
    generated = azure_tenant(**spec)
    az = generated.state.azure
    pp_generated = None
    if pp_spec["environments"]:
        envs = pp_spec["environments"]
        # Every generated flow references one of its environment's Key Vault connections, and the
        # connections point at the generated vaults.
        pp_generated = generate_powerplatform(
            generated.state,
            environments=envs,
            flows_per_environment=pp_spec["flows"] // envs,
            connections_per_environment=pp_spec["connections"] // envs,
            seed=7,
            vaults=sorted(v.name for v in az.vaults.values())[:200],
        )
    emu = Emulator(generated.state, keep_log=False)
    counters = Counters()
    original_add = emu.requests.add

    def add(entry: LoggedRequest) -> None:
        counters.add(entry)
        original_add(entry)

    emu.requests.add = add  # type: ignore[method-assign]
    for key, ms in latency.items():
        if ms:
            emu.faults.latency(float(ms), host=LATENCY_HOSTS[key])

    class Control(BaseHTTPRequestHandler):
        def log_message(self, format: str, *a: Any) -> None:
            return

        def _send(self, payload: Any) -> None:
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/counts":
                self._send(counters.snapshot())
            elif self.path == "/state":
                self._send(_state_summary(emu))
            else:
                self.send_error(404)

        def do_POST(self) -> None:
            if self.path == "/reset":
                counters.reset()
                self._send({"ok": True})
            else:
                self.send_error(404)

    control = ThreadingHTTPServer(("127.0.0.1", 0), Control)
    threading.Thread(target=control.serve_forever, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with emu:
        info = {
            "env": emu.env,
            "control": f"http://127.0.0.1:{control.server_address[1]}",
            "generated": {
                "vaults": len(generated.state.azure.vaults),
                "secrets": generated.secret_count,
                "noncompliant_vaults": len(generated.noncompliant_vaults),
                "orphaned_object_ids": len(generated.orphaned_object_ids),
                "role_assignments": len(generated.state.azure.role_assignments),
                "identities": len(generated.identities),
                "admin_object_id": az.admin_object_id,
                "pp": asdict(pp_generated) if pp_generated is not None else None,
            },
        }
        print(json.dumps(info), flush=True)
        stop.wait()
    control.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
