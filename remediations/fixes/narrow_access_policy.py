"""narrow_access_policy: remove the secret permissions beyond an identity's allow-list.

Deltas only (`accessPolicies/remove`, and `add` before `remove` when `all` must be split), never a
whole-list `replace`, so a concurrent change by someone else is not overwritten.
"""

from __future__ import annotations

from remediations.core.access_policy import group_removals, plan_removals
from remediations.core.detect import highest_severity
from remediations.core.evidence import ExcessPermissionsEvidence
from remediations.core.model import Action, Finding, Outcome, Snapshot
from remediations.core.policy import Policy
from remediations.core.registry import Remediation, RemediationMetadata, register
from remediations.fixes._access_policy_writes import apply_changes
from remediations.ports import Clients


@register
class NarrowAccessPolicy(Remediation):
    id = "narrow_access_policy"
    handles = frozenset({"excess_secret_permissions"})
    metadata = RemediationMetadata(
        title="Narrow vault access policies to the secret permissions a purpose needs",
        severity=highest_severity(handles),
        risk="Callers that relied on the removed permissions (set, delete, list...) start getting 403.",
        permissions_required=(
            "Microsoft.KeyVault/vaults/read",
            "Microsoft.KeyVault/vaults/accessPolicies/write",
        ),
        cli_equivalent=(
            "az keyvault delete-policy --name <vault> --object-id <id> --secret-permissions <excess...>  "
            "(az keyvault set-policy --secret-permissions <allowed...> first when the identity holds `all`)"
        ),
        bicep_hint=(
            "Microsoft.KeyVault/vaults/accessPolicies@2023-07-01 name 'remove' with the excess permissions"
        ),
    )

    def plan(self, snapshot: Snapshot, findings: list[Finding], policy: Policy) -> list[Action]:
        wanted = group_removals(findings, _excess, _reason)
        return plan_removals(self.id, snapshot, policy, wanted)

    def apply(self, action: Action, clients: Clients) -> Outcome:
        return apply_changes(action, clients)


def _excess(finding: Finding) -> set[str]:
    return set(ExcessPermissionsEvidence.of(finding).excess)


def _reason(finding: Finding) -> str:
    evidence = ExcessPermissionsEvidence.of(finding)
    reason = f"allow-list for this identity is {', '.join(evidence.allowed) or 'empty'}"
    if evidence.needed_secret_names is not None:
        # Access policies cannot be scoped to one secret: say what flows use, so the vault can be
        # split or moved to RBAC (narrow_role_assignment scopes to exactly these names).
        reason += f"; its flows read only the secrets {', '.join(evidence.needed_secret_names)}"
    return reason
