from __future__ import annotations

from remediations.adapters.errors import AzureCallFailed
from remediations.core.detect import detect
from remediations.core.model import Plan, Scope
from remediations.core.planning import assemble_plan, build_plan
from remediations.core.policy import parse_policy
from remediations.core.request import RunRequest
from remediations.shell.apply import RunContext, apply_plan
from remediations.shell.audit import MemoryAuditSink
from remediations.shell.inventory import inventory
from remediations.shell.pipeline import run
from tests.unit.kv_builders import SUB, MemoryClients, owner_at, policy_entry, snapshot, vault, vault_id

SCOPE = Scope(subscription_id=SUB)
OWNER = (owner_at(f"/subscriptions/{SUB}"),)
SCOPE_VAULT = vault_id("kv")


def test_dry_run_plans_with_a_diff_and_writes_nothing() -> None:
    clients = MemoryClients(vault("kv", policy_entry("u1", "get", "list")), assignments=OWNER)
    audit = MemoryAuditSink()
    result = run(RunRequest(trigger="cli", scope=SCOPE), parse_policy({}), clients, audit)
    assert result.plan.dry_run and len(result.plan.actions) == 1
    assert result.plan.actions[0].before["secrets"] == ["get", "list"]
    assert result.plan.actions[0].after["secrets"] == ["get"]
    assert clients.mgmt.calls == [] and audit.entries == []


def test_apply_audits_pending_before_and_outcome_after_then_second_run_is_idempotent() -> None:
    clients = MemoryClients(vault("kv", policy_entry("u1", "get", "list", "set")), assignments=OWNER)
    audit = MemoryAuditSink()
    policy = parse_policy({"secretPermissions": {"default": ["get"]}, "dryRun": False})
    first = run(RunRequest(trigger="timer", scope=SCOPE, correlation_id="run-1"), policy, clients, audit)
    assert [o.status for o in first.outcomes] == ["applied"] and first.failures == 0
    assert [(r.sequence, r.state) for r in audit.records("run-1")] == [(0, "pending"), (1, "applied")]
    assert audit.records("run-1")[1].after["secrets"] == ["get"]
    assert clients.mgmt.vaults["kv"].access_policies[0].permissions.secrets == ("get",)
    second = run(RunRequest(trigger="timer", scope=SCOPE, correlation_id="run-2"), policy, clients, audit)
    assert second.plan.actions == () and len(clients.mgmt.calls) == 1 and audit.records("run-2") == []


def test_cap_defers_the_rest_and_reports_it() -> None:
    kv = vault("kv", *(policy_entry(f"u{i}", "get", "list") for i in range(5)))
    clients = MemoryClients(kv, assignments=OWNER)
    audit = MemoryAuditSink()
    result = run(
        RunRequest(trigger="cli", scope=SCOPE),
        parse_policy({"maxActionsPerRun": 2, "dryRun": False}),
        clients,
        audit,
    )
    assert result.count("applied") == 2 and result.count("deferred") == 3
    assert len(clients.mgmt.calls) == 2
    assert sum(1 for r in audit.entries if r.state == "deferred") == 3


def test_skipped_actions_do_not_use_the_cap_and_are_audited() -> None:
    snap = snapshot(vault("kv", policy_entry("u1", "get", "set"), policy_entry("u2", "get", "list")))
    policy = parse_policy({"secretPermissions": {"byIdentity": {"u1": ["get"]}}, "maxActionsPerRun": 1})
    plan = build_plan(detect(snap, policy), snap, policy)
    assert len(plan.writes) == 1 and plan.deferred == () and len(plan.actions) == 2


def test_plan_is_stable_and_serialisable() -> None:
    snap = snapshot(vault("kv", policy_entry("u1", "list"), policy_entry("u2", "List")))
    policy = parse_policy({})
    plan = build_plan(detect(snap, policy), snap, policy)
    assert Plan.model_validate_json(plan.model_dump_json()) == plan
    assert build_plan(detect(snap, policy), snap, policy).id == plan.id


def test_failures_are_counted_and_surfaced() -> None:
    clients = MemoryClients(vault("kv", policy_entry("u1", "list")), assignments=OWNER)
    clients.mgmt.fail_with = AzureCallFailed("accessPolicies/remove", 403, "AuthorizationFailed", "denied")
    audit = MemoryAuditSink()
    result = run(
        RunRequest(trigger="cli", scope=SCOPE, correlation_id="r"),
        parse_policy({"dryRun": False}),
        clients,
        audit,
    )
    assert result.failures == 1 and result.outcomes[0].status == "failed"
    assert audit.records("r")[-1].state == "failed" and "denied" in (audit.records("r")[-1].error or "")


def test_inventory_read_failures_become_errors_not_silence() -> None:
    clients = MemoryClients(vault("kv", policy_entry("u1", "get")))

    def denied() -> list[object]:
        raise AzureCallFailed("list secrets", 403, "Forbidden", "no list")

    clients.keyvault_secrets = lambda uri: type("S", (), {"list_secret_metadata": staticmethod(denied)})()  # type: ignore[method-assign]
    snap = inventory(SCOPE, clients)
    assert [(e.operation, e.status) for e in snap.errors] == [("list secrets", 403)]
    assert len(snap.vaults) == 1 and snap.identities[0].exists is True


def test_concurrent_apply_keeps_plan_order_per_vault_and_count_mode_keeps_no_secrets() -> None:
    vaults = [
        vault(f"kv{i}", policy_entry("u1", "get", "list"), policy_entry("u2", "get", "list"))
        for i in range(6)
    ]
    clients = MemoryClients(*vaults, assignments=OWNER)
    audit = MemoryAuditSink()
    policy = parse_policy({"dryRun": False, "maxActionsPerRun": 100})
    snap = inventory(SCOPE, clients, keep_secrets=False, concurrency=4)
    assert all(v.secrets == () and v.secret_count is not None for v in snap.vaults)
    plan = build_plan(detect(snap, policy), snap, policy)
    outcomes = apply_plan(plan, clients, audit, RunContext(correlation_id="c", trigger="cli"), concurrency=4)
    assert [o.action_id for o in outcomes] == [a.id for a in plan.actions]
    assert [o.status for o in outcomes] == ["applied"] * 12 and len(clients.mgmt.calls) == 12
    # per vault, the writes happen in plan order (u1 then u2)
    by_vault: dict[str, list[str]] = {}
    for call in clients.mgmt.calls:
        by_vault.setdefault(str(call[1]), []).append(str(call[2].object_id))
    assert all(order == ["u1", "u2"] for order in by_vault.values())
    pending = [r for r in audit.entries if r.state == "pending"]
    assert len(pending) == 12
    # Each vault read twice for its two writes: once under its lease, once to verify them.
    assert sorted(r for r in clients.mgmt.reads if r.startswith("kv")) == sorted(
        [f"kv{i}" for i in range(6)] * 2
    )
    assert all(o.verified for o in outcomes)


def _secrets_fail(clients: MemoryClients, status: int | None) -> None:
    def failed() -> list[object]:
        raise AzureCallFailed("list secrets", status, None, "refused" if status else "connection reset")

    clients.keyvault_secrets = lambda uri: type("S", (), {"list_secret_metadata": staticmethod(failed)})()  # type: ignore[method-assign]


def test_a_refused_secret_list_is_partial_the_other_fixes_run_and_rotation_says_why() -> None:
    clients = MemoryClients(vault("kv", policy_entry("u1", "get", "list")), assignments=OWNER)
    _secrets_fail(clients, 403)
    audit = MemoryAuditSink()
    result = run(
        RunRequest(trigger="cli", scope=SCOPE, correlation_id="r"),
        parse_policy({"dryRun": False}),
        clients,
        audit,
    )
    [error] = result.inventory_errors
    assert (error.operation, error.status, error.partial, error.label) == (
        "list secrets",
        403,
        True,
        "HTTP 403",
    )
    assert result.failures == 0 and result.read_errors == 1
    by_remediation = {a.remediation_id: a for a in result.plan.actions}
    assert by_remediation["remove_list_permission"].skip_reason is None  # still applied
    assert [
        o.status for o in result.outcomes if o.action_id == by_remediation["remove_list_permission"].id
    ] == ["applied"]
    rotation = by_remediation["rotate_secret"]
    assert rotation.target == SCOPE_VAULT and "failed (HTTP 403)" in (rotation.skip_reason or "")
    assert [r.state for r in audit.records("r") if r.remediation_id == "rotate_secret"] == ["skipped"]


def test_a_secret_list_without_a_response_fails_the_run_so_it_is_retried() -> None:
    clients = MemoryClients(vault("kv", policy_entry("u1", "get")), assignments=OWNER)
    _secrets_fail(clients, None)
    snap = inventory(SCOPE, clients)
    [error] = snap.errors
    assert (error.status, error.partial, error.label) == (None, False, "no response")


def test_a_removal_covered_by_a_larger_one_on_the_same_entry_is_skipped_not_written_twice() -> None:
    from remediations.core.model import AccessPolicyChange, Action, Permissions

    def removal(remediation_id: str, *secrets: str) -> Action:
        change = AccessPolicyChange(
            operation="remove", tenant_id="t", object_id="o1", permissions=Permissions(secrets=secrets)
        )
        return Action.create(
            remediation_id=remediation_id,
            target=SCOPE_VAULT,
            principal="o1",
            changes=(change,),
            before={},
            after={},
            reason="test",
            finding_ids=(),
        )

    small, whole = (
        removal("remove_list_permission", "List"),
        removal("remove_orphaned_principal", "Get", "List"),
    )
    snap = snapshot(vault("kv"))
    plan = assemble_plan([small, whole], parse_policy({}), created_at=snap.taken_at, dry_run=True)
    skips = {a.remediation_id: a.skip_reason for a in plan.actions}
    assert skips["remove_orphaned_principal"] is None
    assert (skips["remove_list_permission"] or "").startswith("covered by remove_orphaned_principal")
    assert len(plan.writes) == 1
