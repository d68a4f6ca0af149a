"""A verified rewrite of a flow's `clientdata` (its definition and connectionReferences), shared by the
fixes that edit a flow: read the row fresh, edit, PATCH only `clientdata`, read again to verify."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from remediations.core.model import Action, Outcome
from remediations.fixes._verified_writes import read_write_verify
from remediations.ports import Clients

# data -> the new clientdata; None: already as wanted (noop); a string: why it cannot be done (failed)
Edit = Callable[[dict[str, Any]], "dict[str, Any] | str | None"]
# fresh data -> why the write did not take (None: it did)
Check = Callable[[dict[str, Any]], "str | None"]


def rewrite_client_data(
    action: Action, clients: Clients, environment: str, flow_id: str, edit: Edit, check: Check
) -> Outcome:
    api = clients.power_platform()
    return read_write_verify(
        action,
        read=lambda: api.get_flow_client_data(environment, flow_id),
        edit=edit,
        write=lambda edited: api.update_flow_client_data(environment, flow_id, edited),
        check=check,
    )
