"""Reconcile of an action audited in steps (the RBAC migration): the step rows say which calls began, the
re-read says which are in place; the outcome names what an interrupted attempt left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from remediations.core import rbac
from remediations.core.model import (
    Action,
    InventoryError,
    RoleAssignmentChange,
    Vault,
    VaultAuthorizationChange,
)
from remediations.shell.apply import AuditedSteps, RunContext
from remediations.shell.audit import AuditRecord, MemoryAuditSink, steps_of
from remediations.shell.reconcile import ROLLS_BACK, left_by_interrupted, reconcile
from tests.unit.kv_builders import SUB, policy_entry, snapshot, vault, vault_id
from tests.unit.rbac_builders import FLOW, assignment

VAULT = vault_id("kv-app")
OFFICER = "33333333-0000-0000-0000-0000000000ad"
CONTEXT = RunContext(correlation_id="crashed", trigger="ticket")


def _create(principal: str, role: str, scope: str) -> RoleAssignmentChange:
    return RoleAssignmentChange(
        operation="create",
        scope=scope,
        role_definition_id=rbac.role_id(SUB, role),
        principal_id=principal,
        assignment_name=rbac.assignment_name(scope, principal, role),
    )


CREATES = (
    _create(FLOW, rbac.KEY_VAULT_SECRETS_USER, f"{VAULT}/secrets/sql"),
    _create(OFFICER, rbac.KEY_VAULT_SECRETS_OFFICER, VAULT),
)
SWITCH = VaultAuthorizationChange(vault_id=VAULT, enable_rbac_authorization=True)
ACTION = Action.create(
    remediation_id="migrate_to_rbac",
    target=VAULT,
    principal=None,
    changes=(*CREATES, SWITCH),
    before={},
    after={},
    reason="migrate",
    finding_ids=(),
)


def _crash_after(sink: MemoryAuditSink, *, switch_begun: bool, rollback: bool = False) -> None:
    """The rows a run leaves when it dies: the action's intent, both creates done, then (maybe) the
    switch begun, or a failed switch and the switch back done, then the first delete begun."""
    old = datetime.now(UTC) - timedelta(hours=1)
    sink.record(
        AuditRecord(
            correlation_id="crashed",
            action_id=ACTION.id,
            sequence=0,
            state="pending",
            remediation_id=ACTION.remediation_id,
            target=VAULT,
            trigger="ticket",
            recorded_at=old,
        )
    )
    steps = AuditedSteps(sink, CONTEXT, ACTION)
    for change in CREATES:
        steps.end(steps.begin("create", change), "applied")
    steps.end(steps.begin("verify"), "applied")
    if switch_begun or rollback:
        switch = steps.begin("switch", SWITCH)
        if rollback:
            steps.end(switch, "failed", "403")
            back = SWITCH.model_copy(update={"enable_rbac_authorization": False})
            steps.end(steps.begin("roll back", back), "applied")
            steps.begin("roll back", CREATES[-1].model_copy(update={"operation": "delete"}))


def _vault(*, switched: bool) -> Vault:
    return vault("kv-app", policy_entry(FLOW, "get", "list"), policy_entry(OFFICER, "all"), rbac=switched)


def _settle(
    sink: MemoryAuditSink,
    *,
    switched: bool,
    present: int,
    planned: bool = False,
    attempted: bool = True,
    deferred: bool = False,
    undone: bool = False,
    errors: tuple[InventoryError, ...] = (),
) -> list[AuditRecord]:
    made = tuple(
        assignment(c.scope, c.role_definition_id.rsplit("/", 1)[-1], c.principal_id, c.assignment_name)
        for c in CREATES[:present]
    )
    snap = snapshot(_vault(switched=switched), role_assignments=made).model_copy(update={"errors": errors})
    dangling = sink.dangling(datetime.now(UTC))
    assert [(r.step, r.state) for r in dangling] == [(None, "pending")]  # step rows are not actions
    steps = steps_of(sink, dangling)
    ids = {ACTION.id} if planned else set()
    return reconcile(
        dangling,
        snap,
        ids,
        "next",
        steps=steps,
        attempted=ids if attempted else set(),
        deferred=ids if deferred else set(),
        undone={ACTION.id} if undone else set(),
    )


def test_a_crash_after_the_switch_took_effect_is_recorded_applied() -> None:
    sink = MemoryAuditSink()
    _crash_after(sink, switch_begun=True)
    *steps, outcome = _settle(sink, switched=True, present=2)
    assert [(s.step, s.state) for s in steps] == [(4, "applied")]  # the switch step gets its result
    assert outcome.state == "applied" and outcome.changes == () and outcome.step is None
    assert "switched after verification" in outcome.reason


def test_a_crash_before_the_switch_is_adopted_by_a_run_that_plans_it_again() -> None:
    sink = MemoryAuditSink()
    _crash_after(sink, switch_begun=True)
    *steps, outcome = _settle(sink, switched=False, present=2, planned=True)
    assert [(s.step, s.state, s.error) for s in steps] == [(4, "noop", "interrupted")]
    assert outcome.state == "noop" and outcome.changes == CREATES
    assert left_by_interrupted([*steps, outcome]) == {ACTION.id: CREATES}


def test_a_crash_before_the_switch_stays_pending_when_this_run_defers_the_action() -> None:
    """Over the write cap, the action is not attempted now: its row stays pending, so the run that does
    attempt it adopts the assignments left (and rolls them back with its own on a failure)."""
    sink = MemoryAuditSink()
    _crash_after(sink, switch_begun=True)
    steps = _settle(sink, switched=False, present=2, planned=True, attempted=False, deferred=True)
    assert [(s.step, s.state) for s in steps] == [(4, "noop")]  # the unfinished step settled from the re-read
    for row in steps:
        sink.record(row)
    # The next run that attempts it finds the action still pending, and is handed what is left.
    *later, outcome = _settle(sink, switched=False, present=2, planned=True)
    assert later == [] and outcome.state == "noop" and "which adopts them" in outcome.reason
    assert left_by_interrupted([outcome]) == {ACTION.id: CREATES}


def test_a_crash_before_the_switch_is_failed_naming_what_is_left_when_this_run_skips_the_action() -> None:
    sink = MemoryAuditSink()
    _crash_after(sink, switch_begun=False)
    [outcome] = _settle(sink, switched=False, present=2, planned=True, attempted=False)
    assert outcome.state == "failed" and outcome.changes == CREATES  # nobody adopts them: said so
    assert outcome.error is not None and outcome.error.startswith("not switched; left in place: ")


def test_a_half_migration_stays_pending_while_the_directory_could_not_be_read() -> None:
    """Not attempted by a run whose directory read failed: its plan may have missed the migration, so
    the row is left, as a deferred one, for the run that attempts it to adopt what is left."""
    sink = MemoryAuditSink()
    _crash_after(sink, switch_begun=True)
    error = InventoryError(
        resource_id="directoryObjects/getByIds", operation="resolve identities", message="x"
    )
    steps = _settle(sink, switched=False, present=2, errors=(error,))
    assert [(s.step, s.state) for s in steps] == [(4, "noop")]  # only the unfinished step, from the re-read
    *_, outcome = _settle(sink, switched=False, present=2, planned=True, errors=(error,))
    assert outcome.state == "noop" and outcome.changes == CREATES  # attempted: adopted as ever


def test_a_crash_before_the_switch_is_handed_to_the_run_that_skips_it_as_drifted_to_roll_back() -> None:
    """A reviewed migration this run skips as drifted before the lease: not attempted, but this run
    takes what is left, to roll it back under the lease (or keep and name it)."""
    sink = MemoryAuditSink()
    _crash_after(sink, switch_begun=False)
    [outcome] = _settle(sink, switched=False, present=2, planned=True, attempted=False, undone=True)
    assert outcome.state == "noop" and outcome.reason.endswith(ROLLS_BACK)
    assert left_by_interrupted([outcome]) == {ACTION.id: CREATES}
    sink = MemoryAuditSink()
    _crash_after(sink, switch_begun=False)  # nothing in place: nothing to hand on, said so
    [outcome] = _settle(sink, switched=False, present=0, planned=True, attempted=False, undone=True)
    assert outcome.state == "noop" and outcome.changes == () and ROLLS_BACK not in outcome.reason


def test_a_refused_secret_list_does_not_hold_back_a_migration_s_steps() -> None:
    """Its judgement reads the role assignments and the vault's model, never the secret metadata (an
    RBAC vault refuses that list to an app without a data role); any other failed read of the vault does."""
    refused = InventoryError(resource_id=VAULT, operation="list secrets", message="HTTP 403")
    sink = MemoryAuditSink()
    _crash_after(sink, switch_begun=False)
    [outcome] = _settle(
        sink, switched=True, present=2, planned=True, attempted=False, undone=True, errors=(refused,)
    )
    assert outcome.state == "noop" and outcome.changes == CREATES, outcome
    other = refused.model_copy(update={"operation": "list role assignments"})
    assert (
        _settle(sink, switched=True, present=2, planned=True, attempted=False, undone=True, errors=(other,))
        == []
    )


def test_a_half_migration_no_run_plans_again_is_failed_with_what_is_left_never_silent() -> None:
    sink = MemoryAuditSink()
    _crash_after(sink, switch_begun=False)
    [outcome] = _settle(sink, switched=False, present=2)
    assert outcome.state == "failed" and outcome.changes == CREATES
    assert outcome.error is not None and outcome.error.startswith("not switched; left in place: ")


def test_an_interrupted_rollback_is_failed_with_the_assignment_it_did_not_delete() -> None:
    sink = MemoryAuditSink()
    _crash_after(sink, switch_begun=False, rollback=True)
    *steps, outcome = _settle(sink, switched=False, present=1)
    assert [(s.step, s.state) for s in steps] == [(6, "applied")]  # the officer's delete took effect
    assert outcome.state == "failed" and outcome.changes == CREATES[:1]
    assert outcome.error is not None and outcome.error.startswith("rollback interrupted; left in place")


def test_the_error_names_ten_changes_and_counts_the_rest() -> None:
    many = tuple(
        _create(f"{n:08d}-0000-0000-0000-000000000000", rbac.KEY_VAULT_SECRETS_USER, VAULT) for n in range(12)
    )
    sink = MemoryAuditSink()
    _crash_after(sink, switch_begun=False)
    steps = AuditedSteps(sink, CONTEXT, ACTION)
    for change in many:
        steps.end(steps.begin("create", change), "applied")
    made = tuple(
        assignment(c.scope, rbac.KEY_VAULT_SECRETS_USER, c.principal_id, c.assignment_name) for c in many
    )
    dangling = sink.dangling(datetime.now(UTC))
    stepped = steps_of(sink, dangling)
    [outcome] = reconcile(
        dangling, snapshot(_vault(switched=False), role_assignments=made), set(), "next", steps=stepped
    )
    assert outcome.error is not None and outcome.error.endswith("; and 2 more (see the step rows)")
    assert len(outcome.changes) == 12


def test_an_assignment_listed_under_another_name_and_scope_spelling_counts_as_in_place() -> None:
    """ARM compares scopes without case or a trailing slash; an assignment made by someone else has its
    own name. Either way the step's assignment is there (core/role_changes.assignment_matches)."""
    sink = MemoryAuditSink()
    _crash_after(sink, switch_begun=True)
    made = tuple(
        assignment(c.scope.upper() + "/", c.role_definition_id.rsplit("/", 1)[-1], c.principal_id.upper())
        for c in CREATES
    )
    dangling = sink.dangling(datetime.now(UTC))
    snap = snapshot(_vault(switched=True), role_assignments=made)
    *_, outcome = reconcile(dangling, snap, set(), "next", steps=steps_of(sink, dangling))
    assert outcome.state == "applied" and "2 of 2 assignment(s) in place" in outcome.reason
    other_role = tuple(
        a.model_copy(update={"role_definition_id": a.role_definition_id[:-4] + "0000"}) for a in made
    )
    snap = snapshot(_vault(switched=True), role_assignments=other_role)
    *_, outcome = reconcile(dangling, snap, set(), "next", steps=steps_of(sink, dangling))
    assert outcome.state == "failed" and "0 of 2 assignment(s) in place" in outcome.reason
