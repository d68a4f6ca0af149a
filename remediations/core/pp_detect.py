"""Power Platform detectors (pure): who can reach a Key Vault connection, and as whom it runs; each is
registered with its title (`detector_info`), and the flow-definition checks of core/flow_findings.py
are registered here too, run on every flow read.

The creator of a flow or connection is its owner and is judged by `flow_owned_by_personal_account`, not
by the share detectors (the service cannot remove a creator's ownership).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Literal, TypeVar

from remediations.core.detect import (
    DLP_HELP,
    DetectorInfo,
    detector,
    register_detector,
)
from remediations.core.evidence import (
    ConnectionShareEvidence,
    ConnectionUserEvidence,
    CustomizersEvidence,
    FlowOwnerEvidence,
    FlowShareEvidence,
    FlowUsesKeyVaultEvidence,
)
from remediations.core.flow_allow_list import analyze_flows
from remediations.core.flow_findings import FLOW_RULES, FlowRef, flow_findings
from remediations.core.model import Connection, Finding, Flow, Share, Snapshot
from remediations.core.policy import Policy

_FLOW_SHARE_ROLES = frozenset({"owner", "canedit", "canview"})
_CONNECTION_SHARE_ROLES = frozenset({"canedit", "canview", "canviewwithshare"})
Shared = TypeVar("Shared")  # what a share is on: a flow (with its connections) or a connection


def keyvault_connections(snapshot: Snapshot) -> dict[str, Connection]:
    return {c.id.lower(): c for c in snapshot.connections if c.is_keyvault}


def keyvault_flows(snapshot: Snapshot) -> list[tuple[Flow, list[Connection]]]:
    """Flows with the Key Vault connections they reference."""
    connections = keyvault_connections(snapshot)
    found = []
    for flow in snapshot.flows:
        used = [connections[c.lower()] for c in flow.connection_references if c.lower() in connections]
        if used:
            found.append((flow, used))
    return found


def flow_resource_id(flow: Flow) -> str:
    return f"/providers/Microsoft.ProcessSimple/environments/{flow.environment}/flows/{flow.id}"


def connection_resource_id(connection: Connection) -> str:
    return (
        f"/providers/Microsoft.PowerApps/environments/{connection.environment}/apis/{connection.api_name}"
        f"/connections/{connection.id}"
    )


def _shares_beyond_allowed(
    snapshot: Snapshot,
    policy: Policy,
    kind: Literal["flow", "connection"],
    resources: Mapping[str, Shared],
    roles: frozenset[str],
    creator: Callable[[Shared], str | None],
    allowed: Callable[[str], bool],
) -> Iterator[tuple[Share, Shared, str]]:
    """The shares of `kind` on `resources` (by lower-case id) in one of `roles`, with the resource and
    who (lower case), to anyone but its creator (judged as its owner), the `allowed` and break-glass."""
    for share in snapshot.shares:
        resource = resources.get(share.resource_id.lower()) if share.resource_kind == kind else None
        if resource is None:
            continue
        who = share.principal_id.lower()
        if share.role.lower() not in roles or who == (creator(resource) or "").lower():
            continue
        if allowed(who) or policy.is_break_glass(who):
            continue
        yield share, resource, who


def _vaults(used: list[Connection]) -> list[str]:
    return sorted({c.parameters.get("vaultName", "") for c in used} - {""})


@detector(
    "flow_uses_keyvault",
    severity="low",
    evidence=FlowUsesKeyVaultEvidence,
    platform="power_platform",
    title="A flow uses a Key Vault connection (feeds the Key Vault DLP policy)",
    help_url=DLP_HELP,
)
def flow_uses_keyvault(snapshot: Snapshot, policy: Policy, rule: DetectorInfo) -> list[Finding]:
    return [
        rule.finding(
            resource_id=flow_resource_id(flow),
            principal=None,
            message=f"flow {flow.label!r} uses Key Vault connection(s) "
            f"{', '.join(sorted(c.id for c in used))}",
            evidence=FlowUsesKeyVaultEvidence(
                environment=flow.environment,
                flow=flow.id,
                connections=tuple(sorted(c.id for c in used)),
                vaults=tuple(_vaults(used)),
            ),
        )
        for flow, used in keyvault_flows(snapshot)
    ]


@detector(
    "connection_runs_as_user",
    severity="medium",
    evidence=ConnectionUserEvidence,
    platform="power_platform",
    title="A Key Vault connection authenticates as a person, not as an app identity",
)
def connection_runs_as_user(snapshot: Snapshot, policy: Policy, rule: DetectorInfo) -> list[Finding]:
    """Anyone who can edit a flow on such a connection acts with that person's Key Vault rights.

    One finding per flow that uses the connection (that is what an attacker edits), and one for the
    connection itself when no flow uses it yet.
    """
    administrators = {
        p.lower()
        for e in snapshot.environments
        for p, roles in e.role_holders.items()
        if "System Administrator" in roles
    }
    users = [
        c
        for c in keyvault_connections(snapshot).values()
        if c.identity_kind == "user" and c.identity_principal_id
    ]
    # connection id -> the flows that use it, in flow order (one pass, not one scan per connection)
    using_by_connection: dict[str, list[Flow]] = {}
    for flow, used in keyvault_flows(snapshot):
        for connection_id in dict.fromkeys(c.id.lower() for c in used):
            using_by_connection.setdefault(connection_id, []).append(flow)
    findings = []
    for connection in users:
        person = (connection.identity_principal_id or "").lower()
        administrator = person in administrators
        admin_note = " (an environment administrator)" if administrator else ""
        using = using_by_connection.get(connection.id.lower(), [])
        label = connection.label
        evidence = ConnectionUserEvidence(
            environment=connection.environment,
            connection=connection.id,
            vault=connection.parameters.get("vaultName"),
            identity_kind=connection.identity_kind,
            administrator=administrator,
        )
        targets = [(flow_resource_id(f), f"flow {f.label!r} uses", {"flow": f.id}) for f in using]
        for resource_id, subject, extra in targets or [(connection_resource_id(connection), "", {})]:
            findings.append(
                rule.finding(
                    severity="high" if administrator else None,
                    resource_id=resource_id,
                    principal=person,
                    message=f"{subject + ' ' if subject else ''}Key Vault connection {label!r}, which "
                    f"authenticates as the user {person}{admin_note}, not as a service principal or "
                    "managed identity",
                    evidence=ConnectionUserEvidence(**evidence.as_dict(), **extra),
                )
            )
    return findings


@detector(
    "flow_owned_by_personal_account",
    severity="medium",
    evidence=FlowOwnerEvidence,
    platform="power_platform",
    title="A Key Vault flow is owned by a person, not by a configured service account",
)
def flow_owned_by_personal_account(snapshot: Snapshot, policy: Policy, rule: DetectorInfo) -> list[Finding]:
    """Only judged when the policy names service accounts: without them there is no 'allowed owner'."""
    if not policy.service_accounts:
        return []
    findings = []
    for flow, used in keyvault_flows(snapshot):
        owner = (flow.creator or "").lower()
        if owner and owner in policy.service_accounts:
            continue
        findings.append(
            rule.finding(
                resource_id=flow_resource_id(flow),
                principal=owner or None,
                message=f"Key Vault flow {flow.label!r} is owned by "
                f"{owner or 'nobody known'}, not by a configured service account",
                evidence=FlowOwnerEvidence(
                    environment=flow.environment,
                    flow=flow.id,
                    owner=owner,
                    service_accounts=tuple(policy.service_accounts),
                    vaults=tuple(_vaults(used)),
                ),
            )
        )
    return findings


@detector(
    "flow_shared_beyond_allowed",
    severity="medium",
    evidence=FlowShareEvidence,
    platform="power_platform",
    title="A Key Vault flow is shared (co-owner or run-only) beyond the allowed set",
)
def flow_shared_beyond_allowed(snapshot: Snapshot, policy: Policy, rule: DetectorInfo) -> list[Finding]:
    flows = {flow.id.lower(): (flow, used) for flow, used in keyvault_flows(snapshot)}
    shares = _shares_beyond_allowed(
        snapshot,
        policy,
        "flow",
        flows,
        _FLOW_SHARE_ROLES,
        lambda found: found[0].creator,
        policy.flow_editor_allowed,
    )
    findings = []
    for share, (flow, used), who in shares:
        findings.append(
            rule.finding(
                severity="high" if share.role.lower() in {"owner", "canedit"} else None,
                resource_id=flow_resource_id(flow),
                principal=who,
                message=f"{who} is {share.role} of Key Vault flow {flow.label!r} "
                "and is not in the allowed flow editors",
                evidence=FlowShareEvidence(
                    environment=flow.environment,
                    flow=flow.id,
                    role=share.role,
                    principal_kind=share.principal_kind,
                    connections=tuple(sorted(c.id for c in used)),
                ),
            )
        )
    return findings


@detector(
    "connection_shared_beyond_allowed",
    severity="high",
    evidence=ConnectionShareEvidence,
    platform="power_platform",
    title="A Key Vault connection is shared beyond the allowed set",
)
def connection_shared_beyond_allowed(snapshot: Snapshot, policy: Policy, rule: DetectorInfo) -> list[Finding]:
    shares = _shares_beyond_allowed(
        snapshot,
        policy,
        "connection",
        keyvault_connections(snapshot),
        _CONNECTION_SHARE_ROLES,
        lambda connection: connection.created_by,
        policy.connection_user_allowed,
    )
    findings = []
    for share, connection, who in shares:
        findings.append(
            rule.finding(
                resource_id=connection_resource_id(connection),
                principal=who,
                message=f"Key Vault connection {connection.label!r} is shared "
                f"({share.role}) with {who}, who is not in the allowed connection users",
                evidence=ConnectionShareEvidence(
                    environment=connection.environment,
                    connection=connection.id,
                    api=connection.api_name,
                    role=share.role,
                    permission_id=share.permission_id,
                    principal_kind=share.principal_kind,
                ),
            )
        )
    return findings


@detector(
    "environment_too_many_customizers",
    severity="medium",
    evidence=CustomizersEvidence,
    platform="power_platform",
    title="An environment has more System Customizers / Administrators than the policy allows",
)
def environment_too_many_customizers(snapshot: Snapshot, policy: Policy, rule: DetectorInfo) -> list[Finding]:
    limit = policy.power_platform.max_system_customizers
    if limit is None:
        return []
    findings = []
    for environment in snapshot.environments:
        holders = environment.editors_of_all_flows()
        if len(holders) <= limit:
            continue
        findings.append(
            rule.finding(
                resource_id=environment.id,
                principal=None,
                message=f"environment {environment.label!r} has {len(holders)} "
                f"System Customizers/Administrators (limit {limit}); each can edit every flow in it",
                evidence=CustomizersEvidence(
                    environment=environment.name, holders=tuple(holders), limit=limit
                ),
            )
        )
    return findings


def definition_findings(snapshot: Snapshot, policy: Policy, rule: DetectorInfo) -> list[Finding]:
    """The body of each flow-definition rule: `flow_findings` makes every rule's findings (offline
    scans use it too, core/flow_findings.py), and a rule keeps its own."""
    first: dict[str, Flow] = {}
    for candidate in snapshot.flows:
        first.setdefault(candidate.id, candidate)
    findings = []
    for flow_id, analysis in analyze_flows(snapshot).items():
        flow = first[flow_id]
        ref = FlowRef(
            resource_id=flow_resource_id(flow), display_name=flow.display_name, principal=flow.creator
        )
        findings += [f for f in flow_findings(ref, analysis) if f.detector_id == rule.id]
    return findings


for _rule in FLOW_RULES:
    register_detector(_rule, definition_findings)
