"""narrow_role_assignment: plan (pure) on built snapshots, apply against an in-memory authorization API
with ARM's semantics (idempotent PUT by name, 409 on the same triple, DELETE of a missing name)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from remediations.adapters.errors import AzureCallFailed
from remediations.core import rbac
from remediations.core.detect import detect
from remediations.core.model import InventoryError, RoleAssignmentChange, RoleDefinition, Scope
from remediations.core.planning import build_plan
from remediations.core.policy import Policy, parse_policy
from remediations.core.request import RunRequest
from remediations.fixes.narrow_role_assignment import NarrowRoleAssignment
from remediations.shell.audit import MemoryAuditSink
from remediations.shell.pipeline import run
from tests.unit.kv_builders import MemoryClients
from tests.unit.rbac_builders import (
    BREAK_GLASS,
    FLOW,
    RG_SCOPE,
    SUB,
    SUB_SCOPE,
    assignment,
    rbac_snapshot,
    rbac_vault,
    vault_id,
)

KV = vault_id("kv")
USER = rbac.KEY_VAULT_SECRETS_USER


def _policy(**extra: object) -> Policy:
    return parse_policy({"allowedSecretNames": {FLOW: ["a", "B"]}, "breakGlass": [BREAK_GLASS], **extra})


def _plan(snap, policy):  # type: ignore[no-untyped-def]
    return build_plan(detect(snap, policy), snap, policy, remediation_ids={"narrow_role_assignment"})


def test_vault_scope_secrets_user_becomes_per_secret_creates_then_the_delete() -> None:
    wide = assignment(KV, USER)
    snap = rbac_snapshot(rbac_vault("kv", "a", "b", "c"), assignments=(wide,))
    [action] = _plan(snap, _policy()).actions
    assert action.skip_reason is None
    ops = [(c.operation, c.scope) for c in action.changes if isinstance(c, RoleAssignmentChange)]
    assert ops == [("create", f"{KV}/secrets/a"), ("create", f"{KV}/secrets/b"), ("delete", KV)]
    create = action.changes[0]
    assert isinstance(create, RoleAssignmentChange)
    assert create.assignment_name == rbac.assignment_name(f"{KV}/secrets/a", FLOW, USER)
    assert create.role_definition_id.endswith(USER) and create.principal_type == "ServicePrincipal"
    assert action.changes[-1].assignment_name == wide.name  # type: ignore[union-attr]
    assert action.before["secrets"] == ["kv/a", "kv/b", "kv/c"] and action.after["secrets"] == [
        "kv/a",
        "kv/b",
    ]


def test_apply_creates_verifies_then_deletes_and_a_second_run_does_nothing() -> None:
    wide = assignment(KV, rbac.KEY_VAULT_SECRETS_OFFICER)
    clients = MemoryClients(rbac_vault("kv", "a", "b", "c"), assignments=(wide,))
    audit = MemoryAuditSink()
    policy = _policy(dryRun=False)
    result = run(
        RunRequest(trigger="cli", scope=Scope(subscription_id=SUB), correlation_id="r1"),
        policy,
        clients,
        audit,
    )
    assert [o.status for o in result.outcomes] == ["applied"] and result.outcomes[0].verified
    ops = [op for op, _ in clients.authz.calls if op in {"create", "delete"}]
    assert ops == ["create", "create", "delete"]
    assert sorted((a.scope, a.role_guid) for a in clients.authz.assignments) == [
        (f"{KV}/secrets/a", USER),
        (f"{KV}/secrets/b", USER),
    ]
    assert [r.state for r in audit.records("r1")] == ["pending", "applied"]
    again = run(
        RunRequest(trigger="cli", scope=Scope(subscription_id=SUB), correlation_id="r2"),
        policy,
        clients,
        audit,
    )
    assert again.plan.actions == () and [op for op, _ in clients.authz.calls].count("create") == 2


def test_a_create_that_does_not_show_up_deletes_nothing() -> None:
    wide = assignment(KV, USER)
    clients = MemoryClients(rbac_vault("kv", "a"), assignments=(wide,))
    clients.authz.hide_creates = True
    result = run(
        RunRequest(trigger="cli", scope=Scope(subscription_id=SUB)),
        _policy(dryRun=False),
        clients,
        MemoryAuditSink(),
    )
    assert result.outcomes[0].status == "failed" and "nothing deleted" in (result.outcomes[0].error or "")
    assert wide in clients.authz.assignments and ("delete", wide.name) not in clients.authz.calls


def test_a_failed_create_keeps_the_wide_assignment() -> None:
    wide = assignment(KV, USER)
    clients = MemoryClients(rbac_vault("kv", "a", "b"), assignments=(wide,))
    clients.authz.fail_on["create"] = AzureCallFailed("create", 403, "AuthorizationFailed", "no write")
    result = run(
        RunRequest(trigger="cli", scope=Scope(subscription_id=SUB)),
        _policy(dryRun=False),
        clients,
        MemoryAuditSink(),
    )
    assert result.outcomes[0].status == "failed" and wide in clients.authz.assignments


def test_existing_per_secret_assignment_under_another_name_is_not_created_again() -> None:
    wide = assignment(KV, USER)
    existing = assignment(f"{KV}/secrets/a", USER, name="0c0c0c0c-0000-0000-0000-000000000001")
    snap = rbac_snapshot(rbac_vault("kv", "a", "b"), assignments=(wide, existing))
    [action] = _plan(snap, _policy()).actions
    assert [c.scope for c in action.changes] == [f"{KV}/secrets/b", KV]


def test_inherited_assignments_are_reported_not_touched_unless_the_policy_says_so() -> None:
    wide = assignment(RG_SCOPE, USER)
    snap = rbac_snapshot(rbac_vault("kv", "a", "c"), rbac_vault("kv2", "b"), assignments=(wide,))
    [reported] = _plan(snap, _policy()).actions
    assert reported.skip_reason is not None and "inherited" in reported.skip_reason
    [narrowed] = _plan(snap, _policy(rbac={"narrowInherited": True})).actions
    assert narrowed.skip_reason is None and narrowed.target == RG_SCOPE
    assert [c.scope for c in narrowed.changes] == [
        f"{KV}/secrets/a",
        f"{vault_id('kv2')}/secrets/b",
        RG_SCOPE,
    ]


def test_break_glass_other_roles_and_identities_without_a_need_are_left_alone() -> None:
    snap = rbac_snapshot(
        rbac_vault("kv", "a"),
        assignments=(
            assignment(KV, USER, principal=BREAK_GLASS),
            assignment(KV, USER, principal="no-rule"),
            assignment(KV, rbac.KEY_VAULT_READER),  # metadata only: no get
        ),
    )
    assert _plan(snap, _policy(allowedSecretNames={FLOW: ["a"], BREAK_GLASS: ["a"]})).actions == ()


def test_administrator_role_is_reported_not_replaced() -> None:
    snap = rbac_snapshot(rbac_vault("kv", "a"), assignments=(assignment(KV, rbac.KEY_VAULT_ADMINISTRATOR),))
    [action] = _plan(snap, _policy()).actions
    assert action.skip_reason is not None and "more than secrets" in action.skip_reason


def test_custom_role_with_secrets_wildcard_counts() -> None:
    custom = RoleDefinition(
        id="99999999-0000-0000-0000-000000000001",
        role_name="Secrets Contributor",
        role_type="CustomRole",
        data_actions=("Microsoft.KeyVault/vaults/secrets/*",),
    )
    snap = rbac_snapshot(
        rbac_vault("kv", "a", "z"), assignments=(assignment(KV, custom.guid),), definitions=(custom,)
    )
    [action] = _plan(snap, _policy()).actions
    assert action.skip_reason is None and len(action.changes) == 2


def test_budget_is_counted_before_planning_and_reported_when_exceeded() -> None:
    filler = tuple(
        assignment(f"{SUB_SCOPE}/resourceGroups/rg{i}", rbac.KEY_VAULT_READER, principal=f"p{i}")
        for i in range(8)
    )
    snap = rbac_snapshot(rbac_vault("kv", "a", "b"), assignments=(assignment(KV, USER), *filler))
    # 9 in use + 2 new > 10 allowed
    [action] = _plan(snap, _policy(rbac={"assignmentLimit": 10, "headroom": 0})).actions
    assert action.skip_reason is not None and "budget" in action.skip_reason
    [ok] = _plan(snap, _policy(rbac={"assignmentLimit": 11, "headroom": 0})).actions
    assert ok.skip_reason is None


def test_propagation_grace_keeps_the_wide_assignment_until_the_new_ones_are_old_enough() -> None:
    policy = _policy(rbac={"propagationGraceSeconds": 600})
    wide = assignment(KV, USER)
    snap = rbac_snapshot(rbac_vault("kv", "a"), assignments=(wide,))
    [first] = _plan(snap, policy).actions
    assert [c.operation for c in first.changes] == ["create"]
    young = assignment(f"{KV}/secrets/a", USER, created_on=snap.taken_at - timedelta(seconds=60))
    [waiting] = _plan(snap.model_copy(update={"role_assignments": (wide, young)}), policy).actions
    assert waiting.skip_reason is not None and "propagate" in waiting.skip_reason
    old = young.model_copy(update={"created_on": datetime(2025, 12, 31, tzinfo=UTC)})
    [final] = _plan(snap.model_copy(update={"role_assignments": (wide, old)}), policy).actions
    assert [c.operation for c in final.changes] == ["delete"] and final.skip_reason is None


def test_a_failed_secret_list_blocks_narrowing() -> None:
    snap = rbac_snapshot(rbac_vault("kv"), assignments=(assignment(KV, USER),))
    snap = snap.model_copy(
        update={"errors": (InventoryError(resource_id=KV, operation="list secrets", message="403"),)}
    )
    [action] = NarrowRoleAssignment().plan(snap, detect(snap, _policy()), _policy())
    assert action.skip_reason is not None and "secret list" in action.skip_reason


def test_secrets_not_listed_or_refused_skip_the_narrowing_instead_of_deleting_blind() -> None:
    """Without the secret list, an empty vault would plan no per-secret grants and then delete the
    wide one: the identity would lose every secret. The action is skipped, saying why."""
    wide = assignment(KV, USER)
    snap = rbac_snapshot(rbac_vault("kv", "a", "b"), assignments=(wide,))
    not_listed = snap.model_copy(update={"secrets_listed": False})
    [action] = _plan(not_listed, _policy()).actions
    assert (
        action.skip_reason == "the secret list of vault kv failed (not read): cannot tell which secrets exist"
    )
    refused = InventoryError(resource_id=KV, operation="list secrets", status=403, message="no", partial=True)
    snap = snap.model_copy(update={"errors": (refused,)})
    [action] = _plan(snap, _policy()).actions
    assert (
        action.skip_reason == "the secret list of vault kv failed (HTTP 403): cannot tell which secrets exist"
    )
