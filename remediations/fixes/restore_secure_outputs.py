"""restore_secure_outputs: turn secure inputs and outputs back on for a flow's Key Vault Get secret
actions that have them off (`flow_insecure_get_secret`), so secret values leave the run history that
everyone who can see the flow's runs reads. Planned when the policy asks for it
(`powerPlatform.restoreSecureOutputs`).

One Dataverse PATCH of the `workflows` row's `clientdata` (its definition with
`runtimeConfiguration.secureData.properties` ["inputs", "outputs"] on those actions, nothing else
changed), made on a fresh read of the row, then a second read to verify. The action names the
actions by JSON path; the definition itself is never stored in the plan or the audit log.

It closes the run-history leak, not the edit path: an editor can switch them off again, which the
flow-editing fixes and the closure check deal with.
"""

from __future__ import annotations

from typing import Any

from remediations.core.detect import highest_severity
from remediations.core.evidence import FlowStepEvidence
from remediations.core.flow_findings import INSECURE_GET
from remediations.core.flow_secure import unsecured, with_secure_data
from remediations.core.model import Action, Finding, FlowSecureDataChange, Outcome, Snapshot
from remediations.core.policy import Policy
from remediations.core.pp_detect import flow_resource_id
from remediations.core.registry import Remediation, RemediationMetadata, register
from remediations.fixes._flow_writes import rewrite_client_data
from remediations.ports import Clients


def _definition(client_data: dict[str, Any]) -> dict[str, Any]:
    properties = client_data.get("properties")
    definition = properties.get("definition") if isinstance(properties, dict) else None
    return definition if isinstance(definition, dict) else {}


@register
class RestoreSecureOutputs(Remediation):
    id = "restore_secure_outputs"
    handles = frozenset({INSECURE_GET.id})
    power_platform = True
    metadata = RemediationMetadata(
        title="Turn secure inputs/outputs back on for Key Vault Get secret actions in flows",
        severity=highest_severity(handles),
        risk="Later actions still get the value, but the run history no longer shows it to anyone, "
        "including whoever debugs the flow.",
        permissions_required=(
            "Application user with a security role that can write workflows (System Administrator) in the "
            "flow's environment: PATCH https://{org}.crm.dynamics.com/api/data/v9.2/workflows({id}) "
            "(clientdata)",
        ),
        cli_equivalent="pac solution export, set the action's runtimeConfiguration.secureData, "
        "pac solution import",
        bicep_hint="not expressible in Bicep: a flow's definition is Power Platform data",
    )

    def plan(self, snapshot: Snapshot, findings: list[Finding], policy: Policy) -> list[Action]:
        if not policy.power_platform.restore_secure_outputs:
            return []
        flows = {flow_resource_id(f): f for f in snapshot.flows}
        paths: dict[str, list[str]] = {}
        finding_ids: dict[str, list[str]] = {}
        for finding in findings:
            flow = flows.get(finding.resource_id)
            path = FlowStepEvidence.of(finding).action_path
            if flow is None or not path:
                continue
            if path not in paths.setdefault(flow.id, []):
                paths[flow.id].append(path)
            finding_ids.setdefault(flow.id, []).append(finding.id)
        actions = []
        for flow in snapshot.flows:
            if flow.id not in paths:
                continue
            actions.append(
                Action.create(
                    remediation_id=self.id,
                    target=flow_resource_id(flow),
                    principal=flow.creator,
                    changes=(
                        FlowSecureDataChange(
                            environment=flow.environment,
                            flow_id=flow.id,
                            action_paths=tuple(sorted(paths[flow.id])),
                        ),
                    ),
                    before={"unsecured": sorted(paths[flow.id])},
                    after={"unsecured": []},
                    reason=f"flow {flow.label!r} reads secrets without secure outputs at "
                    f"{', '.join(sorted(paths[flow.id]))}: the values show in its run history",
                    finding_ids=tuple(finding_ids[flow.id]),
                )
            )
        return actions

    def apply(self, action: Action, clients: Clients) -> Outcome:
        change = action.changes[0]
        if not isinstance(change, FlowSecureDataChange):
            return Outcome(action_id=action.id, status="failed", error="not a flow secure-data action")
        paths = change.action_paths

        def edit(data: dict[str, Any]) -> dict[str, Any] | None:
            if not unsecured(_definition(data), paths):  # edited meanwhile, or done
                return None
            properties = {
                **data.get("properties", {}),
                "definition": with_secure_data(_definition(data), paths),
            }
            return {**data, "properties": properties}

        def check(fresh: dict[str, Any]) -> str | None:
            left = unsecured(_definition(fresh), paths)
            return f"still unsecured: {list(left)}" if left else None

        return rewrite_client_data(action, clients, change.environment, change.flow_id, edit, check)
