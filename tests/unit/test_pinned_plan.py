"""The pure half of the pinned-plan check (remediations/core/pinned.py): hash, drift, pin, scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from remediations.core.model import (
    AccessPolicyChange,
    Action,
    ConnectionReferenceChange,
    Permissions,
    Plan,
    ShareChange,
    VaultAuthorizationChange,
)
from remediations.core.pinned import (
    PinnedPlan,
    covering_scope,
    drift_reason,
    environments_of,
    once_each,
    pin,
    plan_hash,
    switched_since,
)
from tests.unit.kv_builders import snapshot
from tests.unit.kv_builders import vault as vault_builder

SUB = "22222222-2222-4222-8222-222222222222"
VAULT = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv"
SP = "66666666-6666-4666-8666-666666666666"


def _remove_list(before: list[str], target: str = VAULT) -> Action:
    change = AccessPolicyChange(
        operation="remove", tenant_id="t", object_id=SP, permissions=Permissions(secrets=("list",))
    )
    return Action.create(
        remediation_id="remove_list_permission",
        target=target,
        principal=SP,
        changes=(change,),
        before={"secrets": before},
        after={"secrets": [p for p in before if p.lower() != "list"]},
        reason="no rule allows list",
        finding_ids=("f1",),
    )


def _plan(*actions: Action, created: datetime | None = None, dry_run: bool = True) -> Plan:
    return Plan(id="p", actions=actions, created_at=created or datetime.now(UTC), dry_run=dry_run)


def test_the_hash_covers_the_before_state_not_the_time_of_planning() -> None:
    reviewed = _plan(_remove_list(["Get", "List"]))
    later = _plan(_remove_list(["Get", "List"]), created=datetime.now(UTC) + timedelta(hours=3))
    assert plan_hash([(VAULT, reviewed)]) == plan_hash([(VAULT, later)])
    assert plan_hash([(VAULT, reviewed)]) != plan_hash([(VAULT, _plan(_remove_list(["Get", "List", "Set"])))])
    pinned = PinnedPlan.of([(VAULT, reviewed)])
    assert pinned.verified and pinned.id == f"plan-{pinned.hash[:16]}"
    tampered = pinned.model_copy(
        update={"scopes": PinnedPlan.of([(VAULT, later.model_copy(update={"actions": ()}))]).scopes}
    )
    assert not tampered.verified


def test_drift_compares_permission_sets_without_case_or_order() -> None:
    action = _remove_list(["Get", "List"])
    assert drift_reason(action, {"secrets": ["list", "get"], "keys": []}) is None
    reason = drift_reason(action, {"secrets": ["Get", "List", "Set"]})
    assert reason is not None and reason.startswith("drifted") and "get, list, set" in reason
    gone = drift_reason(action, None)
    assert gone is not None and gone.startswith("drifted")


def test_pin_keeps_the_reviewed_actions_and_marks_the_drifted_ones() -> None:
    kept, drifted = _remove_list(["Get", "List"]), _remove_list(["Get", "List"], target=VAULT + "2")
    new = _remove_list(["List"], target=VAULT + "3")  # only in a plan made now
    fresh = _plan(kept, _remove_list(["Get", "List", "Set"], target=VAULT + "2"), new, dry_run=False)
    checked = pin(_plan(kept, drifted), fresh)
    assert [a.id for a in checked.actions] == [kept.id, drifted.id]
    assert checked.actions[0].skip_reason is None
    assert (checked.actions[1].skip_reason or "").startswith("drifted")
    assert checked.dry_run is False
    # A rail the fresh plan applies (last manager) still holds for the pinned action.
    railed = kept.model_copy(update={"skip_reason": "would remove the last manager"})
    assert pin(_plan(kept), _plan(railed)).actions[0].skip_reason == "would remove the last manager"


def test_the_scope_a_stored_plan_is_read_again_on() -> None:
    one = _plan(_remove_list(["List"]))
    assert covering_scope(one) is not None and covering_scope(one).resource_id == VAULT  # type: ignore[union-attr]
    two_vaults = _plan(_remove_list(["List"]), _remove_list(["List"], target=VAULT + "2"))
    assert covering_scope(two_vaults).resource_id == f"/subscriptions/{SUB}/resourceGroups/rg"  # type: ignore[union-attr]
    other_sub = VAULT.replace(SUB, "33333333-3333-4333-8333-333333333333")
    assert covering_scope(_plan(_remove_list(["List"]), _remove_list(["List"], target=other_sub))) is None
    share = Action.create(
        remediation_id="revoke_flow_shares",
        target="/providers/Microsoft.ProcessSimple/environments/env-1/flows/f",
        principal="u",
        changes=(
            ShareChange(
                operation="delete",
                resource_kind="flow",
                environment="env-1",
                resource_id="f",
                principal_id="u",
                role="CanEdit",
            ),
        ),
        before={"shares": ["u"]},
        after={"shares": []},
        reason="r",
        finding_ids=(),
    )
    assert environments_of(_plan(share)) == ("env-1",)
    assert covering_scope(_plan(share)) is None
    # a stored plan rebinding a solution's connection reference is checked against its environment
    rebind = share.model_copy(
        update={
            "changes": (
                ConnectionReferenceChange(
                    environment="env-2",
                    logical_name="vg_kv",
                    from_connection="c-person",
                    to_connection="c-service",
                    flow_ids=("f",),
                ),
            )
        }
    )
    assert environments_of(_plan(rebind)) == ("env-2",)


def test_a_long_state_that_drifted_names_what_was_added_and_removed_only() -> None:
    grants = [f"Key Vault Secrets User for sp-{n} at {VAULT}" for n in range(10)]
    action = _remove_list(["Get"]).model_copy(
        update={"before": {"secrets": ["get"], "role assignments": grants}}
    )
    reason = drift_reason(action, {"secrets": ["get"], "role assignments": [*grants[1:], "Owner for x at /"]})
    assert reason is not None and "secrets:" not in reason  # the unchanged key is not named
    assert reason.endswith(f"(role assignments: added owner for x at /; removed {grants[0].casefold()})")


def test_a_switch_of_a_vault_switched_since_is_drift_named_as_such() -> None:
    switch = VaultAuthorizationChange(vault_id=VAULT, enable_rbac_authorization=True)
    migrate = Action.create(
        remediation_id="migrate_to_rbac",
        target=VAULT,
        principal=None,
        changes=(switch,),
        before={"vault": ["enableRbacAuthorization=false (access policies)"]},
        after={},
        reason="migrate",
        finding_ids=(),
    )
    vault = vault_builder("kv", rbac=True).model_copy(update={"id": VAULT, "subscription_id": SUB})
    now = snapshot(vault)
    assert switched_since(migrate, now) == (
        "drifted: the vault was switched to Azure RBAC since the plan was made "
        "(it reads enableRbacAuthorization=true now)"
    )
    [checked] = pin(_plan(migrate), _plan(dry_run=False), now).actions  # a fresh plan has no migration
    assert checked.skip_reason == switched_since(migrate, now)
    on_policies = snapshot(vault.model_copy(update={"enable_rbac_authorization": False}))
    assert switched_since(migrate, on_policies) is None


def test_an_action_two_scopes_plan_is_pinned_in_the_first_only() -> None:
    shared, own = _remove_list(["Get", "List"]), _remove_list(["List"], target=VAULT + "2")
    [(first, one), (second, two)] = once_each([(VAULT, _plan(shared)), (VAULT + "2", _plan(shared, own))])
    assert (first, second) == (VAULT, VAULT + "2")
    assert [a.id for a in one.actions] == [shared.id] and [a.id for a in two.actions] == [own.id]
