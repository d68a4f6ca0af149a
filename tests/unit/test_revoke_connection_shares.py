from __future__ import annotations

from remediations.core.detect import detect
from remediations.core.model import ShareChange
from remediations.core.planning import build_plan
from remediations.core.policy import parse_policy
from remediations.fixes.revoke_connection_shares import RevokeConnectionShares
from tests.unit.pp_builders import ANALYST, MemoryPowerPlatform, PPClients, seed_like


def _plan(policy_data: dict[str, object] | None = None):  # type: ignore[no-untyped-def]
    snap = seed_like()
    policy = parse_policy(policy_data or {})
    return snap, build_plan(detect(snap, policy), snap, policy, remediation_ids={"revoke_connection_shares"})


def test_plans_deleting_the_share_by_its_permission_id() -> None:
    _, plan = _plan()
    (action,) = plan.actions
    (change,) = action.changes
    assert isinstance(change, ShareChange)
    assert (change.resource_kind, change.resource_id, change.principal_id, change.api) == (
        "connection",
        "c-admin",
        ANALYST,
        "shared_keyvault",
    )
    assert change.permission_id == "/providers/x/connections/c-admin/permissions/analyst-perm"
    assert action.after == {"shares": ["admin:Owner"]}


def test_allowed_connection_users_are_kept() -> None:
    _, plan = _plan({"powerPlatform": {"allowedConnectionUsers": [ANALYST]}})
    assert plan.actions == ()


def test_apply_deletes_then_verifies_with_one_read() -> None:
    snap, plan = _plan()
    api = MemoryPowerPlatform(snap)
    outcome = RevokeConnectionShares().apply(plan.actions[0], PPClients(api))  # type: ignore[arg-type]
    assert outcome.status == "applied" and outcome.verified
    assert api.calls == [
        (
            "modify_connection_permissions",
            ("c-admin", "shared_keyvault", ["/providers/x/connections/c-admin/permissions/analyst-perm"]),
        ),
        ("connection_permissions", "c-admin"),
    ]
    assert outcome.after == {"shares": ["admin:Owner"]}


def test_a_deleted_connection_is_a_noop() -> None:
    snap, plan = _plan()
    api = MemoryPowerPlatform(snap)
    api.connection_shares.clear()
    outcome = RevokeConnectionShares().apply(plan.actions[0], PPClients(api))  # type: ignore[arg-type]
    assert outcome.status == "noop"
