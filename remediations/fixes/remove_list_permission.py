"""remove_list_permission: take `list` away from identities no rule allows it.

`list` is the enumeration step of the seed attack (a flow adds "List secrets" + for-each "Get secret").
One `PUT .../accessPolicies/remove` per identity with only the `list` spellings the vault stores.
"""

from __future__ import annotations

from remediations.core.access_policy import group_removals, plan_removals
from remediations.core.detect import highest_severity
from remediations.core.model import Action, Finding, Outcome, Snapshot
from remediations.core.policy import Policy
from remediations.core.registry import Remediation, RemediationMetadata, register
from remediations.fixes._access_policy_writes import apply_changes
from remediations.ports import Clients


@register
class RemoveListPermission(Remediation):
    id = "remove_list_permission"
    handles = frozenset({"secret_list_permission"})
    metadata = RemediationMetadata(
        title="Remove the secrets `list` permission from vault access policies",
        severity=highest_severity(handles),
        risk=(
            "Flows or apps that enumerate the vault (List secrets) stop working; "
            "reading a named secret still works."
        ),
        permissions_required=(
            "Microsoft.KeyVault/vaults/read",
            "Microsoft.KeyVault/vaults/accessPolicies/write",
        ),
        cli_equivalent="az keyvault delete-policy --name <vault> --object-id <id> --secret-permissions list",
        bicep_hint=(
            "Microsoft.KeyVault/vaults/accessPolicies@2023-07-01 name 'remove', permissions.secrets ['list']"
        ),
    )

    def plan(self, snapshot: Snapshot, findings: list[Finding], policy: Policy) -> list[Action]:
        wanted = group_removals(
            findings, lambda _: {"list"}, lambda _: "no policy rule allows this identity to list secrets"
        )
        return plan_removals(self.id, snapshot, policy, wanted)

    def apply(self, action: Action, clients: Clients) -> Outcome:
        return apply_changes(action, clients)
