from __future__ import annotations

from remediations.core.detect import detect
from remediations.core.model import FlowStateChange, Snapshot
from remediations.core.planning import build_plan
from remediations.core.policy import parse_policy
from remediations.fixes.quarantine_flow import QuarantineFlow
from tests.unit.pp_builders import ANALYST, CUSTOMIZER, ENV, MemoryPowerPlatform, PPClients, seed_like

ON = {"powerPlatform": {"quarantineFlows": True}}


def _plan(policy_data: dict[str, object], snap: Snapshot | None = None):  # type: ignore[no-untyped-def]
    snap = snap or seed_like()
    policy = parse_policy(policy_data)
    return snap, build_plan(
        detect(snap, policy), snap, policy, remediation_ids={"quarantine_flow"}, dry_run=False
    )


def test_turns_off_a_running_flow_on_a_persons_connection_that_others_can_edit() -> None:
    _, plan = _plan(ON)
    (action,) = plan.actions
    (change,) = action.changes
    assert change == FlowStateChange(environment=ENV, flow_id="f1")
    assert action.before == {"state": ["Started"]} and action.after == {"state": ["Stopped"]}
    assert ANALYST in action.reason and CUSTOMIZER in action.reason


def test_off_by_default_and_never_for_a_stopped_flow_or_one_only_its_owner_edits() -> None:
    assert _plan({})[1].actions == ()
    snap = seed_like()
    stopped = snap.model_copy(
        update={"flows": tuple(f.model_copy(update={"state": "Stopped"}) for f in snap.flows)}
    )
    assert _plan(ON, stopped)[1].actions == ()
    alone = snap.model_copy(
        update={
            "shares": tuple(s for s in snap.shares if s.principal_id != ANALYST),
            "environments": tuple(e.model_copy(update={"role_holders": {}}) for e in snap.environments),
        }
    )
    assert _plan(ON, alone)[1].actions == ()


def test_apply_turns_off_verifies_from_a_fresh_read_and_is_idempotent() -> None:
    snap, plan = _plan(ON)
    api = MemoryPowerPlatform(snap)
    (action,) = plan.actions
    outcome = QuarantineFlow().apply(action, PPClients(api))  # type: ignore[arg-type]
    assert outcome.status == "applied" and outcome.verified
    assert api.calls == [("get_flow", "f1"), ("turn_off_flow", "f1"), ("get_flow", "f1")]
    again = QuarantineFlow().apply(action, PPClients(api))  # type: ignore[arg-type]
    assert again.status == "noop" and again.verified


def test_apply_fails_when_the_flow_is_still_on_after_the_write() -> None:
    snap, plan = _plan(ON)
    api = MemoryPowerPlatform(snap)
    api.ignore_turn_off = True
    outcome = QuarantineFlow().apply(plan.actions[0], PPClients(api))  # type: ignore[arg-type]
    assert outcome.status == "failed" and "still Started" in (outcome.error or "")
