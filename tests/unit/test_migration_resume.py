"""A migration an interrupted attempt left half-done, picked up again: a reviewed (pinned) migration is
not drifted by the assignments its own interrupted attempt created (from its step rows, by name), at
the start of the run and under the vault's lease, while any other change still is; and a rollback of
leftovers that is itself cut short hands what it did not delete to the next run. The attempt that
resumes names what it adopted when its first read fails, and does not send again the create of an
adopted assignment the read shows in place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from remediations.adapters.errors import AzureCallFailed
from remediations.core.detect import detect
from remediations.core.model import Action, Outcome, Plan, RoleAssignment, RoleAssignmentChange
from remediations.core.pinned import pin, undoes_left
from remediations.core.planning import assemble_plan, build_plan
from remediations.core.policy import parse_policy
from remediations.core.rbac_migration import state_before, state_now
from remediations.core.role_changes import describe
from remediations.fixes.migrate_to_rbac import MigrateToRbac
from remediations.shell.apply import (
    AuditedSteps,
    RunContext,
    apply_plan,
    read_interrupted,
    reconcile_dangling,
)
from remediations.shell.audit import AuditRecord, MemoryAuditSink, steps_of
from remediations.shell.reconcile import ROLLS_BACK, created_in_place, left_by_interrupted, reconcile
from tests.unit.kv_builders import MemoryClients, policy_entry, snapshot
from tests.unit.rbac_builders import assignment
from tests.unit.test_migrate_to_rbac import (
    ADOPTED_THEN_DELETED,
    ROLES,
    _action,
    _applied_with,
    _drift,
    _left_by_an_interrupted_attempt,
    _policy,
    _vault,
)


def _plan(action: Action) -> Plan:
    return assemble_plan([action], parse_policy({}), created_at=datetime.now(UTC), dry_run=False)


def _theirs(leftover: RoleAssignment) -> RoleAssignment:
    """Someone else's grant of the same role to the same identity at the same scope, under its own name."""
    return assignment(leftover.scope, leftover.role_guid, leftover.principal_id, name="their-own-grant")


def test_a_reviewed_migration_is_not_drifted_by_what_its_interrupted_attempt_created() -> None:
    reviewed = _action(_policy())  # planned before any attempt
    _, fresh, first, leftover = _left_by_an_interrupted_attempt()
    assert fresh.id == reviewed.id  # the same changes: the same action
    snap = snapshot(_vault(), role_assignments=(leftover,))
    [as_read] = pin(_plan(reviewed), _plan(fresh), snap).actions
    assert (as_read.skip_reason or "").startswith("drifted")  # the attempt's own grant, unless discounted
    [resumed] = pin(_plan(reviewed), _plan(fresh), snap, {reviewed.id: (first,)}).actions
    assert resumed.skip_reason is None


def _access_policy_for_another(snap_vault):  # type: ignore[no-untyped-def]
    return snap_vault.model_copy(
        update={"access_policies": (*snap_vault.access_policies, policy_entry("x", "get"))}
    )


@pytest.mark.parametrize("change", ["their assignment", "access policy", "switched"])
def test_any_other_change_after_the_crash_still_skips_the_reviewed_migration(change: str) -> None:
    reviewed = _action(_policy())
    _, _, first, leftover = _left_by_an_interrupted_attempt()
    vault, assignments = _vault(), (leftover,)
    if change == "their assignment":  # by name: the same role, principal and scope do not make it ours
        assignments = (leftover, _theirs(leftover))
    elif change == "access policy":
        vault = _access_policy_for_another(vault)
    else:
        vault = vault.model_copy(update={"enable_rbac_authorization": True})
    snap = snapshot(vault, role_assignments=assignments)
    fresh = _action(_policy(), *assignments) if change != "switched" else reviewed
    [checked] = pin(_plan(reviewed), _plan(fresh), snap, {reviewed.id: (first,)}).actions
    assert (checked.skip_reason or "").startswith("drifted"), checked.skip_reason


def test_an_own_assignment_the_plan_already_named_still_counts() -> None:
    """A plan made after the attempt (its `before` names the leftover) is judged with it: discounting it
    there would read as a removal."""
    _, fresh, first, leftover = _left_by_an_interrupted_attempt()
    vault = _vault()
    assert state_now(fresh.before, vault, (leftover,), ROLES, (first,)) == fresh.before
    assert state_now(fresh.before, vault, (), ROLES, (first,)) != fresh.before  # deleted since: drift
    assert state_now({}, vault, (leftover,), ROLES, (first,)) == state_before(vault, (), ROLES)


def test_under_the_lease_a_resumed_reviewed_migration_adopts_its_attempt_s_assignment_and_finishes() -> None:
    reviewed = _action(_policy())
    clients, _, first, leftover = _left_by_an_interrupted_attempt()
    audit = MemoryAuditSink()
    outcome = _applied_with(clients, reviewed, (first,), audit, pinned=True)
    assert outcome.status == "applied", outcome.error
    planned = [c.assignment_name for c in reviewed.changes if isinstance(c, RoleAssignmentChange)]
    assert sorted(a.name for a in clients.authz.assignments) == sorted(planned)  # the leftover among them
    assert clients.mgmt.switches == [("kv", True)] and leftover in clients.authz.assignments
    adopted = audit.records("next")[1]
    assert adopted.reason.startswith("adopt ") and adopted.changes == (first,)


def test_under_the_lease_their_grant_beside_the_attempt_s_is_drift_only_the_attempt_s_rolled_back() -> None:
    reviewed = _action(_policy())
    theirs_base = _left_by_an_interrupted_attempt()[3]
    clients, _, first, _ = _left_by_an_interrupted_attempt(_theirs(theirs_base))
    outcome = _applied_with(clients, reviewed, (first,), MemoryAuditSink(), pinned=True)
    assert outcome.status == "skipped" and (outcome.error or "").startswith("drifted"), outcome
    assert "rolled back what an interrupted attempt left" in (outcome.error or "")
    assert [a.name for a in clients.authz.assignments] == ["their-own-grant"]
    assert clients.mgmt.switches == []


class _Killed(BaseException):
    """The run dies (a kill between the intent row of a write and the write)."""


class _DiesAtTheDelete(MemoryAuditSink):
    def record(self, entry: AuditRecord) -> None:
        super().record(entry)
        deletes = [
            c for c in entry.changes if isinstance(c, RoleAssignmentChange) and c.operation == "delete"
        ]
        if entry.step is not None and entry.sequence == 0 and deletes:
            raise _Killed


def _settled(
    audit: MemoryAuditSink, clients: MemoryClients, action: Action, **ids: set[str]
) -> list[AuditRecord]:
    dangling = audit.dangling(datetime.now(UTC))
    snap = snapshot(clients.mgmt.vaults["kv"], role_assignments=tuple(clients.authz.assignments))
    return reconcile(dangling, snap, {action.id}, "third", steps=steps_of(audit, dangling), **ids)


def test_a_rollback_of_leftovers_cut_short_is_handed_on_and_finished_by_the_next_drifted_run() -> None:
    clients, action, first, leftover = _left_by_an_interrupted_attempt()
    _drift(clients)
    audit = _DiesAtTheDelete()
    with pytest.raises(_Killed):
        _applied_with(clients, action, (first,), audit)
    assert clients.authz.assignments == [leftover]  # killed before the delete
    # The killed run's rows name what it owned (the adoption), so the next run is handed it...
    deferred = _settled(audit, clients, action, attempted=set(), deferred={action.id})
    assert [(r.step, r.state) for r in deferred] == [(2, "noop")]  # ...the action row left for its attempt
    *steps, outcome = _settled(audit, clients, action, attempted={action.id})
    assert (
        outcome.state == "failed"
        and outcome.error == f"rollback interrupted; left in place: {first.describe()}"
    )
    assert "planned again by this run, which adopts what is left" in outcome.reason
    left = left_by_interrupted([*steps, outcome])
    assert left == {action.id: (first,)}
    # ...and, skipping the migration as drifted too, deletes it by the name it was created under.
    again = _applied_with(clients, action, left[action.id], MemoryAuditSink())
    assert again.status == "skipped" and "rolled back what an interrupted attempt left" in (again.error or "")
    assert clients.authz.assignments == []


def _resumed(clients: MemoryClients, action: Action, left: tuple[RoleAssignmentChange, ...]) -> Outcome:
    """The fix applied in audited steps with `left` handed to it, as the shell calls it under the lease."""
    steps = AuditedSteps(MemoryAuditSink(), RunContext(correlation_id="next", trigger="ticket"), action, left)
    return MigrateToRbac().apply_in_steps(action, clients, steps)


def test_a_resumed_attempt_whose_first_read_fails_names_the_assignments_it_adopted() -> None:
    clients, action, first, leftover = _left_by_an_interrupted_attempt()
    clients.authz.fail_on["list"] = AzureCallFailed(
        "list role assignments", 503, "ServiceUnavailable", "busy"
    )
    outcome = _resumed(clients, action, (first,))
    assert outcome.status == "failed", outcome
    error = outcome.error or ""
    assert error.startswith("read the vault's role assignments: ") and "nothing written" in error
    assert error.endswith(f"left in place by an interrupted attempt: {describe(first)}")
    assert clients.authz.assignments == [leftover] and [c[0] for c in clients.authz.calls] == ["list"]
    # Nothing adopted, nothing said about it: an attempt with no leftovers keeps its short answer.
    fresh = MemoryClients(_vault())
    fresh.authz.fail_on["list"] = AzureCallFailed("list role assignments", 503, "ServiceUnavailable", "busy")
    alone = _resumed(fresh, _action(_policy()), ())
    assert (alone.error or "").endswith("; nothing written")


def test_a_resumed_attempt_does_not_send_again_the_create_of_an_adopted_assignment_in_place() -> None:
    clients, action, first, leftover = _left_by_an_interrupted_attempt()
    creates = [c for c in action.changes if isinstance(c, RoleAssignmentChange)]
    assert len(creates) == 2 and first in creates
    audit = MemoryAuditSink()
    outcome = _applied_with(clients, action, (first,), audit)
    assert outcome.status == "applied", outcome.error
    # One create in all (the other planned assignment), none for the adopted one; the verification
    # read still judges both.
    [create] = [c for c in clients.authz.calls if c[0] == "create"]
    assert create == ("create", next(c for c in creates if c != first).scope)
    assert sorted(a.name for a in clients.authz.assignments) == sorted(c.assignment_name for c in creates)
    assert leftover in clients.authz.assignments and clients.mgmt.switches == [("kv", True)]
    steps = [r for r in audit.records("next") if r.step is not None and r.sequence == 0]
    assert [r.reason.split(" ", 1)[0] for r in steps] == ["adopt", "create", "verify", "switch:"]
    assert steps[0].changes == (first,)  # audited as adopted: a later rollback still owns it
    assert f"adopted, in place: {describe(first)}" in outcome.after["steps"]


def test_a_resumed_attempt_that_fails_later_still_rolls_back_the_adopted_assignment_it_did_not_send() -> None:
    clients, action, first, _ = _left_by_an_interrupted_attempt()
    clients.mgmt.ignore_switches = True  # the switch answers but the vault still reads false
    outcome = _applied_with(clients, action, (first,), MemoryAuditSink())
    assert outcome.status == "failed", outcome
    assert clients.authz.assignments == []  # its own create and the adopted leftover, both deleted
    assert [c[0] for c in clients.authz.calls if c[0] != "list"] == ["create", "delete", "delete"]


class _DiesAtTheSecondCreate(MemoryAuditSink):
    def record(self, entry: AuditRecord) -> None:
        super().record(entry)
        creates = [
            c for c in entry.changes if isinstance(c, RoleAssignmentChange) and c.operation == "create"
        ]
        if entry.step == 2 and entry.sequence == 0 and creates:
            raise _Killed


def test_a_reviewed_migration_drifted_at_the_start_of_the_run_rolls_back_what_its_attempt_left() -> None:
    """An approved migration killed between its two creates; someone then changes the vault, so the
    approval sent again skips it as drifted before the vault's lease (`pin`). The run still takes the
    lease for it and deletes the killed attempt's assignment by its own name: an adopt row, an intent
    row before the delete and a result row after it. Reconcile hands the assignment on, saying so."""
    reviewed = _action(_policy())
    clients = MemoryClients(_vault())
    audit = _DiesAtTheSecondCreate()
    with pytest.raises(_Killed):
        apply_plan(_plan(reviewed), clients, audit, RunContext(correlation_id="killed", trigger="ticket"))
    [leftover] = clients.authz.assignments
    _drift(clients)

    snap = snapshot(clients.mgmt.vaults["kv"], role_assignments=tuple(clients.authz.assignments))
    interrupted = read_interrupted(snap, audit, older_than=timedelta(0))
    own = created_in_place(interrupted.steps, snap)
    policy = _policy()
    fresh = build_plan(detect(snap, policy), snap, policy, remediation_ids={"migrate_to_rbac"}, dry_run=False)
    plan = pin(_plan(reviewed), fresh, snap, own)
    [checked] = plan.actions
    assert undoes_left(checked) and (checked.skip_reason or "").startswith("drifted"), checked.skip_reason
    context = RunContext(correlation_id="again", trigger="ticket")
    reconciled = reconcile_dangling(snap, plan, audit, context, interrupted=interrupted)
    settled = reconciled[-1]
    assert settled.state == "noop" and settled.reason.endswith(ROLLS_BACK), settled

    mark = len(clients.authz.calls)
    [outcome] = apply_plan(
        plan, clients, audit, context, pinned=True, inherited=left_by_interrupted(reconciled)
    )
    assert outcome.status == "skipped" and (outcome.error or "").startswith("drifted"), outcome
    assert "; rolled back what an interrupted attempt left: " in (outcome.error or "")
    assert clients.authz.assignments == [] and clients.mgmt.switches == []
    assert [c for c in clients.authz.calls[mark:] if c[0] != "list"] == [("delete", leftover.name)]
    rows = audit.records("again")
    assert [(r.step, r.state) for r in rows] == ADOPTED_THEN_DELETED
    assert rows[1].reason.startswith("adopt ") and rows[3].reason.startswith("roll back: ")
