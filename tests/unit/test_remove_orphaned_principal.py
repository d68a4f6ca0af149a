"""remove_orphaned_principal: entries and assignments of deleted principals go; live ones and ones the
directory could not be asked about stay (the latter are reported)."""

from __future__ import annotations

from remediations.adapters.errors import AzureCallFailed
from remediations.core import rbac
from remediations.core.detect import detect
from remediations.core.model import (
    AccessPolicy,
    AccessPolicyChange,
    Identity,
    Permissions,
    RoleAssignmentChange,
    Scope,
)
from remediations.core.planning import build_plan
from remediations.core.policy import parse_policy
from remediations.core.request import RunRequest
from remediations.shell.audit import MemoryAuditSink
from remediations.shell.pipeline import run
from tests.unit.kv_builders import (
    SUB,
    TENANT,
    MemoryClients,
    owner_at,
    policy_entry,
    snapshot,
    vault,
    vault_id,
)
from tests.unit.rbac_builders import assignment, rbac_snapshot, rbac_vault

GONE, LIVE = "dead0000-0000-0000-0000-000000000001", "a11e0000-0000-0000-0000-000000000002"
OWNER = owner_at(f"/subscriptions/{SUB}")


def _rich_entry(object_id: str) -> AccessPolicy:
    return AccessPolicy(
        tenant_id=TENANT,
        object_id=object_id,
        permissions=Permissions(
            secrets=("Get", "list"), keys=("Get",), certificates=("List",), storage=("get",)
        ),
    )


def test_entry_of_a_deleted_identity_is_removed_with_all_four_lists_exactly() -> None:
    snap = snapshot(
        vault("kv", _rich_entry(GONE), policy_entry(LIVE, "get")),
        role_assignments=(OWNER,),
        identities=(Identity(object_id=GONE, exists=False), Identity(object_id=LIVE, exists=True)),
    )
    policy = parse_policy({})
    plan = build_plan(detect(snap, policy), snap, policy, remediation_ids={"remove_orphaned_principal"})
    [action] = plan.actions
    [change] = action.changes
    assert (
        isinstance(change, AccessPolicyChange) and change.operation == "remove" and change.object_id == GONE
    )
    assert change.permissions == _rich_entry(GONE).permissions
    assert action.after == {"secrets": [], "keys": [], "certificates": [], "storage": []}


def test_an_entry_still_listed_after_the_remove_is_failed_not_applied() -> None:
    """The server answers 200 to the remove but keeps the entry: the read after the write must see
    the entry still holds what was removed and say failed. The live entry is never sent."""
    clients = MemoryClients(
        vault("kv", policy_entry(GONE, "get"), policy_entry(LIVE, "get")), assignments=(OWNER,)
    )
    clients.dir.missing = {GONE}
    clients.mgmt.ignore_removes = True
    result = run(
        RunRequest(
            trigger="cli", scope=Scope(subscription_id=SUB), remediations={"remove_orphaned_principal"}
        ),
        parse_policy({"dryRun": False}),
        clients,
        MemoryAuditSink(),
    )
    assert [c[2].object_id for c in clients.mgmt.calls] == [GONE]
    assert clients.mgmt.calls[0][2].permissions.secrets == ("get",)
    assert result.outcomes[0].status == "failed" and "did not take effect" in (result.outcomes[0].error or "")
    assert result.outcomes[0].after["secrets"] == ["get"]
    entries = {e.object_id: e.permissions.secrets for e in clients.mgmt.vaults["kv"].access_policies}
    assert entries[LIVE] == ("get",)


def test_unresolvable_principals_are_reported_never_removed() -> None:
    snap = snapshot(
        vault("kv", policy_entry(GONE, "get")),
        role_assignments=(assignment(vault_id("kv"), rbac.KEY_VAULT_SECRETS_USER, principal=GONE),),
        identities=(Identity(object_id=GONE, exists=None),),
    )
    findings = detect(snap, parse_policy({}))
    assert [f.detector_id for f in findings if f.principal == GONE] == ["unresolved_principal"]
    plan = build_plan(findings, snap, parse_policy({}), remediation_ids={"remove_orphaned_principal"})
    assert plan.actions == ()


def test_orphaned_role_assignment_is_deleted_and_verified_from_the_list() -> None:
    kv = vault_id("kv")
    dead = assignment(kv, rbac.KEY_VAULT_SECRETS_USER, principal=GONE)
    alive = assignment(kv, rbac.KEY_VAULT_SECRETS_USER, principal=LIVE)
    clients = MemoryClients(rbac_vault("kv", "a"), assignments=(dead, alive))
    clients.dir.missing = {GONE}
    result = run(
        RunRequest(
            trigger="cli", scope=Scope(subscription_id=SUB), remediations={"remove_orphaned_principal"}
        ),
        parse_policy({"dryRun": False}),
        clients,
        MemoryAuditSink(),
    )
    assert [o.status for o in result.outcomes] == ["applied"] and result.outcomes[0].verified
    assert clients.authz.assignments == [alive]
    [change] = result.plan.actions[0].changes
    assert isinstance(change, RoleAssignmentChange) and change.assignment_name == dead.name


def test_a_graph_failure_leaves_everything_and_is_reported() -> None:
    kv = vault_id("kv")
    dead = assignment(kv, rbac.KEY_VAULT_SECRETS_USER, principal=GONE)
    clients = MemoryClients(vault("kv", policy_entry(GONE, "get")), assignments=(dead, OWNER))

    def failing(ids: list[str]) -> list[Identity]:
        raise AzureCallFailed("directoryObjects/getByIds", 503, None, "unavailable")

    clients.dir.resolve = failing  # type: ignore[method-assign]
    result = run(
        RunRequest(trigger="cli", scope=Scope(subscription_id=SUB)),
        parse_policy({"dryRun": False}),
        clients,
        MemoryAuditSink(),
    )
    assert result.failures >= 1 and any(e.operation == "resolve identities" for e in result.inventory_errors)
    assert {f.detector_id for f in result.findings if f.principal == GONE} == {"unresolved_principal"}
    assert clients.mgmt.calls == [] and dead in clients.authz.assignments


def test_foreign_tenant_entries_and_assignments_above_the_scope_are_reported_only() -> None:
    foreign = AccessPolicy(
        tenant_id="other-tenant", object_id=GONE, permissions=Permissions(secrets=("get",))
    )
    above = assignment(f"/subscriptions/{SUB}", rbac.KEY_VAULT_SECRETS_USER, principal=LIVE)
    snap = rbac_snapshot(
        rbac_vault("kv2", "a"),
        assignments=(above,),
        identities=(Identity(object_id=GONE, exists=False), Identity(object_id=LIVE, exists=False)),
    )
    snap = snap.model_copy(
        update={"vaults": (*snap.vaults, vault("kv", foreign)), "scope": Scope.parse(vault_id("kv2"))}
    )
    policy = parse_policy({})
    plan = build_plan(detect(snap, policy), snap, policy, remediation_ids={"remove_orphaned_principal"})
    reasons = sorted(a.skip_reason or "" for a in plan.actions)
    assert (
        len(reasons) == 2
        and "tenant other-tenant" in reasons[0]
        and "above the inventoried scope" in reasons[1]
    )
