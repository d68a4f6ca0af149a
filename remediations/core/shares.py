"""Shared by revoke_flow_shares and revoke_connection_shares: plan one action per flow/connection that
deletes the shares findings name. Pure; the fixes apply it with `fixes/_share_writes.py`."""

from __future__ import annotations

from typing import Literal

from remediations.core.evidence import ConnectionShareEvidence, FlowShareEvidence
from remediations.core.model import Action, Finding, Share, ShareChange, Snapshot


def share_label(share: Share) -> str:
    return f"{share.principal_id}:{share.role}"


def _revoked(share: Share, revoke: set[str], kind: str) -> bool:
    # A connection's Owner is its creator, whom the service never lets go; a flow keeps an Owner.
    return share.principal_id.lower() in revoke and not (
        kind == "connection" and share.role.lower() == "owner"
    )


def _share_target(finding: Finding, kind: Literal["flow", "connection"]) -> tuple[str, str, str | None]:
    """(environment, flow or connection id, connector api) from a share finding's typed evidence."""
    if kind == "flow":
        flow = FlowShareEvidence.of(finding)
        return flow.environment, flow.flow, None
    connection = ConnectionShareEvidence.of(finding)
    return connection.environment, connection.connection, connection.api


def plan_share_revocations(
    remediation_id: str,
    kind: Literal["flow", "connection"],
    snapshot: Snapshot,
    findings: list[Finding],
) -> list[Action]:
    """One action per flow or connection (`kind`) with the shares its findings name to revoke."""
    wanted: dict[tuple[str, str], tuple[Finding, list[Finding]]] = {}
    for finding in findings:
        environment, resource, _ = _share_target(finding, kind)
        key = (environment.lower(), resource.lower())
        wanted.setdefault(key, (finding, []))[1].append(finding)
    # The resource's shares, in snapshot order: one pass over the tenant's shares, not one per action.
    by_resource: dict[str, list[Share]] = {}
    for share in snapshot.shares:
        if share.resource_kind == kind:
            by_resource.setdefault(share.resource_id.lower(), []).append(share)
    actions = []
    for (environment, resource), (first, group) in sorted(wanted.items()):
        current = [
            s
            for s in by_resource.get(resource, ())
            if not s.environment or s.environment.lower() == environment
        ]
        revoke = {(f.principal or "").lower() for f in group}
        removed = [s for s in current if _revoked(s, revoke, kind)]
        if not removed:
            continue
        kept = [s for s in current if not _revoked(s, revoke, kind)]
        owners_left = any(s.role.lower() == "owner" for s in kept)
        skip = (
            None
            if kind == "connection" or owners_left or not current
            else "it would leave the flow with no owner"
        )
        target = _share_target(first, kind)
        changes = tuple(
            ShareChange(
                operation="delete",
                resource_kind=kind,
                environment=target[0],
                resource_id=target[1],
                principal_id=s.principal_id,
                principal_kind=s.principal_kind,
                role=s.role,
                api=target[2],
                permission_id=s.permission_id,
            )
            for s in sorted(removed, key=lambda s: s.principal_id)
        )
        actions.append(
            Action.create(
                remediation_id=remediation_id,
                target=first.resource_id,
                principal=None,
                changes=changes,
                before={"shares": sorted(share_label(s) for s in current)},
                after={"shares": sorted(share_label(s) for s in kept)},
                reason=f"shared beyond the allowed set: {', '.join(sorted(share_label(s) for s in removed))}",
                finding_ids=tuple(f.id for f in group),
                skip_reason=skip,
            )
        )
    return actions
