"""move_to_service_connection: move a flow off a person's Key Vault connection onto the least-privileged
connection the policy names for its vault or environment (`powerPlatform.serviceConnections`), a
connection that authenticates as a service principal or managed identity. Planned only where the
policy names one, and only when that connection is a Key Vault connection of the same environment
and vault that does not run as a person.

One Dataverse PATCH of the `workflows` row's `clientdata` (the `connectionReferences` entries that
name the person's connection now name the service connection; the definition is unchanged), made on a
fresh read of the row, then a second read to verify. Editors of the flow then act with the service
principal's (narrow) Key Vault rights, not the person's; the closure check lists what they still reach.

Solution flows name a connection *reference* row instead (`connectionReferenceLogicalName`), whose
`connectionid` binds every flow naming it: one action per row rebinds it (Dataverse PATCH of
`connectionreferences({id})`, on a fresh read of the row, verified by a second read) and names every
flow it moves. It is planned skipped, with the reason, when a flow naming the row is not among the
flows this run moves (outside the run's scope or findings): rebinding would move that flow too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from remediations.core.connection_references import (
    ReferenceBinding,
    connection_reference_resource_id,
    reference_bindings,
    reference_key,
)
from remediations.core.evidence import ConnectionUserEvidence
from remediations.core.model import (
    Action,
    Connection,
    ConnectionReference,
    ConnectionReferenceChange,
    Finding,
    Flow,
    FlowConnectionChange,
    Outcome,
    Snapshot,
)
from remediations.core.policy import Policy
from remediations.core.registry import Remediation, RemediationMetadata, register
from remediations.fixes._flow_writes import rewrite_client_data
from remediations.fixes._verified_writes import read_write_verify
from remediations.ports import Clients


def _references(data: dict[str, Any]) -> dict[str, Any]:
    properties = data.get("properties")
    references = properties.get("connectionReferences") if isinstance(properties, dict) else None
    return references if isinstance(references, dict) else {}


def _connection(reference: Any) -> dict[str, Any]:
    connection = reference.get("connection") if isinstance(reference, dict) else None
    return connection if isinstance(connection, dict) else {}


def _bound_to(data: dict[str, Any], connection_id: str) -> list[str]:
    """Reference keys whose own clientdata names `connection_id`; a key naming a connection reference
    row is bound by that row (rebound with it, never here), whatever `connection.name` it also carries."""
    return [
        key
        for key, reference in _references(data).items()
        if str(_connection(reference).get("name") or "").lower() == connection_id.lower()
        and not _connection(reference).get("connectionReferenceLogicalName")
    ]


def _rebound(data: dict[str, Any], keys: list[str], to: str) -> dict[str, Any]:
    references = {
        key: {**reference, "connection": {"name": to}} if key in keys else reference
        for key, reference in _references(data).items()
    }
    return {**data, "properties": {**data.get("properties", {}), "connectionReferences": references}}


def _usable(target: Connection | None, source: Connection) -> bool:
    """A service connection that can stand in: Key Vault, same environment, same vault, not a person."""
    return (
        target is not None
        and target.is_keyvault
        and target.identity_kind != "user"
        and target.environment.lower() == source.environment.lower()
        and (target.parameters.get("vaultName") or "").lower()
        == (source.parameters.get("vaultName") or "").lower()
    )


def _label(item: Flow | Connection) -> str:
    return repr(item.label)


def _bindings(flow: Flow, connection_id: str) -> list[str | None]:
    """How each of the flow's references to the connection binds it: the connection reference row's
    logical name, or None where the flow's own clientdata names the connection."""
    return [
        flow.solution_references.get(key)
        for key, bound in flow.reference_keys.items()
        if bound.lower() == connection_id.lower()
    ]


@dataclass(frozen=True)
class _Move:
    """A finding's flow, to move from `source` to `target` (the service connection the policy names)."""

    finding: Finding
    flow: Flow
    source: Connection
    target: Connection


def _move_flow(finding: Finding, flow: Flow, source: Connection, target: Connection) -> Action:
    """Rebind the references the flow's own clientdata names."""
    return Action.create(
        remediation_id=MoveToServiceConnection.id,
        target=finding.resource_id,
        principal=finding.principal,
        changes=(
            FlowConnectionChange(
                environment=flow.environment,
                flow_id=flow.id,
                from_connection=source.id,
                to_connection=target.id,
            ),
        ),
        before={"connection": [source.id]},
        after={"connection": [target.id]},
        reason=f"flow {_label(flow)} reads Key Vault as the person {source.identity_principal_id} through "
        f"{_label(source)}; the policy names {_label(target)} ({target.identity_kind}) for it",
        finding_ids=(finding.id,),
    )


def _rebind_row(row: ReferenceBinding, moves: list[_Move]) -> Action:
    """One action per connection reference row, naming every flow it moves; skipped when the row binds
    a flow this run does not move, or its flows do not agree on the connection it binds."""
    first = moves[0]
    moving = {m.flow.id for m in moves}
    names = {m.flow.id: _label(m.flow) for m in moves}
    others = [f for f in row.flows if f not in moving]
    skip = None
    if others:
        skip = (
            f"connection reference {row.logical_name} also binds flow(s) {', '.join(others)}, which this run "
            "does not move (outside its scope or findings): rebinding the row would move them too"
        )
    elif len(row.connections) > 1 or len({m.target.id.lower() for m in moves}) > 1:
        skip = f"the flows naming connection reference {row.logical_name} disagree on its connection"
    return Action.create(
        remediation_id=MoveToServiceConnection.id,
        target=connection_reference_resource_id(row.environment, row.logical_name),
        principal=first.finding.principal,
        changes=(
            ConnectionReferenceChange(
                environment=row.environment,
                logical_name=row.logical_name,
                from_connection=first.source.id,
                to_connection=first.target.id,
                flow_ids=row.flows,
            ),
        ),
        before={"connection": [first.source.id], "flows": list(row.flows)},
        after={"connection": [first.target.id], "flows": list(row.flows)},
        reason=f"connection reference {row.logical_name} binds flow(s) "
        f"{', '.join(names.get(f, f) for f in row.flows)} to {_label(first.source)}, which reads Key "
        f"Vault as the person {first.source.identity_principal_id}; the policy names "
        f"{_label(first.target)} ({first.target.identity_kind}) for them: rebinding the row moves them all",
        finding_ids=tuple(sorted({m.finding.id for m in moves})),
        skip_reason=skip,
    )


def _rebind_reference(action: Action, change: ConnectionReferenceChange, clients: Clients) -> Outcome:
    """Read the row fresh; PATCH its `connectionid` only while it still binds the person's connection
    (another change since the plan is not overwritten); read it again to verify. A row deleted before
    the write is a noop (no flow binds anything through it any more); after it, the write did not take."""
    api = clients.power_platform()

    def binds(row: ConnectionReference | None, connection: str) -> bool:
        return row is not None and (row.connection_id or "").lower() == connection.lower()

    def edit(row: ConnectionReference | None) -> ConnectionReference | str | None:
        if binds(row, change.to_connection):
            return None
        if row is not None and binds(row, change.from_connection):
            return row
        held = (row.connection_id if row is not None else None) or "nothing"
        return (
            f"connection reference {change.logical_name} now binds {held}, not {change.from_connection}: "
            "changed since the plan, left as it is"
        )

    def check(fresh: ConnectionReference | None) -> str | None:
        still = f"connection reference {change.logical_name} still binds the connection"
        return None if binds(fresh, change.to_connection) else still

    return read_write_verify(
        action,
        read=lambda: api.get_connection_reference(change.environment, change.logical_name),
        edit=edit,
        write=lambda row: api.update_connection_reference(change.environment, row.id, change.to_connection),
        check=check,
        missing=f"no connection reference {change.logical_name} in the environment",
    )


@register
class MoveToServiceConnection(Remediation):
    id = "move_to_service_connection"
    handles = frozenset({"connection_runs_as_user"})
    power_platform = True
    metadata = RemediationMetadata(
        title="Move flows from a person's Key Vault connection to the service connection the policy names",
        severity="high",  # above connection_runs_as_user (medium): ends runs as a person that editors abuse
        risk="The flow reads with the service principal's Key Vault rights: a secret it needs that the "
        "service principal cannot read makes its runs fail until that access is granted.",
        permissions_required=(
            "Application user with a security role that can write workflows (System Administrator) in the "
            "flow's environment: PATCH https://{org}.crm.dynamics.com/api/data/v9.2/workflows({id}) "
            "(clientdata connectionReferences)",
            "Solution flows: the same application user writes connection references: PATCH "
            "https://{org}.crm.dynamics.com/api/data/v9.2/connectionreferences({id}) (connectionid)",
        ),
        cli_equivalent="pac solution export, point connectionReferences at the service connection, "
        "pac solution import",
        bicep_hint="not expressible in Bicep: a flow's connections are Power Platform data",
    )

    def plan(self, snapshot: Snapshot, findings: list[Finding], policy: Policy) -> list[Action]:
        if not policy.power_platform.service_connections:
            return []
        flows = {f.id: f for f in snapshot.flows}
        connections = {c.id.lower(): c for c in snapshot.connections}
        actions: dict[tuple[str, str], Action] = {}
        through_rows: dict[tuple[str, str], list[_Move]] = {}  # by connection reference row
        for finding in findings:
            evidence = ConnectionUserEvidence.of(finding)
            flow = flows.get(evidence.flow or "")  # None: a connection no flow uses yet
            source = connections.get(evidence.connection.lower())
            if flow is None or source is None:
                continue
            named = policy.power_platform.service_connection_for(
                flow.environment, source.parameters.get("vaultName")
            )
            target = connections.get((named or "").lower())
            if target is None or not _usable(target, source):
                continue
            bindings = _bindings(flow, source.id)
            if None in bindings and (flow.id, source.id) not in actions:
                actions[(flow.id, source.id)] = _move_flow(finding, flow, source, target)
            for logical_name in sorted({b for b in bindings if b is not None}):
                move = _Move(finding, flow, source, target)
                through_rows.setdefault(reference_key(flow.environment, logical_name), []).append(move)
        rows = reference_bindings(snapshot)
        return [*actions.values(), *(_rebind_row(rows[key], moves) for key, moves in through_rows.items())]

    def apply(self, action: Action, clients: Clients) -> Outcome:
        change = action.changes[0]
        if isinstance(change, ConnectionReferenceChange):
            return _rebind_reference(action, change, clients)
        if not isinstance(change, FlowConnectionChange):
            return Outcome(action_id=action.id, status="failed", error="not a flow connection action")

        def edit(data: dict[str, Any]) -> dict[str, Any] | str | None:
            keys = _bound_to(data, change.from_connection)
            if keys:
                return _rebound(data, keys, change.to_connection)
            if _bound_to(data, change.to_connection):  # already moved
                return None
            return "no connectionReferences entry names the connection"

        def check(fresh: dict[str, Any]) -> str | None:
            moved = not _bound_to(fresh, change.from_connection) and _bound_to(fresh, change.to_connection)
            return None if moved else "the flow still uses the connection"

        return rewrite_client_data(action, clients, change.environment, change.flow_id, edit, check)
