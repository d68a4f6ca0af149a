"""move_to_service_connection: move a flow off a person's Key Vault connection onto the least-privileged
connection the policy names for its vault or environment (`powerPlatform.serviceConnections`), a
connection that authenticates as a service principal or managed identity. Planned only where the
policy names one, and only when that connection is a Key Vault connection of the same environment
and vault that does not run as a person.

One Dataverse PATCH of the `workflows` row's `clientdata` (the `connectionReferences` entries that
name the person's connection now name the service connection; the definition is unchanged), made on a
fresh read of the row, then a second read to verify. Editors of the flow then act with the service
principal's (narrow) Key Vault rights, not the person's; the closure check lists what they still reach.

Solution flows name a connection *reference* row instead: those are reported failed with the reason
(rebinding the `connectionreferences` row changes every flow of the solution, a person's decision).
"""

from __future__ import annotations

from typing import Any

from remediations.core.evidence import ConnectionUserEvidence
from remediations.core.model import Action, Connection, Finding, FlowConnectionChange, Outcome, Snapshot
from remediations.core.policy import Policy
from remediations.core.registry import Remediation, RemediationMetadata, register
from remediations.fixes._flow_writes import rewrite_client_data
from remediations.ports import Clients


def _references(data: dict[str, Any]) -> dict[str, Any]:
    properties = data.get("properties")
    references = properties.get("connectionReferences") if isinstance(properties, dict) else None
    return references if isinstance(references, dict) else {}


def _connection(reference: Any) -> dict[str, Any]:
    connection = reference.get("connection") if isinstance(reference, dict) else None
    return connection if isinstance(connection, dict) else {}


def _bound_to(data: dict[str, Any], connection_id: str) -> list[str]:
    """Reference keys whose connection is `connection_id`."""
    return [
        key
        for key, reference in _references(data).items()
        if str(_connection(reference).get("name") or "").lower() == connection_id.lower()
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
        for finding in findings:
            evidence = ConnectionUserEvidence.of(finding)
            flow = flows.get(evidence.flow or "")  # None: a connection no flow uses yet
            source = connections.get(evidence.connection.lower())
            if flow is None or source is None or (flow.id, source.id) in actions:
                continue
            named = policy.power_platform.service_connection_for(
                flow.environment, source.parameters.get("vaultName")
            )
            target = connections.get((named or "").lower())
            if target is None or not _usable(target, source):
                continue
            actions[(flow.id, source.id)] = Action.create(
                remediation_id=self.id,
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
                reason=f"flow {flow.display_name or flow.id!r} reads Key Vault as the person "
                f"{source.identity_principal_id} through {source.display_name or source.id!r}; the policy "
                f"names {target.display_name or target.id!r} ({target.identity_kind}) for it",
                finding_ids=(finding.id,),
            )
        return list(actions.values())

    def apply(self, action: Action, clients: Clients) -> Outcome:
        change = action.changes[0]
        if not isinstance(change, FlowConnectionChange):
            return Outcome(action_id=action.id, status="failed", error="not a flow connection action")

        def edit(data: dict[str, Any]) -> dict[str, Any] | str | None:
            keys = _bound_to(data, change.from_connection)
            if keys:
                return _rebound(data, keys, change.to_connection)
            if _bound_to(data, change.to_connection):  # already moved
                return None
            return "no connectionReferences entry names the connection (a solution reference?)"

        def check(fresh: dict[str, Any]) -> str | None:
            moved = not _bound_to(fresh, change.from_connection) and _bound_to(fresh, change.to_connection)
            return None if moved else "the flow still uses the connection"

        return rewrite_client_data(action, clients, change.environment, change.flow_id, edit, check)
