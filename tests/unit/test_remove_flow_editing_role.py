"""remove_flow_editing_role: System Customizer taken from people the policy does not allow to edit flows,
where a flow runs on a person's Key Vault connection; verified by a fresh read of their roles."""

from __future__ import annotations

from remediations.core.closure import paths_left, unaccepted
from remediations.core.detect import detect
from remediations.core.model import SecurityRoleChange, Snapshot
from remediations.core.planning import build_plan
from remediations.core.policy import parse_policy
from remediations.fixes.remove_flow_editing_role import RemoveFlowEditingRole
from tests.unit.pp_builders import ADMIN, CUSTOMIZER, ENV, MemoryPowerPlatform, PPClients, seed_like

ON = {"powerPlatform": {"removeFlowEditingRoles": True}}


def _plan(policy_data: dict[str, object], snap: Snapshot | None = None):  # type: ignore[no-untyped-def]
    snap = snap or seed_like()
    policy = parse_policy(policy_data)
    return snap, build_plan(
        detect(snap, policy), snap, policy, remediation_ids={"remove_flow_editing_role"}, dry_run=False
    )


def test_removes_system_customizer_only_from_people_the_policy_does_not_allow() -> None:
    _, plan = _plan(ON)
    (action,) = plan.actions  # the admin's System Administrator is left alone
    assert action.changes == (
        SecurityRoleChange(environment=ENV, principal_id=CUSTOMIZER, role="System Customizer"),
    )
    assert action.before == {"roles": ["System Customizer"]} and action.after == {"roles": []}
    assert action.principal == CUSTOMIZER and action.finding_ids
    for allowed in (
        {"powerPlatform": {"removeFlowEditingRoles": True, "allowedFlowEditors": [CUSTOMIZER]}},
        {"powerPlatform": {"removeFlowEditingRoles": True}, "breakGlass": [CUSTOMIZER]},
        {"powerPlatform": {"removeFlowEditingRoles": True}, "serviceAccounts": [CUSTOMIZER]},
        {"powerPlatform": {"removeFlowEditingRoles": True}, "exclusions": {"identities": [CUSTOMIZER]}},
    ):
        assert _plan(allowed)[1].actions == ()


def test_off_by_default_and_not_where_no_flow_runs_on_a_persons_connection() -> None:
    assert _plan({})[1].actions == ()
    snap = seed_like()
    no_flows = snap.model_copy(update={"flows": ()})
    assert _plan(ON, no_flows)[1].actions == ()


def test_apply_removes_verifies_from_a_fresh_read_and_closes_the_customizers_paths() -> None:
    snap, plan = _plan(ON)
    api = MemoryPowerPlatform(snap)
    (action,) = plan.actions
    outcome = RemoveFlowEditingRole().apply(action, PPClients(api))  # type: ignore[arg-type]
    assert outcome.status == "applied" and outcome.verified and outcome.after == {"roles": []}
    assert api.calls == [
        ("security_roles", CUSTOMIZER),
        ("remove_security_role", (CUSTOMIZER, "System Customizer")),
        ("security_roles", CUSTOMIZER),
    ]
    again = RemoveFlowEditingRole().apply(action, PPClients(api))  # type: ignore[arg-type]
    assert again.status == "noop" and again.verified
    # closure: with the role gone the customizer has no path left; the admin's own is the owner's
    after = snap.model_copy(
        update={
            "environments": tuple(
                e.model_copy(update={"role_holders": {ADMIN: ("System Administrator",)}})
                for e in snap.environments
            )
        }
    )
    assert CUSTOMIZER not in {p.person for p in paths_left(after, parse_policy(ON))}
    assert CUSTOMIZER in {p.person for p in unaccepted(paths_left(snap, parse_policy(ON)))}


def test_apply_fails_when_the_role_is_still_held_after_the_write() -> None:
    snap, plan = _plan(ON)
    api = MemoryPowerPlatform(snap)
    api.ignore_role_removal = True
    outcome = RemoveFlowEditingRole().apply(plan.actions[0], PPClients(api))  # type: ignore[arg-type]
    assert outcome.status == "failed" and "still holds 'System Customizer'" in (outcome.error or "")
