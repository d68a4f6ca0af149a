"""Azure RBAC on Key Vault, as pure functions over a Snapshot: which role assignments grant which secret
permissions where, which secrets an identity needs, deterministic assignment names, the budget.

Secret permissions of a role are read from its definition's dataActions (wildcards as Azure matches
them), so custom roles with `Microsoft.KeyVault/vaults/secrets/*` count like the built-in ones. The
definitions come from one list per subscription; the built-in Key Vault roles are known here too, so
a snapshot without definitions (or a failed list) still sees them.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping

from remediations.core.flow_allow_list import secrets_needed_by_identity
from remediations.core.model import (
    SECRET_PERMISSIONS,
    Frozen,
    RoleAssignment,
    RoleDefinition,
    ScopeLevel,
    Snapshot,
    Vault,
)
from remediations.core.policy import Policy

KEY_VAULT_ADMINISTRATOR = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
KEY_VAULT_READER = "21090545-7ca7-4776-b22c-e363652d74d2"
MAX_ROLE_ASSIGNMENTS_PER_SUBSCRIPTION = 4000  # docs/limits.md 1a

_SECRETS = "Microsoft.KeyVault/vaults/secrets/"
# Access-policy secret permission -> the data action that grants it on an RBAC vault.
DATA_ACTIONS: dict[str, str] = {
    "get": _SECRETS + "getSecret/action",
    "list": _SECRETS + "readMetadata/action",
    "set": _SECRETS + "setSecret/action",
    "delete": _SECRETS + "delete",
    "backup": _SECRETS + "backup/action",
    "restore": _SECRETS + "restore/action",
    "recover": _SECRETS + "recover/action",
    "purge": _SECRETS + "purge/action",
}

BUILT_IN_DEFINITIONS: tuple[RoleDefinition, ...] = (
    RoleDefinition(
        id=KEY_VAULT_ADMINISTRATOR,
        role_name="Key Vault Administrator",
        role_type="BuiltInRole",
        data_actions=("Microsoft.KeyVault/vaults/*",),
    ),
    RoleDefinition(
        id=KEY_VAULT_SECRETS_OFFICER,
        role_name="Key Vault Secrets Officer",
        role_type="BuiltInRole",
        data_actions=("Microsoft.KeyVault/vaults/secrets/*",),
    ),
    RoleDefinition(
        id=KEY_VAULT_SECRETS_USER,
        role_name="Key Vault Secrets User",
        role_type="BuiltInRole",
        data_actions=(DATA_ACTIONS["get"], DATA_ACTIONS["list"]),
    ),
    RoleDefinition(
        id=KEY_VAULT_READER,
        role_name="Key Vault Reader",
        role_type="BuiltInRole",
        data_actions=("Microsoft.KeyVault/vaults/*/read", DATA_ACTIONS["list"]),
    ),
)

VAULT_WRITE = "Microsoft.KeyVault/vaults/write"
ROLE_ASSIGNMENT_WRITE = "Microsoft.Authorization/roleAssignments/write"
# Built-in roles that may write a vault (and so its access policies), for a snapshot whose role
# definitions were not listed: Owner, Contributor, Key Vault Contributor (Azure built-in roles reference).
CONTROL_PLANE_BUILT_INS: tuple[RoleDefinition, ...] = (
    RoleDefinition(
        id="8e3af657-a8ff-443c-a75c-2fe8c4bcb635", role_name="Owner", role_type="BuiltInRole", actions=("*",)
    ),
    RoleDefinition(
        id="b24988ac-6180-42a0-ab88-20f7382dd24c",
        role_name="Contributor",
        role_type="BuiltInRole",
        actions=("*",),
        not_actions=("Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write"),
    ),
    RoleDefinition(
        id="f25e0fa2-a7c8-4377-a976-54943a77a395",
        role_name="Key Vault Contributor",
        role_type="BuiltInRole",
        actions=(
            "Microsoft.Authorization/*/read",
            "Microsoft.KeyVault/*",
            "Microsoft.Resources/deployments/*",
        ),
    ),
)
# Other built-in roles often assigned over a vault, known by name here (they neither write a vault nor
# read secrets): Reader, User Access Administrator (Azure built-in roles reference).
OTHER_BUILT_INS: tuple[RoleDefinition, ...] = (
    RoleDefinition(
        id="acdd72a7-3385-48ef-bd42-f606fba81ae7",
        role_name="Reader",
        role_type="BuiltInRole",
        actions=("*/read",),
    ),
    RoleDefinition(
        id="18d7d88d-d35e-4fb5-a5c3-7773c4a72d9d",
        role_name="User Access Administrator",
        role_type="BuiltInRole",
        actions=("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"),
    ),
)


def action_matches(pattern: str, action: str) -> bool:
    """Azure's action wildcards: `*` matches any run of characters; case is ignored."""
    pattern, action = pattern.lower(), action.lower()
    parts = pattern.split("*")
    if len(parts) == 1:
        return pattern == action
    if not action.startswith(parts[0]) or not action.endswith(parts[-1]):
        return False
    position, end = len(parts[0]), len(action) - len(parts[-1])
    for part in parts[1:-1]:
        found = action.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return position <= end


def _allows(definition: RoleDefinition, data_action: str) -> bool:
    return any(action_matches(p, data_action) for p in definition.data_actions) and not any(
        action_matches(p, data_action) for p in definition.not_data_actions
    )


def secret_permissions(definition: RoleDefinition) -> frozenset[str]:
    """The role's secret rights in access-policy words (`get`, `list`, `set`, ...)."""
    return frozenset(p for p in SECRET_PERMISSIONS if _allows(definition, DATA_ACTIONS[p]))


def secrets_only(definition: RoleDefinition) -> bool:
    """True when every data action is about secrets: replacing it by Secrets User loses no key or
    certificate access. (Key Vault Administrator's `vaults/*` is not.)"""
    return bool(definition.data_actions) and all(
        p.lower().startswith(_SECRETS.lower()) for p in definition.data_actions
    )


def definitions(snapshot: Snapshot) -> dict[str, RoleDefinition]:
    """Role definitions by lower-case GUID: the snapshot's, with the built-in roles known here as fallback."""
    return known_definitions(snapshot.role_definitions)


def known_definitions(listed: Iterable[RoleDefinition] = ()) -> dict[str, RoleDefinition]:
    """Role definitions by lower-case GUID: `listed` (the subscription's list, custom roles included)
    over the built-in roles known here (Key Vault's and the control-plane ones), so a role the
    inventory did not list still has its name."""
    known = {d.guid: d for d in (*BUILT_IN_DEFINITIONS, *CONTROL_PLANE_BUILT_INS, *OTHER_BUILT_INS)}
    known.update({d.guid: d for d in listed})
    return known


def role_label(roles: Mapping[str, RoleDefinition], role_guid: str) -> str:
    """The role's name; its GUID only when no definition names it."""
    role = roles.get(role_guid.lower())
    return role.role_name if role is not None and role.role_name else role_guid


def _grants(definition: RoleDefinition, action: str) -> bool:
    return any(action_matches(p, action) for p in definition.actions) and not any(
        action_matches(p, action) for p in definition.not_actions
    )


def vault_write_roles(snapshot: Snapshot) -> dict[int, str]:
    """The role name of each assignment (by `id()` of the snapshot's object) whose role may write a vault
    (`Microsoft.KeyVault/vaults/write`) but not assign roles: judged once per snapshot, not per vault."""
    roles = {d.guid: d for d in CONTROL_PLANE_BUILT_INS} | {d.guid: d for d in snapshot.role_definitions}
    found: dict[int, str] = {}
    for assignment in snapshot.role_assignments:
        definition = roles.get(assignment.role_guid)
        if definition is None:
            continue
        if _grants(definition, VAULT_WRITE) and not _grants(definition, ROLE_ASSIGNMENT_WRITE):
            found[id(assignment)] = definition.role_name or definition.guid
    return found


def vault_writers(
    snapshot: Snapshot, vault: Vault, writers: dict[int, str] | None = None
) -> list[tuple[RoleAssignment, str]]:
    """Assignments at or above the vault whose role may write it but not assign roles, with the role's
    name: on an access-policy vault each can grant itself data access, which under RBAC it could not
    (Owner or User Access Administrator can assign roles either way). `writers`: the snapshot's
    `vault_write_roles`, when the caller asks for many vaults."""
    roles = vault_write_roles(snapshot) if writers is None else writers
    if not roles:
        return []
    return [
        (assignment, roles[id(assignment)])
        for assignment in _assignments_by_scope(snapshot.role_assignments).reaching(vault.id)
        if id(assignment) in roles and covers(assignment.scope, vault.id)
    ]


def role_id(subscription_id: str, role_guid: str) -> str:
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}"


def assignment_name(scope: str, principal_id: str, role_guid: str) -> str:
    """Deterministic GUID name, so creating the same assignment twice is a no-op (uuid5 of the triple)."""
    key = f"{scope.rstrip('/').lower()}|{principal_id.lower()}|{role_guid.lower()}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, key))


def _norm(scope: str) -> str:
    return scope.rstrip("/").lower()


def covers(scope: str, target: str) -> bool:
    """An assignment at `scope` applies at `target` (the same scope or anything below it)."""
    outer, inner = _norm(scope), _norm(target)
    return outer in {"", "/"} or inner == outer or inner.startswith(outer + "/")


def level(scope: str, vault: Vault) -> ScopeLevel | None:
    """Where the assignment sits relative to the vault; None when it does not reach the vault."""
    norm, vault_id = _norm(scope), _norm(vault.id)
    if norm.startswith(vault_id + "/secrets/"):
        return "secret"
    if not covers(scope, vault.id):
        return None
    if norm == vault_id:
        return "vault"
    if norm == _norm(f"/subscriptions/{vault.subscription_id}/resourceGroups/{vault.resource_group}"):
        return "resource_group"
    if norm == _norm(f"/subscriptions/{vault.subscription_id}"):
        return "subscription"
    return "above_subscription"  # management group or root


def secret_name_of(scope: str) -> str:
    return scope.rstrip("/").rsplit("/secrets/", 1)[-1]


class SecretGrant(Frozen):
    """One role assignment that grants secret rights on one RBAC vault (or on one secret in it)."""

    assignment: RoleAssignment
    vault_id: str
    level: ScopeLevel
    permissions: tuple[str, ...]  # sorted, lower-case
    role_name: str
    secrets_only: bool
    secret_name: str | None = None  # for level == "secret"

    @property
    def inherited(self) -> bool:
        return self.level in {"resource_group", "subscription", "above_subscription"}


def secret_grants(snapshot: Snapshot, vault: Vault | None = None) -> Iterator[SecretGrant]:
    """Assignments granting secret rights on RBAC vaults, at secret, vault or any wider scope."""
    roles = definitions(snapshot)
    vaults = [vault] if vault is not None else list(snapshot.vaults)
    by_scope = _assignments_by_scope(snapshot.role_assignments)
    for v in vaults:
        if not v.enable_rbac_authorization:
            continue  # access-policy vaults ignore data actions
        for assignment in by_scope.reaching(v.id):
            where = level(assignment.scope, v)
            definition = roles.get(assignment.role_guid)
            if where is None or definition is None:
                continue
            granted = secret_permissions(definition)
            if not granted:
                continue
            yield SecretGrant(
                assignment=assignment,
                vault_id=v.id,
                level=where,
                permissions=tuple(sorted(granted)),
                role_name=definition.role_name or definition.guid,
                secrets_only=secrets_only(definition),
                secret_name=secret_name_of(assignment.scope) if where == "secret" else None,
            )


class AssignmentsByScope:
    """Role assignments indexed by scope, so that those reaching a vault are found by its few scope
    prefixes instead of a scan of every assignment per vault (4,000 assignments x 5,000 vaults would be
    20 million comparisons)."""

    def __init__(self, assignments: tuple[RoleAssignment, ...]) -> None:
        self.assignments = assignments
        self._at: dict[str, list[int]] = defaultdict(list)  # normalized scope -> positions
        self._below: dict[str, list[int]] = defaultdict(list)  # scope prefix -> positions under it
        for position, assignment in enumerate(assignments):
            scope = _norm(assignment.scope)
            self._at[scope].append(position)
            parts = scope.split("/")
            for end in range(1, len(parts)):
                self._below["/".join(parts[:end])].append(position)

    def reaching(self, target: str) -> list[RoleAssignment]:
        """Assignments whose scope covers `target` (`covers`) or lies below it, in list order."""
        norm = _norm(target)
        positions = list(self._below.get(norm, ()))
        positions += self._at.get("", ())
        cut = norm.find("/", 1)
        while cut != -1:  # each '/'-prefix of the target: the scopes that cover it
            positions += self._at.get(norm[:cut], ())
            cut = norm.find("/", cut + 1)
        positions += self._at.get(norm, ())
        return [self.assignments[p] for p in sorted(set(positions))]


# The last index built, with the tuple it indexes (held, so its id cannot be reused meanwhile).
_BY_SCOPE: list[AssignmentsByScope] = []


def _assignments_by_scope(assignments: tuple[RoleAssignment, ...]) -> AssignmentsByScope:
    last = _BY_SCOPE[-1] if _BY_SCOPE else None
    if last is not None and last.assignments is assignments:
        return last
    index = AssignmentsByScope(assignments)
    _BY_SCOPE[:] = [index]
    return index


def subscription_assignment_count(snapshot: Snapshot, subscription_id: str) -> int:
    """Assignments counted against the subscription's limit (inventory lists them subscription-wide)."""
    prefix = f"/subscriptions/{subscription_id.lower()}"
    return sum(1 for a in snapshot.role_assignments if covers(prefix, a.scope))


# --- which secrets an identity needs ------------------------------------------------------------------

NeedsResolver = Callable[[Snapshot, str], frozenset[str] | None]
# `allowList: fromFlows`: the static secret names the identity's flows read (flow_allow_list.py).
_RESOLVERS: dict[str, NeedsResolver] = {"fromFlows": secrets_needed_by_identity}


def needed_secret_names(snapshot: Snapshot, identity: str, policy: Policy) -> frozenset[str] | None:
    """The secret names `identity` needs, lower-case; None when nothing says (then nothing is narrowed).

    The policy's `allowedSecretNames[objectId]` wins; otherwise `allowList` names a resolver.
    """
    for key, names in policy.allowed_secret_names.items():
        if key.lower() == identity.lower():
            return frozenset(n.lower() for n in names)
    if policy.allow_list is not None:
        found = _RESOLVERS[policy.allow_list](snapshot, identity)
        return None if found is None else frozenset(n.lower() for n in found)
    return None


def flow_identities(snapshot: Snapshot) -> set[str]:
    """Identities that Power Platform connections authenticate as (lower-case object ids)."""
    return {c.identity_principal_id.lower() for c in snapshot.connections if c.identity_principal_id}
