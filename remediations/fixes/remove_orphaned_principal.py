"""remove_orphaned_principal: drop access-policy entries and role assignments of principals the
directory says no longer exist (Graph `directoryObjects/getByIds`, batches of at most 1,000 ids).

A principal the directory could not be asked about (Graph error) has `exists=None`: it produces an
`unresolved_principal` finding and is never removed. An access-policy entry is removed with one
`accessPolicies/remove` carrying all four permission lists exactly as stored, so the entry drops; an
entry of another tenant (which our directory cannot resolve) is reported, not removed.
"""

from __future__ import annotations

from remediations.core import rbac
from remediations.core.detect import highest_severity
from remediations.core.evidence import AccessPolicyEvidence, OrphanedAssignmentEvidence
from remediations.core.model import (
    AccessPolicyChange,
    Action,
    Finding,
    Outcome,
    Permissions,
    RoleAssignmentChange,
    Snapshot,
)
from remediations.core.policy import Policy
from remediations.core.registry import Remediation, RemediationMetadata, register
from remediations.core.role_changes import describe
from remediations.fixes._access_policy_writes import apply_changes
from remediations.fixes._role_writes import apply_role_changes
from remediations.ports import Clients


@register
class RemoveOrphanedPrincipal(Remediation):
    id = "remove_orphaned_principal"
    handles = frozenset({"orphaned_principal", "orphaned_role_assignment"})
    metadata = RemediationMetadata(
        title="Remove access-policy entries and role assignments of deleted identities",
        severity=highest_severity(handles),
        risk=(
            "None for a truly deleted identity. A principal of another tenant or one created seconds ago "
            "(directory replication) could look deleted: foreign-tenant entries are reported, not removed."
        ),
        permissions_required=(
            "Microsoft.KeyVault/vaults/read",
            "Microsoft.KeyVault/vaults/accessPolicies/write",
            "Microsoft.Authorization/roleAssignments/read",
            "Microsoft.Authorization/roleAssignments/delete",
            "Graph: Directory.Read.All (directoryObjects/getByIds)",
        ),
        cli_equivalent=(
            "az keyvault delete-policy --name <vault> --object-id <id>; "
            "az role assignment delete --ids <assignment id>"
        ),
        bicep_hint="Remove the principal's accessPolicies entry / roleAssignments resource from the template",
    )

    def plan(self, snapshot: Snapshot, findings: list[Finding], policy: Policy) -> list[Action]:
        actions = []
        for finding in findings:
            if policy.is_break_glass(finding.principal or ""):
                continue
            action = (
                self._plan_entry(snapshot, finding)
                if finding.detector_id == "orphaned_principal"
                else self._plan_assignment(snapshot, finding, policy)
            )
            if action is not None:
                actions.append(action)
        return actions

    def _plan_entry(self, snapshot: Snapshot, finding: Finding) -> Action | None:
        vault = snapshot.vault(finding.resource_id)
        application_id = (AccessPolicyEvidence.of(finding).application_id or "").lower()
        entry = next(
            (
                e
                for e in (vault.policies_for(finding.principal or "") if vault is not None else ())
                if (e.application_id or "").lower() == application_id
            ),
            None,
        )
        if vault is None or entry is None:
            return None
        skip = None
        if vault.tenant_id and entry.tenant_id.lower() != vault.tenant_id.lower():
            skip = f"entry belongs to tenant {entry.tenant_id}, which this directory cannot resolve"
        change = AccessPolicyChange(
            operation="remove",
            tenant_id=entry.tenant_id,
            object_id=entry.object_id,
            application_id=entry.application_id,
            permissions=entry.permissions,  # all four lists, exact casing: the entry drops
        )
        return Action.create(
            remediation_id=self.id,
            target=vault.id,
            principal=entry.object_id,
            changes=(change,),
            before=entry.permissions.as_dict(),
            after=Permissions().as_dict(),
            reason=f"{entry.object_id} no longer exists in the directory",
            finding_ids=(finding.id,),
            skip_reason=skip,
        )

    def _plan_assignment(self, snapshot: Snapshot, finding: Finding, policy: Policy) -> Action | None:
        wanted = OrphanedAssignmentEvidence.of(finding).assignment_id.lower()
        assignment = next((a for a in snapshot.role_assignments if a.id.lower() == wanted), None)
        if assignment is None:
            return None
        skip = None
        if not rbac.covers(snapshot.scope.resource_id, assignment.scope) and not policy.rbac.narrow_inherited:
            skip = f"inherited from {assignment.scope}, above the inventoried scope: reported only"
        change = RoleAssignmentChange.deleting(assignment)
        return Action.create(
            remediation_id=self.id,
            target=assignment.scope,
            principal=assignment.principal_id,
            changes=(change,),
            before={"assignments": [describe(assignment)]},
            after={"assignments": []},
            reason=f"{assignment.principal_id} no longer exists in the directory",
            finding_ids=(finding.id,),
            skip_reason=skip,
        )

    def apply(self, action: Action, clients: Clients) -> Outcome:
        if all(isinstance(c, RoleAssignmentChange) for c in action.changes):
            return apply_role_changes(action, clients)
        return apply_changes(action, clients)
