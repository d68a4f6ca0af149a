"""In-memory state of the emulated Azure tenant: directory objects, subscriptions, resource groups,
Key Vault vaults with their secrets, role assignments and storage accounts.

A fresh `AzureState()` is an empty tenant with one subscription and one admin service principal
(an application with a client secret, Owner of the subscription), so a client can build any state
through the APIs alone. Mutations happen under `State.lock` (the route wrapper takes it).
"""

from __future__ import annotations

import secrets as _secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from emulator.azure import roles

DEFAULT_LOCATION = "eastus"


def new_id() -> str:
    return str(uuid.uuid4())


def now() -> int:
    return int(time.time())


# -- directory ------------------------------------------------------------------------------------
@dataclass
class PasswordCredential:
    key_id: str
    secret_text: str
    display_name: str | None = None
    start: int = field(default_factory=now)
    end: int = field(default_factory=lambda: now() + 2 * 365 * 86400)

    def to_graph(self, with_secret: bool = False) -> dict[str, Any]:
        return {
            "customKeyIdentifier": None,
            "displayName": self.display_name,
            "endDateTime": iso(self.end),
            "hint": self.secret_text[:3],
            "keyId": self.key_id,
            "secretText": self.secret_text if with_secret else None,
            "startDateTime": iso(self.start),
        }


@dataclass
class Application:
    id: str  # object id of the application object
    app_id: str  # the client id
    display_name: str
    passwords: list[PasswordCredential] = field(default_factory=list)

    def to_graph(self) -> dict[str, Any]:
        return {
            "@odata.type": "#microsoft.graph.application",
            "id": self.id,
            "appId": self.app_id,
            "displayName": self.display_name,
            "passwordCredentials": [p.to_graph() for p in self.passwords],
        }


@dataclass
class Principal:
    """A user or a service principal: anything with an object id that can hold access."""

    id: str  # object id (`oid` in tokens)
    kind: str  # "User" | "ServicePrincipal" | "Group"
    display_name: str
    app_id: str | None = None  # service principals
    user_principal_name: str | None = None  # users
    members: set[str] = field(default_factory=set)  # groups: direct members (lower-cased object ids)

    def to_graph(self) -> dict[str, Any]:
        if self.kind == "User":
            return {
                "@odata.type": "#microsoft.graph.user",
                "id": self.id,
                "displayName": self.display_name,
                "userPrincipalName": self.user_principal_name,
            }
        if self.kind == "Group":
            return {"@odata.type": "#microsoft.graph.group", "id": self.id, "displayName": self.display_name}
        return {
            "@odata.type": "#microsoft.graph.servicePrincipal",
            "id": self.id,
            "appId": self.app_id,
            "displayName": self.display_name,
            "servicePrincipalType": "Application",
        }


# -- resources ------------------------------------------------------------------------------------
@dataclass
class Subscription:
    id: str
    display_name: str
    tenant_id: str

    def to_arm(self) -> dict[str, Any]:
        return {
            "id": f"/subscriptions/{self.id}",
            "subscriptionId": self.id,
            "tenantId": self.tenant_id,
            "displayName": self.display_name,
            "state": "Enabled",
            "subscriptionPolicies": {
                "locationPlacementId": "Public_2014-09-01",
                "quotaId": "PayAsYouGo_2014-09-01",
                "spendingLimit": "Off",
            },
            "authorizationSource": "RoleBased",
        }


@dataclass
class ResourceGroup:
    subscription_id: str
    name: str
    location: str = DEFAULT_LOCATION
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def arm_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.name}"

    def to_arm(self) -> dict[str, Any]:
        return {
            "id": self.arm_id,
            "name": self.name,
            "type": "Microsoft.Resources/resourceGroups",
            "location": self.location,
            "tags": self.tags,
            "properties": {"provisioningState": "Succeeded"},
        }


@dataclass(slots=True)
class SecretVersion:
    version: str
    value: str
    content_type: str | None = None
    enabled: bool = True
    exp: int | None = None
    nbf: int | None = None
    tags: dict[str, str] | None = None
    created: int = 0
    updated: int = 0


@dataclass(slots=True)
class Secret:
    name: str
    versions: list[SecretVersion] = field(default_factory=list)  # oldest first; latest is last
    deleted_date: int | None = None  # set while soft-deleted

    @property
    def latest(self) -> SecretVersion:
        return self.versions[-1]

    def version(self, version: str) -> SecretVersion | None:
        if not version:
            return self.versions[-1] if self.versions else None
        for item in self.versions:
            if item.version == version:
                return item
        return None


@dataclass
class AccessPolicy:
    tenant_id: str
    object_id: str
    application_id: str | None = None
    # category ("keys", "secrets", "certificates", "storage") -> permissions, casing as given
    permissions: dict[str, list[str]] = field(default_factory=dict)

    def key(self) -> tuple[str, str, str]:
        return (self.tenant_id.lower(), self.object_id.lower(), (self.application_id or "").lower())

    def to_arm(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"tenantId": self.tenant_id, "objectId": self.object_id}
        if self.application_id:
            entry["applicationId"] = self.application_id
        entry["permissions"] = {k: list(v) for k, v in self.permissions.items()}
        return entry

    def allows_secret(self, permission: str) -> bool:
        """The data plane compares case-insensitively: a portal-made `Get` allows `get`."""
        granted = {p.lower() for p in self.permissions.get("secrets", [])}
        return "all" in granted or permission.lower() in granted


@dataclass
class Vault:
    name: str
    subscription_id: str
    resource_group: str
    tenant_id: str
    location: str = DEFAULT_LOCATION
    tags: dict[str, str] = field(default_factory=dict)
    sku: dict[str, str] = field(default_factory=lambda: {"family": "A", "name": "standard"})
    access_policies: list[AccessPolicy] = field(default_factory=list)
    enable_rbac_authorization: bool = False
    enable_soft_delete: bool = True
    soft_delete_retention_in_days: int = 90
    enable_purge_protection: bool | None = None
    public_network_access: str = "Enabled"
    extra_properties: dict[str, Any] = field(default_factory=dict)  # other properties, echoed back
    secrets: dict[str, Secret] = field(default_factory=dict)  # lower-cased name -> secret
    created: int = field(default_factory=now)

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.KeyVault/vaults/{self.name}"
        )

    @property
    def uri(self) -> str:
        return f"https://{self.name.lower()}.vault.azure.net/"

    def properties(self) -> dict[str, Any]:
        props: dict[str, Any] = {
            "sku": dict(self.sku),
            "tenantId": self.tenant_id,
            "accessPolicies": [p.to_arm() for p in self.access_policies],
            "enabledForDeployment": False,
            "enabledForDiskEncryption": False,
            "enabledForTemplateDeployment": False,
            "enableSoftDelete": self.enable_soft_delete,
            "softDeleteRetentionInDays": self.soft_delete_retention_in_days,
            "enableRbacAuthorization": self.enable_rbac_authorization,
            "vaultUri": self.uri,
            "provisioningState": "Succeeded",
            "publicNetworkAccess": self.public_network_access,
        }
        if self.enable_purge_protection is not None:
            props["enablePurgeProtection"] = self.enable_purge_protection
        props.update(self.extra_properties)
        return props

    def to_arm(self) -> dict[str, Any]:
        return {
            "id": self.arm_id,
            "name": self.name,
            "type": "Microsoft.KeyVault/vaults",
            "location": self.location,
            "tags": self.tags,
            "systemData": {"createdAt": iso(self.created)},
            "properties": self.properties(),
        }


@dataclass
class RoleAssignment:
    name: str  # a GUID
    scope: str  # as given, e.g. /subscriptions/{s}/resourceGroups/{rg}/providers/.../vaults/{v}
    role_definition_id: str  # the GUID of the role definition
    principal_id: str
    principal_type: str = "ServicePrincipal"
    created: float = field(default_factory=time.time)

    @property
    def arm_id(self) -> str:
        return f"{self.scope.rstrip('/')}/providers/Microsoft.Authorization/roleAssignments/{self.name}"

    def to_arm(self, subscription_id: str) -> dict[str, Any]:
        stamp = iso(int(self.created))
        return {
            "id": self.arm_id,
            "name": self.name,
            "type": "Microsoft.Authorization/roleAssignments",
            "properties": {
                "roleDefinitionId": (
                    f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization"
                    f"/roleDefinitions/{self.role_definition_id}"
                ),
                "principalId": self.principal_id,
                "principalType": self.principal_type,
                "scope": self.scope,
                "condition": None,
                "conditionVersion": None,
                "createdOn": stamp,
                "updatedOn": stamp,
                "createdBy": None,
                "updatedBy": None,
                "delegatedManagedIdentityResourceId": None,
                "description": None,
            },
        }


@dataclass
class StorageAccount:
    name: str
    subscription_id: str
    resource_group: str
    location: str = DEFAULT_LOCATION
    tags: dict[str, str] = field(default_factory=dict)
    keys: list[str] = field(default_factory=lambda: [new_storage_key(), new_storage_key()])
    key_created: list[int] = field(default_factory=lambda: [now(), now()])

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Storage/storageAccounts/{self.name}"
        )

    def to_arm(self) -> dict[str, Any]:
        endpoints = {
            kind: f"https://{self.name}.{kind}.core.windows.net/"
            for kind in ("blob", "queue", "table", "file")
        }
        return {
            "id": self.arm_id,
            "name": self.name,
            "type": "Microsoft.Storage/storageAccounts",
            "location": self.location,
            "tags": self.tags,
            "kind": "StorageV2",
            "sku": {"name": "Standard_LRS", "tier": "Standard"},
            "properties": {
                "provisioningState": "Succeeded",
                "primaryEndpoints": endpoints,
                "primaryLocation": self.location,
                "statusOfPrimary": "available",
                "allowSharedKeyAccess": True,
                "keyCreationTime": {"key1": iso(self.key_created[0]), "key2": iso(self.key_created[1])},
            },
        }

    def keys_payload(self) -> dict[str, Any]:
        return {
            "keys": [
                {
                    "keyName": f"key{i + 1}",
                    "value": value,
                    "permissions": "FULL",
                    "creationTime": iso(self.key_created[i]),
                }
                for i, value in enumerate(self.keys)
            ]
        }


def new_storage_key() -> str:
    import base64

    return base64.b64encode(_secrets.token_bytes(64)).decode()


def iso(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


# -- the tenant -----------------------------------------------------------------------------------
@dataclass
class AzureState:
    tenant_id: str = field(default_factory=new_id)
    subscription_id: str = field(default_factory=new_id)
    # The admin service principal (Owner of the subscription) whose credentials `serve` prints.
    admin_client_id: str = field(default_factory=new_id)
    admin_client_secret: str = field(default_factory=lambda: uuid.uuid4().hex + uuid.uuid4().hex)
    admin_object_id: str = field(default_factory=new_id)
    admin_application_object_id: str = field(default_factory=new_id)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)  # lower-cased id ->
    applications: dict[str, Application] = field(default_factory=dict)  # object id ->
    principals: dict[str, Principal] = field(default_factory=dict)  # lower-cased object id ->
    resource_groups: dict[tuple[str, str], ResourceGroup] = field(default_factory=dict)  # (sub, rg) lower
    vaults: dict[str, Vault] = field(default_factory=dict)  # lower-cased name -> (names are global)
    role_definitions: dict[str, roles.RoleDefinition] = field(default_factory=dict)  # lower-cased GUID ->
    role_assignments: dict[str, RoleAssignment] = field(default_factory=dict)  # lower-cased name (GUID) ->
    storage_accounts: dict[str, StorageAccount] = field(default_factory=dict)  # lower-cased name ->
    seed_defaults: bool = True  # False: start completely empty (scenario loader seeds explicitly)

    def __post_init__(self) -> None:
        for definition in roles.BUILT_IN:
            self.role_definitions.setdefault(definition.id.lower(), definition)
        if self.seed_defaults:
            self.add_subscription(self.subscription_id, "Emulated subscription")
            self.add_admin()

    # -- seeding helpers (also used by the scenario loader and the generator) -------------------
    def add_subscription(self, subscription_id: str, display_name: str) -> Subscription:
        sub = Subscription(subscription_id, display_name, self.tenant_id)
        self.subscriptions[subscription_id.lower()] = sub
        return sub

    def add_admin(self) -> None:
        self.add_application(
            self.admin_client_id,
            "vaultguard-emulator-admin",
            object_id=self.admin_application_object_id,
            sp_object_id=self.admin_object_id,
            password=self.admin_client_secret,
        )
        for sub in self.subscriptions.values():
            self.add_role_assignment(
                f"/subscriptions/{sub.id}", roles.OWNER, self.admin_object_id, "ServicePrincipal", created=0.0
            )

    def add_application(
        self,
        app_id: str,
        display_name: str,
        *,
        object_id: str | None = None,
        sp_object_id: str | None = None,
        password: str | None = None,
        with_service_principal: bool = True,
    ) -> Application:
        app = Application(object_id or new_id(), app_id, display_name)
        if password is not None:
            app.passwords.append(PasswordCredential(new_id(), password, "emulator"))
        self.applications[app.id.lower()] = app
        if with_service_principal:
            self.add_principal(sp_object_id or new_id(), "ServicePrincipal", display_name, app_id=app_id)
        return app

    def add_principal(
        self,
        object_id: str,
        kind: str,
        display_name: str,
        *,
        app_id: str | None = None,
        user_principal_name: str | None = None,
    ) -> Principal:
        principal = Principal(
            object_id, kind, display_name, app_id=app_id, user_principal_name=user_principal_name
        )
        self.principals[object_id.lower()] = principal
        return principal

    def add_role_assignment(
        self,
        scope: str,
        role_definition_id: str,
        principal_id: str,
        principal_type: str = "ServicePrincipal",
        *,
        name: str | None = None,
        created: float | None = None,
    ) -> RoleAssignment:
        assignment = RoleAssignment(name or new_id(), scope, role_definition_id, principal_id, principal_type)
        if created is not None:
            assignment.created = created
        self.role_assignments[assignment.name.lower()] = assignment
        return assignment

    # -- lookups ---------------------------------------------------------------------------------
    def application_by_app_id(self, app_id: str) -> Application | None:
        wanted = app_id.lower()
        return next((a for a in self.applications.values() if a.app_id.lower() == wanted), None)

    def service_principal_by_app_id(self, app_id: str) -> Principal | None:
        wanted = app_id.lower()
        return next(
            (
                p
                for p in self.principals.values()
                if p.kind == "ServicePrincipal" and (p.app_id or "").lower() == wanted
            ),
            None,
        )

    def add_group_members(
        self, group_id: str, members: Iterable[str], display_name: str | None = None
    ) -> Principal:
        """Adds direct members to a group (created when absent): the one directory both Graph's
        `transitiveMembers` and Power Platform's authorization of group shares read."""
        group = self.principals.get(group_id.lower())
        if group is None:
            group = self.add_principal(group_id, "Group", display_name or group_id)
        group.members.update(m.lower() for m in members)
        return group

    def transitive_members(self, group_id: str) -> list[str]:
        """Every member of the group, nested groups flattened (the nested groups are listed too)."""
        seen: list[str] = []
        stack = [group_id.lower()]
        visited = {group_id.lower()}
        while stack:
            group = self.principals.get(stack.pop())
            if group is None or group.kind != "Group":
                continue
            for member in sorted(group.members):
                if member in visited:
                    continue
                visited.add(member)
                seen.append(member)
                stack.append(member)
        return seen

    def groups_of(self, object_id: str) -> set[str]:
        """The groups the object is a member of, directly or through nested groups (lower-cased)."""
        return {
            p.id.lower()
            for p in self.principals.values()
            if p.kind == "Group" and object_id.lower() in self.transitive_members(p.id)
        }

    def resource_group(self, subscription_id: str, name: str) -> ResourceGroup | None:
        return self.resource_groups.get((subscription_id.lower(), name.lower()))

    def assignments_for(self, principal_id: str) -> list[RoleAssignment]:
        wanted = principal_id.lower()
        return [a for a in self.role_assignments.values() if a.principal_id.lower() == wanted]

    def subscription_assignment_count(self, subscription_id: str) -> int:
        prefix = f"/subscriptions/{subscription_id.lower()}"
        return sum(
            1
            for a in self.role_assignments.values()
            if a.scope.lower() == prefix or a.scope.lower().startswith(prefix + "/")
        )
