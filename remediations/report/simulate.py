"""The snapshot a plan would leave (pure): `simulate(snapshot, actions)` applies the graph-relevant
changes of a plan (access policies, role assignments, the vault's permission model, shares) to a copy
of the snapshot, so a dry run can show what the fix would cut (report/graph_view.py draws it and
`compare` marks what was removed)."""

from __future__ import annotations

from collections.abc import Iterable

from remediations.core.model import (
    AccessPolicy,
    AccessPolicyChange,
    Action,
    Permissions,
    RoleAssignment,
    RoleAssignmentChange,
    Share,
    ShareChange,
    Snapshot,
    Vault,
    VaultAuthorizationChange,
)
from remediations.core.role_changes import assignment_matches


def _remove_perms(entry: AccessPolicy, change: AccessPolicyChange) -> AccessPolicy:
    # Azure's `remove` matches permission strings exactly (case-sensitive); mirror that here.
    def minus(have: tuple[str, ...], gone: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(p for p in have if p not in gone)

    perms = entry.permissions
    return entry.model_copy(
        update={
            "permissions": Permissions(
                secrets=minus(perms.secrets, change.permissions.secrets),
                keys=minus(perms.keys, change.permissions.keys),
                certificates=minus(perms.certificates, change.permissions.certificates),
                storage=minus(perms.storage, change.permissions.storage),
            )
        }
    )


def _apply_access_policy(vault: Vault, change: AccessPolicyChange) -> Vault:
    entries = list(vault.access_policies)
    match = [
        i
        for i, e in enumerate(entries)
        if e.object_id.lower() == change.object_id.lower()
        and (e.application_id or "") == (change.application_id or "")
    ]
    if change.operation == "remove":
        for i in match:
            entries[i] = _remove_perms(entries[i], change)
        entries = [e for e in entries if any(e.permissions.as_dict().values())]
    elif match:
        i = match[0]
        merged = tuple(dict.fromkeys(entries[i].permissions.secrets + change.permissions.secrets))
        entries[i] = entries[i].model_copy(
            update={"permissions": entries[i].permissions.model_copy(update={"secrets": merged})}
        )
    else:
        entries.append(
            AccessPolicy(
                tenant_id=change.tenant_id,
                object_id=change.object_id,
                application_id=change.application_id,
                permissions=change.permissions,
            )
        )
    return vault.model_copy(update={"access_policies": tuple(entries)})


def simulate(snapshot: Snapshot, actions: Iterable[Action]) -> Snapshot:
    """The snapshot after `actions` (access policy, role assignment, vault switch and share changes; DLP and
    rotation changes cut no edge of this graph). Pure: used for dry-run "after" pictures."""
    vaults = {v.id.lower(): v for v in snapshot.vaults}
    order = [v.id.lower() for v in snapshot.vaults]
    role_assignments = list(snapshot.role_assignments)
    shares = list(snapshot.shares)
    for action in actions:
        for change in action.changes:
            if isinstance(change, AccessPolicyChange):
                key = action.target.lower()
                if key in vaults:
                    vaults[key] = _apply_access_policy(vaults[key], change)
            elif isinstance(change, RoleAssignmentChange):
                if change.operation == "delete":
                    role_assignments = [ra for ra in role_assignments if not assignment_matches(ra, change)]
                else:
                    role_assignments.append(
                        RoleAssignment(
                            id=f"{change.scope}/providers/Microsoft.Authorization/roleAssignments/"
                            f"{change.assignment_name}",
                            scope=change.scope,
                            role_definition_id=change.role_definition_id,
                            principal_id=change.principal_id,
                            principal_type=change.principal_type,
                        )
                    )
            elif isinstance(change, VaultAuthorizationChange):
                key = change.vault_id.lower()
                if key in vaults:  # switched: the access policies stop counting, role assignments decide
                    vaults[key] = vaults[key].model_copy(
                        update={"enable_rbac_authorization": change.enable_rbac_authorization}
                    )
            elif isinstance(change, ShareChange):
                if change.operation == "delete":
                    shares = [s for s in shares if not _same_share(s, change)]
                else:
                    shares.append(
                        Share(
                            resource_kind=change.resource_kind,
                            resource_id=change.resource_id,
                            principal_id=change.principal_id,
                            principal_kind=change.principal_kind,
                            role=change.role,
                        )
                    )
    return snapshot.model_copy(
        update={
            "vaults": tuple(vaults[k] for k in order),
            "role_assignments": tuple(role_assignments),
            "shares": tuple(shares),
        }
    )


def _same_share(share: Share, change: ShareChange) -> bool:
    return (
        share.resource_kind == change.resource_kind
        and share.resource_id.lower() == change.resource_id.lower()
        and share.principal_id.lower() == change.principal_id.lower()
        and share.role.lower() == change.role.lower()
    )
