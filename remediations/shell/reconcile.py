"""Reconciling interrupted writes: a `pending` audit row without an outcome means a run stopped (crash,
kill, timeout) between recording the intent and recording the result. The next run over the same scope
re-reads the target and records the truth in the interrupted run's partition, so the trail never has an
intent without an outcome and nothing is applied twice.

Pure: `reconcile(dangling, snapshot, planned, run_id)` -> the outcome rows to write.
- Access-policy targets (a vault in the snapshot, permission sets in before/after): the principal's
  current permissions decide: equal to `after` -> `applied`; equal to `before` -> `noop` (nothing changed;
  this run plans it again); anything else -> `failed` with both sets named.
- A failed read the row's judgement needs: left pending for a later run; an unknown truth is not
  recorded. An Azure read covers the rows under its resource (a vault's, or a subscription's lists;
  neither an access-policy row nor a migration's steps need the vault's secret metadata, which an
  RBAC vault refuses an app without a data role); a Power Platform read the rows of
  its environment (a flow's or connection's shares: the environment of that flow or connection); a
  DLP read the DLP rows; the environment list every Power Platform row. A directory read re-reads
  nothing, but detectors need it: while one failed, "this run does not make it" proves nothing, so
  a row it would settle as failed (a change not in place, an interrupted migration not attempted) is
  left pending. A read this module does not know of covers every row.
- A flow, connection or connection reference (`core/pp_reread.py`: a flow's state, its secure outputs,
  the connection its own clientdata names, a connection reference row's connection, a flow's or
  connection's shares) or a principal's security roles, in an environment the snapshot read, or a DLP
  policy the snapshot read: the change in place -> `applied`; the target gone -> `noop`; moot (a share
  revocation on a flow that no longer uses a Key Vault connection) -> `noop`; not in place -> `noop`
  when this run writes it again (or defers it over the write cap), else `failed` naming what is left
  when this run's plan is complete for the row's remediation; under a plan filtered for it (a ticket
  naming other fixes or targets) the row stays pending: that plan cannot say "no longer planned".
- Any other target: if this run plans the same action again (same content id), its detectors re-read
  the target and still see what the action fixes -> `noop` (not in place; this run writes it). Otherwise
  this run has no re-read of it (e.g. a rotation only a ticket or alert plans): left pending, never
  assumed applied; the run that planned it (a re-sent ticket, a redelivered alert) settles it.
- An action audited in steps (the RBAC migration: role assignment creates, verify, switch, rollback
  deletes and switch back; shell/apply.py `AuditedSteps`): its step rows say which calls began, the
  re-read says which are in place (the assignment exists? the vault in RBAC mode?). Switched with every
  created assignment present -> `applied` (the switch comes only after verification). Not switched ->
  the attempt stopped half-way: `noop` when this run attempts it again (the run adopts the assignments
  left and finishes or rolls them back with its own); left `pending` when this run plans it but defers
  it (over the write cap), so the run that attempts it adopts them (else a later failure of that
  attempt would roll back only its own and leave these behind); else (not planned, or skipped)
  `failed` naming them. A rollback that was interrupted -> `failed` with what is left, handed on like
  a half-way attempt's (kept `pending` when this run defers the action); the attempt's step rows name
  every assignment it owned, those it adopted from an earlier attempt included. The outcome
  row returned names the changes left in place (`changes`, for the new attempt; recorded without
  them, as the step rows name each one), and each step begun without a result gets one from the
  re-read.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime

from remediations.core.dlp_shape import DLP_POLICIES
from remediations.core.model import (
    Change,
    InventoryError,
    RoleAssignmentChange,
    Snapshot,
    VaultAuthorizationChange,
)
from remediations.core.model.scope import arm_name
from remediations.core.pp_reread import Reread, is_dlp_target, power_platform_prefixes, reread_power_platform
from remediations.core.role_changes import assignment_matches
from remediations.shell.audit import AuditRecord, AuditState, in_scope

PERMISSION_KINDS = frozenset({"secrets", "keys", "certificates", "storage"})


def _normalised(permissions: dict[str, list[str]]) -> dict[str, frozenset[str]]:
    return {k: frozenset(p.lower() for p in v) for k, v in permissions.items() if k in PERMISSION_KINDS and v}


def _is_access_policy_row(row: AuditRecord) -> bool:
    keys = set(row.before) | set(row.after)
    return bool(keys) and keys <= PERMISSION_KINDS and row.principal is not None


def _current(snapshot: Snapshot, row: AuditRecord) -> dict[str, frozenset[str]] | None:
    """The principal's permissions on the vault now ({} if it has no entry), None if the vault is gone."""
    vault = snapshot.vault(row.target)
    if vault is None:
        return None
    entries = vault.policies_for(row.principal or "")
    merged: dict[str, set[str]] = {}
    for entry in entries:
        for kind, names in entry.permissions.as_dict().items():
            merged.setdefault(kind, set()).update(p.lower() for p in names)
    return {k: frozenset(v) for k, v in merged.items() if v}


# Reads the inventory names by something other than an ARM id (shell/inventory.py, pp_inventory.py).
DIRECTORY_READS = frozenset(
    {
        "resolve identities",
        "resolve Power Platform principals",
        "map connection client ids to object ids",
        "list group members",
    }
)
DLP_READS = frozenset({"list DLP policies", "get DLP policy"})
ENVIRONMENT_READS = frozenset(  # the error names the environment
    {"get environment", "list environment role assignments", "list Key Vault connections", "list flows"}
)
# the error names the flow or the connection
SHARE_READS = frozenset({"list flow shares", "list connection permissions"})
ENVIRONMENT_LIST = "list environments"


def _environment_of(snapshot: Snapshot, error: InventoryError) -> str | None:
    """The environment a Power Platform read was about (None: not found in the snapshot)."""
    if error.operation in ENVIRONMENT_READS:
        return error.resource_id
    named = [(f.id, f.environment) for f in snapshot.flows] + [
        (c.id, c.environment) for c in snapshot.connections
    ]
    return next((env for id_, env in named if id_.lower() == error.resource_id.lower()), None)


def _bears_on(snapshot: Snapshot, error: InventoryError, row: AuditRecord, *, stepped: bool) -> bool:
    """Whether a failed read is one the row's judgement reads; when unsure, it is. `stepped`: the row
    is judged from its step rows (role assignments and the vault's permission model)."""
    if error.resource_id.startswith("/"):  # an Azure read: the vault's, or a list above it
        covers = in_scope(row.target, error.resource_id)
        metadata = error.operation == "list secrets" and (stepped or _is_access_policy_row(row))
        return covers and not metadata
    if error.operation in DIRECTORY_READS:
        return False  # no re-read reads the directory; `reconcile` keeps plan-based judgements back
    dlp = is_dlp_target(row.target)
    environment = None if dlp else arm_name(row.target, "environments")
    if error.operation in DLP_READS:
        return dlp
    if error.operation == ENVIRONMENT_LIST:
        return dlp or environment is not None
    if error.operation in ENVIRONMENT_READS | SHARE_READS:
        about = _environment_of(snapshot, error)
        if environment is None or about is None:
            return environment is not None  # a Power Platform read of an unknown environment
        return environment.lower() == about.lower()
    return True  # a read this code does not know of


def _unreadable(snapshot: Snapshot, row: AuditRecord, *, stepped: bool = False) -> bool:
    """A read the row's judgement needs failed: the truth is unknown; leave the row for a later run."""
    return any(_bears_on(snapshot, error, row, stepped=stepped) for error in snapshot.errors)


def _plan_blind(snapshot: Snapshot) -> bool:
    """A directory read failed: detectors that need it (an orphaned principal, the readers of a vault)
    may have left an action out of this run's plan, so "this run does not make it" proves nothing."""
    return any(e.operation in DIRECTORY_READS for e in snapshot.errors)


def _outcome(row: AuditRecord, state: AuditState, run_id: str, note: str, error: str | None) -> AuditRecord:
    return row.model_copy(
        update={
            "sequence": 1,
            "state": state,
            "reason": f"reconciled by run {run_id}: {note}",
            "error": error,
            "recorded_at": datetime.now(UTC),
        }
    )


def scopes(snapshot: Snapshot, *, power_platform: bool = True) -> tuple[str, ...]:
    """Where this run reconciles: its Azure scope and, with `power_platform`, the environments it read
    and the tenant's DLP policies (read with them; `reread_power_platform` picks the changes it judges)."""
    environments = snapshot.environments if power_platform else ()
    read = (p for e in environments for p in (e.id, *power_platform_prefixes(e.name)))
    pp_scope = snapshot.power_platform_scope
    dlp = power_platform and pp_scope is not None and not pp_scope.empty
    return (snapshot.scope.resource_id, *read, *((DLP_POLICIES,) if dlp else ()))


def _settle_reread(
    row: AuditRecord,
    reread: Reread,
    run_id: str,
    *,
    attempted: Collection[str],
    deferred: Collection[str],
    plan_blind: bool = False,
) -> AuditRecord | None:
    """The outcome of a Power Platform change from the snapshot's re-read of its target (None: left
    pending, when it would rest on a plan that may have missed the action)."""
    if reread.gone:
        return _outcome(row, "noop", run_id, "the target is gone", "target no longer exists")
    if reread.moot is not None:
        return _outcome(row, "noop", run_id, reread.moot, "not re-read: the change no longer matters")
    if reread.left is None:
        return _outcome(row, "applied", run_id, "the change is in place (re-read)", None)
    interrupted = f"interrupted before the change took effect; {reread.left}"
    if row.action_id in attempted:
        note = "the change is not in place; planned again by this run"
    elif row.action_id in deferred:
        note = "the change is not in place; planned again, deferred over this run's write cap"
    elif plan_blind:
        return None
    else:
        note = "the change is not in place (re-read); this run does not make it"
        return _outcome(row, "failed", run_id, note, interrupted)
    return _outcome(row, "noop", run_id, note, interrupted)


def _in_place(change: Change, snapshot: Snapshot) -> bool | None:
    """Whether the re-read shows `change` made (None: this kind of change is not judged here)."""
    if isinstance(change, RoleAssignmentChange):
        present = any(
            a.name.lower() == change.assignment_name.lower() or assignment_matches(a, change)
            for a in snapshot.role_assignments
        )
        return present if change.operation == "create" else not present
    if isinstance(change, VaultAuthorizationChange):
        vault = snapshot.vault(change.vault_id)
        return None if vault is None else vault.enable_rbac_authorization == change.enable_rbac_authorization
    return None


def _undoes(change: Change) -> bool:
    """A rollback step: the migration only deletes assignments and switches back when undoing."""
    return (isinstance(change, RoleAssignmentChange) and change.operation == "delete") or (
        isinstance(change, VaultAuthorizationChange) and not change.enable_rbac_authorization
    )


def _settle_steps(
    row: AuditRecord,
    steps: list[AuditRecord],
    snapshot: Snapshot,
    run_id: str,
    *,
    attempted: Collection[str],
    deferred: Collection[str],
    undone: Collection[str] = (),
) -> list[AuditRecord]:
    """The outcome rows of an action audited in steps: each unfinished step's, then the action's (none
    when this run defers the action: its row stays pending for the run that attempts it). `undone`:
    actions this run skips as drifted and rolls back what their attempts left (it adopts that too)."""
    begun = [s for s in steps if s.sequence == 0]
    ended = {s.step for s in steps if s.sequence == 1}
    rows = [
        _outcome(s, "applied", run_id, "the step is in place (re-read)", None)
        if s.changes and all(_in_place(c, snapshot) for c in s.changes)
        else _outcome(s, "noop", run_id, "the step did not take effect (re-read)", "interrupted")
        for s in begun
        if s.step not in ended
    ]
    changes = [c for s in begun for c in s.changes]
    creates = [c for c in changes if isinstance(c, RoleAssignmentChange) and c.operation == "create"]
    made = [c for c in creates if _in_place(c, snapshot)]
    switched = [c for c in changes if isinstance(c, VaultAuthorizationChange) and not _undoes(c)]
    switched = [c for c in switched if _in_place(c, snapshot)]  # the vault reads RBAC mode now
    undoing = any(_undoes(c) for c in changes)
    left: tuple[Change, ...] = (*made, *switched) if undoing else tuple(made)
    done = f"{len(begun)} step(s) began, {len(made)} of {len(creates)} assignment(s) in place"
    if undoing:  # the attempt failed; what its rollback did not undo goes to the next attempt, if any
        if left and row.action_id in deferred:
            return rows  # pending still: the run that attempts the action finishes the rollback
        state: AuditState = "failed"
        note = f"interrupted while rolling back ({done})"
        if left and row.action_id in attempted:
            note += "; planned again by this run, which adopts what is left"
        elif left and row.action_id in undone:
            note += f"; {ROLLS_BACK}"
        error = "rollback interrupted" + (f"; left in place: {named_changes(left)}" if left else "")
    elif switched and len(made) == len(creates):
        state, note, error = "applied", f"switched after verification, {done} (re-read)", None
        left = ()
    elif switched:
        state, note = "failed", f"switched with assignments missing ({done})"
        error = "the vault is in RBAC mode without " + named_changes([c for c in creates if c not in made])
    elif row.action_id in attempted or (made and row.action_id in undone):
        state = "noop"
        taken = "planned again by this run, which adopts them" if row.action_id in attempted else ROLLS_BACK
        note = f"interrupted before the switch ({done}); {taken}"
        error = "interrupted before the switch"
    elif row.action_id in deferred:
        return rows  # pending still: what is left goes to the run that attempts the action
    else:
        state, note = ("failed", f"interrupted before the switch ({done})") if made else ("noop", done)
        error = (
            f"not switched; left in place: {named_changes(made)}" if made else "interrupted before any change"
        )
    outcome = _outcome(row, state, run_id, note, error)
    return [*rows, outcome.model_copy(update={"changes": left})]


NAMED = 10  # changes named in an error; the step rows name every one
ROLLS_BACK = (
    "skipped as drifted by this run, which adopts what is left (rolled back, or kept and named on a "
    "vault in RBAC mode)"
)


def named_changes(changes: Iterable[Change]) -> str:
    """The changes described for an error: the first NAMED, then how many more."""
    described = [c.describe() for c in changes]
    more = f"; and {len(described) - NAMED} more (see the step rows)" if len(described) > NAMED else ""
    return "; ".join(described[:NAMED]) + more or "nothing"


def reconcile(
    dangling: Iterable[AuditRecord],
    snapshot: Snapshot,
    planned: Collection[str],
    run_id: str,
    *,
    complete_for: Collection[str] | None = None,
    steps: Mapping[tuple[str, str], list[AuditRecord]] | None = None,
    attempted: Collection[str] | None = None,
    deferred: Collection[str] = (),
    undone: Collection[str] = (),
) -> list[AuditRecord]:
    """Outcome rows for `dangling` pending rows whose target is in the snapshot's scope.
    `complete_for`: the remediations this run planned over every finding of its scope (None: all). A
    plan filtered for a row's remediation (by remediation, principal, part, target or severity) cannot
    say it is "no longer planned": only access-policy rows, actions audited in steps (`steps`, by run
    and action id) and re-read rows in place or gone are judged; a Power Platform or DLP change not in
    place stays pending. `planned`: every action id of this run's plan, deferred ones included;
    `attempted`: those it writes (default: all planned); `deferred`: those over the write cap, left
    for a later run; `undone`: those skipped as drifted before the lease whose interrupted attempts'
    leftovers this run rolls back (apply_plan takes the lease for them)."""
    attempted = planned if attempted is None else attempted
    blind = _plan_blind(snapshot)
    rows: list[AuditRecord] = []
    for row in dangling:
        complete = complete_for is None or row.remediation_id in complete_for
        reread = None if _is_access_policy_row(row) else reread_power_platform(snapshot, row)
        covered = reread is not None or in_scope(row.target, snapshot.scope.resource_id)
        stepped = (steps or {}).get((row.correlation_id, row.action_id))
        if not covered or _unreadable(snapshot, row, stepped=bool(stepped)):
            continue
        if stepped:
            if snapshot.vault(row.target) is None:
                rows.append(_outcome(row, "noop", run_id, "the vault is gone", "target no longer exists"))
            else:  # not attempted by a plan that may have missed it: left, like a deferred one
                taken = row.action_id in attempted or row.action_id in undone
                waits = {*deferred, row.action_id} if blind and not taken else deferred
                rows += _settle_steps(
                    row, stepped, snapshot, run_id, attempted=attempted, deferred=waits, undone=undone
                )
        elif _is_access_policy_row(row) and (current := _current(snapshot, row)) is not None:
            if current == _normalised(row.after):
                rows.append(_outcome(row, "applied", run_id, "the change is in place (re-read)", None))
            elif current == _normalised(row.before):
                note = "the run stopped before the write took effect; nothing changed"
                rows.append(_outcome(row, "noop", run_id, note, "interrupted before the write"))
            else:
                held = {k: sorted(v) for k, v in sorted(current.items())}
                error = f"interrupted; the principal now holds {held}, neither the before nor the after set"
                rows.append(_outcome(row, "failed", run_id, "state changed by someone else", error))
        elif reread is not None:
            settled = _settle_reread(
                row, reread, run_id, attempted=attempted, deferred=deferred, plan_blind=blind or not complete
            )
            rows += [settled] if settled is not None else []
        elif not _is_access_policy_row(row) and not complete:
            continue
        elif row.action_id in planned:
            note = "the change is not in place; planned again by this run"
            rows.append(_outcome(row, "noop", run_id, note, "interrupted before the change took effect"))
        elif _is_access_policy_row(row):
            rows.append(_outcome(row, "noop", run_id, "the vault is gone", "target no longer exists"))
    return rows


def created_in_place(
    steps: Mapping[tuple[str, str], list[AuditRecord]], snapshot: Snapshot
) -> dict[str, tuple[Change, ...]]:
    """By action id, the role assignments interrupted attempts created (their create step rows) that
    the re-read shows in place: a reviewed migration resuming them is not drifted by them."""
    created: dict[str, tuple[Change, ...]] = {}
    for (_, action_id), rows in steps.items():
        made = tuple(
            c
            for r in rows
            if r.sequence == 0
            for c in r.changes
            if isinstance(c, RoleAssignmentChange) and c.operation == "create" and _in_place(c, snapshot)
        )
        if made:
            created[action_id] = (*created.get(action_id, ()), *made)
    return created


def left_by_interrupted(reconciled: Iterable[AuditRecord]) -> dict[str, tuple[Change, ...]]:
    """By action id, the changes interrupted attempts left in place (for the fix of a new attempt)."""
    left: dict[str, tuple[Change, ...]] = {}
    for row in reconciled:
        if row.step is None and row.changes:
            left[row.action_id] = (*left.get(row.action_id, ()), *row.changes)
    return left
