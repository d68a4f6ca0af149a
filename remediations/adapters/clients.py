"""`Clients`: everything that talks to Azure, built once per invocation (no import-time singletons).

`Clients` is a Protocol so the engine and remediations depend on shapes, not on the SDK.
`AzureClients` is the real one: one SDK client per service and subscription, a SecretClient per
vault URL, all reused for the invocation and closed at the end. It knows only public endpoints and
standard environment variables (AZURE_*, HTTPS_PROXY, REQUESTS_CA_BUNDLE).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Protocol

from azure.core.credentials import TokenCredential
from azure.identity import DefaultAzureCredential

from remediations.adapters.authorization import Authorization
from remediations.adapters.dataverse import PrincipalKind
from remediations.adapters.graph_api import Directory
from remediations.adapters.graph_applications import Applications
from remediations.adapters.http import EnvOnceSession, shared_transport
from remediations.adapters.keyvault_data import KeyVaultSecrets
from remediations.adapters.keyvault_mgmt import KeyVaultManagement
from remediations.adapters.powerplatform import PowerPlatform
from remediations.adapters.storage_keys import StorageKeys
from remediations.core.model import (
    AccessPolicy,
    AccessPolicyChange,
    Flow,
    Identity,
    RoleAssignment,
    RoleAssignmentChange,
    RoleDefinition,
    Scope,
    SecretMeta,
    SecretVersionMeta,
    Share,
    Vault,
)
from remediations.core.secret_value import SecretValue


class KeyVaultManagementApi(Protocol):
    def list_vaults(self, scope: Scope) -> list[Vault]: ...

    def update_access_policy(
        self, resource_group: str, vault_name: str, change: AccessPolicyChange
    ) -> tuple[AccessPolicy, ...]: ...


class KeyVaultSecretsApi(Protocol):
    def list_secret_metadata(self) -> list[SecretMeta]: ...

    def count_secrets(self) -> int: ...

    # Rotation (rotate_secret): versions metadata, a new version, version properties, a read-back check.
    def list_versions(self, name: str) -> list[SecretVersionMeta]: ...

    def set_secret(
        self,
        name: str,
        value: SecretValue,
        *,
        content_type: str | None,
        expires: datetime | None,
        tags: dict[str, str],
    ) -> SecretVersionMeta: ...

    def update_version(
        self, name: str, version: str, *, enabled: bool | None = None, tags: dict[str, str] | None = None
    ) -> SecretVersionMeta: ...

    def value_matches(self, name: str, version: str, value: SecretValue) -> bool: ...

    def is_readable(self, name: str, version: str) -> bool: ...


class AuthorizationApi(Protocol):
    def list_role_assignments(self, scope: Scope) -> list[RoleAssignment]: ...

    # RBAC remediations (issue 7): lists at any scope string, role definitions once per subscription,
    # creates with deterministic names, deletes that treat "already gone" as done.
    def list_role_assignments_at(self, scope: str) -> list[RoleAssignment]: ...

    def list_role_definitions(self) -> list[RoleDefinition]: ...

    def create_role_assignment(self, change: RoleAssignmentChange) -> RoleAssignment | None: ...

    def delete_role_assignment(self, change: RoleAssignmentChange) -> bool: ...


class DirectoryApi(Protocol):
    def resolve(self, object_ids: Sequence[str]) -> list[Identity]: ...

    def object_ids_for_app_ids(self, app_ids: Sequence[str]) -> dict[str, str]: ...

    def group_members(self, group_id: str) -> list[str]: ...


class PowerPlatformApi(Protocol):
    """Power Platform (adapters/powerplatform.py): BAP environments, Dataverse flows, owners, shares and
    security roles, Power Apps admin connections, DLP. Environment, connection and DLP lists return the
    API's items; flows and shares come mapped."""

    def list_environments(self) -> list[dict[str, Any]]: ...

    def get_environment(self, environment: str) -> dict[str, Any]: ...

    def role_holders(self, environment: str) -> dict[str, tuple[str, ...]]: ...

    def list_flows(self, environment: str) -> list[Flow]: ...

    def get_flow(self, environment: str, flow: str) -> Flow: ...

    def flow_permissions(self, environment: str, flow: str) -> list[Share]: ...

    def revoke_flow_access(
        self, environment: str, flow: str, principals: Sequence[tuple[str, PrincipalKind]]
    ) -> None: ...

    def turn_off_flow(self, environment: str, flow: str) -> None: ...

    def list_connections(self, environment: str, api: str = "shared_keyvault") -> list[dict[str, Any]]: ...

    def connection_permissions(self, environment: str, api: str, connection: str) -> list[Share]: ...

    def modify_connection_permissions(
        self, environment: str, api: str, connection: str, *, delete: Sequence[str]
    ) -> None: ...

    def list_dlp_policies(self) -> list[dict[str, Any]]: ...

    def get_dlp_policy(self, name: str) -> dict[str, Any]: ...

    def create_dlp_policy(self, body: dict[str, Any]) -> dict[str, Any]: ...

    def update_dlp_policy(self, name: str, body: dict[str, Any]) -> dict[str, Any]: ...


class ApplicationsApi(Protocol):
    def password_key_ids(self, app_object_id: str) -> list[str]: ...

    def add_password(
        self, app_object_id: str, display_name: str, end: datetime
    ) -> tuple[str, SecretValue]: ...

    def remove_password(self, app_object_id: str, key_id: str) -> None: ...


class StorageKeysApi(Protocol):
    def list_keys(self, resource_group: str, account: str) -> dict[str, SecretValue]: ...

    def regenerate_key(self, resource_group: str, account: str, key_name: str) -> dict[str, SecretValue]: ...


class Clients(Protocol):
    def keyvault_management(self, subscription_id: str) -> KeyVaultManagementApi: ...

    def keyvault_secrets(self, vault_uri: str) -> KeyVaultSecretsApi: ...

    def authorization(self, subscription_id: str) -> AuthorizationApi: ...

    def directory(self) -> DirectoryApi: ...

    def applications(self) -> ApplicationsApi: ...

    def storage(self, subscription_id: str) -> StorageKeysApi: ...
    def power_platform(self) -> PowerPlatformApi: ...


class AzureClients:
    """The real clients. Use as a context manager so connections are closed.

    Every SDK client shares one HTTP session (adapters/http.py): bounded pools, environment read
    once. Secret clients are not kept: a sweep reads each vault once, and keeping 5,000 of them
    would hold their pipelines for the whole run (the Key Vault challenge is cached per host by the
    SDK, so a later client for the same vault does not pay it again).
    """

    def __init__(self, credential: TokenCredential | None = None) -> None:
        if credential is None:
            # Managed identity in Azure; AZURE_CLIENT_ID/SECRET/TENANT_ID or a developer login locally.
            credential = DefaultAzureCredential()
        self.credential = credential
        self._lock = threading.Lock()  # inventory reads vaults concurrently
        self._session = EnvOnceSession()
        self._mgmt: dict[str, KeyVaultManagement] = {}
        self._authz: dict[str, Authorization] = {}
        self._directory: Directory | None = None
        self._applications: Applications | None = None
        self._storage: dict[str, StorageKeys] = {}
        self._power_platform: PowerPlatform | None = None

    def keyvault_management(self, subscription_id: str) -> KeyVaultManagement:
        with self._lock:
            if subscription_id not in self._mgmt:
                self._mgmt[subscription_id] = KeyVaultManagement(
                    self.credential, subscription_id, **self._transport()
                )
            return self._mgmt[subscription_id]

    def _transport(self) -> dict[str, Any]:
        return {"transport": shared_transport(self._session)}

    def keyvault_secrets(self, vault_uri: str) -> KeyVaultSecrets:
        return KeyVaultSecrets(self.credential, vault_uri, **self._transport())

    def authorization(self, subscription_id: str) -> Authorization:
        with self._lock:
            if subscription_id not in self._authz:
                self._authz[subscription_id] = Authorization(
                    self.credential, subscription_id, **self._transport()
                )
            return self._authz[subscription_id]

    def directory(self) -> Directory:
        with self._lock:
            if self._directory is None:
                self._directory = Directory(self.credential, **self._transport())
            return self._directory

    def applications(self) -> Applications:
        with self._lock:
            if self._applications is None:
                self._applications = Applications(self.credential, **self._transport())
            return self._applications

    def storage(self, subscription_id: str) -> StorageKeys:
        with self._lock:
            if subscription_id not in self._storage:
                self._storage[subscription_id] = StorageKeys(
                    self.credential, subscription_id, **self._transport()
                )
            return self._storage[subscription_id]

    def power_platform(self) -> PowerPlatform:
        with self._lock:
            if self._power_platform is None:
                self._power_platform = PowerPlatform(self.credential, **self._transport())
            return self._power_platform

    def close(self) -> None:
        with self._lock:
            closables: list[
                KeyVaultManagement
                | KeyVaultSecrets
                | Authorization
                | Directory
                | Applications
                | StorageKeys
                | PowerPlatform
            ] = [
                *self._mgmt.values(),
                *self._authz.values(),
                *self._storage.values(),
            ]
            for single in (self._directory, self._applications, self._power_platform):
                if single is not None:
                    closables.append(single)
            self._mgmt, self._authz, self._directory = {}, {}, None
            self._applications, self._storage, self._power_platform = None, {}, None
        for client in closables:
            client.close()
        self._session.close()
        close_credential = getattr(self.credential, "close", None)
        if callable(close_credential):
            close_credential()

    def __enter__(self) -> AzureClients:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
