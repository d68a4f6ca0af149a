"""One Power Platform write, verified the same way by every fix that makes one: read the resource fresh,
decide what to write (nothing when it is already as wanted), write, read again and check it took.
Shared by quarantine_flow, remove_flow_editing_role, the flow `clientdata` rewrites (`_flow_writes.py`)
and move_to_service_connection's connection reference rebinding; the leading underscore keeps it out
of fix discovery."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from remediations.core.model import Action, Outcome
from remediations.ports import AzureCallFailed, ResourceGone

State = TypeVar("State")  # what a read returns
Write = TypeVar("Write")  # what `edit` decides to write


def read_write_verify(
    action: Action,
    *,
    read: Callable[[], State],
    edit: Callable[[State], Write | str | None],
    write: Callable[[Write], None],
    check: Callable[[State], str | None],
    after: Callable[[State], dict[str, Any]] | None = None,
    missing: str | None = None,
) -> Outcome:
    """`edit` the fresh state into what to `write` (None: already as wanted, a noop; a string: why it
    cannot be done, failed); after the write `check` a fresh read (None: it took; else what is left).
    A resource gone (a flow, an environment, a user) is a noop: nothing is left to change on it.
    `after`: the applied outcome's picture of the fresh state (default: the action's planned after).
    `missing`: for a `read` that answers None when the resource is not found (a row looked up by name),
    why a first read of None is such a noop; the read after the write goes to `check` as it is (gone
    then: the write did not take)."""
    try:
        state = read()
        if state is None and missing is not None:
            return Outcome(action_id=action.id, status="noop", before=action.before, error=missing)
        edited = edit(state)
        if edited is None:
            return Outcome(action_id=action.id, status="noop", after=action.after, verified=True)
        if isinstance(edited, str):
            return Outcome(action_id=action.id, status="failed", before=action.before, error=edited)
        write(edited)
        fresh = read()  # verify from a fresh read
    except ResourceGone as gone:
        return Outcome(action_id=action.id, status="noop", before=action.before, error=str(gone))
    except AzureCallFailed as exc:
        return Outcome(action_id=action.id, status="failed", before=action.before, error=str(exc))
    problem = check(fresh)
    if problem:
        return Outcome(action_id=action.id, status="failed", before=action.before, error=problem)
    return Outcome(
        action_id=action.id,
        status="applied",
        before=action.before,
        after=action.after if after is None else after(fresh),
        verified=True,
    )
