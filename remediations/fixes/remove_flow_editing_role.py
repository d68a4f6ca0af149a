"""remove_flow_editing_role: take the System Customizer security role away from people the policy does
not list as flow editors (`powerPlatform.allowedFlowEditors`, `serviceAccounts`, break-glass), in
environments where a flow runs on a person's Key Vault connection, when the policy asks for it
(`powerPlatform.removeFlowEditingRoles`). The guide's mitigation "limit who may edit or share flows".

A System Customizer edits every flow of the environment, whoever owns it, so every such flow's
connection reads for them; turning one flow off stops them on that flow only, and not at all when they
may use its connection (they can turn it on again). Taking the role away cuts the person -> flow edge
itself. One Dataverse disassociate (DELETE of the role
association's `$ref`) per person, then a fresh read of their roles to verify.

System Administrator is left alone: it is also the app's own role and an administrator's; holders the
policy does not accept stay as open paths for a person to decide on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from remediations.core.evidence import ConnectionUserEvidence
from remediations.core.model import Action, Finding, Outcome, SecurityRoleChange, Snapshot
from remediations.core.policy import Policy
from remediations.core.registry import Remediation, RemediationMetadata, register
from remediations.fixes._verified_writes import read_write_verify
from remediations.ports import Clients

FLOW_EDITING_ROLE = "System Customizer"


@dataclass
class _Exposed:
    flow_names: list[str] = field(default_factory=list)
    finding_ids: list[str] = field(default_factory=list)


def _environments_with_exposed_flows(snapshot: Snapshot, findings: list[Finding]) -> dict[str, _Exposed]:
    """Environment name (lower-cased) -> the flows the findings name there, and those findings."""
    flows = {f.id: f for f in snapshot.flows}
    exposed: dict[str, _Exposed] = {}
    for finding in findings:
        flow = flows.get(ConnectionUserEvidence.of(finding).flow or "")
        if flow is None:
            continue
        entry = exposed.setdefault(flow.environment.lower(), _Exposed())
        if flow.label not in entry.flow_names:
            entry.flow_names.append(flow.label)
        entry.finding_ids.append(finding.id)
    return exposed


@register
class RemoveFlowEditingRole(Remediation):
    id = "remove_flow_editing_role"
    handles = frozenset({"connection_runs_as_user"})
    power_platform = True
    metadata = RemediationMetadata(
        title="Remove System Customizer from people the policy does not allow to edit flows",
        severity="high",  # above connection_runs_as_user (medium): the role edits every flow there
        risk="The person can no longer customise the environment (tables, apps, flows they do not own) "
        "until an administrator gives the role back.",
        permissions_required=(
            "Application user with System Administrator in the environment: DELETE "
            "https://{org}.crm.dynamics.com/api/data/v9.2/systemusers({id})/systemuserroles_association"
            "({roleid})/$ref (teams({id})/teamroles_association(...)/$ref for an Entra group team)",
        ),
        cli_equivalent="az rest --method delete --resource https://{org}.crm.dynamics.com --url "
        "https://{org}.crm.dynamics.com/api/data/v9.2/systemusers({id})/systemuserroles_association({roleid})/$ref",
        bicep_hint="not expressible in Bicep: Dataverse security roles are environment data",
    )

    def plan(self, snapshot: Snapshot, findings: list[Finding], policy: Policy) -> list[Action]:
        if not policy.power_platform.remove_flow_editing_roles:
            return []
        exposed = _environments_with_exposed_flows(snapshot, findings)
        actions: list[Action] = []
        for environment in snapshot.environments:
            found = exposed.get(environment.name.lower())
            if found is None:
                continue
            where = environment.label
            flows = ", ".join(found.flow_names[:3]) + (", ..." if len(found.flow_names) > 3 else "")
            for principal, roles in sorted(environment.role_holders.items()):
                if FLOW_EDITING_ROLE not in roles or self._allowed(principal, policy):
                    continue
                actions.append(
                    Action.create(
                        remediation_id=self.id,
                        target=environment.id,
                        principal=principal,
                        changes=(
                            SecurityRoleChange(
                                environment=environment.name, principal_id=principal, role=FLOW_EDITING_ROLE
                            ),
                        ),
                        before={"roles": sorted(roles)},
                        after={"roles": sorted(r for r in roles if r != FLOW_EDITING_ROLE)},
                        reason=f"{FLOW_EDITING_ROLE} edits every flow in {where!r}, including "
                        f"{len(found.flow_names)} on a person's Key Vault connection ({flows}); the policy "
                        "does not list them as a flow editor",
                        finding_ids=tuple(found.finding_ids),
                    )
                )
        return actions

    @staticmethod
    def _allowed(principal: str, policy: Policy) -> bool:
        """Allowed flow editors, break-glass, and identities the policy excludes from every fix."""
        return (
            policy.flow_editor_allowed(principal)
            or policy.is_break_glass(principal)
            or policy.excludes_identity(principal)
        )

    def apply(self, action: Action, clients: Clients) -> Outcome:
        change = action.changes[0]
        if not isinstance(change, SecurityRoleChange):
            return Outcome(action_id=action.id, status="failed", error="not a security role action")
        api = clients.power_platform()
        held = f"{change.principal_id} still holds {change.role!r}"
        return read_write_verify(
            action,
            read=lambda: api.security_roles(change.environment, change.principal_id),
            edit=lambda roles: change if change.role in roles else None,
            write=lambda _: api.remove_security_role(change.environment, change.principal_id, change.role),
            check=lambda roles: held if change.role in roles else None,
            after=lambda roles: {"roles": sorted(roles)},
        )
