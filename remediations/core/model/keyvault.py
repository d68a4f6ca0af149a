"""Key Vault and directory: vaults with their access policies and secret metadata, role assignments and
definitions, identities. No field can hold a secret value."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field

from remediations.core.model.base import Frozen, age_text

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


def expand_secret_permissions(granted: tuple[str, ...] | list[str]) -> frozenset[str]:
    """Lower-case effective secret permissions, with `all` expanded to every secret permission."""
    return _expanded(tuple(granted))


# Detectors ask for every access-policy entry (10,000s per sweep) and entries repeat a few permission sets.
@lru_cache(maxsize=1024)
def _expanded(granted: tuple[str, ...]) -> frozenset[str]:
    lowered = {p.lower() for p in granted}
    if "all" in lowered:
        lowered.discard("all")
        lowered.update(SECRET_PERMISSIONS)
    return frozenset(lowered)


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
    """One `properties.accessPolicies[]` entry. It validates from ARM's JSON (camelCase) as well as by
    field name, so a vault list page is read into these in one pydantic-core pass
    (adapters/keyvault_mgmt.py)."""

    tenant_id: str = Field(validation_alias=AliasChoices("tenant_id", "tenantId"))
    object_id: str = Field(validation_alias=AliasChoices("object_id", "objectId"))
    application_id: str | None = Field(None, validation_alias=AliasChoices("application_id", "applicationId"))
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
