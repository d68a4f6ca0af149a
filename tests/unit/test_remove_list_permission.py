from __future__ import annotations

from remediations.adapters.errors import AzureCallFailed
from remediations.core.detect import detect
from remediations.core.policy import parse_policy
from remediations.core.registry import get_remediation
from tests.unit.kv_builders import MemoryClients, apply_actions, policy_entry, snapshot, vault

REMEDIATION = get_remediation("remove_list_permission")


def plan_for(snap, policy_json=None):  # type: ignore[no-untyped-def]
    policy = parse_policy(policy_json or {})
    findings = [f for f in detect(snap, policy) if f.detector_id in REMEDIATION.handles]
    return REMEDIATION.plan(snap, findings, policy)


def test_removes_only_list_with_the_casing_the_vault_stores() -> None:
    [action] = plan_for(snapshot(vault("kv", policy_entry("u1", "Get", "List"))))
    [change] = action.changes
    assert change.operation == "remove" and change.permissions.secrets == ("List",)
    assert action.before["secrets"] == ["Get", "List"] and action.after["secrets"] == ["Get"]


def test_every_stored_spelling_is_removed() -> None:
    [action] = plan_for(snapshot(vault("kv", policy_entry("u1", "list", "List", "get"))))
    assert action.changes[0].permissions.secrets == ("list", "List")


def test_all_is_split_add_first_then_remove() -> None:
    [action] = plan_for(snapshot(vault("kv", policy_entry("u1", "all"))))
    add, remove = action.changes
    assert (
        add.operation == "add" and "list" not in add.permissions.secrets and "get" in add.permissions.secrets
    )
    assert remove.operation == "remove" and remove.permissions.secrets == ("all",)
    assert "list" not in action.after["secrets"] and "set" in action.after["secrets"]


def test_break_glass_is_never_planned_even_if_a_finding_names_it() -> None:
    snap = snapshot(vault("kv", policy_entry("bg", "list")))
    findings = [f for f in detect(snap, parse_policy({})) if f.detector_id in REMEDIATION.handles]
    assert REMEDIATION.plan(snap, findings, parse_policy({"breakGlass": ["bg"]})) == []


def test_apply_is_verified_by_the_read_after_the_write() -> None:
    kv = vault("kv", policy_entry("u1", "Get", "List"))
    clients = MemoryClients(kv)
    [action] = plan_for(snapshot(kv))
    [outcome] = apply_actions(clients, action)
    assert outcome.status == "applied" and outcome.verified and outcome.after["secrets"] == ["Get"]
    assert clients.mgmt.calls[0][2].permissions.secrets == ("List",)
    assert clients.mgmt.reads == ["kv", "kv"]  # one re-check under the lease, one verification


def test_wrong_case_remove_that_changes_nothing_is_failed_not_applied() -> None:
    kv = vault("kv", policy_entry("u1", "Get", "List"))
    [action] = plan_for(snapshot(kv))
    clients = MemoryClients(kv)
    clients.mgmt.ignore_removes = True  # the server answers 200 but keeps `List`
    [outcome] = apply_actions(clients, action)
    assert outcome.status == "failed" and not outcome.verified
    assert "did not take effect" in (outcome.error or "") and outcome.after["secrets"] == ["Get", "List"]


def test_forbidden_is_failed_with_reason_and_gone_is_noop() -> None:
    kv = vault("kv", policy_entry("u1", "list"))
    [action] = plan_for(snapshot(kv))
    clients = MemoryClients(kv)
    clients.mgmt.fail_with = AzureCallFailed("accessPolicies/remove", 403, "AuthorizationFailed", "no write")
    outcome = REMEDIATION.apply(action, clients)
    assert outcome.status == "failed" and "403 AuthorizationFailed" in (outcome.error or "")
    assert REMEDIATION.apply(action, MemoryClients()).status == "noop"
