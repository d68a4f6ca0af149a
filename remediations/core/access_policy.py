"""Shared by the access-policy remediations: plan a permission removal as exact-cased deltas and guard
the last manager of a vault. Pure; the fixes apply the deltas with `fixes/_access_policy_writes.py`."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from remediations.core.evidence import AccessPolicyEvidence
from remediations.core.model import (
    SECRET_MANAGEMENT_PERMISSIONS,
    SECRET_PERMISSIONS,
    AccessPolicy,
    AccessPolicyChange,
    Action,
    Finding,
    Permissions,
    Snapshot,
    Vault,
    expand_secret_permissions,
)
from remediations.core.policy import Policy

# Built-in roles that can manage a vault (and so restore access) from the control plane:
# Owner, Contributor, Key Vault Contributor, Key Vault Administrator.
VAULT_ADMIN_ROLES = frozenset(
    {
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        "b24988ac-6180-42a0-ab88-20f7382dd24c",
        "f25e0fa2-a7c8-4377-a976-54943a77a395",
        "00482a5a-887f-4fb3-b363-3b7fe8e74483",
    }
)


def secret_removal(entry: AccessPolicy, remove: Iterable[str]) -> tuple[AccessPolicyChange, ...]:
    """Deltas that take `remove` (lower-case names) out of the entry's secret permissions.

    Every stored spelling is sent as stored (`List` and `list` both, if both are there). When the
    entry holds `all`, the permissions that must stay are added first and `all` removed second, so the
    identity never has less than its target, and the two writes are recorded as two changes.
    """
    to_remove = {p.lower() for p in remove}
    stored = entry.permissions.secrets
    holds_all = any(p.lower() == "all" for p in stored)
    changes: list[AccessPolicyChange] = []
    if holds_all:
        keep = [p for p in SECRET_PERMISSIONS if p not in to_remove]
        explicit = {p.lower() for p in stored}
        missing = tuple(p for p in keep if p not in explicit)
        if missing:
            changes.append(_change("add", entry, missing))
        to_remove.add("all")
    exact = tuple(p for p in stored if p.lower() in to_remove)
    if exact:
        changes.append(_change("remove", entry, exact))
    return tuple(changes)


def _change(operation: str, entry: AccessPolicy, secrets: tuple[str, ...]) -> AccessPolicyChange:
    return AccessPolicyChange(
        operation="add" if operation == "add" else "remove",
        tenant_id=entry.tenant_id,
        object_id=entry.object_id,
        application_id=entry.application_id,
        permissions=Permissions(secrets=secrets),
    )


def simulate(entry: AccessPolicy, changes: Iterable[AccessPolicyChange]) -> AccessPolicy:
    """What Key Vault does with our deltas: add appends new names, remove drops exact matches."""
    secrets = list(entry.permissions.secrets)
    for change in changes:
        if change.operation == "add":
            secrets += [p for p in change.permissions.secrets if p not in secrets]
        else:
            secrets = [p for p in secrets if p not in change.permissions.secrets]
    permissions = entry.permissions.model_copy(update={"secrets": tuple(secrets)})
    return entry.model_copy(update={"permissions": permissions})


def apply_change(vault: Vault, change: AccessPolicyChange) -> Vault:
    """The vault after one delta, as Key Vault makes it: `remove` drops exactly the names listed
    (case-sensitive) and the entry once nothing is left; `add` appends the names not held yet, or adds
    the entry."""
    entries = list(vault.access_policies)
    match = [
        i
        for i, e in enumerate(entries)
        if e.object_id.lower() == change.object_id.lower()
        and (e.application_id or "") == (change.application_id or "")
    ]
    if change.operation == "remove":
        for i in match:
            entries[i] = _with_permissions(
                entries[i], change, lambda have, gone: [p for p in have if p not in gone]
            )
        entries = [e for e in entries if any(e.permissions.as_dict().values())]
    elif match:
        entries[match[0]] = _with_permissions(
            entries[match[0]], change, lambda have, new: [*have, *(p for p in new if p not in have)]
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


def _with_permissions(
    entry: AccessPolicy,
    change: AccessPolicyChange,
    combine: Callable[[list[str], list[str]], list[str]],
) -> AccessPolicy:
    held, delta = entry.permissions.as_dict(), change.permissions.as_dict()
    merged = {category: tuple(combine(held[category], delta[category])) for category in held}
    return entry.model_copy(update={"permissions": Permissions(**merged)})


def _same_principal(a: AccessPolicy, object_id: str, application_id: str | None) -> bool:
    return (
        a.object_id.lower() == object_id.lower()
        and (a.application_id or "").lower() == (application_id or "").lower()
    )


def entry_of(policies: Iterable[AccessPolicy], change: AccessPolicyChange) -> AccessPolicy | None:
    """The entry a delta is for, in a vault's access-policy list (e.g. the PUT response), or None.
    ARM keys an entry by tenant, object and application id, so one principal can have two entries
    (one per tenant id); the delta's own tenant picks between them."""
    mine = [p for p in policies if _same_principal(p, change.object_id, change.application_id)]
    same_tenant = [p for p in mine if p.tenant_id.lower() == change.tenant_id.lower()]
    return next(iter(same_tenant or mine), None)


def can_manage(entry: AccessPolicy) -> bool:
    return bool(expand_secret_permissions(entry.permissions.secrets) & SECRET_MANAGEMENT_PERMISSIONS)


def has_rbac_admin(vault: Vault, snapshot: Snapshot) -> bool:
    vault_id = vault.id.lower()
    for assignment in snapshot.role_assignments:
        scope = assignment.scope.rstrip("/").lower()
        covers = vault_id == scope or vault_id.startswith(scope + "/") or scope == ""
        if covers and assignment.role_guid in VAULT_ADMIN_ROLES:
            return True
    return False


def last_manager_reason(
    vault: Vault, entries: list[AccessPolicy], snapshot: Snapshot, before: AccessPolicy, after: AccessPolicy
) -> str | None:
    """Why this change must be skipped (it removes the vault's last secret manager), else None."""
    if not can_manage(before) or can_manage(after):
        return None
    others = [e for e in entries if not _same_principal(e, before.object_id, before.application_id)]
    if any(can_manage(e) for e in others) or has_rbac_admin(vault, snapshot):
        return None
    return (
        f"{before.object_id} is the last identity that can manage secrets in vault {vault.name} and no "
        "Owner/Contributor/Key Vault Administrator role assignment covers the vault"
    )


# (vault id, object id, application id), lower-cased: one access-policy entry.
EntryKey = tuple[str, str, str]
# Per entry: (permissions to remove, finding ids, reason).
Removals = dict[EntryKey, tuple[set[str], list[str], str]]


def entry_key(vault_id: str, object_id: str, application_id: str | None) -> EntryKey:
    return (vault_id.lower(), object_id.lower(), (application_id or "").lower())


def group_removals(
    findings: Iterable[Finding],
    remove: Callable[[Finding], Iterable[str]],
    reason: Callable[[Finding], str],
) -> Removals:
    """Findings on access-policy entries (resource = vault, principal = object id, evidence
    `applicationId`) grouped per entry: the union of what each says to remove, their ids, and the first
    one's reason. One entry gets one action, so a vault gets one write per identity."""
    wanted: Removals = {}
    for finding in findings:
        application_id = AccessPolicyEvidence.of(finding).application_id or ""
        key = entry_key(finding.resource_id, finding.principal or "", application_id)
        permissions, ids, _ = wanted.setdefault(key, (set(), [], reason(finding)))
        permissions.update(remove(finding))
        ids.append(finding.id)
    return wanted


def plan_removals(
    remediation_id: str,
    snapshot: Snapshot,
    policy: Policy,
    wanted: Removals,
) -> list[Action]:
    """Actions for {(vault id, object id, application id): (permissions to remove, finding ids, reason)}.

    Entries of one vault are simulated in order so that two actions cannot together remove the last
    manager. Break-glass identities are never touched, whatever the findings say.
    """
    actions: list[Action] = []
    for vault in snapshot.vaults:
        entries = list(vault.access_policies)
        for index, entry in enumerate(vault.access_policies):
            key = entry_key(vault.id, entry.object_id, entry.application_id)
            if key not in wanted or policy.is_break_glass(entry.object_id):
                continue
            remove, finding_ids, reason = wanted[key]
            changes = secret_removal(entry, remove)
            if not changes:
                continue
            after = simulate(entry, changes)
            skip = last_manager_reason(vault, entries, snapshot, entry, after)
            if skip is None:
                entries[index] = after
            actions.append(
                Action.create(
                    remediation_id=remediation_id,
                    target=vault.id,
                    principal=entry.object_id,
                    changes=changes,
                    before=entry.permissions.as_dict(),
                    after=after.permissions.as_dict(),
                    reason=reason,
                    finding_ids=tuple(finding_ids),
                    skip_reason=skip,
                )
            )
    return actions
