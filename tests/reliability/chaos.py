"""Chaos helpers: identical tenants on two emulators, faults on every host, sweeps until nothing is left
to do, exact comparison of the final permission state, and the audit invariants.

A "sweep" here is one engine run over the whole subscription (what the timer + workers do per vault),
with the real `AzureClients` and the Azurite audit table.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from azure.keyvault.secrets._shared import http_challenge_cache

from emulator import Emulator
from emulator.azure import roles
from emulator.azure.generator import Generated, generate
from emulator.azure.state import RoleAssignment
from emulator.faults import FaultRule
from remediations.adapters import retry
from remediations.adapters.clients import AzureClients
from remediations.core.model import Scope
from remediations.core.policy import Policy, parse_policy
from remediations.core.request import RunRequest
from remediations.shell.audit import AuditRecord, TableAuditSink
from remediations.shell.pipeline import RunResult, run

FAULT_STATUSES = (429, 500, 503)


def tenant(vaults: int, seed: int) -> Generated:
    """Non-compliant access-policy vaults (with orphans) and RBAC vaults, deterministic for a seed.
    The app's identity reads secret metadata of RBAC vaults (Key Vault Reader on the subscription), so
    RBAC narrowing to per-secret grants is part of the run."""
    # The Key Vault SDK caches each vault URL's auth challenge (its tenant) per process; generated
    # tenants reuse vault names (kv-000000...) with a new tenant id.
    http_challenge_cache.clear()
    generated = generate(
        vaults=vaults,
        secrets_per_vault=2,
        identities=max(3, vaults // 3),
        noncompliant_share=0.6,
        rbac_share=0.3,
        vaults_per_resource_group=10,
        seed=seed,
    )
    az = generated.state.azure
    reader = RoleAssignment(
        str(uuid.UUID(int=seed, version=4)),
        f"/subscriptions/{az.subscription_id}",
        roles.KEY_VAULT_READER,
        az.admin_object_id,
        "ServicePrincipal",
        0.0,
    )
    az.role_assignments[reader.name] = reader
    return generated


def policy(generated: Generated) -> Policy:
    """Every identity needs `secret-00000` only: RBAC vault-wide grants are narrowed to that secret."""
    needs = {i.object_id: ["secret-00000"] for i in generated.identities}
    return parse_policy({"dryRun": False, "maxActionsPerRun": 1000, "allowedSecretNames": needs})


def inject(emu: Emulator, rate: float, *, latency_ms: float = 5.0) -> list[FaultRule]:
    """Faults on every host: 429/500/503 (split evenly), resets before the handler, and resets after a
    write took effect (the client never learns it succeeded). `rate` is the total failure share."""
    share = rate / (len(FAULT_STATUSES) + 1)
    emu.faults.latency(latency_ms)
    return [
        # Writes first: a lost answer to a write that took effect is the case retries must survive
        # (the first two writes always, then at random).
        emu.faults.reset(method="PUT", after=True, count=2),
        emu.faults.reset(probability=rate / 2, method="PUT", after=True),
        emu.faults.status(503, probability=rate / 2, method="DELETE", after=True, retry_after=0),
        emu.faults.status(429, probability=share, retry_after=0),
        emu.faults.status(500, probability=share),
        emu.faults.status(503, probability=share, retry_after=0),
        emu.faults.reset(probability=share),
    ]


@contextmanager
def fast_retries(monkeypatch: pytest.MonkeyPatch, scale: float) -> Iterator[None]:
    """Scale the adapters' backoff (not Retry-After semantics: a Retry-After of 0 is already 0)."""
    real = retry.wait_seconds
    monkeypatch.setattr(retry, "wait_seconds", lambda state: real(state) * scale)
    yield


def permission_state(emu: Emulator) -> dict[str, Any]:
    """Everything a remediation may change, exactly (case kept), without generated names."""
    az = emu.state.azure
    with emu.state.lock:
        vaults = {
            name: sorted(
                (p.object_id, p.application_id or "", json.dumps(p.permissions, sort_keys=True))
                for p in vault.access_policies
            )
            for name, vault in az.vaults.items()
        }
        assignments = sorted(
            (a.scope.lower(), a.role_definition_id.rsplit("/", 1)[-1].lower(), a.principal_id.lower())
            for a in az.role_assignments.values()
        )
    return {"vaults": vaults, "roleAssignments": assignments}


def differences(expected: dict[str, Any], actual: dict[str, Any]) -> int:
    """Vaults whose access policies differ, plus role assignments present on one side only."""
    names = set(expected["vaults"]) | set(actual["vaults"])
    vaults = sum(1 for n in names if expected["vaults"].get(n) != actual["vaults"].get(n))
    return vaults + len(set(expected["roleAssignments"]) ^ set(actual["roleAssignments"]))


@dataclass
class Convergence:
    results: list[RunResult] = field(default_factory=list)
    rows: list[AuditRecord] = field(default_factory=list)

    @property
    def sweeps(self) -> int:
        return len(self.results)

    @property
    def applied(self) -> int:
        return sum(r.count("applied") for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.count("failed") for r in self.results)


def sweep_until_done(
    emu: Emulator,
    generated: Generated,
    audit: TableAuditSink,
    *,
    prefix: str,
    max_sweeps: int = 12,
    before_sweep: Callable[[int], None] | None = None,
) -> Convergence:
    """Sweep until a sweep reads everything and has nothing to write."""
    scope = Scope(subscription_id=emu.state.azure.subscription_id)
    done = Convergence()
    for number in range(max_sweeps):
        if before_sweep is not None:
            before_sweep(number)
        correlation_id = f"{prefix}-{number:03d}"
        with AzureClients() as clients:
            result = run(
                RunRequest(
                    trigger="timer", scope=scope, correlation_id=correlation_id, reconcile_after=timedelta(0)
                ),
                policy(generated),
                clients,
                audit,
            )
        done.results.append(result)
        done.rows.extend(audit.records(correlation_id))
        if not result.plan.writes and not result.plan.deferred and not unexpected_errors(result):
            break
    return done


def unexpected_errors(result: RunResult) -> list[str]:
    """Failed reads other than the permanent 403 on secret metadata: the app's identity has no data-plane
    `list` on vaults (it must not need one); every other failed read means "sweep again"."""
    return [
        f"{e.operation} {e.resource_id}: {e.status}"
        for e in result.inventory_errors
        if not (e.operation == "list secrets" and e.status == 403)
    ]


def audit_violations(done: Convergence) -> list[str]:
    """The audit invariants: one `applied` per action (across every sweep), every `failed` row has an
    error, every pending row has an outcome, every failed outcome is a failed row with its error."""
    problems: list[str] = []
    applied = Counter(r.action_id for r in done.rows if r.state == "applied")
    problems += [f"action {a} recorded applied {n} times" for a, n in applied.items() if n > 1]
    problems += [
        f"failed row without an error: {r.correlation_id}/{r.row_key}"
        for r in done.rows
        if r.state == "failed" and not r.error
    ]
    outcomes = {(r.correlation_id, r.action_id) for r in done.rows if r.state != "pending"}
    problems += [
        f"pending without an outcome: {r.correlation_id}/{r.row_key}"
        for r in done.rows
        if r.state == "pending" and (r.correlation_id, r.action_id) not in outcomes
    ]
    failed_rows = {(r.correlation_id, r.action_id): r.error for r in done.rows if r.state == "failed"}
    for result in done.results:
        for outcome in result.outcomes:
            if outcome.status == "failed" and not failed_rows.get((result.correlation_id, outcome.action_id)):
                problems.append(f"failed outcome {outcome.action_id} has no failed audit row with a reason")
    return problems


def write_statuses(emu: Emulator, mark: int) -> Counter[int]:
    return Counter(r.status for r in emu.requests.since(mark) if r.is_write)
