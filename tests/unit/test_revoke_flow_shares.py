from __future__ import annotations

from remediations.core.detect import detect
from remediations.core.model import ShareChange
from remediations.core.planning import build_plan
from remediations.core.policy import parse_policy
from remediations.fixes.revoke_flow_shares import RevokeFlowShares
from tests.unit.pp_builders import ANALYST, SVC, MemoryPowerPlatform, PPClients, seed_like, share


def _plan(policy_data: dict[str, object] | None = None, snap=None):  # type: ignore[no-untyped-def]
    snap = snap or seed_like()
    policy = parse_policy(policy_data or {})
    return snap, build_plan(detect(snap, policy), snap, policy, remediation_ids={"revoke_flow_shares"})


def test_plans_removal_of_the_co_owner_outside_the_allowed_set() -> None:
    _, plan = _plan()
    (action,) = plan.actions
    (change,) = action.changes
    assert isinstance(change, ShareChange)
    assert (change.operation, change.resource_kind, change.resource_id, change.principal_id, change.role) == (
        "delete",
        "flow",
        "f1",
        ANALYST,
        "CanEdit",
    )
    assert action.before == {"shares": ["admin:Owner", "analyst:CanEdit"]}
    assert action.after == {"shares": ["admin:Owner"]}


def test_allowed_editors_service_accounts_and_the_creator_are_kept() -> None:
    _, plan = _plan({"powerPlatform": {"allowedFlowEditors": [ANALYST.upper()]}})
    assert plan.actions == ()
    snap = seed_like()
    snap = snap.model_copy(update={"shares": (*snap.shares, share("flow", "f1", SVC, "CanEdit"))})
    _, plan = _plan({"serviceAccounts": [SVC]}, snap)
    assert [c.principal_id for a in plan.actions for c in a.changes] == [ANALYST]  # never the creator


def test_flows_without_a_keyvault_connection_are_not_touched() -> None:
    snap = seed_like()
    snap = snap.model_copy(update={"connections": ()})
    _, plan = _plan(snap=snap)
    assert plan.actions == ()


def test_apply_deletes_verifies_and_is_idempotent() -> None:
    snap, plan = _plan()
    api = MemoryPowerPlatform(snap)
    (action,) = plan.actions
    outcome = RevokeFlowShares().apply(action, PPClients(api))  # type: ignore[arg-type]
    assert outcome.status == "applied" and outcome.verified
    assert outcome.after == {"shares": ["admin:Owner"]}
    assert api.calls == [("revoke_flow_access", ("f1", [ANALYST])), ("flow_permissions", "f1")]
    again = RevokeFlowShares().apply(action, PPClients(api))  # type: ignore[arg-type]
    assert again.status == "applied" and again.after == {"shares": ["admin:Owner"]}


def test_apply_reports_failure_when_the_share_is_still_there() -> None:
    snap, plan = _plan()
    api = MemoryPowerPlatform(snap)
    api.ignore_deletes = True
    outcome = RevokeFlowShares().apply(plan.actions[0], PPClients(api))  # type: ignore[arg-type]
    assert outcome.status == "failed" and ANALYST in (outcome.error or "")


def test_a_deleted_flow_is_a_noop() -> None:
    snap, plan = _plan()
    api = MemoryPowerPlatform(snap)
    api.flow_shares.clear()
    outcome = RevokeFlowShares().apply(plan.actions[0], PPClients(api))  # type: ignore[arg-type]
    assert outcome.status == "noop"


def test_the_plan_reads_this_flow_s_shares_only_whatever_their_case_or_environment() -> None:
    snap = seed_like()
    extra = (
        share("flow", "F1", "viewer", "CanView", env=""),  # no environment recorded: judged as this flow's
        share("flow", "f1", "elsewhere", "Owner", env="env-2"),  # the same flow id in another environment
        share("connection", "f1", "conn-user", "CanEdit"),  # a connection whose id happens to match
    )
    _, plan = _plan(snap=snap.model_copy(update={"shares": snap.shares + extra}))
    (action,) = plan.actions
    assert action.before == {"shares": ["admin:Owner", "analyst:CanEdit", "viewer:CanView"]}
    assert action.after == {"shares": ["admin:Owner"]}
    assert sorted(c.principal_id for c in action.changes if isinstance(c, ShareChange)) == [
        "analyst",
        "viewer",
    ]
