"""Verify closure after apply: re-read, recompute the exposure graph, list the paths left (and those
the graph still draws that no longer reach their secret, closed, with why).

The run's writes are judged by a fresh read, not by their own responses: a flow someone can still edit
on an admin's Key Vault connection is still an exposure, whatever the fix reported.
"""

from __future__ import annotations

from collections.abc import Callable

from remediations.core.closure import Closure, closure
from remediations.core.model import Outcome, Snapshot
from remediations.core.policy import Policy


def verify_closure(
    before: Snapshot,
    outcomes: list[Outcome],
    policy: Policy,
    read: Callable[[], Snapshot],
    remediator: Callable[[], str | None] = lambda: None,
) -> Closure | None:
    """The person -> flow -> secret paths left (and closed) after the run's writes, from a fresh read;
    None when there is nothing to verify (no write was made, or the run read no flows). `remediator`:
    the app's own object id, asked only when there is something to verify."""
    if not before.flows or not any(o.status == "applied" for o in outcomes):
        return None
    return closure(read(), policy, remediator())
