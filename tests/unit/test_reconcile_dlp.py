"""Reconcile settles a DLP write (`enforce_keyvault_dlp`) a crash left pending, from the DLP policies the
next run read: the policy holds what the change adds -> applied; the policy it updated is gone -> noop;
not made -> noop when this run makes it again, else failed naming what is missing; the DLP read failed
-> pending. The actions are the fix's own plans, and the "after" policies what its writes leave in the
in-memory admin API, read back with the inventory's own reading (`dlp_from_api`)."""

from __future__ import annotations

from datetime import UTC, datetime

from remediations.core.detect import detect
from remediations.core.dlp_shape import DLP_POLICIES, dlp_from_api
from remediations.core.model import (
    KEYVAULT_CONNECTOR_ID,
    Action,
    DlpPolicy,
    InventoryError,
    PowerPlatformScope,
    Snapshot,
)
from remediations.core.planning import build_plan
from remediations.core.policy import parse_policy
from remediations.core.registry import get_remediation
from remediations.shell.audit import AuditRecord, MemoryAuditSink
from remediations.shell.reconcile import reconcile, scopes
from tests.unit.pp_builders import ENV, MemoryPowerPlatform, PPClients, seed_like
from tests.unit.test_reconcile_power_platform import _pending

NAME = "vaultguard: Key Vault without enumeration"
BLOCKING = {"powerPlatform": {"dlp": {"blockListSecrets": False, "blockConnectorInEnvironments": [ENV]}}}


def _tenant(*dlp: DlpPolicy) -> Snapshot:
    scope = PowerPlatformScope(environments=(ENV,))
    return seed_like().model_copy(update={"dlp_policies": dlp, "power_platform_scope": scope})


def _action(snap: Snapshot, policy: dict[str, object] | None = None) -> Action:
    rules = parse_policy(policy or {})
    plan = build_plan(
        detect(snap, rules), snap, rules, remediation_ids={"enforce_keyvault_dlp"}, dry_run=False
    )
    [action] = plan.writes
    return action


def _applied(snap: Snapshot, action: Action, api: MemoryPowerPlatform | None = None) -> Snapshot:
    """The next run's read of the policies after the fix's write took effect."""
    api = api or MemoryPowerPlatform(snap)
    assert get_remediation("enforce_keyvault_dlp").apply(action, PPClients(api)).status == "applied"  # type: ignore[arg-type]
    return snap.model_copy(update={"dlp_policies": tuple(dlp_from_api(p) for p in api.policies)})


def _settle(snap: Snapshot, action: Action, planned: set[str] | None = None) -> list[AuditRecord]:
    return reconcile([_pending(action)], snap, planned or set(), "next")


def test_a_created_policy_that_took_effect_is_applied_and_one_never_made_is_noop_or_failed() -> None:
    snap = _tenant()
    action = _action(snap)
    assert action.target == f"{DLP_POLICIES}/{NAME}"
    [applied] = _settle(_applied(snap, action), action)
    assert (applied.state, applied.error) == ("applied", None)
    [again] = _settle(snap, action, planned={action.id})
    assert again.state == "noop" and "planned again by this run" in again.reason
    [failed] = _settle(snap, action)
    assert failed.state == "failed"
    assert failed.error == f"interrupted before the change took effect; no DLP policy named {NAME}"


def test_an_update_is_judged_by_what_it_adds_to_our_policy() -> None:
    ours = {
        "policyDefinition": {
            "name": "p9",
            "displayName": NAME,
            "environmentType": "OnlyEnvironments",
            "environments": [{"name": "env-0"}],
        }
    }
    snap = _tenant(dlp_from_api(ours))
    action = _action(snap)
    assert action.target == f"{DLP_POLICIES}/p9"
    api = MemoryPowerPlatform(snap)
    api.policies = [ours]
    [applied] = _settle(_applied(snap, action, api), action)
    assert applied.state == "applied"
    [failed] = _settle(snap, action)
    assert failed.error == (
        f"interrupted before the change took effect; DLP policy {NAME} does not cover {ENV}; "
        "does not block shared_keyvault:ListSecrets"
    )
    [gone] = _settle(_tenant(), action)  # our policy was deleted since
    assert (gone.state, gone.error) == ("noop", "target no longer exists")


def test_a_blocked_connector_is_judged_by_the_policys_blocked_group() -> None:
    snap = _tenant()
    action = _action(snap, BLOCKING)
    assert action.after["blockedConnectors"] == ["shared_keyvault"]
    [applied] = _settle(_applied(snap, action), action)
    assert applied.state == "applied"
    name = f"{NAME} (connector blocked)"
    allowed = DlpPolicy(id="p1", display_name=name, environments=(ENV,))
    [failed] = _settle(snap.model_copy(update={"dlp_policies": (allowed,)}), action)
    assert failed.state == "failed" and failed.error is not None
    assert failed.error.endswith(f"DLP policy {name} does not block shared_keyvault")
    listed = allowed.model_copy(update={"blocked_connectors": (KEYVAULT_CONNECTOR_ID,)})
    assert _settle(snap.model_copy(update={"dlp_policies": (listed,)}), action)[0].state == "applied"


def test_a_failed_dlp_read_leaves_the_row_pending() -> None:
    snap = _tenant()
    action = _action(snap)
    for error in (
        InventoryError(resource_id="dlp policies", operation="list DLP policies", status=503, message="busy"),
        InventoryError(resource_id="p4", operation="get DLP policy", status=429, message="slow down"),
    ):
        assert _settle(_applied(snap, action).model_copy(update={"errors": (error,)}), action) == []


def test_a_dlp_change_is_judged_by_the_run_that_read_its_environment_or_every_environment() -> None:
    snap = _tenant()
    action = _action(snap)
    other = snap.model_copy(
        update={"environments": tuple(e.model_copy(update={"name": "env-2"}) for e in snap.environments)}
    )
    assert _settle(other, action) == []  # env-2's worker: another worker judges it
    everywhere = other.model_copy(update={"power_platform_scope": PowerPlatformScope(all_environments=True)})
    assert [r.state for r in _settle(everywhere, action)] == ["failed"]


def test_the_run_reads_the_pending_dlp_rows_when_it_read_power_platform() -> None:
    snap = _tenant()
    sink = MemoryAuditSink()
    sink.record(_pending(_action(snap)))
    now = datetime.now(UTC)
    assert len(sink.dangling(now, scopes(snap))) == 1
    assert sink.dangling(now, scopes(snap, power_platform=False)) == []
    assert sink.dangling(now, scopes(snap.model_copy(update={"power_platform_scope": None}))) == []


def test_a_plan_filtered_for_the_fix_leaves_a_dlp_change_not_in_place_pending() -> None:
    snap = _tenant()
    action = _action(snap)
    row = _pending(action)
    assert reconcile([row], snap, set(), "next", complete_for={"revoke_flow_shares"}) == []
    [applied] = reconcile([row], _applied(snap, action), set(), "next", complete_for=frozenset())
    assert applied.state == "applied"
    [failed] = reconcile([row], snap, set(), "next", complete_for={"enforce_keyvault_dlp"})
    assert failed.state == "failed"


def test_a_create_and_an_update_of_our_policy_take_the_same_write_lease() -> None:
    """Two workers of a sweep: one planned the create (it saw no policy: the target is the display
    name), the other the update (by the policy's id); both write under the display name's lease."""
    fix = get_remediation("enforce_keyvault_dlp")
    create = _action(_tenant())
    ours = DlpPolicy(id="p9", display_name=NAME, environments=("env-0",))
    update = _action(_tenant(ours))
    assert (create.target, update.target) == (f"{DLP_POLICIES}/{NAME}", f"{DLP_POLICIES}/p9")
    assert fix.lease_key(create) == fix.lease_key(update) == f"{DLP_POLICIES}/{NAME}"
