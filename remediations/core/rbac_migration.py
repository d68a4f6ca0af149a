"""Access-policy -> Azure RBAC migration plan for Key Vault, as a pure function over a Snapshot.

Why: from API version 2026-02-01 new vaults default to RBAC, and an access-policy vault carries a
privilege-escalation path (whoever may write the vault, e.g. Key Vault Contributor, can grant itself
data access). For each access-policy vault this plans the least-privilege RBAC equivalent, per identity:

- only `list` on secrets -> Key Vault Reader on the vault (metadata, never a value);
- `get` (with or without `list`) -> Key Vault Secrets User. When the identity's flows (or the policy's
  `allowedSecretNames`) name the secrets it reads, one assignment per named secret at the secret's scope
  (`{vault}/secrets/{name}`): the vault-wide `list` that lets a flow dump the vault is not carried over;
- any secret write/manage right (`set`, `delete`, `recover`, `backup`, `restore`, `purge`) -> Key Vault
  Secrets Officer on the vault;
- key, certificate or storage rights, and compound identities (an `applicationId` on the entry), have no
  secrets-only equivalent here: the vault is *blocked* (not switched) with the reason, since switching
  would take that access away.

The plan respects the subscription's 4,000 role-assignment limit (`policy.rbac.assignment_limit` less
its `headroom`): per-secret scopes fall back to one vault-scope assignment per identity when they
would not fit, and a vault that still does not fit is blocked. The plan is reviewable data; applying
it follows `STEPS` in order (create, verify, switch, roll back on a failed verification): the calls are
made by `fixes/migrate_to_rbac.py`; the decisions it takes (verified or not, what to undo) are here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from remediations.core.model import (
    Action,
    Change,
    Frozen,
    RoleAssignment,
    RoleAssignmentChange,
    RoleDefinition,
    Snapshot,
    Vault,
    VaultAuthorizationChange,
)
from remediations.core.policy import Policy
from remediations.core.rbac import (
    KEY_VAULT_READER,
    KEY_VAULT_SECRETS_OFFICER,
    KEY_VAULT_SECRETS_USER,
    assignment_name,
    covers,
    level,
    needed_secret_names,
    role_label,
    secret_permissions,
    subscription_assignment_count,
)

READ_ONLY = frozenset({"get", "list"})
ROLE_NAMES = {
    KEY_VAULT_READER: "Key Vault Reader",
    KEY_VAULT_SECRETS_USER: "Key Vault Secrets User",
    KEY_VAULT_SECRETS_OFFICER: "Key Vault Secrets Officer",
}
STEPS = (
    "create the role assignments (deterministic names: re-running creates nothing twice)",
    "verify each identity's effective data actions on the vault cover its access policy's secret rights",
    "switch the vault to RBAC: PATCH properties.enableRbacAuthorization = true",
    "on a failed verification: do not switch; delete the assignments created here (rollback)",
)


class PlannedAssignment(Frozen):
    principal_id: str
    role_guid: str
    role_name: str
    scope: str
    name: str  # the role assignment's GUID name (uuid5 of scope, principal, role)
    reason: str


class IdentityMigration(Frozen):
    object_id: str
    secret_permissions: tuple[str, ...]  # lower case, sorted, as the access policy grants them
    assignments: tuple[PlannedAssignment, ...]
    dropped: tuple[str, ...] = ()  # rights deliberately not carried over (e.g. the vault-wide `list`)


class VaultMigration(Frozen):
    vault_id: str
    identities: tuple[IdentityMigration, ...]
    blocked: tuple[str, ...] = ()  # why the vault must not be switched; empty: ready
    steps: tuple[str, ...] = STEPS

    @property
    def assignments(self) -> tuple[PlannedAssignment, ...]:
        return tuple(a for i in self.identities for a in i.assignments)


class MigrationPlan(Frozen):
    vaults: tuple[VaultMigration, ...]
    assignment_limit: int
    existing_assignments: dict[str, int]  # subscription id -> assignments counted today
    planned_assignments: dict[str, int]  # subscription id -> created by the ready vaults' plans


def plan_migration(snapshot: Snapshot, policy: Policy, limit: int | None = None) -> MigrationPlan:
    """Plan every access-policy vault of the snapshot (RBAC vaults are already migrated)."""
    limit = limit or policy_limit(policy)
    existing: dict[str, int] = {}
    planned: dict[str, int] = {}
    vaults: list[VaultMigration] = []
    for vault in sorted(snapshot.vaults, key=lambda v: v.id.lower()):
        if vault.enable_rbac_authorization or policy.excludes_vault(vault):
            continue
        sub = vault.subscription_id.lower()
        existing.setdefault(sub, subscription_assignment_count(snapshot, vault.subscription_id))
        room = limit - existing[sub] - planned.get(sub, 0)
        migration = _plan_vault(snapshot, policy, vault, per_secret=True)
        if len(migration.assignments) > room:
            migration = _plan_vault(snapshot, policy, vault, per_secret=False)
        if len(migration.assignments) > room and not migration.blocked:
            reason = f"{len(migration.assignments)} role assignments do not fit the {room} left of {limit}"
            migration = migration.model_copy(update={"blocked": (reason,)})
        if not migration.blocked:
            planned[sub] = planned.get(sub, 0) + len(migration.assignments)
        vaults.append(migration)
    return MigrationPlan(
        vaults=tuple(vaults),
        assignment_limit=limit,
        existing_assignments=existing,
        planned_assignments=planned,
    )


def policy_limit(policy: Policy) -> int:
    """The subscription's limit less the headroom kept free for others (policy `rbac`)."""
    return policy.rbac.assignment_limit - policy.rbac.headroom


def _plan_vault(snapshot: Snapshot, policy: Policy, vault: Vault, *, per_secret: bool) -> VaultMigration:
    blocked: list[str] = []
    identities: list[IdentityMigration] = []
    for entry in vault.access_policies:
        perms = entry.permissions
        other = [
            f"{kind}: {list(values)}"
            for kind, values in _non_secret(perms.keys, perms.certificates, perms.storage)
        ]
        if entry.application_id:
            blocked.append(f"{entry.object_id}: compound identity (applicationId) has no RBAC equivalent")
        if other:
            blocked.append(
                f"{entry.object_id}: {'; '.join(other)} need roles beyond secrets (migrate by hand)"
            )
        secrets = _secret_rights(perms.secrets)
        if secrets:
            identities.append(_plan_identity(snapshot, policy, vault, entry.object_id, secrets, per_secret))
    return VaultMigration(vault_id=vault.id, identities=tuple(identities), blocked=tuple(blocked))


_ALL = {"get", "list", "set", "delete", "recover", "backup", "restore", "purge"}


def _secret_rights(granted: Iterable[str]) -> tuple[str, ...]:
    """An entry's secret permissions in lower case, sorted, `all` spelled out."""
    names = {p.lower() for p in granted}
    return tuple(sorted(names - {"all"} | (_ALL if "all" in names else set())))


# -- the state a migration is planned from (its action's `before`), and judged against under the lease -

ROLE_ASSIGNMENTS = "role assignments"  # the `before` key of the role assignments bearing on the vault
VAULT = "vault"  # the `before` key of the vault's permission model


def is_migration(action: Action) -> bool:
    """A vault's migration as planned here: role-assignment creates, then the switch unless a later run
    makes it (`propagationGraceSeconds`), planned from `state_before` (its `before` names the vault's
    permission model). Judged again under the vault's lease either way: a run that only creates lays
    down the access the later switch relies on, so it must be made from the state it was planned from."""
    return (
        bool(action.changes)
        and VAULT in action.before
        and all(
            (isinstance(c, RoleAssignmentChange) and c.operation == "create")
            or (isinstance(c, VaultAuthorizationChange) and c.enable_rbac_authorization)
            for c in action.changes
        )
    )


def switch_step(on: bool) -> str:
    return f"enableRbacAuthorization={str(on).lower()}"


def assignment_line(assignment: RoleAssignment, roles: Mapping[str, RoleDefinition]) -> str:
    """`<role name> for <principal> at <scope>`; the role's GUID only when no definition names it."""
    return f"{role_label(roles, assignment.role_guid)} for {assignment.principal_id} at {assignment.scope}"


def state_before(
    vault: Vault, assignments: Iterable[RoleAssignment], roles: Mapping[str, RoleDefinition]
) -> dict[str, list[str]]:
    """What a migration of `vault` is planned from, as its action's `before` holds it: the vault's
    permission model, the role assignments bearing on it (at, above or below it; kept as they are),
    and each identity's secret rights in the access policies. A read showing anything else since is
    drift: the plan would carry over the wrong access (core/pinned.py `drift_reason`)."""
    model = "Azure RBAC" if vault.enable_rbac_authorization else "access policies"
    state: dict[str, list[str]] = {VAULT: [f"{switch_step(vault.enable_rbac_authorization)} ({model})"]}
    bearing = sorted(assignment_line(a, roles) for a in assignments if level(a.scope, vault) is not None)
    if bearing:
        state[ROLE_ASSIGNMENTS] = bearing
    for entry in vault.access_policies:
        secrets = _secret_rights(entry.permissions.secrets)
        if secrets:
            state[entry.object_id] = [f"access policy secrets: {', '.join(secrets)}"]
    return state


def state_now(
    before: Mapping[str, Sequence[str]],
    vault: Vault,
    assignments: Iterable[RoleAssignment],
    roles: Mapping[str, RoleDefinition],
    own: Iterable[Change] = (),
) -> dict[str, list[str]]:
    """The state a migration planned from `before` is judged against now (`state_before` of the vault
    as read), not counting the role assignments interrupted attempts of this same migration created
    (`own`, from their step rows; the attempt that resumes adopts them): each matched by the name it
    was created under, so an assignment someone else made counts, and only when `before` does not
    name it already (a plan made after the attempt saw it). Anything else changed is still drift."""
    names = {c.assignment_name.lower() for c in own if isinstance(c, RoleAssignmentChange)}
    assignments = tuple(assignments)
    theirs = [a for a in assignments if a.name.lower() not in names]
    # Lines `before` names that the other assignments do not account for: an own assignment the plan
    # was made with (so it counts); any other own one is new since the plan was made (not counted).
    spare = Counter(line.casefold() for line in before.get(ROLE_ASSIGNMENTS, ()))
    spare.subtract(assignment_line(a, roles).casefold() for a in theirs)
    counted = list(theirs)
    for assignment in (a for a in assignments if a.name.lower() in names):
        line = assignment_line(assignment, roles).casefold()
        if spare[line] > 0:
            spare[line] -= 1
            counted.append(assignment)
    return state_before(vault, counted, roles)


def _non_secret(
    keys: tuple[str, ...], certificates: tuple[str, ...], storage: tuple[str, ...]
) -> list[tuple[str, tuple[str, ...]]]:
    return [
        (kind, values)
        for kind, values in (("keys", keys), ("certificates", certificates), ("storage", storage))
        if values
    ]


def _plan_identity(
    snapshot: Snapshot,
    policy: Policy,
    vault: Vault,
    object_id: str,
    secrets: tuple[str, ...],
    per_secret: bool,
) -> IdentityMigration:
    def assign(role: str, scope: str, reason: str) -> PlannedAssignment:
        return PlannedAssignment(
            principal_id=object_id,
            role_guid=role,
            role_name=ROLE_NAMES[role],
            scope=scope,
            name=assignment_name(scope, object_id, role),
            reason=reason,
        )

    if not set(secrets) <= READ_ONLY:
        reason = f"access policy grants {list(secrets)}: manages secrets"
        return IdentityMigration(
            object_id=object_id,
            secret_permissions=secrets,
            assignments=(assign(KEY_VAULT_SECRETS_OFFICER, vault.id, reason),),
        )
    if "get" not in secrets:  # list only: names and metadata, never a value (Secrets User would read)
        return IdentityMigration(
            object_id=object_id,
            secret_permissions=secrets,
            assignments=(assign(KEY_VAULT_READER, vault.id, "lists secret names only"),),
        )
    needed = needed_secret_names(snapshot, object_id, policy)
    present = {s.name.lower(): s.name for s in vault.secrets}
    named = sorted(present[n] for n in (needed or ()) if n in present)
    if per_secret and needed is not None and "get" in secrets and named:
        assignments = tuple(
            assign(
                KEY_VAULT_SECRETS_USER,
                f"{vault.id}/secrets/{name}",
                "the identity's flows read this secret by name",
            )
            for name in named
        )
        dropped = ("list (vault-wide enumeration)",) if "list" in secrets else ()
        return IdentityMigration(
            object_id=object_id, secret_permissions=secrets, assignments=assignments, dropped=dropped
        )
    reason = "reads secrets; which ones is not known statically" if needed is None else "reads secrets"
    return IdentityMigration(
        object_id=object_id,
        secret_permissions=secrets,
        assignments=(assign(KEY_VAULT_SECRETS_USER, vault.id, reason),),
    )


# -- applying a vault's migration: pure decisions (fixes/migrate_to_rbac.py makes the calls) ----------


def effective_secret_permissions(
    assignments: Iterable[RoleAssignment],
    principal_id: str,
    scope: str,
    roles: dict[str, RoleDefinition],
) -> frozenset[str]:
    """The secret rights (access-policy words) `principal_id` holds at `scope` under RBAC: the union of
    the data actions of every listed assignment of that principal at or above the scope."""
    granted: set[str] = set()
    for assignment in assignments:
        if assignment.principal_id.lower() != principal_id.lower() or not covers(assignment.scope, scope):
            continue
        definition = roles.get(assignment.role_guid)
        if definition is not None:
            granted |= secret_permissions(definition)
    return frozenset(granted)


def unverified_access(
    creates: Iterable[RoleAssignmentChange],
    listed: Iterable[RoleAssignment],
    roles: dict[str, RoleDefinition],
) -> list[str]:
    """Why the identities would lose access on the switch: for each planned assignment, the rights its
    role grants that the re-read assignments do not give that principal at that scope. Empty: verified."""
    listed = list(listed)
    problems = []
    for change in creates:
        definition = roles.get(change.role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower())
        needed = secret_permissions(definition) if definition is not None else frozenset({"get"})
        held = effective_secret_permissions(listed, change.principal_id, change.scope, roles)
        if not needed <= held:
            problems.append(f"{change.principal_id} lacks {sorted(needed - held)} at {change.scope}")
    return problems


def rollback_changes(
    created: Iterable[RoleAssignmentChange], switch: VaultAuthorizationChange | None
) -> tuple[Change, ...]:
    """What undoes a failed migration, in order: switch the vault back first (the access policies are
    still there, so access is restored at once), then delete the assignments this run created (newest
    first). Assignments that existed before the run are never in `created`, so they are kept."""
    undo: list[Change] = []
    if switch is not None:
        undo.append(
            switch.model_copy(update={"enable_rbac_authorization": not switch.enable_rbac_authorization})
        )
    # A create names the assignment it made (deterministic name): the same change deletes it.
    undo += [c.model_copy(update={"operation": "delete"}) for c in reversed(list(created))]
    return tuple(undo)


def left_to_roll_back(
    left: Iterable[Change], vault: Vault | None
) -> tuple[tuple[RoleAssignmentChange, ...], str | None]:
    """Of what interrupted attempts of a migration left in place (their own step rows name it), what a
    run that skips the migration (drifted) rolls back, and why the rest stays (None: nothing stays).

    The role assignments they created are extra grants nothing asked for any more: on a vault still on
    access policies (or gone: a vault re-created under the same name would inherit them) they are rolled
    back, newest first, each deleted by the deterministic name the attempt created it under, so an
    assignment someone else made (any other name) is never touched. On a vault that reads Azure RBAC
    now they may be the access its identities rely on (switched by the attempt, or by a person since):
    they stay, and are named."""
    creates = [c for c in left if isinstance(c, RoleAssignmentChange) and c.operation == "create"]
    if not creates:
        return (), None
    if vault is not None and vault.enable_rbac_authorization:
        return (), "kept: the vault reads Azure RBAC now, they may be the access its identities rely on"
    deletes = rollback_changes(creates, None)
    return tuple(c for c in deletes if isinstance(c, RoleAssignmentChange)), None
