"""Who may turn a flow on with which connections (Power Automate's connection authorization).

Turning a flow on (Flow `POST .../start`, Dataverse `PATCH workflows({id})` `statecode: 1`, creating a
flow that is on, saving an edit that brings a new connection into a flow that is on) needs, for every
connection the flow uses, that the caller may use it: the connection's owner or a principal it is shared
with (any role, the tenant included), or a co-owner of the flow when the connection is "shared with you
in the context of this flow" because someone allowed to use it activated the flow with it. Anyone else,
a System Customizer who is not a co-owner included, gets 403 `ConnectionAuthorizationFailed`
(docs/fidelity.md, "Connection authorization").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from emulator.wire import HttpError

if TYPE_CHECKING:
    from emulator.powerplatform.state import Connection, Flow
    from emulator.state import State

CO_OWNER_ROLES = frozenset({"Owner", "CanEdit"})
DATAVERSE_ACTIVATION_FAILED = "0x80060467"  # Dataverse's code when the Flow client refuses activation


def caller_principals(state: State, object_id: str) -> set[str]:
    """The caller, its groups, and the tenant (tenant-wide connection shares name the tenant id)."""
    return state.principals_of(object_id) | {state.azure.tenant_id}


def referenced_connections(state: State, references: dict[str, object]) -> list[Connection]:
    names = [str((r or {}).get("connectionName", "")) for r in references.values() if isinstance(r, dict)]
    found = (state.powerplatform.connections.get(n) for n in names)
    return [c for c in found if c is not None]


def refused_connection(
    state: State, flow: Flow, object_id: str, connections: list[Connection]
) -> Connection | None:
    """The first of `connections` the caller may not activate `flow` with, else None."""
    principals = caller_principals(state, object_id)
    co_owner = flow.role_of(principals) in CO_OWNER_ROLES
    for connection in connections:
        in_context = co_owner and connection.name in flow.context_connections
        if not (connection.usable_by(principals) or in_context):
            return connection
    return None


def authorization_error(object_id: str, connection: Connection) -> HttpError:
    """The Flow service's answer, as recorded in public error reports (docs/fidelity.md)."""
    return HttpError(
        403,
        "ConnectionAuthorizationFailed",
        f"The caller object id is '{object_id}'. Connection '{connection.name}' to '{connection.api}' "
        "cannot be used to activate this flow, either because this is not a valid connection or because it "
        "is not a connection you have access permission for. Either replace the connection with a valid "
        "connection you can access or have the connection owner activate the flow, so the connection is "
        "shared with you in the context of this flow.",
    )


def authorize(state: State, flow: Flow, object_id: str, connections: list[Connection] | None = None) -> None:
    """Refuses (403) or records the connections as shared in the context of the flow.
    `connections`: the ones to check (default: every connection the flow references)."""
    checked = (
        referenced_connections(state, flow.connection_references) if connections is None else connections
    )
    refused = refused_connection(state, flow, object_id, checked)
    if refused is not None:
        raise authorization_error(object_id, refused)
    principals = caller_principals(state, object_id)
    flow.context_connections |= {c.name for c in checked if c.usable_by(principals)}


def activate(state: State, flow: Flow, object_id: str) -> None:
    """Turns the flow on for `object_id` (the caller has edit rights; DLP is checked by the caller)."""
    authorize(state, flow, object_id)
    flow.state, flow.suspension_reason = "Started", "None"
