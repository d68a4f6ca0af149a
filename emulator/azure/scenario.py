"""The Azure part of a scenario file: JSON that seeds the emulated tenant. Validated with pydantic;
errors name the field path (e.g. `vaults.0.accessPolicies.1.objectId: ...`).

Top-level keys (all optional; ids are GUIDs unless said otherwise):

    tenantId             the tenant (random when absent)
    subscriptions        [{subscriptionId, displayName}]; the first is the default one. Default: one
    admin                {clientId, clientSecret, objectId, applicationObjectId}: the admin service
                         principal, Owner of every subscription (random when absent)
    users                [{id, userPrincipalName, displayName}]
    groups               [{id, displayName, members: [object ids]}]: direct members (users, service
                         principals, other groups); Graph `transitiveMembers` flattens nesting
    applications         [{id, appId, displayName, passwords: [{keyId, secretText, displayName}],
                           servicePrincipalId (its service principal; null: none)}]
    servicePrincipals    [{id, appId, displayName}]: service principals without an application here
                         (managed identities, multi-tenant apps)
    resourceGroups       [{name, subscriptionId, location, tags}]; vaults and storage accounts
                         create the groups they name if absent
    vaults               [{name, resourceGroup, subscriptionId, location, tags, enableRbacAuthorization,
                           enableSoftDelete, enablePurgeProtection,
                           accessPolicies: [{objectId, tenantId, applicationId,
                                             permissions: {keys, secrets, certificates, storage}}],
                           secrets: [{name, value | versions: [{value, ...}] (oldest first),
                                      contentType, enabled, exp, nbf, tags}]}]
    roleAssignments      [{id, scope, roleName | roleDefinitionId, principalId, principalType}]
                         (principals need not exist: orphaned assignments are real too)
    storageAccounts      [{name, resourceGroup, subscriptionId, location, tags, keys: [k1, k2]}]
    powerPlatform        reserved for the Power Platform loader (emulator.powerplatform.scenario)

Access-policy permissions keep the casing given (`Get` as the portal writes it). `subscriptionId`
defaults to the first subscription everywhere. `dump(state)` writes the same format back.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from emulator.azure import roles
from emulator.azure.arm_keyvault import _VAULT_NAME, MAX_ACCESS_POLICIES, PERMISSIONS
from emulator.azure.state import (
    DEFAULT_LOCATION,
    AccessPolicy,
    AzureState,
    PasswordCredential,
    ResourceGroup,
    Secret,
    SecretVersion,
    StorageAccount,
    Vault,
    new_id,
    now,
)

RESERVED = {"powerPlatform"}


class ScenarioError(ValueError):
    """A scenario that cannot be loaded; the message names the field path."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


Guid = uuid.UUID


class SubscriptionSpec(_Model):
    subscriptionId: Guid
    displayName: str = "Emulated subscription"


class AdminSpec(_Model):
    clientId: Guid
    clientSecret: str = Field(min_length=8)
    objectId: Guid
    applicationObjectId: Guid | None = None


class UserSpec(_Model):
    id: Guid
    userPrincipalName: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    displayName: str | None = None


class GroupSpec(_Model):
    id: Guid
    displayName: str
    members: list[Guid] = []  # direct members: users, service principals, other groups


class PasswordSpec(_Model):
    keyId: Guid | None = None
    secretText: str = Field(min_length=1)
    displayName: str | None = None


class ApplicationSpec(_Model):
    id: Guid | None = None
    appId: Guid
    displayName: str
    passwords: list[PasswordSpec] = []
    servicePrincipalId: Guid | None = None
    servicePrincipal: bool = True  # false: an application without a service principal in this tenant


class ServicePrincipalSpec(_Model):
    id: Guid
    appId: Guid | None = None
    displayName: str


class ResourceGroupSpec(_Model):
    name: str = Field(pattern=r"^[-\w._()]{1,90}$")
    subscriptionId: Guid | None = None
    location: str = DEFAULT_LOCATION
    tags: dict[str, str] = {}


class PermissionsSpec(_Model):
    keys: list[str] = []
    secrets: list[str] = []
    certificates: list[str] = []
    storage: list[str] = []

    @model_validator(mode="after")
    def _known(self) -> PermissionsSpec:
        for category in ("keys", "secrets", "certificates", "storage"):
            for value in getattr(self, category):
                if value.lower() not in PERMISSIONS[category]:
                    raise ValueError(
                        f"'{value}' is not a valid {category} permission "
                        f"(valid: {', '.join(sorted(PERMISSIONS[category]))})"
                    )
        return self


class AccessPolicySpec(_Model):
    objectId: Guid
    tenantId: Guid | None = None
    applicationId: Guid | None = None
    permissions: PermissionsSpec


class SecretVersionSpec(_Model):
    value: str
    contentType: str | None = None
    enabled: bool = True
    exp: int | None = None
    nbf: int | None = None
    tags: dict[str, str] | None = None


class SecretSpec(_Model):
    name: str = Field(pattern=r"^[0-9a-zA-Z-]{1,127}$")
    value: str | None = None
    versions: list[SecretVersionSpec] | None = None
    contentType: str | None = None
    enabled: bool = True
    exp: int | None = None
    nbf: int | None = None
    tags: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> SecretSpec:
        if (self.value is None) == (not self.versions):
            raise ValueError("give either 'value' or a non-empty 'versions' list")
        return self

    def all_versions(self) -> list[SecretVersionSpec]:
        if self.versions:
            return self.versions
        assert self.value is not None
        return [
            SecretVersionSpec(
                value=self.value,
                contentType=self.contentType,
                enabled=self.enabled,
                exp=self.exp,
                nbf=self.nbf,
                tags=self.tags,
            )
        ]


class VaultSpec(_Model):
    name: str
    resourceGroup: str = Field(pattern=r"^[-\w._()]{1,90}$")
    subscriptionId: Guid | None = None
    location: str = DEFAULT_LOCATION
    tags: dict[str, str] = {}
    enableRbacAuthorization: bool = False
    enableSoftDelete: bool = True
    enablePurgeProtection: bool | None = None
    accessPolicies: list[AccessPolicySpec] = Field(default=[], max_length=MAX_ACCESS_POLICIES)
    secrets: list[SecretSpec] = []

    @field_validator("name")
    @classmethod
    def _vault_name(cls, value: str) -> str:
        if not _VAULT_NAME.match(value):
            raise ValueError(
                "a vault name is 3-24 letters, digits and single hyphens, starting with a letter"
            )
        return value

    @model_validator(mode="after")
    def _unique_secrets(self) -> VaultSpec:
        names = [s.name.lower() for s in self.secrets]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate secret names: {', '.join(duplicates)}")
        return self


class RoleAssignmentSpec(_Model):
    id: Guid | None = None
    scope: str = Field(pattern=r"^/subscriptions/[^/]+(/.*)?$")
    roleName: str | None = None
    roleDefinitionId: str | None = None
    principalId: Guid
    principalType: str | None = Field(default=None, pattern=r"^(User|Group|ServicePrincipal)$")

    @model_validator(mode="after")
    def _role(self) -> RoleAssignmentSpec:
        if (self.roleName is None) == (self.roleDefinitionId is None):
            raise ValueError("give exactly one of 'roleName' and 'roleDefinitionId'")
        if self.roleName is not None and self.roleName.lower() not in roles.BY_NAME:
            raise ValueError(f"unknown role '{self.roleName}' (known: {', '.join(sorted(roles.BY_NAME))})")
        return self

    def role_guid(self) -> str:
        if self.roleName is not None:
            return roles.BY_NAME[self.roleName.lower()].id
        assert self.roleDefinitionId is not None
        return self.roleDefinitionId.rstrip("/").rsplit("/", 1)[-1]


class StorageAccountSpec(_Model):
    name: str = Field(pattern=r"^[a-z0-9]{3,24}$")
    resourceGroup: str
    subscriptionId: Guid | None = None
    location: str = DEFAULT_LOCATION
    tags: dict[str, str] = {}
    keys: list[str] | None = Field(default=None, min_length=2, max_length=2)


class AzureScenario(_Model):
    tenantId: Guid | None = None
    subscriptions: list[SubscriptionSpec] = []
    admin: AdminSpec | None = None
    users: list[UserSpec] = []
    groups: list[GroupSpec] = []
    applications: list[ApplicationSpec] = []
    servicePrincipals: list[ServicePrincipalSpec] = []
    resourceGroups: list[ResourceGroupSpec] = []
    vaults: list[VaultSpec] = []
    roleAssignments: list[RoleAssignmentSpec] = []
    storageAccounts: list[StorageAccountSpec] = []


def _format(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"{path}: {item['msg']}")
    return "invalid scenario:\n  " + "\n  ".join(lines)


def validate(data: Any) -> AzureScenario:
    if not isinstance(data, dict):
        raise ScenarioError("invalid scenario: (top level): a scenario is a JSON object")
    try:
        return AzureScenario.model_validate({k: v for k, v in data.items() if k not in RESERVED})
    except ValidationError as error:
        raise ScenarioError(_format(error)) from None


def build(spec: AzureScenario) -> AzureState:
    """A new AzureState from a validated scenario."""
    subscriptions = spec.subscriptions or [SubscriptionSpec(subscriptionId=uuid.uuid4())]
    admin = spec.admin or AdminSpec(
        clientId=uuid.uuid4(), clientSecret=uuid.uuid4().hex * 2, objectId=uuid.uuid4()
    )
    state = AzureState(
        tenant_id=str(spec.tenantId or uuid.uuid4()),
        subscription_id=str(subscriptions[0].subscriptionId),
        admin_client_id=str(admin.clientId),
        admin_client_secret=admin.clientSecret,
        admin_object_id=str(admin.objectId),
        admin_application_object_id=str(admin.applicationObjectId or uuid.uuid4()),
        seed_defaults=False,
    )
    for sub in subscriptions:
        state.add_subscription(str(sub.subscriptionId), sub.displayName)
    state.add_admin()
    default_sub = state.subscription_id

    def fail(path: str, message: str) -> ScenarioError:
        return ScenarioError(f"invalid scenario:\n  {path}: {message}")

    def subscription(path: str, value: Guid | None) -> str:
        sub = str(value) if value else default_sub
        if sub.lower() not in state.subscriptions:
            raise fail(f"{path}.subscriptionId", f"subscription '{sub}' is not in 'subscriptions'")
        return sub

    for user in spec.users:
        state.add_principal(
            str(user.id),
            "User",
            user.displayName or user.userPrincipalName,
            user_principal_name=user.userPrincipalName,
        )
    for group in spec.groups:
        state.add_principal(str(group.id), "Group", group.displayName)
    for group in spec.groups:
        state.add_group_members(str(group.id), [str(m) for m in group.members])
    for index, app in enumerate(spec.applications):
        if state.application_by_app_id(str(app.appId)) is not None:
            raise fail(f"applications.{index}.appId", f"appId '{app.appId}' is used twice")
        created = state.add_application(
            str(app.appId),
            app.displayName,
            object_id=str(app.id or uuid.uuid4()),
            sp_object_id=str(app.servicePrincipalId or uuid.uuid4()),
            with_service_principal=app.servicePrincipal,
        )
        created.passwords = [
            PasswordCredential(str(p.keyId or uuid.uuid4()), p.secretText, p.displayName)
            for p in app.passwords
        ]
    for sp in spec.servicePrincipals:
        state.add_principal(
            str(sp.id), "ServicePrincipal", sp.displayName, app_id=str(sp.appId) if sp.appId else None
        )

    def group(path: str, sub: str, name: str, location: str) -> ResourceGroup:
        existing = state.resource_group(sub, name)
        if existing is None:
            existing = ResourceGroup(sub, name, location)
            state.resource_groups[(sub.lower(), name.lower())] = existing
        return existing

    for index, rg in enumerate(spec.resourceGroups):
        sub = subscription(f"resourceGroups.{index}", rg.subscriptionId)
        group(f"resourceGroups.{index}", sub, rg.name, rg.location).tags = dict(rg.tags)

    for index, vault_spec in enumerate(spec.vaults):
        path = f"vaults.{index}"
        sub = subscription(path, vault_spec.subscriptionId)
        rg = group(path, sub, vault_spec.resourceGroup, vault_spec.location)
        if vault_spec.name.lower() in state.vaults:
            raise fail(
                f"{path}.name", f"vault name '{vault_spec.name}' is used twice (vault names are global)"
            )
        vault = Vault(
            vault_spec.name,
            sub,
            rg.name,
            state.tenant_id,
            location=vault_spec.location,
            tags=dict(vault_spec.tags),
            enable_rbac_authorization=vault_spec.enableRbacAuthorization,
            enable_soft_delete=vault_spec.enableSoftDelete,
            enable_purge_protection=vault_spec.enablePurgeProtection,
        )
        for policy in vault_spec.accessPolicies:
            permissions = {k: list(v) for k, v in policy.permissions.model_dump().items() if v}
            vault.access_policies.append(
                AccessPolicy(
                    str(policy.tenantId or state.tenant_id),
                    str(policy.objectId),
                    str(policy.applicationId) if policy.applicationId else None,
                    permissions,
                )
            )
        stamp = now()
        for secret_spec in vault_spec.secrets:
            secret = Secret(secret_spec.name)
            for version in secret_spec.all_versions():
                secret.versions.append(
                    SecretVersion(
                        uuid.uuid4().hex,
                        version.value,
                        version.contentType,
                        version.enabled,
                        version.exp,
                        version.nbf,
                        dict(version.tags) if version.tags else None,
                        stamp,
                        stamp,
                    )
                )
            vault.secrets[secret.name.lower()] = secret
        state.vaults[vault.name.lower()] = vault

    for index, account_spec in enumerate(spec.storageAccounts):
        path = f"storageAccounts.{index}"
        sub = subscription(path, account_spec.subscriptionId)
        rg = group(path, sub, account_spec.resourceGroup, account_spec.location)
        account = StorageAccount(
            account_spec.name, sub, rg.name, account_spec.location, dict(account_spec.tags)
        )
        if account_spec.keys:
            account.keys = list(account_spec.keys)
        state.storage_accounts[account.name.lower()] = account

    for index, ra in enumerate(spec.roleAssignments):
        path = f"roleAssignments.{index}"
        if ra.scope.split("/")[2].lower() not in state.subscriptions:
            raise fail(
                f"{path}.scope",
                f"the scope's subscription '{ra.scope.split('/')[2]}' is not in 'subscriptions'",
            )
        role = ra.role_guid()
        if role.lower() not in state.role_definitions:
            raise fail(f"{path}.roleDefinitionId", f"unknown role definition '{ra.roleDefinitionId}'")
        principal = state.principals.get(str(ra.principalId).lower())
        kind = ra.principalType or (principal.kind if principal else "ServicePrincipal")
        duplicate = next(
            (
                a
                for a in state.role_assignments.values()
                if a.scope.lower() == ra.scope.lower()
                and a.principal_id.lower() == str(ra.principalId)
                and a.role_definition_id.lower() == role.lower()
            ),
            None,
        )
        if duplicate is not None:  # e.g. the admin's Owner assignment of a dumped scenario: keep its id
            if ra.id:
                del state.role_assignments[duplicate.name.lower()]
                duplicate.name = str(ra.id)
                state.role_assignments[duplicate.name.lower()] = duplicate
        else:
            state.add_role_assignment(
                ra.scope, role, str(ra.principalId), kind, name=str(ra.id) if ra.id else new_id(), created=0.0
            )
    return state


def load(state: Any, data: Any) -> None:
    """Validates `data` and replaces `state.azure` (a `emulator.state.State`) with what it describes."""
    state.azure = build(validate(data))


def dump(state: AzureState) -> dict[str, Any]:
    """The state in the scenario format (secret values included: it is an emulator)."""
    sp_with_app = set()
    applications = []
    for app in state.applications.values():
        sp = state.service_principal_by_app_id(app.app_id)
        if sp is not None:
            sp_with_app.add(sp.id.lower())
        if app.app_id.lower() == state.admin_client_id.lower():
            continue
        applications.append(
            {
                "id": app.id,
                "appId": app.app_id,
                "displayName": app.display_name,
                "passwords": [
                    {"keyId": p.key_id, "secretText": p.secret_text, "displayName": p.display_name}
                    for p in app.passwords
                ],
                "servicePrincipalId": sp.id if sp else None,
                "servicePrincipal": sp is not None,
            }
        )
    principals = list(state.principals.values())
    return {
        "tenantId": state.tenant_id,
        "subscriptions": [
            {"subscriptionId": s.id, "displayName": s.display_name} for s in state.subscriptions.values()
        ],
        "admin": {
            "clientId": state.admin_client_id,
            "clientSecret": state.admin_client_secret,
            "objectId": state.admin_object_id,
            "applicationObjectId": state.admin_application_object_id,
        },
        "users": [
            {"id": p.id, "userPrincipalName": p.user_principal_name, "displayName": p.display_name}
            for p in principals
            if p.kind == "User"
        ],
        "groups": [
            {
                "id": p.id,
                "displayName": p.display_name,
                **({"members": sorted(p.members)} if p.members else {}),
            }
            for p in principals
            if p.kind == "Group"
        ],
        "applications": applications,
        "servicePrincipals": [
            {"id": p.id, "appId": p.app_id, "displayName": p.display_name}
            for p in principals
            if p.kind == "ServicePrincipal" and p.id.lower() not in sp_with_app
        ],
        "resourceGroups": [
            {"name": g.name, "subscriptionId": g.subscription_id, "location": g.location, "tags": g.tags}
            for g in state.resource_groups.values()
        ],
        "vaults": [_dump_vault(v) for v in state.vaults.values()],
        "roleAssignments": [
            {
                "id": a.name,
                "scope": a.scope,
                "roleDefinitionId": a.role_definition_id,
                "principalId": a.principal_id,
                "principalType": a.principal_type,
            }
            for a in state.role_assignments.values()
        ],
        "storageAccounts": [
            {
                "name": a.name,
                "resourceGroup": a.resource_group,
                "subscriptionId": a.subscription_id,
                "location": a.location,
                "tags": a.tags,
                "keys": list(a.keys),
            }
            for a in state.storage_accounts.values()
        ],
    }


def _dump_vault(vault: Vault) -> dict[str, Any]:
    return {
        "name": vault.name,
        "resourceGroup": vault.resource_group,
        "subscriptionId": vault.subscription_id,
        "location": vault.location,
        "tags": vault.tags,
        "enableRbacAuthorization": vault.enable_rbac_authorization,
        "enableSoftDelete": vault.enable_soft_delete,
        "enablePurgeProtection": vault.enable_purge_protection,
        "accessPolicies": [
            {
                "objectId": p.object_id,
                "tenantId": p.tenant_id,
                "applicationId": p.application_id,
                "permissions": p.permissions,
            }
            for p in vault.access_policies
        ],
        "secrets": [
            {
                "name": s.name,
                "versions": [
                    {
                        "value": v.value,
                        "contentType": v.content_type,
                        "enabled": v.enabled,
                        "exp": v.exp,
                        "nbf": v.nbf,
                        "tags": v.tags,
                    }
                    for v in s.versions
                ],
            }
            for s in vault.secrets.values()
            if s.deleted_date is None and s.versions
        ],
    }
