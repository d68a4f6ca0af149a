"""One pipeline run (remediations/shell/pipeline.py) in its own process (so its RSS and CPU are its
own), against the emulator whose environment (proxy, CA bundle, credentials) this process inherits.

    python -m bench.engine_proc '{"phase": "plan"|"apply", "read_concurrency": 32, ...}'

Prints one JSON line: phase wall times, counts, peak RSS.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _time_halves() -> dict[str, float]:
    """Wall time of each inventory half (Azure, Power Platform; they run side by side), by wrapping the
    two functions the pipeline's inventory calls. Measurement only: behaviour is unchanged."""
    from remediations.shell import inventory as reads

    halves: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                halves[name] = time.perf_counter() - started

        return wrapper

    reads._inventory_azure = timed("azure", reads._inventory_azure)  # type: ignore[attr-defined]
    reads.inventory_powerplatform = timed("power_platform", reads.inventory_powerplatform)  # type: ignore[attr-defined]
    return halves


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    spec: dict[str, Any] = json.loads(args[0])
    started = time.perf_counter()
    from bench.secret_file import FileSecretInventory
    from remediations.adapters.clients import AzureClients
    from remediations.adapters.graph_api import GRAPH_SCOPE
    from remediations.adapters.identity import ARM_SCOPE
    from remediations.core.detect import load_detectors
    from remediations.core.model import PowerPlatformScope, Scope, stable_id
    from remediations.core.policy import parse_policy
    from remediations.core.registry import load_remediations
    from remediations.core.request import RunRequest
    from remediations.shell.audit import MemoryAuditSink
    from remediations.shell.pipeline import run

    # The detector and fix modules load lazily (for the function's cold start); load them here so that
    # their one-off import (compiled from source: the deployed package has no bytecode cache) counts as
    # import time, not as detection or planning time.
    load_detectors()
    load_remediations()
    imported = time.perf_counter()
    halves = _time_halves()
    rss_after_import = _rss_mib()
    scope = Scope.parse(spec["scope"])
    policy = parse_policy(spec.get("policy", {}))
    apply = spec["phase"] == "apply"
    request = RunRequest(
        trigger="cli",
        scope=scope,
        power_platform=PowerPlatformScope(all_environments=True) if spec.get("power_platform") else None,
        dry_run=not apply,
        stop_after="apply" if apply else "plan",
        correlation_id="bench",
        include_secrets=True,
        keep_secrets=bool(spec.get("keep_secrets", True)),
        read_concurrency=int(spec.get("read_concurrency", 32)),
        write_concurrency=int(spec.get("write_concurrency", 10)),
        # quick: secret metadata from the deep run's stored inventory, no data-plane call.
        secrets_from="store" if spec.get("depth") == "quick" else "read",
    )
    # The deep run saves each vault's list there; the quick run reads it.
    store = FileSecretInventory(Path(spec["store_file"])) if spec.get("store_file") else None
    result: dict[str, Any] = {"import_s": imported - started, "rss_after_import_mib": rss_after_import}
    audit = MemoryAuditSink()
    with AzureClients() as clients:
        # Token acquisition happens once per process and token lifetime; do it before the clock starts
        # (login latency is not part of the model): ARM's and Graph's tokens, which the credential caches
        # for the SDK clients (it made the clients before and left the tokens to the run's first calls).
        clients.keyvault_management(scope.subscription_id)
        for token_scope in (ARM_SCOPE, GRAPH_SCOPE):
            clients.credential.get_token(token_scope)
        run_result = run(request, policy, clients, audit, secret_store=store)
    snapshot, findings, plan = run_result.snapshot, run_result.findings, run_result.plan
    assert snapshot is not None
    wall, cpu = run_result.stage_seconds, run_result.stage_cpu_seconds
    result.update(
        inventory_s=wall["inventory"],
        detect_s=wall["detect"],
        plan_s=wall["plan"],
        inventory_plan_s=wall["inventory"] + wall["detect"] + wall["plan"],
        inventory_plan_cpu_s=cpu["inventory"] + cpu["detect"] + cpu["plan"],
        halves_s=halves,
        vaults=len(snapshot.vaults),
        secrets=sum(v.secret_count or len(v.secrets) for v in snapshot.vaults),
        role_assignments=len(snapshot.role_assignments),
        identities=len(snapshot.identities),
        pp_environments=len(snapshot.environments),
        pp_flows=len(snapshot.flows),
        pp_connections=len(snapshot.connections),
        pp_shares=len(snapshot.shares),
        inventory_errors=len(snapshot.errors),
        inventory_error_samples=[
            f"{e.operation} {e.resource_id}: {e.message}"[:300] for e in snapshot.errors[:3]
        ],
        findings=dict(Counter(f.detector_id for f in findings)),
        actions=len(plan.actions),
        writes_planned=sum(len(a.changes) for a in plan.writes),
        deferred=len(plan.deferred),
        vaults_with_writes=len({a.target.lower() for a in plan.writes}),
        # Equal digests: the same findings (ids hash detector, resource, principal and evidence) and
        # the same planned changes; the quick and deep sweeps are compared on these, not on counts.
        findings_digest=stable_id(sorted(f.id for f in findings)),
        plan_digest=stable_id(
            sorted(
                a.model_dump_json(include={"remediation_id", "target", "principal", "changes"})
                for a in plan.actions
            )
        ),
    )
    if apply:
        outcomes = run_result.outcomes
        result.update(
            apply_s=wall["apply"],
            outcomes=dict(Counter(o.status for o in outcomes)),
            verified=sum(1 for o in outcomes if o.verified),
            failures=[o.error for o in outcomes if o.status == "failed"][:3],
            audit_rows=len(audit.entries),
        )
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["cpu_s"] = time.process_time()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
