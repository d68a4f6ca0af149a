"""Detectors for RBAC-mode vaults and dead identities. Pure; registered on import by
`remediations.core.detect`.

- `wide_secret_role_assignment`: a vault-scope (or wider) role assignment that lets an identity with a
  known need (allow-list, or the flows it runs) read every secret in an RBAC vault.
- `orphaned_role_assignment`: a role assignment whose principal the directory says is gone.
- `unresolved_principal`: the directory could not be asked about a principal (Graph failed): reported,
  never treated as gone.
- `access_policy_escalation`: a vault still on access policies, where whoever may write the vault
  (Key Vault Contributor, Contributor, Owner) can grant itself data access; fixed by `migrate_to_rbac`.
- `oversized_vault`: a vault that flow identities reach holding secrets of too many purposes or too
  many secrets, with a suggested split.
"""

from __future__ import annotations

from collections import defaultdict

from remediations.core import rbac
from remediations.core.detect import RBAC_HELP, DetectorInfo, detector, reviewed_vaults
from remediations.core.evidence import (
    OrphanedAssignmentEvidence,
    OversizedVaultEvidence,
    RoleGrantEvidence,
    UnresolvedPrincipalEvidence,
    VaultWritersEvidence,
)
from remediations.core.graph import ExposureGraph, secret_node
from remediations.core.model import Finding, Snapshot, Vault
from remediations.core.policy import Policy


def _in_snapshot_scope(snapshot: Snapshot, scope: str) -> bool:
    """The assignment sits at, above or below what was inventoried (assignments are listed
    subscription-wide for the budget; findings stay within the scope asked for)."""
    return rbac.covers(scope, snapshot.scope.resource_id) or rbac.covers(snapshot.scope.resource_id, scope)


@detector(
    "wide_secret_role_assignment",
    severity="high",
    evidence=RoleGrantEvidence,
    title="A secret-reading role assignment is wider than the secrets its holder needs",
    help_url=RBAC_HELP,
)
def wide_secret_role_assignment(snapshot: Snapshot, policy: Policy, rule: DetectorInfo) -> list[Finding]:
    findings = []
    for vault in reviewed_vaults(snapshot, policy, rbac=True):
        for grant in rbac.secret_grants(snapshot, vault):
            principal = grant.assignment.principal_id
            if grant.level == "secret" or "get" not in grant.permissions:
                continue
            if policy.leaves_alone(principal):
                continue
            needed = rbac.needed_secret_names(snapshot, principal, policy)
            if needed is None:
                continue
            present = {s.name.lower() for s in vault.secrets}
            findings.append(
                rule.finding(
                    resource_id=vault.id,
                    principal=principal,
                    message=(
                        f"{principal} holds {grant.role_name} at {grant.level} scope and can read all "
                        f"{len(vault.secrets)} secrets of vault {vault.name}; "
                        f"it needs {', '.join(sorted(needed & present)) or 'none of them'}"
                        + vault.secrets_age_note(snapshot.taken_at)
                    ),
                    evidence=RoleGrantEvidence(
                        vault=vault.name,
                        assignment_id=grant.assignment.id,
                        scope=grant.assignment.scope,
                        level=grant.level,
                        role=grant.role_name,
                        role_definition_id=grant.assignment.role_definition_id,
                        inherited=grant.inherited,
                        secrets_only=grant.secrets_only,
                        needed=tuple(sorted(needed)),
                        **vault.secrets_provenance(),
                    ),
                )
            )
    return findings


ESCALATION_HELP = "https://learn.microsoft.com/azure/key-vault/general/rbac-access-policy"


@detector(
    "access_policy_escalation",
    severity="medium",
    evidence=VaultWritersEvidence,
    title="Vault on access policies: whoever may write the vault can grant itself data access",
    help_url=ESCALATION_HELP,
    detail=(
        "Access policies are part of the vault resource, so any role with Microsoft.KeyVault/vaults/write "
        "(Key Vault Contributor, Contributor, Owner) can add itself an access policy and read every "
        "secret. Under Azure RBAC, data access needs a role assignment, which those roles cannot make. "
        "Plan the move with the migrate_to_rbac fix (rbacMigration in the policy), review it, then apply."
    ),
)
def access_policy_escalation(snapshot: Snapshot, policy: Policy, rule: DetectorInfo) -> list[Finding]:
    """Reported where the path is seen (an assignment that may write the vault) or where the policy
    names the vault for migration (`rbacMigration.vaults`), so every access-policy vault of a tenant is
    not a finding of its own."""
    findings: list[Finding] = []
    may_write = rbac.vault_write_roles(snapshot)
    if not may_write and not policy.rbac_migration.vaults:  # no vault can be reported
        return findings
    for vault in reviewed_vaults(snapshot, policy, rbac=False):
        writers = sorted(
            f"{assignment.principal_id} ({role} at {assignment.scope})"
            for assignment, role in rbac.vault_writers(snapshot, vault, may_write)
        )
        if not writers and not policy.rbac_migration.names(vault):
            continue
        who = (
            f"{len(writers)} role assignment(s) that may write it can"
            if writers
            else "whoever may write it can"
        )
        findings.append(
            rule.finding(
                resource_id=vault.id,
                principal=None,
                message=(
                    f"vault {vault.name} uses access policies: {who} grant themselves data access "
                    "(Key Vault Contributor privilege escalation); migrate it to Azure RBAC"
                ),
                evidence=VaultWritersEvidence(
                    vault=vault.name, identities=len(vault.access_policies), writers=tuple(writers)
                ),
            )
        )
    return findings


@detector(
    "orphaned_role_assignment",
    severity="medium",
    evidence=OrphanedAssignmentEvidence,
    title="A role assignment for an identity that no longer exists in the directory",
    help_url=RBAC_HELP,
)
def orphaned_role_assignment(snapshot: Snapshot, policy: Policy, rule: DetectorInfo) -> list[Finding]:
    findings = []
    for assignment in snapshot.role_assignments:
        if not _in_snapshot_scope(snapshot, assignment.scope):
            continue
        if policy.leaves_alone(assignment.principal_id) or not snapshot.known_gone(assignment.principal_id):
            continue
        findings.append(
            rule.finding(
                resource_id=assignment.scope,
                principal=assignment.principal_id,
                message=f"role assignment {assignment.name} at {assignment.scope} is for "
                f"{assignment.principal_id}, which no longer exists in the directory",
                evidence=OrphanedAssignmentEvidence(
                    assignment_id=assignment.id, role_definition_id=assignment.role_definition_id
                ),
            )
        )
    return findings


@detector(
    "unresolved_principal",
    severity="low",
    evidence=UnresolvedPrincipalEvidence,
    title="A principal the directory could not resolve (reported, never fixed)",
)
def unresolved_principal(snapshot: Snapshot, policy: Policy, rule: DetectorInfo) -> list[Finding]:
    """The directory could not be asked: report, so nobody mistakes silence for health. Never a fix."""
    unknown = [i for i in snapshot.identities if i.exists is None]
    if not unknown:
        return []  # the usual case: no map of every grant to build (5,000 vaults' entries)
    holders: dict[str, list[str]] = defaultdict(list)
    for vault in snapshot.vaults:
        for entry in vault.access_policies:
            holders[entry.object_id.lower()].append(vault.id)
    for assignment in snapshot.role_assignments:
        if _in_snapshot_scope(snapshot, assignment.scope):
            holders[assignment.principal_id.lower()].append(assignment.scope)
    findings = []
    for identity in unknown:
        where = holders.get(identity.object_id.lower())
        if not where:
            continue
        findings.append(
            rule.finding(
                resource_id=sorted(where)[0],
                principal=identity.object_id,
                message=f"could not tell whether {identity.object_id} exists (directory lookup failed); "
                "its access was left as it is",
                evidence=UnresolvedPrincipalEvidence(granted_at=tuple(sorted(set(where)))),
            )
        )
    return findings


def _readers(graph: ExposureGraph, vault: Vault) -> set[str]:
    readers: set[str] = set()
    for secret in vault.secrets:
        for path in graph.who_can_read(secret_node(vault.id, secret.name)):
            edge = path[0]
            if edge.relation in {"access_policy", "role_assignment"}:
                readers.add(edge.source.removeprefix("principal:"))
    return readers


@detector(
    "oversized_vault",
    severity="medium",
    evidence=OversizedVaultEvidence,
    title="A vault that flows reach holds several purposes' secrets: split it",
)
def oversized_vault(snapshot: Snapshot, policy: Policy, rule: DetectorInfo) -> list[Finding]:
    """ "Don't have one massive vault": flows should reach vaults holding one purpose's secrets."""
    rules = policy.oversized_vault
    flow_ids = rbac.flow_identities(snapshot)
    if not flow_ids and not rules.include_all_readers:
        return []
    graph = ExposureGraph.build(snapshot)
    findings = []
    for vault in snapshot.vaults:
        if policy.excludes_vault(vault) or not vault.secrets:
            continue
        readers = _readers(graph, vault)
        reaching = sorted(readers if rules.include_all_readers and not flow_ids else readers & flow_ids)
        if not reaching:
            continue
        groups: dict[str, list[str]] = defaultdict(list)
        for secret in vault.secrets:
            tags = {k.lower(): v for k, v in secret.tags.items()}
            groups[tags.get(rules.purpose_tag.lower(), "")].append(secret.name)
        purposes = sorted(p for p in groups if p)
        too_many_purposes = len(purposes) > rules.max_purposes
        too_many_secrets = len(vault.secrets) > rules.max_secrets
        if not (too_many_purposes or too_many_secrets):
            continue
        split = _suggested_split(vault, groups, rules.max_secrets)
        reasons = []
        if too_many_purposes:
            reasons.append(f"{len(purposes)} purposes (max {rules.max_purposes})")
        if too_many_secrets:
            reasons.append(f"{len(vault.secrets)} secrets (max {rules.max_secrets})")
        findings.append(
            rule.finding(
                resource_id=vault.id,
                principal=None,
                message=f"vault {vault.name} is reachable by {len(reaching)} flow identities and holds "
                f"{' and '.join(reasons)}; split it so each flow reaches only its purpose's secrets"
                + vault.secrets_age_note(snapshot.taken_at),
                evidence=OversizedVaultEvidence(
                    vault=vault.name,
                    secret_count=len(vault.secrets),
                    purposes=tuple(purposes),
                    untagged=len(groups.get("", [])),
                    flow_identities=tuple(reaching),
                    suggested_split=tuple(split),
                    **vault.secrets_provenance(),
                ),
            )
        )
    return findings


def _suggested_split(vault: Vault, groups: dict[str, list[str]], max_secrets: int) -> list[dict[str, object]]:
    """One vault per purpose (untagged secrets stay), chunks of at most `max_secrets` each."""
    split: list[dict[str, object]] = []
    for purpose in sorted(groups):
        names = sorted(groups[purpose], key=str.lower)
        label = purpose or "untagged"
        chunks = [names[i : i + max_secrets] for i in range(0, len(names), max_secrets)]
        for index, chunk in enumerate(chunks, start=1):
            suffix = label if len(chunks) == 1 else f"{label}-{index}"
            split.append(
                {"vault": _vault_name(vault.name, suffix), "purpose": purpose or None, "secrets": chunk}
            )
    return split


def _vault_name(base: str, suffix: str) -> str:
    """A valid vault name suggestion: 3-24 letters, digits and single hyphens."""
    cleaned = "-".join(
        part for part in "".join(c if c.isalnum() else "-" for c in suffix.lower()).split("-") if part
    )
    return f"{base}-{cleaned}"[:24].rstrip("-")
