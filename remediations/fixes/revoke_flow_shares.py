"""revoke_flow_shares: remove co-owners (CanEdit) and run-only users (CanView) of flows that use a Key
Vault connection when they are not in the policy's allowed set (`powerPlatform.allowedFlowEditors` and
`serviceAccounts`). The owner stays (a Dataverse record always has one), so a flow always keeps its
owner. One Dataverse `RevokeAccess` per removed share, then one shares read to verify.
"""

from __future__ import annotations

from remediations.core.model import Action, Finding, Outcome, ShareChange, Snapshot
from remediations.core.policy import Policy
from remediations.core.registry import Remediation, RemediationMetadata, register
from remediations.core.shares import plan_share_revocations
from remediations.fixes._share_writes import apply_share_revocations
from remediations.ports import Clients


@register
class RevokeFlowShares(Remediation):
    id = "revoke_flow_shares"
    handles = frozenset({"flow_shared_beyond_allowed"})
    power_platform = True
    metadata = RemediationMetadata(
        title="Revoke co-owners and run-only users of Key Vault flows outside the allowed set",
        severity="high",  # as flow_shared_beyond_allowed of the co-owners it removes (run-only: medium)
        risk="People who edited or ran the flow lose access to it; re-share through the allowed accounts.",
        permissions_required=(
            "Application user with a security role that can share workflows (System Administrator) in the "
            "flow's environment: POST https://{org}.crm.dynamics.com/api/data/v9.2/RevokeAccess",
        ),
        cli_equivalent=(
            "Remove-AdminFlowOwnerRole -EnvironmentName <env> -FlowName <flow> -RoleId <principal id>"
        ),
        bicep_hint="not expressible in Bicep: flow sharing is a Power Platform setting",
    )

    def plan(self, snapshot: Snapshot, findings: list[Finding], policy: Policy) -> list[Action]:
        return plan_share_revocations(self.id, "flow", snapshot, findings)

    def apply(self, action: Action, clients: Clients) -> Outcome:
        api = clients.power_platform()

        def delete(flow: ShareChange, changes: list[ShareChange]) -> None:
            # RevokeAccess names the Dataverse principal (listed as the share's permission id).
            principals = [(c.permission_id or c.principal_id, c.principal_kind) for c in changes]
            api.revoke_flow_access(flow.environment, flow.resource_id, principals)

        return apply_share_revocations(
            action, delete, lambda flow: api.flow_permissions(flow.environment, flow.resource_id)
        )
