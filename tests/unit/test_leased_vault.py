"""The vault under its write lease (shell/write_guard.py `LeasedVault`, through shell/apply.py): one read
judges all of the vault's actions, its own earlier writes counted, and one read after them verifies."""

from __future__ import annotations

from remediations.adapters.errors import AzureCallFailed
from remediations.core.detect import detect
from remediations.core.model import AccessPolicyChange, Action, Permissions, Scope, Vault
from remediations.core.planning import build_plan
from remediations.core.policy import parse_policy
from remediations.core.write_check import ALREADY_APPLIED
from remediations.shell.audit import MemoryAuditSink
from tests.unit.kv_builders import MemoryClients, apply_actions, owner_at, policy_entry, snapshot, vault

ALLOW_GET = parse_policy({"secretPermissions": {"default": ["get"]}, "dryRun": False})


def _two_list_grants() -> tuple[MemoryClients, list[Action]]:
    """A vault where u1 and u2 hold `list` beside a manager: two removals, neither takes management."""
    kv = vault(
        "kv", policy_entry("u1", "get", "list"), policy_entry("u2", "get", "list"), policy_entry("m", "all")
    )
    snap = snapshot(kv)
    plan = build_plan(detect(snap, ALLOW_GET), snap, ALLOW_GET)
    return MemoryClients(kv), [a for a in plan.writes if a.principal in {"u1", "u2"}]


def test_two_writes_on_one_vault_cost_one_read_before_and_one_after() -> None:
    clients, actions = _two_list_grants()
    outcomes = apply_actions(clients, *actions)
    assert [(o.status, o.verified) for o in outcomes] == [("applied", True), ("applied", True)]
    assert len(clients.mgmt.calls) == 2 and clients.mgmt.reads == ["kv", "kv"]
    assert clients.authz.calls == []  # no action takes management: the role assignments are not read


def test_the_lease_counts_its_own_earlier_write_when_judging_the_next() -> None:
    """Planned while a third manager (u3) existed; by the time of the writes it is gone. Narrowing u1
    leaves u2 the last manager, so u2's narrowing is skipped, though the one read showed u1 managing."""
    planned = snapshot(
        vault(
            "kv",
            policy_entry("u1", "get", "set"),
            policy_entry("u2", "get", "set"),
            policy_entry("u3", "set"),
        )
    )
    policy = parse_policy(
        {"secretPermissions": {"byIdentity": {"u1": ["get"], "u2": ["get"]}}, "dryRun": False}
    )
    plan = build_plan(detect(planned, policy), planned, policy)
    [first, second] = [a for a in plan.writes if a.principal in {"u1", "u2"}]
    clients = MemoryClients(vault("kv", policy_entry("u1", "get", "set"), policy_entry("u2", "get", "set")))
    outcomes = apply_actions(clients, first, second)
    assert [o.status for o in outcomes] == ["applied", "skipped"]
    assert "last identity" in (outcomes[1].error or "")
    assert [c[2].object_id for c in clients.mgmt.calls] == ["u1"]
    assert clients.mgmt.reads == ["kv", "kv"] and [op for op, _ in clients.authz.calls] == ["list"]
    assert {e.object_id: e.permissions.secrets for e in clients.mgmt.vaults["kv"].access_policies} == {
        "u1": ("get",),
        "u2": ("get", "set"),
    }


def _removal(principal: str, *names: str, before: tuple[str, ...]) -> Action:
    """One `accessPolicies/remove` of `names` from the principal's entry in vault kv."""
    kv = vault("kv")
    change = AccessPolicyChange(
        operation="remove",
        tenant_id=kv.tenant_id,
        object_id=principal,
        permissions=Permissions(secrets=names),
    )
    kept = [p for p in before if p not in names]
    return Action.create(
        remediation_id="narrow_access_policy",
        target=kv.id,
        principal=principal,
        changes=(change,),
        before={"secrets": list(before)},
        after={"secrets": kept},
        reason="test",
        finding_ids=(),
    )


def test_two_actions_on_one_entry_the_second_judged_on_the_entry_the_first_left() -> None:
    """u1 is the vault's only manager, through `set` and `delete`. Taking `set` leaves it managing;
    taking `delete` next would leave no manager, which only the entry as the first write left it shows:
    judged on the entry as first read (`set` still there) the second removal would go through."""
    clients = MemoryClients(vault("kv", policy_entry("u1", "get", "set", "delete")))
    first = _removal("u1", "set", before=("get", "set", "delete"))
    second = _removal("u1", "delete", before=("get", "delete"))
    outcomes = apply_actions(clients, first, second)
    assert [(o.status, o.verified) for o in outcomes] == [("applied", True), ("skipped", False)]
    assert "last identity" in (outcomes[1].error or "")
    assert outcomes[1].before["secrets"] == ["get", "delete"]  # the entry as the first write left it
    assert [c[2].permissions.secrets for c in clients.mgmt.calls] == [("set",)]
    assert clients.mgmt.reads == ["kv", "kv"] and [op for op, _ in clients.authz.calls] == ["list"]
    assert clients.mgmt.vaults["kv"].access_policies[0].permissions.secrets == ("get", "delete")


def test_a_change_already_made_is_not_sent_and_drift_of_a_reviewed_plan_is_skipped() -> None:
    owner = owner_at(vault("kv").id)
    planned = snapshot(
        vault("kv", policy_entry("u1", "get", "list"), policy_entry("u2", "get", "list", "set")),
        role_assignments=(owner,),
    )
    plan = build_plan(detect(planned, ALLOW_GET), planned, ALLOW_GET)
    [made, drifted] = [a for a in plan.writes if a.principal in {"u1", "u2"}]
    # u1's list is gone already; u2 was given `delete` since the plan was reviewed.
    now = vault("kv", policy_entry("u1", "get"), policy_entry("u2", "get", "list", "set", "delete"))
    clients = MemoryClients(now, assignments=(owner,))
    outcomes = apply_actions(clients, made, drifted, pinned=True)
    assert (outcomes[0].status, outcomes[0].error) == ("noop", ALREADY_APPLIED)
    assert outcomes[1].status == "skipped" and (outcomes[1].error or "").startswith("drifted")
    assert clients.mgmt.calls == [] and clients.mgmt.reads == ["kv"]  # nothing written: nothing to verify


def test_after_a_failed_write_the_next_action_is_judged_on_a_fresh_read() -> None:
    clients, actions = _two_list_grants()
    busy = AzureCallFailed("accessPolicies/remove", 409, "Conflict", "busy")
    clients.mgmt.refuse = lambda change: busy if change.object_id == "u1" else None
    outcomes = apply_actions(clients, *actions)
    assert [(o.status, o.verified) for o in outcomes] == [("failed", False), ("applied", True)]
    assert outcomes[0].after["secrets"] == ["get", "list"]  # what the vault holds, from the next read
    assert clients.mgmt.reads == ["kv", "kv", "kv"]


def test_a_failed_verification_read_leaves_the_writes_applied_and_not_verified() -> None:
    clients, actions = _two_list_grants()
    read = clients.mgmt.list_vaults

    def only_the_first_read_answers(scope: Scope) -> list[Vault]:
        if clients.mgmt.reads:
            raise AzureCallFailed("get vault kv", 503, None, "unavailable")
        return read(scope)

    clients.mgmt.list_vaults = only_the_first_read_answers  # type: ignore[method-assign]
    audit = MemoryAuditSink()
    outcomes = apply_actions(clients, *actions, audit=audit)
    assert [(o.status, o.verified) for o in outcomes] == [("applied", False), ("applied", False)]
    assert all("not verified" in (o.error or "") for o in outcomes) and len(clients.mgmt.calls) == 2
    assert [r.state for r in audit.entries] == ["pending", "pending", "applied", "applied"]
