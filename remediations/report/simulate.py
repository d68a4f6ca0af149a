"""The snapshot a plan would leave (pure): `simulate(snapshot, actions)` applies the graph-relevant
changes of a plan (access policies, role assignments, the vault's permission model, shares, a flow's
connection and a solution's connection reference) to a copy of the snapshot, so a dry run can show
what the fix would cut (report/graph_view.py draws it and `compare` marks what was removed)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from remediations.core.access_policy import apply_change
from remediations.core.model import (
    AccessPolicyChange,
    Action,
    ConnectionReferenceChange,
    Flow,
    FlowConnectionChange,
    RoleAssignment,
    RoleAssignmentChange,
    Share,
    ShareChange,
    Snapshot,
    VaultAuthorizationChange,
)
from remediations.core.role_changes import assignment_matches


class _Operation(Protocol):
    @property
    def operation(self) -> str: ...


Item = TypeVar("Item")  # a role assignment or a share
ChangeOf = TypeVar("ChangeOf", bound=_Operation)  # the change that deletes or adds one


def simulate(snapshot: Snapshot, actions: Iterable[Action]) -> Snapshot:
    """The snapshot after `actions` (access policy, role assignment, vault switch, share, flow connection
    and connection reference changes; DLP and rotation changes cut no edge of this graph). Pure: used
    for dry-run "after" pictures."""
    vaults = {v.id.lower(): v for v in snapshot.vaults}
    order = [v.id.lower() for v in snapshot.vaults]
    role_assignments = list(snapshot.role_assignments)
    shares = list(snapshot.shares)
    flows = list(snapshot.flows)
    for action in actions:
        for change in action.changes:
            if isinstance(change, AccessPolicyChange):
                key = action.target.lower()
                if key in vaults:
                    vaults[key] = apply_change(vaults[key], change)
            elif isinstance(change, RoleAssignmentChange):
                role_assignments = _after(role_assignments, change, assignment_matches, _created_assignment)
            elif isinstance(change, VaultAuthorizationChange):
                key = change.vault_id.lower()
                if key in vaults:  # switched: the access policies stop counting, role assignments decide
                    vaults[key] = vaults[key].model_copy(
                        update={"enable_rbac_authorization": change.enable_rbac_authorization}
                    )
            elif isinstance(change, FlowConnectionChange | ConnectionReferenceChange):
                flows = [_moved(flow, change) for flow in flows]
            elif isinstance(change, ShareChange):
                shares = _after(shares, change, _same_share, _granted_share)
    return snapshot.model_copy(
        update={
            "vaults": tuple(vaults[k] for k in order),
            "role_assignments": tuple(role_assignments),
            "shares": tuple(shares),
            "flows": tuple(flows),
        }
    )


def _after(
    items: list[Item],
    change: ChangeOf,
    matches: Callable[[Item, ChangeOf], bool],
    made: Callable[[ChangeOf], Item],
) -> list[Item]:
    """A delete drops the items the change matches; a create or put adds the item it makes."""
    if change.operation == "delete":
        return [item for item in items if not matches(item, change)]
    return [*items, made(change)]


def _created_assignment(change: RoleAssignmentChange) -> RoleAssignment:
    return RoleAssignment(
        id=f"{change.scope}/providers/Microsoft.Authorization/roleAssignments/{change.assignment_name}",
        scope=change.scope,
        role_definition_id=change.role_definition_id,
        principal_id=change.principal_id,
        principal_type=change.principal_type,
    )


def _granted_share(change: ShareChange) -> Share:
    return Share(
        resource_kind=change.resource_kind,
        resource_id=change.resource_id,
        principal_id=change.principal_id,
        principal_kind=change.principal_kind,
        role=change.role,
    )


def _moved(flow: Flow, change: FlowConnectionChange | ConnectionReferenceChange) -> Flow:
    """The flow with the references the change rebinds pointing at its new connection: a flow's own
    (`FlowConnectionChange`), or every flow naming the connection reference row."""
    if flow.environment.lower() != change.environment.lower():
        return flow
    if isinstance(change, FlowConnectionChange):
        if flow.id.lower() != change.flow_id.lower():
            return flow
        keys = {k for k in flow.reference_keys if k not in flow.solution_references}
    else:
        wanted = change.logical_name.lower()
        keys = {k for k, name in flow.solution_references.items() if name.lower() == wanted}
    bound = {
        k: change.to_connection if k in keys and c.lower() == change.from_connection.lower() else c
        for k, c in flow.reference_keys.items()
    }
    if bound == flow.reference_keys:
        return flow
    return flow.model_copy(
        update={"reference_keys": bound, "connection_references": tuple(sorted(set(bound.values())))}
    )


def _same_share(share: Share, change: ShareChange) -> bool:
    return (
        share.resource_kind == change.resource_kind
        and share.resource_id.lower() == change.resource_id.lower()
        and share.principal_id.lower() == change.principal_id.lower()
        and share.role.lower() == change.role.lower()
    )
