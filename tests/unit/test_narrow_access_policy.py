from __future__ import annotations

from remediations.core.detect import detect
from remediations.core.policy import parse_policy
from remediations.core.registry import get_remediation
from tests.unit.kv_builders import (
    RG,
    SUB,
    MemoryClients,
    apply_actions,
    owner_at,
    policy_entry,
    snapshot,
    vault,
    vault_id,
)

REMEDIATION = get_remediation("narrow_access_policy")
ALLOW_GET = {"secretPermissions": {"default": ["get"]}}


def plan_for(snap, policy_json):  # type: ignore[no-untyped-def]
    policy = parse_policy(policy_json)
    findings = [f for f in detect(snap, policy) if f.detector_id in REMEDIATION.handles]
    return REMEDIATION.plan(snap, findings, policy)


def test_removes_everything_beyond_the_allow_list_in_one_delta() -> None:
    snap = snapshot(
        vault("kv", policy_entry("u1", "get", "list", "set"), policy_entry("admin", "all")),
        role_assignments=(),
    )
    actions = plan_for(snap, {**ALLOW_GET, "breakGlass": ["admin"]})
    [action] = actions
    assert [(c.operation, c.permissions.secrets) for c in action.changes] == [("remove", ("list", "set"))]
    assert action.after["secrets"] == ["get"] and action.skip_reason is None


def test_all_becomes_add_allowed_then_remove_all() -> None:
    snap = snapshot(
        vault("kv", policy_entry("u1", "All")), role_assignments=(owner_at(f"/subscriptions/{SUB}"),)
    )
    [action] = plan_for(snap, ALLOW_GET)
    assert [(c.operation, c.permissions.secrets) for c in action.changes] == [
        ("add", ("get",)),
        ("remove", ("All",)),
    ]
    assert action.after["secrets"] == ["get"]


def test_the_last_manager_is_skipped_with_a_reason() -> None:
    snap = snapshot(vault("kv", policy_entry("u1", "get", "set")))
    [action] = plan_for(snap, ALLOW_GET)
    assert action.skip_reason is not None and "last identity" in action.skip_reason


def test_an_rbac_admin_over_the_vault_allows_removing_the_last_manager() -> None:
    for scope in (f"/subscriptions/{SUB}", f"/subscriptions/{SUB}/resourceGroups/{RG}", vault_id("kv")):
        snap = snapshot(vault("kv", policy_entry("u1", "get", "set")), role_assignments=(owner_at(scope),))
        [action] = plan_for(snap, ALLOW_GET)
        assert action.skip_reason is None, scope
    elsewhere = owner_at(f"/subscriptions/{SUB}/resourceGroups/other")
    [action] = plan_for(
        snapshot(vault("kv", policy_entry("u1", "set")), role_assignments=(elsewhere,)), ALLOW_GET
    )
    assert action.skip_reason is not None


def test_two_managers_narrowed_together_keep_one() -> None:
    snap = snapshot(vault("kv", policy_entry("u1", "get", "set"), policy_entry("u2", "get", "delete")))
    first, second = plan_for(snap, ALLOW_GET)
    assert first.skip_reason is None and second.skip_reason is not None


def test_no_rule_means_no_narrowing() -> None:
    assert plan_for(snapshot(vault("kv", policy_entry("u1", "get", "set"))), {}) == []


def test_apply_two_step_reports_progress_honestly_when_step_two_fails() -> None:
    kv = vault("kv", policy_entry("u1", "all"), policy_entry("u2", "set"))
    [action] = plan_for(snapshot(kv), {"secretPermissions": {"byIdentity": {"u1": ["get"]}}})
    clients = MemoryClients(kv)
    from remediations.adapters.errors import AzureCallFailed

    busy = AzureCallFailed("accessPolicies/remove", 409, "Conflict", "busy")
    clients.mgmt.refuse = lambda change: busy if change.operation == "remove" else None  # the second step
    [outcome] = apply_actions(clients, action)
    assert (
        outcome.status == "failed"
        and "step 2/2" in (outcome.error or "")
        and "steps 1-1" in (outcome.error or "")
    )
    assert outcome.after["secrets"] == ["all", "get"]  # what the vault holds now: the read after the writes
