"""The engine's data: what was seen (Snapshot), what is wrong (Finding), what to do (Action, Plan),
and what happened (Outcome). Plain, frozen, JSON-serialisable. No field can hold a secret value.

Ids are derived from content (`stable_id`) so a plan can be shown, stored, approved and applied later,
and so that the same problem seen twice has the same id.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SECRET_PERMISSIONS: tuple[str, ...] = (
    "get",
    "list",
    "set",
    "delete",
    "backup",
    "restore",
    "recover",
    "purge",
)
# Rights that let an identity manage a vault's secrets; the last holder of one is never removed.
SECRET_MANAGEMENT_PERMISSIONS: frozenset[str] = frozenset({"set", "delete", "purge", "recover", "restore"})
# Evidence keys that say how old a finding's data is, not what was found: left out of the finding's id,
# so a finding planned from the stored deep inventory keeps the id a live read gives it.
SECRETS_AS_OF = "secretsAsOf"
PROVENANCE_KEYS: frozenset[str] = frozenset({SECRETS_AS_OF})


def age_text(since: datetime, now: datetime) -> str:
    """`3h 05m` from `since` to `now` (never negative)."""
    minutes = max(0, int((now - since).total_seconds() // 60))
    return f"{minutes // 60}h {minutes % 60:02d}m"


def stable_id(*parts: object) -> str:
    """A short content hash: the same inputs always give the same id, on any machine."""
    payload = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def expand_secret_permissions(granted: tuple[str, ...] | list[str]) -> frozenset[str]:
    """Lower-case effective secret permissions, with `all` expanded to every secret permission."""
    lowered = {p.lower() for p in granted}
    if "all" in lowered:
        lowered.discard("all")
        lowered.update(SECRET_PERMISSIONS)
    return frozenset(lowered)


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- scope -------------------------------------------------------------------------------------------

_SCOPE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)"
    r"(?:/resourceGroups/(?P<rg>[^/]+)"
    r"(?:/providers/Microsoft\.KeyVault/vaults/(?P<vault>[^/]+))?)?/?$",
    re.IGNORECASE,
)


class Scope(Frozen):
    """What to look at: a subscription, a resource group, or one vault."""

    subscription_id: str
    resource_group: str | None = None
    vault_name: str | None = None

    @classmethod
    def parse(cls, text: str) -> Scope:
        match = _SCOPE.match(text.strip())
        if match is None:
            raise ValueError(
                f"scope {text!r} is not /subscriptions/<id>, /subscriptions/<id>/resourceGroups/<rg> "
                "or a Key Vault resource id"
            )
        return cls(subscription_id=match["sub"], resource_group=match["rg"], vault_name=match["vault"])

    @property
    def kind(self) -> Literal["subscription", "resource_group", "vault"]:
        if self.vault_name is not None:
            return "vault"
        return "resource_group" if self.resource_group is not None else "subscription"

    @property
    def resource_id(self) -> str:
        rid = f"/subscriptions/{self.subscription_id}"
        if self.resource_group is not None:
            rid += f"/resourceGroups/{self.resource_group}"
        if self.vault_name is not None:
            rid += f"/providers/Microsoft.KeyVault/vaults/{self.vault_name}"
        return rid


def arm_name(resource_id: str, segment: str) -> str | None:
    """The name after `segment` (matched case-insensitively) in an ARM id, or None when absent:
    `arm_name(vault_id, "resourceGroups")`. Lenient, for ids Azure returned or we built; an id a
    caller sends is validated strictly first (triggers/ids.py)."""
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    try:
        return parts[lowered.index(segment.lower()) + 1]
    except (ValueError, IndexError):
        return None


def subscription_of(scope: str) -> str:
    """The subscription of an ARM scope that starts `/subscriptions/{id}` (a role-assignment scope)."""
    parts = scope.strip("/").split("/")
    if len(parts) < 2 or parts[0].lower() != "subscriptions":
        raise ValueError(f"{scope!r} is not an ARM scope under a subscription")
    return parts[1]


class VaultRef(Frozen):
    """The coordinates ARM calls on a vault need, read from its resource id (or the id of something
    in it, e.g. a secret). Lenient like `arm_name`."""

    subscription_id: str
    resource_group: str
    name: str

    @classmethod
    def parse(cls, resource_id: str) -> VaultRef:
        subscription_id = arm_name(resource_id, "subscriptions")
        resource_group = arm_name(resource_id, "resourceGroups")
        name = arm_name(resource_id, "vaults")
        if subscription_id is None or resource_group is None or name is None:
            raise ValueError(f"{resource_id!r} is not a Key Vault resource id")
        return cls(subscription_id=subscription_id, resource_group=resource_group, name=name)


# --- Key Vault and directory -------------------------------------------------------------------------


class Permissions(Frozen):
    """Access-policy permissions exactly as Azure returned them (casing kept: `Get`, `list`, `List`)."""

    secrets: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    certificates: tuple[str, ...] = ()
    storage: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "secrets": list(self.secrets),
            "keys": list(self.keys),
            "certificates": list(self.certificates),
            "storage": list(self.storage),
        }


class AccessPolicy(Frozen):
    tenant_id: str
    object_id: str
    application_id: str | None = None
    permissions: Permissions = Permissions()


class SecretMeta(Frozen):
    """Secret metadata from the list call. There is deliberately no value field."""

    name: str
    id: str
    enabled: bool | None = None
    expires: datetime | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    content_type: str | None = None


class SecretVersionMeta(Frozen):
    """One version of a secret (from the versions list or a write). No value field."""

    name: str
    version: str
    enabled: bool | None = None
    created: datetime | None = None
    expires: datetime | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    content_type: str | None = None


class Vault(Frozen):
    id: str  # ARM resource id
    name: str
    resource_group: str
    subscription_id: str
    location: str = ""
    tenant_id: str = ""
    vault_uri: str = ""
    enable_rbac_authorization: bool = False
    tags: dict[str, str] = Field(default_factory=dict)
    access_policies: tuple[AccessPolicy, ...] = ()
    secrets: tuple[SecretMeta, ...] = ()
    # Secrets the list returned; set by inventory even when `secrets` is not kept (keep_secrets=False).
    secret_count: int | None = None
    # Set when `secrets` came from a stored deep inventory (a quick sweep): when that list was read.
    secrets_as_of: datetime | None = None

    def secrets_provenance(self) -> dict[str, str]:
        """The evidence a finding made from this vault's secret list adds: when that list was read if
        it came from the stored deep inventory (a quick sweep), nothing for a live read."""
        if self.secrets_as_of is None:
            return {}
        return {SECRETS_AS_OF: self.secrets_as_of.isoformat(timespec="seconds")}

    def secrets_age_note(self, now: datetime) -> str:
        """What a finding's message adds about its secret list's age: empty for a live read."""
        if self.secrets_as_of is None:
            return ""
        when = self.secrets_as_of.isoformat(timespec="seconds")
        return f" (secret list from the deep inventory of {when}, {age_text(self.secrets_as_of, now)} old)"

    def policies_for(self, object_id: str) -> tuple[AccessPolicy, ...]:
        return tuple(p for p in self.access_policies if p.object_id.lower() == object_id.lower())


class RoleAssignment(Frozen):
    id: str
    scope: str
    role_definition_id: str
    principal_id: str
    principal_type: str | None = None
    created_on: datetime | None = None  # when it was made; role changes take time to propagate

    @property
    def role_guid(self) -> str:
        return self.role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()

    @property
    def name(self) -> str:
        """The assignment's GUID name (last segment of its id)."""
        return self.id.rstrip("/").rsplit("/", 1)[-1]


class RoleDefinition(Frozen):
    """An Azure role definition's permissions (listed once per subscription, never per assignment)."""

    id: str
    role_name: str = ""
    role_type: str = ""  # BuiltInRole | CustomRole
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()

    @property
    def guid(self) -> str:
        return self.id.rstrip("/").rsplit("/", 1)[-1].lower()


IdentityKind = Literal["user", "group", "servicePrincipal", "managedIdentity", "unknown"]
# Who a Power Platform share names (Dataverse principals, Power Apps share principals).
PrincipalKind = Literal["user", "group", "servicePrincipal"]


class Identity(Frozen):
    object_id: str
    kind: IdentityKind = "unknown"
    display_name: str | None = None
    exists: bool | None = None  # None: the directory could not be asked


# --- Power Platform (inventoried by a later issue; modelled now so the graph has its shape) -------------


# Dataverse security roles that can edit every flow of an environment, whoever owns it.
EDIT_ALL_FLOWS_ROLES: frozenset[str] = frozenset({"System Administrator", "System Customizer"})
KEYVAULT_CONNECTOR_ID = "/providers/Microsoft.PowerApps/apis/shared_keyvault"


class PowerPlatformScope(Frozen):
    """Which Power Platform environments to look at: names, or every environment when `all_environments`."""

    environments: tuple[str, ...] = ()
    all_environments: bool = False

    @property
    def empty(self) -> bool:
        return not self.environments and not self.all_environments


class Environment(Frozen):
    id: str
    name: str
    display_name: str = ""
    role_holders: dict[str, tuple[str, ...]] = Field(default_factory=dict)  # principal id -> roles
    # principal id -> UPN or full name, as the environment's user and team rows give them (for reports)
    principal_names: dict[str, str] = Field(default_factory=dict)

    def editors_of_all_flows(self) -> tuple[str, ...]:
        """System Customizers and Administrators: they can edit every flow in the environment."""
        return tuple(sorted(p for p, roles in self.role_holders.items() if set(roles) & EDIT_ALL_FLOWS_ROLES))


class Flow(Frozen):
    id: str
    environment: str
    display_name: str = ""
    creator: str | None = None  # principal object id of the owner/creator
    connection_references: tuple[str, ...] = ()  # connection ids
    definition: dict[str, Any] = Field(default_factory=dict)
    state: str = "Started"
    # connectionReferences as the definition names them: reference key (e.g. "shared_keyvault") ->
    # connection id, so an action's `inputs.host.connectionName` can be followed to its connection.
    reference_keys: dict[str, str] = Field(default_factory=dict)


class Connection(Frozen):
    id: str
    environment: str
    connector_id: str  # e.g. /providers/Microsoft.PowerApps/apis/shared_keyvault
    identity_principal_id: str | None = None
    identity_kind: Literal["user", "servicePrincipal", "managedIdentity"] = "user"
    parameters: dict[str, str] = Field(default_factory=dict)  # e.g. {"vaultName": "kv-payroll"}
    display_name: str = ""
    created_by: str | None = None  # principal object id of the connection's creator (its owner)

    @property
    def is_keyvault(self) -> bool:
        return self.connector_id.rstrip("/").lower().endswith("/apis/shared_keyvault") or (
            self.connector_id.lower() == "shared_keyvault"
        )

    @property
    def api_name(self) -> str:
        return self.connector_id.rstrip("/").rsplit("/", 1)[-1]


class Share(Frozen):
    resource_kind: Literal["flow", "connection"]
    resource_id: str
    principal_id: str
    principal_kind: PrincipalKind = "user"
    role: str  # Owner, CanEdit, CanView, RunOnly
    environment: str = ""
    permission_id: str | None = None  # the permission's id as the API lists it (connection deletes use it)


class DlpPolicy(Frozen):
    id: str
    display_name: str = ""
    environments: tuple[str, ...] = ()
    blocked_actions: dict[str, tuple[str, ...]] = Field(default_factory=dict)  # connector id -> action ids
    # AllEnvironments | OnlyEnvironments | ExceptEnvironments (how `environments` is read)
    environment_type: str = "OnlyEnvironments"
    blocked_connectors: tuple[str, ...] = ()

    def covers(self, environment: str) -> bool:
        names = {e.lower() for e in self.environments}
        if self.environment_type == "AllEnvironments":
            return True
        if self.environment_type == "ExceptEnvironments":
            return environment.lower() not in names
        return environment.lower() in names


class InventoryError(Frozen):
    """A read that failed. Surfaced in the run result; never silently dropped."""

    resource_id: str
    operation: str
    status: int | None = None
    message: str
    retry_after: float | None = None  # seconds the service asked us to wait (throttling), if it said
    # True when the rest of the scope was still inventoried and planned: only the remediations that need
    # this read are skipped for the resource (a refused secret list). False: the run as a whole failed.
    partial: bool = False

    @property
    def label(self) -> str:
        """`HTTP 403` or `no response`: the status as it came back, never a made-up one. A partial
        error with no call behind it (no stored deep inventory for a quick sweep) says why instead."""
        if self.status is not None:
            return f"HTTP {self.status}"
        return self.message if self.partial else "no response"


# Snapshot lookup indexes: (name, id(tuple)) -> (tuple, index); a few snapshots live at a time.
_INDEX_CACHE_SIZE = 32
_INDEXES: dict[tuple[str, int], tuple[tuple[Any, ...], dict[str, Any]]] = {}


class Snapshot(Frozen):
    scope: Scope
    taken_at: datetime
    vaults: tuple[Vault, ...] = ()
    role_assignments: tuple[RoleAssignment, ...] = ()
    role_definitions: tuple[RoleDefinition, ...] = ()
    identities: tuple[Identity, ...] = ()
    environments: tuple[Environment, ...] = ()
    flows: tuple[Flow, ...] = ()
    connections: tuple[Connection, ...] = ()
    shares: tuple[Share, ...] = ()
    dlp_policies: tuple[DlpPolicy, ...] = ()
    errors: tuple[InventoryError, ...] = ()
    power_platform_scope: PowerPlatformScope | None = None
    group_members: dict[str, tuple[str, ...]] = Field(default_factory=dict)  # group id -> member ids
    # False when the inventory did not ask for secret metadata at all: vaults then list no secrets, and
    # a remediation that needs them must not read that as "the vault has none".
    secrets_listed: bool = True

    def _index(self, name: str, items: tuple[Any, ...], key: Any, keep: Any = None) -> dict[str, Any]:
        """A lower-cased lookup over `items`, built once per tuple (detectors look up every vault and
        identity per access-policy entry: a scan each time is quadratic at 5,000 vaults). Cached by
        the tuple's identity (the cache holds the tuple, so its id cannot be reused meanwhile), so a
        `model_copy(update=...)` that replaces the tuple gets a fresh index."""
        cache_key = (name, id(items))
        cached = _INDEXES.get(cache_key)
        if cached is not None and cached[0] is items:
            return cached[1]
        index: dict[str, Any] = {}
        for item in items:
            if keep is None or keep(item):
                index.setdefault(key(item).lower(), item)  # the first one wins, as the scans did
        if len(_INDEXES) >= _INDEX_CACHE_SIZE:
            _INDEXES.pop(next(iter(_INDEXES)))
        _INDEXES[cache_key] = (items, index)
        return index

    def secret_list_error(self, vault_id: str) -> InventoryError | None:
        """The failed secret list of this vault, if its listing failed."""
        if not self.errors:
            return None
        found: InventoryError | None = self._index(
            "errors", self.errors, lambda e: e.resource_id, lambda e: e.operation == "list secrets"
        ).get(vault_id.lower())
        return found

    def identity(self, object_id: str) -> Identity | None:
        found: Identity | None = self._index("identities", self.identities, lambda i: i.object_id).get(
            object_id.lower()
        )
        return found

    def vault(self, vault_id: str) -> Vault | None:
        found: Vault | None = self._index("vaults", self.vaults, lambda v: v.id).get(vault_id.lower())
        return found


# --- findings, actions, plans, outcomes -----------------------------------------------------------------

Severity = Literal["low", "medium", "high", "critical"]
# Where a role assignment sits relative to a vault (remediations/core/rbac.py).
ScopeLevel = Literal["secret", "vault", "resource_group", "subscription", "above_subscription"]


class Finding(Frozen):
    id: str
    detector_id: str
    severity: Severity
    resource_id: str
    principal: str | None = None
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def create(
        cls,
        *,
        detector_id: str,
        severity: Severity,
        resource_id: str,
        principal: str | None,
        message: str,
        evidence: dict[str, Any],
    ) -> Finding:
        return cls(
            id=stable_id(
                detector_id,
                resource_id.lower(),
                (principal or "").lower(),
                {k: v for k, v in evidence.items() if k not in PROVENANCE_KEYS},
            ),
            detector_id=detector_id,
            severity=severity,
            resource_id=resource_id,
            principal=principal,
            message=message,
            evidence=evidence,
        )


class AccessPolicyChange(Frozen):
    """One `PUT .../accessPolicies/{operation}` call: a server-side delta for one identity."""

    type: Literal["accessPolicy"] = "accessPolicy"
    operation: Literal["add", "remove"]
    tenant_id: str
    object_id: str
    application_id: str | None = None
    permissions: Permissions

    def describe(self) -> str:
        return f"PUT accessPolicies/{self.operation} secrets={','.join(self.permissions.secrets) or 'none'}"


class RoleAssignmentChange(Frozen):
    """Create or delete one Azure role assignment (RBAC-mode vaults)."""

    type: Literal["roleAssignment"] = "roleAssignment"
    operation: Literal["create", "delete"]
    scope: str  # ARM scope: subscription, resource group, vault or `/vaults/{v}/secrets/{s}`
    role_definition_id: str
    principal_id: str
    principal_type: str | None = None
    assignment_name: str  # GUID; derived from (scope, principal, role) for create so a retry is a no-op

    @classmethod
    def deleting(cls, assignment: RoleAssignment) -> RoleAssignmentChange:
        """The change that removes `assignment`, by its own name (what ARM deletes)."""
        return cls(
            operation="delete",
            scope=assignment.scope,
            role_definition_id=assignment.role_definition_id,
            principal_id=assignment.principal_id,
            principal_type=assignment.principal_type,
            assignment_name=assignment.name,
        )

    def describe(self) -> str:
        role = self.role_definition_id.rsplit("/", 1)[-1]
        return f"{self.operation} role assignment role={role} principal={self.principal_id} at {self.scope}"


class ShareChange(Frozen):
    """Revoke (or grant) one person's permission on a flow or a connection."""

    type: Literal["share"] = "share"
    operation: Literal["delete", "put"]
    resource_kind: Literal["flow", "connection"]
    environment: str
    resource_id: str
    principal_id: str
    principal_kind: PrincipalKind = "user"
    role: str
    api: str | None = None  # connector name for connections, e.g. shared_keyvault
    permission_id: str | None = None  # the permission id to delete (connections); flows use the object id

    def describe(self) -> str:
        who = f"{self.role} of {self.principal_id}"
        return f"modifyPermissions {self.operation} {who} on {self.resource_kind} {self.resource_id}"


class DlpPolicyChange(Frozen):
    """Create or update a DLP policy so that blocked connector actions (e.g. Key Vault ListSecrets)
    and blocked connectors hold in the listed environments."""

    type: Literal["dlpPolicy"] = "dlpPolicy"
    operation: Literal["create", "update"]
    policy_id: str | None = None  # None for create
    display_name: str
    environments: tuple[str, ...] = ()
    blocked_actions: dict[str, tuple[str, ...]] = Field(default_factory=dict)  # connector id -> actions
    blocked_connectors: tuple[str, ...] = ()

    def describe(self) -> str:
        blocked = "; ".join(f"{k}: {', '.join(v)}" for k, v in self.blocked_actions.items())
        what = f"actions {blocked}" if blocked else f"connectors {', '.join(self.blocked_connectors)}"
        return (
            f"{self.operation} DLP policy '{self.display_name}' blocking {what} "
            f"in environments {', '.join(self.environments)}"
        )


class SecretRotationChange(Frozen):
    """Put a new version of a secret, verify it, then disable the exposed version. Never a value."""

    type: Literal["secretRotation"] = "secretRotation"
    vault_uri: str
    secret_name: str
    rotator: str  # random | app-credential | storage-key | manual
    exposed_version: str | None = None
    reason: str = ""
    # "rotate": new version, verify, disable the old; "follow-up": finish a pending step of an earlier
    # rotation (remove the old client secret after the overlap, regenerate the old storage key).
    phase: Literal["rotate", "follow-up"] = "rotate"
    ticket_id: str | None = None
    # Taken from the policy at plan time, so that applying a stored plan needs no policy.
    expiry_days: int = 90
    overlap_hours: int = 0
    value_length: int | None = None
    charset: str | None = None
    compromised: bool = False  # the exposed version is tagged `compromised` when it is disabled

    def describe(self) -> str:
        if self.phase == "follow-up":
            return f"finish the pending step of the last rotation of {self.secret_name} ({self.rotator})"
        version = self.exposed_version or "current"
        return f"rotate {self.secret_name} ({self.rotator}); disable version {version}"


class FlowStateChange(Frozen):
    """Turn a flow off (Dataverse `statecode` 0, Draft): it stops triggering; definition, owner and
    shares stay, and an owner turns it on again after fixing it."""

    type: Literal["flowState"] = "flowState"
    environment: str
    flow_id: str
    state: Literal["Stopped"] = "Stopped"

    def describe(self) -> str:
        return f"turn off flow {self.flow_id} in {self.environment}"


class VaultAuthorizationChange(Frozen):
    """Switch a vault's permission model: ARM PATCH `properties.enableRbacAuthorization`. With true, Key
    Vault ignores the access policies and authorizes data-plane calls by Azure RBAC only."""

    type: Literal["vaultAuthorization"] = "vaultAuthorization"
    vault_id: str
    enable_rbac_authorization: bool

    def describe(self) -> str:
        return f"PATCH properties.enableRbacAuthorization = {str(self.enable_rbac_authorization).lower()}"


class SecurityRoleChange(Frozen):
    """Take a Dataverse security role (System Customizer) away from a user or Entra group team in an
    environment: they no longer edit every flow there, whoever owns it."""

    type: Literal["securityRole"] = "securityRole"
    environment: str
    principal_id: str  # Entra object id
    role: str  # role name, e.g. "System Customizer"

    def describe(self) -> str:
        return f"remove security role {self.role!r} from {self.principal_id} in {self.environment}"


class FlowSecureDataChange(Frozen):
    """Turn on secure inputs and outputs of a flow's Key Vault actions (named by JSON path) in its
    definition (Dataverse `workflows.clientdata`): their values leave the run history."""

    type: Literal["flowSecureData"] = "flowSecureData"
    environment: str
    flow_id: str
    action_paths: tuple[str, ...]

    def describe(self) -> str:
        return f"secure inputs/outputs of {', '.join(self.action_paths)} in flow {self.flow_id}"


class FlowConnectionChange(Frozen):
    """Rebind a flow's connection references from one Key Vault connection (a person's) to another (a
    least-privileged service principal's), in its `workflows.clientdata`."""

    type: Literal["flowConnection"] = "flowConnection"
    environment: str
    flow_id: str
    from_connection: str
    to_connection: str

    def describe(self) -> str:
        return f"move flow {self.flow_id} from connection {self.from_connection} to {self.to_connection}"


Change = Annotated[
    AccessPolicyChange
    | RoleAssignmentChange
    | VaultAuthorizationChange
    | ShareChange
    | DlpPolicyChange
    | SecretRotationChange
    | FlowStateChange
    | SecurityRoleChange
    | FlowSecureDataChange
    | FlowConnectionChange,
    Field(discriminator="type"),
]


class Action(Frozen):
    id: str
    remediation_id: str
    target: str  # resource id the change is made on
    principal: str | None = None
    changes: tuple[Change, ...]  # applied in order
    before: dict[str, list[str]]
    after: dict[str, list[str]]
    reason: str
    finding_ids: tuple[str, ...] = ()
    skip_reason: str | None = None  # planned but must not be applied (e.g. it would remove the last manager)

    @classmethod
    def create(
        cls,
        *,
        remediation_id: str,
        target: str,
        principal: str | None,
        changes: tuple[Change, ...],
        before: dict[str, list[str]],
        after: dict[str, list[str]],
        reason: str,
        finding_ids: tuple[str, ...],
        skip_reason: str | None = None,
    ) -> Action:
        change_payload = [c.model_dump(mode="json") for c in changes]
        return cls(
            id=stable_id(remediation_id, target.lower(), (principal or "").lower(), change_payload),
            remediation_id=remediation_id,
            target=target,
            principal=principal,
            changes=changes,
            before=before,
            after=after,
            reason=reason,
            finding_ids=tuple(sorted(finding_ids)),
            skip_reason=skip_reason,
        )


class Plan(Frozen):
    id: str
    actions: tuple[Action, ...] = ()
    deferred: tuple[Action, ...] = ()  # over the per-run cap; planned again next run
    created_at: datetime
    dry_run: bool = True

    @property
    def writes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.skip_reason is None)


OutcomeStatus = Literal["applied", "failed", "skipped", "noop", "deferred"]


class Outcome(Frozen):
    action_id: str
    status: OutcomeStatus
    before: dict[str, list[str]] = Field(default_factory=dict)
    after: dict[str, list[str]] = Field(default_factory=dict)
    error: str | None = None
    verified: bool = False
