"""quarantine_flow: turn off a running flow whose Key Vault connection authenticates as a person and
that someone other than its owner can edit (co-owners, System Customizers/Administrators), when the
policy asks for it (`powerPlatform.quarantineFlows`). One Dataverse PATCH of the `workflows` row, then
one GET of the row to verify it is off.

Containment for co-owners, closure for the rest: turning the flow on again needs the right to use its
connection (docs/fidelity.md, "Turning a flow on"), so the run's closure check closes the paths of
editors who lack it (a System Customizer not shared on the admin's connection) and still lists those of
co-owners and of people the connection is shared with.
"""

from __future__ import annotations

from remediations.core.evidence import ConnectionUserEvidence
from remediations.core.model import Action, Finding, FlowStateChange, Outcome, Snapshot
from remediations.core.policy import Policy
from remediations.core.registry import Remediation, RemediationMetadata, register
from remediations.fixes._verified_writes import read_write_verify
from remediations.ports import Clients

_EDIT_ROLES = {"owner", "canedit"}


def _editors_besides_owner(
    snapshot: Snapshot, flow_id: str, owner: str | None, environment: str
) -> list[str]:
    shared = {
        s.principal_id.lower()
        for s in snapshot.shares
        if s.resource_kind == "flow" and s.resource_id == flow_id and s.role.lower() in _EDIT_ROLES
    }
    customizers = {
        p.lower()
        for e in snapshot.environments
        if e.name.lower() == environment.lower()
        for p in e.editors_of_all_flows()
    }
    return sorted((shared | customizers) - {(owner or "").lower()})


@register
class QuarantineFlow(Remediation):
    id = "quarantine_flow"
    handles = frozenset({"connection_runs_as_user"})
    power_platform = True
    metadata = RemediationMetadata(
        title="Turn off flows on a person's Key Vault connection that others can edit",
        severity="high",  # above connection_runs_as_user (medium): only flows others can edit (seed attack)
        risk="The flow stops triggering until its owner turns it on again; scheduled work does not run.",
        permissions_required=(
            "Application user with a security role that can write workflows (System Administrator) in the "
            "flow's environment: PATCH https://{org}.crm.dynamics.com/api/data/v9.2/workflows({id})",
        ),
        cli_equivalent="Disable-AdminFlow -EnvironmentName <env> -FlowName <flow>",
        bicep_hint="not expressible in Bicep: flow state is a Power Platform setting",
    )

    def plan(self, snapshot: Snapshot, findings: list[Finding], policy: Policy) -> list[Action]:
        if not policy.power_platform.quarantine_flows:
            return []
        flows = {f.id: f for f in snapshot.flows}
        actions: dict[str, Action] = {}
        for finding in findings:
            flow = flows.get(ConnectionUserEvidence.of(finding).flow or "")
            if flow is None or flow.state != "Started" or flow.id in actions:
                continue
            editors = _editors_besides_owner(snapshot, flow.id, flow.creator, flow.environment)
            if not editors:
                continue
            actions[flow.id] = Action.create(
                remediation_id=self.id,
                target=finding.resource_id,
                principal=finding.principal,
                changes=(FlowStateChange(environment=flow.environment, flow_id=flow.id),),
                before={"state": [flow.state]},
                after={"state": ["Stopped"]},
                reason=f"flow {flow.label!r} runs on a person's Key Vault connection and "
                f"{len(editors)} people besides its owner can edit it: {editors}",
                finding_ids=(finding.id,),
            )
        return list(actions.values())

    def apply(self, action: Action, clients: Clients) -> Outcome:
        change = action.changes[0]
        if not isinstance(change, FlowStateChange):
            return Outcome(action_id=action.id, status="failed", error="not a flow state action")
        api = clients.power_platform()
        return read_write_verify(
            action,
            read=lambda: api.get_flow(change.environment, change.flow_id).state,
            edit=lambda state: None if state == "Stopped" else change,
            write=lambda _: api.turn_off_flow(change.environment, change.flow_id),
            check=lambda state: None if state == "Stopped" else f"flow is still {state}",
        )
