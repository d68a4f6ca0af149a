"""Reconciling interrupted writes: a `pending` audit row without an outcome means a run stopped (crash,
kill, timeout) between recording the intent and recording the result. The next run over the same scope
re-reads the target and records the truth in the interrupted run's partition, so the trail never has an
intent without an outcome and nothing is applied twice.

Pure: `reconcile(dangling, snapshot, planned, run_id)` -> the outcome rows to write.
- Access-policy targets (a vault in the snapshot, permission sets in before/after): the principal's
  current permissions decide: equal to `after` -> `applied`; equal to `before` -> `noop` (nothing changed;
  this run plans it again); anything else -> `failed` with both sets named.
- A failed read covering the target (other than secret metadata for an access-policy row): left
  pending for a later run; an unknown truth is not recorded.
- Any other target: if this run plans the same action again (same content id), its detectors re-read
  the target and still see what the action fixes -> `noop` (not in place; this run writes it). Otherwise
  this run has no re-read of it (e.g. a rotation only a ticket or alert plans): left pending, never
  assumed applied; the run that planned it (a re-sent ticket, a redelivered alert) settles it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import UTC, datetime

from remediations.core.model import Snapshot
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


def _unreadable(snapshot: Snapshot, row: AuditRecord) -> bool:
    """A read covering the target failed: the truth is unknown; leave the row for a later run."""
    for error in snapshot.errors:
        covers = in_scope(row.target, error.resource_id) or not error.resource_id.startswith("/")
        if covers and not (error.operation == "list secrets" and _is_access_policy_row(row)):
            return True
    return False


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


def reconcile(
    dangling: Iterable[AuditRecord],
    snapshot: Snapshot,
    planned: Collection[str],
    run_id: str,
    *,
    complete_plan: bool = True,
) -> list[AuditRecord]:
    """Outcome rows for `dangling` pending rows whose target is in the snapshot's scope. With an
    incomplete plan (filtered by remediation or principal), only access-policy rows are judged."""
    rows: list[AuditRecord] = []
    for row in dangling:
        if not in_scope(row.target, snapshot.scope.resource_id) or _unreadable(snapshot, row):
            continue
        if _is_access_policy_row(row) and (current := _current(snapshot, row)) is not None:
            if current == _normalised(row.after):
                rows.append(_outcome(row, "applied", run_id, "the change is in place (re-read)", None))
            elif current == _normalised(row.before):
                note = "the run stopped before the write took effect; nothing changed"
                rows.append(_outcome(row, "noop", run_id, note, "interrupted before the write"))
            else:
                held = {k: sorted(v) for k, v in sorted(current.items())}
                error = f"interrupted; the principal now holds {held}, neither the before nor the after set"
                rows.append(_outcome(row, "failed", run_id, "state changed by someone else", error))
        elif not _is_access_policy_row(row) and not complete_plan:
            continue
        elif row.action_id in planned:
            note = "the change is not in place; planned again by this run"
            rows.append(_outcome(row, "noop", run_id, note, "interrupted before the change took effect"))
        elif _is_access_policy_row(row):
            rows.append(_outcome(row, "noop", run_id, "the vault is gone", "target no longer exists"))
    return rows
