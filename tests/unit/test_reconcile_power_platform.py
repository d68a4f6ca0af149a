"""Reconcile settles flow, connection-reference and share writes a crash left pending, from the next
run's fresh inventory: in place -> applied, target gone -> noop, not in place -> noop when this run
writes it again, else failed naming what is left. The actions are the fixes' own plans and the "after"
inventories what the fixes' writes leave (the in-memory Power Platform API), so the rows name their
changes as a real run's do."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from remediations.core.detect import detect
from remediations.core.model import Action, InventoryError, Snapshot
from remediations.core.planning import build_plan
from remediations.core.policy import parse_policy
from remediations.core.pp_reread import reread_power_platform
from remediations.core.registry import get_remediation
from remediations.shell.apply import RunContext, _audit
from remediations.shell.audit import AuditRecord, MemoryAuditSink
from remediations.shell.reconcile import reconcile, scopes
from tests.unit.kv_builders import policy_entry
from tests.unit.pp_builders import (
    ADMIN,
    SVC,
    MemoryPowerPlatform,
    PPClients,
    connection,
    flow,
    keyvault_action,
    seed_like,
)

POLICY = parse_policy(
    {
        "powerPlatform": {
            "environments": ["*"],
            "quarantineFlows": True,
            "restoreSecureOutputs": True,
            "removeFlowEditingRoles": True,
            "serviceConnections": {"kv": "c-svc"},
        }
    }
)
FIXES = {
    "remove_flow_editing_role",
    "quarantine_flow",
    "restore_secure_outputs",
    "move_to_service_connection",
    "revoke_flow_shares",
    "revoke_connection_shares",
}
SECRET_VALUE = "emulated-secret-value-in-a-definition"


def _tenant(*, solution: bool = False) -> Snapshot:
    """The seed in miniature: the admin's connection behind flow f1 (co-owned by the analyst, who also
    may use the connection), a Get secret with secure outputs off, a service connection the policy
    names; `solution`: f1 and f2 bind the connection through the connection reference row `vg_kv`."""
    snap = seed_like()
    insecure = {
        "Get_secret": keyvault_action("GetSecret", "db-password", secure=False),
        "Compose": {"type": "Compose", "inputs": SECRET_VALUE},
    }
    flows = (flow("f1", ADMIN, "c-admin", insecure),)
    if solution:
        bound = {"solution_references": {"shared_keyvault": "vg_kv"}}
        flows = tuple(flow(f, ADMIN, "c-admin").model_copy(update=bound) for f in ("f1", "f2"))
    vaults = tuple(
        v.model_copy(update={"access_policies": (*v.access_policies, policy_entry(SVC, "Get"))})
        for v in snap.vaults
    )
    svc = connection("c-svc", SVC, kind="servicePrincipal")
    return snap.model_copy(update={"flows": flows, "connections": (*snap.connections, svc), "vaults": vaults})


def _actions(snap: Snapshot) -> list[Action]:
    plan = build_plan(detect(snap, POLICY), snap, POLICY, remediation_ids=FIXES, dry_run=False)
    return list(plan.writes)


def _pending(action: Action) -> AuditRecord:
    """The `pending` row the shell writes before the action, written by the shell's own code."""
    sink = MemoryAuditSink()
    _audit(sink, RunContext(correlation_id="crashed", trigger="timer"), action, sequence=0, state="pending")
    [row] = sink.entries
    return row


def _reread(snap: Snapshot, api: MemoryPowerPlatform) -> Snapshot:
    """The next run's inventory of what the API holds now."""
    shares = (
        *(s for v in api.flow_shares.values() for s in v),
        *(s for v in api.connection_shares.values() for s in v),
    )
    environments = tuple(
        e.model_copy(
            update={"role_holders": {p: tuple(sorted(r)) for (n, p), r in api.roles.items() if n == e.name}}
        )
        for e in snap.environments
    )
    return snap.model_copy(
        update={"flows": tuple(api.flows.values()), "shares": shares, "environments": environments}
    )


def _settle(snap: Snapshot, actions: list[Action], planned: set[str] | None = None) -> dict[str, AuditRecord]:
    rows = reconcile([_pending(a) for a in actions], snap, planned or set(), "next")
    return {r.remediation_id + ("/row" if "connectionReferences" in r.target else ""): r for r in rows}


def test_writes_that_took_effect_are_recorded_applied() -> None:
    snap = _tenant()
    actions = _actions(snap)
    assert {a.remediation_id for a in actions} == FIXES
    api = MemoryPowerPlatform(snap)
    for action in actions:  # the run made every write, then died before recording the outcomes
        assert get_remediation(action.remediation_id).apply(action, PPClients(api)).status == "applied"  # type: ignore[arg-type]
    settled = _settle(_reread(snap, api), actions)
    assert {k: (r.state, r.error) for k, r in settled.items()} == {k: ("applied", None) for k in FIXES}
    assert all(
        r.reason == "reconciled by run next: the change is in place (re-read)" for r in settled.values()
    )


def test_writes_that_did_not_take_effect_are_noop_when_planned_again_else_failed_naming_what_is_left() -> (
    None
):
    snap = _tenant()
    actions = _actions(snap)
    again = _settle(snap, actions, planned={a.id for a in actions})
    assert {r.state for r in again.values()} == {"noop"}
    assert all("planned again by this run" in r.reason for r in again.values())
    left = _settle(snap, actions)
    assert {r.state for r in left.values()} == {"failed"}
    assert {k: r.error for k, r in left.items()} == {
        "quarantine_flow": "interrupted before the change took effect; the flow is Started",
        "restore_secure_outputs": "interrupted before the change took effect; still unsecured: "
        "['actions.Get_secret']",
        "move_to_service_connection": "interrupted before the change took effect; the flow's own "
        "connection references name ['c-admin']",
        "revoke_flow_shares": "interrupted before the change took effect; still shared: ['analyst:CanEdit']",
        "revoke_connection_shares": "interrupted before the change took effect; still shared: "
        "['analyst:CanView']",
        "remove_flow_editing_role": "interrupted before the change took effect; customizer still holds "
        "['System Customizer']",
    }
    for row in (*again.values(), *left.values()):  # the definition never reaches the audit trail
        assert SECRET_VALUE not in row.model_dump_json()


def test_a_half_revocation_and_someone_elses_change_are_failed_not_applied() -> None:
    snap = _tenant()
    actions = {a.remediation_id: a for a in _actions(snap)}
    elsewhere = connection("c-other", SVC, kind="servicePrincipal")
    moved_on = snap.model_copy(
        update={
            "flows": tuple(
                f.model_copy(update={"state": "Suspended", "reference_keys": {"shared_keyvault": "c-other"}})
                for f in snap.flows
            ),
            "connections": (*snap.connections, elsewhere),
        }
    )
    settled = _settle(moved_on, [actions["quarantine_flow"], actions["move_to_service_connection"]])
    assert (
        settled["quarantine_flow"].error is not None
        and "the flow is Suspended" in settled["quarantine_flow"].error
    )
    assert settled["move_to_service_connection"].state == "failed"


def test_a_connection_reference_row_is_judged_through_the_flows_naming_it() -> None:
    snap = _tenant(solution=True)
    [row_action] = [a for a in _actions(snap) if "connectionReferences" in a.target]
    assert reread_power_platform(snap, row_action) is not None
    assert _settle(snap, [row_action])["move_to_service_connection/row"].state == "failed"
    api = MemoryPowerPlatform(snap)
    get_remediation("move_to_service_connection").apply(row_action, PPClients(api))  # type: ignore[arg-type]
    assert _settle(_reread(snap, api), [row_action])["move_to_service_connection/row"].state == "applied"
    nobody = snap.model_copy(update={"flows": ()})  # no flow names the row: nothing binds through it
    gone = _settle(nobody, [row_action])["move_to_service_connection/row"]
    assert (gone.state, gone.error) == ("noop", "target no longer exists")


def test_a_deleted_flow_or_connection_is_a_noop() -> None:
    snap = _tenant()
    actions = _actions(snap)
    emptied = snap.model_copy(update={"flows": (), "connections": (), "shares": ()})
    settled = _settle(emptied, [a for a in actions if a.remediation_id != "remove_flow_editing_role"])
    assert {(r.state, r.error) for r in settled.values()} == {("noop", "target no longer exists")}


def test_a_share_revocation_on_a_flow_without_a_key_vault_connection_any_more_is_a_noop() -> None:
    """The inventory reads shares only for flows that use a Key Vault connection: for another flow the
    revocation is not re-read, and nothing is exposed through its shares any more."""
    snap = _tenant()
    [action] = [a for a in _actions(snap) if a.remediation_id == "revoke_flow_shares"]
    elsewhere = connection("c-sql", ADMIN).model_copy(update={"connector_id": "/providers/x/apis/shared_sql"})
    moved = snap.model_copy(
        update={
            "flows": tuple(f.model_copy(update={"connection_references": ("c-sql",)}) for f in snap.flows),
            "connections": (*snap.connections, elsewhere),
        }
    )
    [row] = reconcile([_pending(action)], moved, set(), "next")
    assert (row.state, row.error) == ("noop", "not re-read: the change no longer matters")
    assert row.reason.endswith(
        "the flow no longer uses a Key Vault connection; nothing is exposed through its shares"
    )
    # The same connection spelled in another case: the shares were not read, and it is Key Vault: unknown.
    upper = snap.model_copy(
        update={
            "flows": tuple(f.model_copy(update={"connection_references": ("C-ADMIN",)}) for f in snap.flows)
        }
    )
    assert reconcile([_pending(action)], upper, set(), "next") == []


@pytest.mark.parametrize("why", ["environment not read", "a read failed"])
def test_rows_stay_pending_when_the_run_cannot_tell(why: str) -> None:
    snap = _tenant()
    actions = _actions(snap)
    if why == "environment not read":
        blind = snap.model_copy(update={"environments": ()})
    else:
        error = InventoryError(resource_id="f1", operation="list flow shares", status=503, message="busy")
        blind = snap.model_copy(update={"errors": (error,)})
    assert reconcile([_pending(a) for a in actions], blind, set(), "next") == []


def test_the_run_reads_the_pending_rows_of_the_environments_it_read() -> None:
    snap = _tenant()
    sink = MemoryAuditSink()
    for action in _actions(snap):
        sink.record(_pending(action))
    now = datetime.now(UTC)
    assert len(sink.dangling(now, scopes(snap))) == len(FIXES)
    assert sink.dangling(now, scopes(snap, power_platform=False)) == []


def test_a_plan_filtered_for_a_fix_leaves_its_changes_not_in_place_pending_and_judges_the_rest() -> None:
    """A ticket naming other fixes does not plan these actions only because of its filter: a change not
    in place stays pending (a later run that plans the fix settles it); one in place is still applied."""
    snap = _tenant()
    actions = _actions(snap)
    rows = [_pending(a) for a in actions]
    assert reconcile(rows, snap, set(), "next", complete_for={"remove_list_permission"}) == []
    api = MemoryPowerPlatform(snap)
    for action in actions:
        assert get_remediation(action.remediation_id).apply(action, PPClients(api)).status == "applied"  # type: ignore[arg-type]
    settled = reconcile(rows, _reread(snap, api), set(), "next", complete_for=frozenset())
    assert sorted(r.state for r in settled) == ["applied"] * len(actions)
    unfiltered = reconcile(rows, snap, set(), "next", complete_for=FIXES)
    assert sorted(r.state for r in unfiltered) == ["failed"] * len(actions)
