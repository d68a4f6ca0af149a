"""The access-policy -> RBAC migration planner (core/rbac_migration.py): least-privilege roles and scopes
per identity, blocked vaults, and the subscription's role-assignment budget."""

from __future__ import annotations

from remediations.core import rbac
from remediations.core.model import AccessPolicy, Permissions
from remediations.core.policy import parse_policy
from remediations.core.rbac_migration import STEPS, plan_migration
from tests.unit.kv_builders import TENANT, owner_at, policy_entry, snapshot, vault, vault_id

FLOW = "11111111-0000-0000-0000-0000000000f1"
ADMIN = "11111111-0000-0000-0000-0000000000ad"
KV = vault_id("kv")


def _roles(migration):  # type: ignore[no-untyped-def]
    return sorted((a.principal_id, a.role_name, a.scope) for a in migration.assignments)


def test_named_reads_become_per_secret_secrets_user_and_writers_become_officer() -> None:
    snap = snapshot(
        vault("kv", policy_entry(FLOW, "Get", "List"), policy_entry(ADMIN, "all"), secrets=("a", "b", "c")),
        vault("kv-rbac", rbac=True),
    )
    policy = parse_policy({"allowedSecretNames": {FLOW: ["a", "B", "gone"]}})
    plan = plan_migration(snap, policy)
    [migration] = plan.vaults  # the RBAC vault is already migrated
    assert migration.blocked == () and migration.steps == STEPS
    assert _roles(migration) == [
        (ADMIN, "Key Vault Secrets Officer", KV),
        (FLOW, "Key Vault Secrets User", f"{KV}/secrets/a"),
        (FLOW, "Key Vault Secrets User", f"{KV}/secrets/b"),
    ]
    flow = next(i for i in migration.identities if i.object_id == FLOW)
    assert flow.dropped == ("list (vault-wide enumeration)",)
    assert all(
        a.name == rbac.assignment_name(a.scope, a.principal_id, a.role_guid) for a in migration.assignments
    )
    assert plan.planned_assignments == {snap.vaults[0].subscription_id: 3}


def test_reads_of_unknown_secrets_get_secrets_user_on_the_vault() -> None:
    plan = plan_migration(snapshot(vault("kv", policy_entry(FLOW, "get"))), parse_policy({}))
    assert _roles(plan.vaults[0]) == [(FLOW, "Key Vault Secrets User", KV)]


def test_key_rights_and_compound_identities_block_the_switch() -> None:
    keys = AccessPolicy(
        tenant_id=TENANT, object_id=ADMIN, permissions=Permissions(secrets=("get",), keys=("sign",))
    )
    compound = policy_entry(FLOW, "get", application_id="22222222-0000-0000-0000-000000000001")
    [migration] = plan_migration(snapshot(vault("kv", keys, compound)), parse_policy({})).vaults
    assert len(migration.blocked) == 2
    assert any("keys" in b for b in migration.blocked) and any("compound" in b for b in migration.blocked)


def test_the_budget_falls_back_to_vault_scope_then_blocks() -> None:
    snap = snapshot(
        vault("kv", policy_entry(FLOW, "get"), secrets=("a", "b", "c")),
        role_assignments=tuple(owner_at(f"{KV}/x{i}") for i in range(95)),
    )
    named = {"allowedSecretNames": {FLOW: ["a", "b", "c"]}}
    roomy = plan_migration(snap, parse_policy({**named, "rbac": {"assignmentLimit": 200}}))
    assert len(roomy.vaults[0].assignments) == 3
    # 95 assignments exist, 100 are kept free: a limit of 197 leaves 2 -> one vault-scope assignment, not 3
    tight = plan_migration(snap, parse_policy({**named, "rbac": {"assignmentLimit": 197}}))
    assert _roles(tight.vaults[0]) == [(FLOW, "Key Vault Secrets User", KV)]
    full = plan_migration(snap, parse_policy({**named, "rbac": {"assignmentLimit": 195}}))
    assert full.vaults[0].blocked and full.planned_assignments == {}
