"""A verified rewrite of a flow's `clientdata` (its definition and connectionReferences), shared by the
fixes that edit a flow: read the row fresh, edit, PATCH only `clientdata`, read again to verify."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from remediations.core.model import Action, Outcome
from remediations.ports import AzureCallFailed, Clients, ResourceGone

# data -> the new clientdata; None: already as wanted (noop); a string: why it cannot be done (failed)
Edit = Callable[[dict[str, Any]], "dict[str, Any] | str | None"]
# fresh data -> why the write did not take (None: it did)
Check = Callable[[dict[str, Any]], "str | None"]


def rewrite_client_data(
    action: Action, clients: Clients, environment: str, flow_id: str, edit: Edit, check: Check
) -> Outcome:
    api = clients.power_platform()
    try:
        edited = edit(api.get_flow_client_data(environment, flow_id))
        if edited is None:
            return Outcome(action_id=action.id, status="noop", after=action.after, verified=True)
        if isinstance(edited, str):
            return Outcome(action_id=action.id, status="failed", before=action.before, error=edited)
        api.update_flow_client_data(environment, flow_id, edited)
        problem = check(api.get_flow_client_data(environment, flow_id))  # verify from a fresh read
    except ResourceGone as gone:  # the flow is gone: nothing runs with it any more
        return Outcome(action_id=action.id, status="noop", before=action.before, error=str(gone))
    except AzureCallFailed as exc:
        return Outcome(action_id=action.id, status="failed", before=action.before, error=str(exc))
    if problem:
        return Outcome(action_id=action.id, status="failed", before=action.before, error=problem)
    return Outcome(
        action_id=action.id, status="applied", before=action.before, after=action.after, verified=True
    )
