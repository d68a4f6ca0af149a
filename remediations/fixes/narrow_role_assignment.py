"""narrow_role_assignment: replace a vault-scope (or wider) secrets role of an identity on an RBAC vault
with per-secret "Key Vault Secrets User" assignments for only the secrets it needs.

Order: create the per-secret assignments (deterministic uuid5 names), verify them in the assignment
list, then delete the wide one, so the identity never loses what it needs. Assignments inherited from
a resource group or subscription are reported, and narrowed only when `rbac.narrowInherited` is set.
The 4,000-per-subscription budget is counted before planning; over it, the action is reported instead.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from remediations.core import rbac
from remediations.core.detect import highest_severity
from remediations.core.evidence import RoleGrantEvidence
from remediations.core.model import (
    Action,
    Finding,
    Outcome,
    RoleAssignment,
    RoleAssignmentChange,
    Snapshot,
    Vault,
    subscription_of,
)
from remediations.core.policy import Policy
from remediations.core.registry import Remediation, RemediationMetadata, register
from remediations.core.role_changes import describe
from remediations.fixes._role_writes import apply_role_changes
from remediations.ports import Clients


def _list_failed(snapshot: Snapshot, vault: Vault) -> bool:
    # Not listed at all counts too: an empty list would plan no per-secret grants, then delete the wide one.
    return not snapshot.secrets_listed or snapshot.secret_list_error(vault.id) is not None


class _Budget:
    """Role assignments in use per subscription, with the creates planned so far added."""

    def __init__(self, snapshot: Snapshot, policy: Policy) -> None:
        self.snapshot = snapshot
        self.limit = policy.rbac.assignment_limit - policy.rbac.headroom
        self.used: dict[str, int] = {}

    def take(self, subscription_id: str, count: int) -> str | None:
        key = subscription_id.lower()
        if key not in self.used:
            self.used[key] = rbac.subscription_assignment_count(self.snapshot, subscription_id)
        if self.used[key] + count > self.limit:
            return (
                f"would exceed the role-assignment budget of subscription {subscription_id}: "
                f"{self.used[key]} in use (with earlier plans) + {count} new > {self.limit} "
                "(Azure allows 4,000 per subscription; policy rbac.assignmentLimit - rbac.headroom)"
            )
        # Not credited back for the delete: a capped run may defer it, and creates come first anyway.
        self.used[key] += count
        return None


@register
class NarrowRoleAssignment(Remediation):
    id = "narrow_role_assignment"
    handles = frozenset({"wide_secret_role_assignment"})
    needs_secret_metadata = True
    metadata = RemediationMetadata(
        title="Replace vault-wide secret roles with per-secret Key Vault Secrets User assignments",
        severity=highest_severity(handles),
        risk=(
            "The identity can no longer read or list secrets outside its allow-list; flows that read "
            "other secrets start getting 403 ForbiddenByRbac. Per-secret assignments use the subscription's "
            "4,000 role-assignment budget."
        ),
        permissions_required=(
            "Microsoft.Authorization/roleAssignments/read",
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "Microsoft.Authorization/roleDefinitions/read",
        ),
        cli_equivalent=(
            "az role assignment create --role 'Key Vault Secrets User' --assignee-object-id <id> "
            "--scope <vault id>/secrets/<name>  (each secret), then az role assignment delete --ids <wide id>"
        ),
        bicep_hint=(
            "Microsoft.Authorization/roleAssignments@2022-04-01 scoped to the secret resource "
            "(Microsoft.KeyVault/vaults/secrets), name guid(secret.id, principalId, roleId)"
        ),
    )

    def plan(self, snapshot: Snapshot, findings: list[Finding], policy: Policy) -> list[Action]:
        by_assignment: dict[str, list[Finding]] = defaultdict(list)
        for finding in findings:
            by_assignment[RoleGrantEvidence.of(finding).assignment_id.lower()].append(finding)
        assignments = {a.id.lower(): a for a in snapshot.role_assignments}
        budget = _Budget(snapshot, policy)
        actions = []
        for key in sorted(by_assignment):
            assignment = assignments.get(key)
            if assignment is not None:
                actions.append(self._plan_one(snapshot, policy, assignment, by_assignment[key], budget))
        return actions

    def _plan_one(
        self,
        snapshot: Snapshot,
        policy: Policy,
        assignment: RoleAssignment,
        findings: list[Finding],
        budget: _Budget,
    ) -> Action:
        evidence = RoleGrantEvidence.of(findings[0])
        principal = assignment.principal_id
        inherited = evidence.inherited
        needed = rbac.needed_secret_names(snapshot, principal, policy) or frozenset()
        reached = [
            v
            for v in snapshot.vaults
            if v.enable_rbac_authorization and rbac.level(assignment.scope, v) not in {None, "secret"}
        ]
        flagged = {f.resource_id.lower() for f in findings}
        role_name = evidence.role or assignment.role_guid
        skip: str | None = None
        if not evidence.secrets_only:
            skip = f"{role_name} grants more than secrets (keys, certificates); narrow it by hand"
        elif inherited and not policy.rbac.narrow_inherited:
            skip = (
                f"inherited from {evidence.level} scope {assignment.scope}: reported only "
                "(set rbac.narrowInherited to narrow assignments above the vault)"
            )
        elif inherited and not rbac.covers(snapshot.scope.resource_id, assignment.scope):
            skip = f"the assignment at {assignment.scope} is wider than the inventoried scope"
        elif {v.id.lower() for v in reached} - flagged:
            skip = f"the assignment at {assignment.scope} also reaches excluded or unreviewed vaults"
        elif any(_list_failed(snapshot, v) for v in reached):
            failed = [v for v in reached if _list_failed(snapshot, v)]
            error = snapshot.secret_list_error(failed[0].id)
            skip = (
                f"the secret list of vault {failed[0].name} failed "
                f"({error.label if error is not None else 'not read'}): cannot tell which secrets exist"
            )

        creates: list[RoleAssignmentChange] = []
        before_secrets: list[str] = []
        after_secrets: list[str] = []
        kept: list[RoleAssignment] = []
        for vault in reached:
            existing = {
                (g.secret_name or "").lower(): g.assignment
                for g in rbac.secret_grants(snapshot, vault)
                if g.level == "secret"
                and "get" in g.permissions
                and g.assignment.principal_id.lower() == principal.lower()
            }
            before_secrets += [f"{vault.name}/{s.name}" for s in vault.secrets]
            for secret in sorted(vault.secrets, key=lambda s: s.name.lower()):
                if secret.name.lower() not in needed:
                    continue
                after_secrets.append(f"{vault.name}/{secret.name}")
                if secret.name.lower() in existing:
                    kept.append(existing[secret.name.lower()])
                    continue
                scope = f"{vault.id}/secrets/{secret.name}"
                creates.append(
                    RoleAssignmentChange(
                        operation="create",
                        scope=scope,
                        role_definition_id=rbac.role_id(vault.subscription_id, rbac.KEY_VAULT_SECRETS_USER),
                        principal_id=principal,
                        principal_type=assignment.principal_type,
                        assignment_name=rbac.assignment_name(scope, principal, rbac.KEY_VAULT_SECRETS_USER),
                    )
                )

        delete = RoleAssignmentChange.deleting(assignment)
        changes: tuple[RoleAssignmentChange, ...] = (*creates, delete)
        seconds = policy.rbac.propagation_grace_seconds
        grace = timedelta(seconds=seconds)
        note = ""
        if skip is None and seconds and creates:
            changes = tuple(creates)  # the wide one goes in a later run, once these have propagated
            note = f"; the wide assignment is deleted in a later run, {seconds}s after these exist"
        elif skip is None and seconds:
            young = [a for a in kept if a.created_on is not None and a.created_on + grace > snapshot.taken_at]
            if young:
                skip = f"waiting for {len(young)} per-secret assignment(s) to propagate ({seconds}s)"
        if skip is None:
            skip = budget.take(subscription_of(assignment.scope), len(creates))

        new = [describe(a) for a in kept] + [describe(c) for c in creates]
        return Action.create(
            remediation_id=self.id,
            target=reached[0].id if len(reached) == 1 else assignment.scope,
            principal=principal,
            changes=changes,
            before={"assignments": [describe(assignment)], "secrets": before_secrets},
            after={"assignments": sorted(new), "secrets": after_secrets},
            reason=f"needs only {', '.join(sorted(needed)) or 'no secret'} "
            f"(policy allowedSecretNames / its flows){note}",
            finding_ids=tuple(f.id for f in findings),
            skip_reason=skip,
        )

    def apply(self, action: Action, clients: Clients) -> Outcome:
        return apply_role_changes(action, clients)
