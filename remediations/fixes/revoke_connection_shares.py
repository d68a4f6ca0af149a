"""revoke_connection_shares: remove CanEdit/CanView shares of Key Vault connections beyond the allowed set
(`powerPlatform.allowedConnectionUsers` and `serviceAccounts`). Someone a Key Vault connection is shared
with can build their own flow on it and read whatever its identity can. One admin `modifyPermissions`
call per connection (deleting the permission ids as listed), then one permissions read to verify.
"""

from __future__ import annotations

from remediations.core.detect import highest_severity
from remediations.core.model import Action, Finding, Outcome, Share, ShareChange, Snapshot
from remediations.core.policy import Policy
from remediations.core.registry import Remediation, RemediationMetadata, register
from remediations.core.shares import plan_share_revocations
from remediations.fixes._share_writes import apply_share_revocations
from remediations.ports import Clients


@register
class RevokeConnectionShares(Remediation):
    id = "revoke_connection_shares"
    handles = frozenset({"connection_shared_beyond_allowed"})
    power_platform = True
    metadata = RemediationMetadata(
        title="Revoke shares of Key Vault connections outside the allowed set",
        severity=highest_severity(handles),
        risk="Flows those users built on the shared connection stop working until re-pointed.",
        permissions_required=(
            "Power Platform administrator (or a registered management app): POST api.powerapps.com/"
            ".../scopes/admin/environments/{env}/apis/shared_keyvault/connections/{c}/modifyPermissions",
        ),
        cli_equivalent=(
            "Remove-AdminPowerAppConnectionRoleAssignment -EnvironmentName <env> -ConnectorName "
            "shared_keyvault -ConnectionName <c> -RoleId <permission id>"
        ),
        bicep_hint="not expressible in Bicep: connection sharing is a Power Platform setting",
    )

    def plan(self, snapshot: Snapshot, findings: list[Finding], policy: Policy) -> list[Action]:
        return plan_share_revocations(self.id, "connection", snapshot, findings)

    def apply(self, action: Action, clients: Clients) -> Outcome:
        api = clients.power_platform()

        def delete(connection: ShareChange, changes: list[ShareChange]) -> None:
            ids = [c.permission_id or c.principal_id for c in changes]
            api.modify_connection_permissions(*_connection(connection), delete=ids)

        def read(connection: ShareChange) -> list[Share]:
            return api.connection_permissions(*_connection(connection))

        return apply_share_revocations(action, delete, read)


def _connection(share: ShareChange) -> tuple[str, str, str]:
    """Environment, connector and connection of a connection share."""
    return share.environment, share.api or "shared_keyvault", share.resource_id
