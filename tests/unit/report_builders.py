"""A seed-shaped snapshot for report tests: a maker can edit a flow whose Key Vault connection runs
as the admin, whose access policy lists every secret; plus an orphaned principal."""

from __future__ import annotations

from datetime import UTC, datetime

from remediations.core.detect import detect
from remediations.core.model import (
    Connection,
    Finding,
    Flow,
    Identity,
    Outcome,
    Plan,
    Share,
    Snapshot,
)
from remediations.core.planning import build_plan
from remediations.core.policy import Policy
from remediations.report import AttackReplay, ReportData, build_report
from remediations.shell.audit import AuditRecord
from tests.unit.kv_builders import policy_entry, snapshot, vault, vault_id

GENERATED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def seed_snapshot(maker_name: str = "Mallory Maker", flow_name: str = "Payroll sync") -> Snapshot:
    base = snapshot(
        vault(
            "kv-payroll",
            policy_entry("admin", "get", "list", "set"),
            policy_entry("app-reader", "get"),
            policy_entry("ghost", "get"),
            secrets=("db-password", "api-key", "storage-key"),
        ),
        vault("kv-hr", policy_entry("admin", "Get", "List"), secrets=("hr-token",)),
        identities=(
            Identity(object_id="admin", kind="user", display_name="Ada Admin", exists=True),
            Identity(object_id="maker", kind="user", display_name=maker_name, exists=True),
            Identity(
                object_id="app-reader", kind="servicePrincipal", display_name="payroll-app", exists=True
            ),
            Identity(object_id="ghost", kind="unknown", exists=False),
        ),
    )
    return base.model_copy(
        update={
            "flows": (
                Flow(
                    id="f1",
                    environment="env1",
                    display_name=flow_name,
                    creator="admin",
                    connection_references=("c1",),
                ),
            ),
            "connections": (
                Connection(
                    id="c1",
                    environment="env1",
                    connector_id="/providers/Microsoft.PowerApps/apis/shared_keyvault",
                    identity_principal_id="admin",
                    parameters={"vaultName": "kv-payroll"},
                ),
            ),
            # As the admin API lists them: the creator is the flow's Owner, then a co-owner and a
            # run-only user.
            "shares": (
                Share(resource_kind="flow", resource_id="f1", principal_id="admin", role="Owner"),
                Share(resource_kind="flow", resource_id="f1", principal_id="maker", role="CanEdit"),
                Share(resource_kind="flow", resource_id="f1", principal_id="viewer", role="CanView"),
            ),
        }
    )


def seed_run(
    snap: Snapshot | None = None, *, dry_run: bool = True, only: set[str] | None = None
) -> tuple[Snapshot, list[Finding], Plan]:
    """Every shipped detector and remediation over the seed, or only the detectors in `only` (for a
    test about one kind of change)."""
    snap = snap or seed_snapshot()
    findings = detect(snap, Policy(), only=only)
    plan = build_plan(findings, snap, Policy(), dry_run=dry_run)
    return snap, findings, plan


def applied_outcomes(plan: Plan) -> list[Outcome]:
    return [
        Outcome(action_id=a.id, status="applied", before=a.before, after=a.after, verified=True)
        for a in plan.writes
    ]


def audit_rows(plan: Plan, run_id: str = "run-1") -> list[AuditRecord]:
    rows = []
    for i, action in enumerate(plan.writes):
        for seq, state in ((0, "pending"), (1, "applied")):
            rows.append(
                AuditRecord(
                    correlation_id=run_id,
                    action_id=action.id,
                    sequence=seq,
                    state=state,  # type: ignore[arg-type]
                    remediation_id=action.remediation_id,
                    target=action.target,
                    principal=action.principal,
                    before=action.before,
                    after=action.after,
                    reason=action.reason,
                    trigger="cli",
                    recorded_at=datetime(2026, 3, 1, 12, 0, i * 2 + seq, tzinfo=UTC),
                )
            )
    return rows


def seed_report(*, applied: bool = True, **snapshot_kwargs: str) -> ReportData:
    snap, findings, plan = seed_run(seed_snapshot(**snapshot_kwargs), dry_run=not applied)
    return build_report(
        findings=findings,
        snapshot=snap,
        plan=plan,
        outcomes=applied_outcomes(plan) if applied else [],
        audit=audit_rows(plan) if applied else [],
        title="Seed attack: before and after",
        run_id="run-1",
        generated_at=GENERATED,
        api_calls={"arm": 7, "keyvault": 5},
        duration_seconds=3.25,
        attack_replay=AttackReplay(
            attacker="maker",
            before=("api-key", "db-password", "storage-key"),
            after=(),
            note="edited flow lists then gets every secret",
        ),
    )


__all__ = ["GENERATED", "seed_report", "seed_run", "seed_snapshot", "vault_id"]
