"""Apply a share revocation (planned by `core/shares.py`) and verify it with one read: the write answers
200 with an empty body, so only a re-read shows what holds. Shared by revoke_flow_shares and
revoke_connection_shares; the leading underscore keeps it out of fix discovery."""

from __future__ import annotations

from collections.abc import Callable

from remediations.core.model import Action, Outcome, Share, ShareChange
from remediations.core.shares import share_label
from remediations.ports import AzureCallFailed, ResourceGone


def apply_share_revocations(
    action: Action,
    delete: Callable[[ShareChange, list[ShareChange]], None],
    read: Callable[[ShareChange], list[Share]],
) -> Outcome:
    """`delete` the action's shares of one flow or connection (named by its first change), then `read`
    that resource's shares to verify."""
    changes = [c for c in action.changes if isinstance(c, ShareChange)]
    if len(changes) != len(action.changes) or not changes:
        return Outcome(action_id=action.id, status="failed", before=action.before, error="not a share action")
    resource = changes[0]
    try:
        delete(resource, changes)
    except ResourceGone as gone:  # the flow/connection is gone: nothing is shared any more
        return Outcome(action_id=action.id, status="noop", before=action.before, error=str(gone))
    except AzureCallFailed as error:
        return Outcome(action_id=action.id, status="failed", before=action.before, error=str(error))
    try:
        remaining = read(resource)
    except AzureCallFailed as error:
        return Outcome(
            action_id=action.id,
            status="failed",
            before=action.before,
            error=f"modifyPermissions answered success but the verification read failed: {error}",
        )
    after = {"shares": sorted(share_label(s) for s in remaining)}
    revoked = {c.principal_id.lower() for c in changes}
    still = sorted(s.principal_id for s in remaining if s.principal_id.lower() in revoked)
    if still:
        return Outcome(
            action_id=action.id,
            status="failed",
            before=action.before,
            after=after,
            error=f"modifyPermissions answered success but {still} still hold a share",
        )
    return Outcome(action_id=action.id, status="applied", before=action.before, after=after, verified=True)
