"""Ports: the shapes the core and the fixes depend on, and the typed failures they handle.

Nothing here does I/O or imports an Azure SDK, so importing a fix module or the detectors stays pure;
`adapters/` implements these (`AzureClients`) and is the only code that calls Azure.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from remediations.core.model import (
    AccessPolicyChange,
    ConnectionReference,
    Flow,
    Identity,
    InventoryError,
    PrincipalKind,
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


class AzureCallFailed(Exception):
    """A call to Azure failed; `status` is the HTTP status when there was a response."""

    def __init__(
        self,
        operation: str,
        status: int | None,
        code: str | None,
        message: str,
        retry_after: float | None = None,
        inner_code: str | None = None,
    ) -> None:
        self.operation = operation
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        # The service's finer reason under `code` (`error.innererror.code`): Key Vault's 403 `Forbidden`
        # is `AccessDenied` / `ForbiddenByPolicy` / `ForbiddenByRbac` (a missing grant) or
        # `ForbiddenByFirewall` / `ForbiddenByConnection` (the network, which no grant fixes).
        self.inner_code = inner_code
        label = f"HTTP {status}" if status is not None else "no response"
        codes = "/".join(c for c in (code, inner_code) if c)
        super().__init__(f"{operation}: {label}{f' {codes}' if codes else ''}: {message}")

    @property
    def transient(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500

    def as_inventory_error(
        self, resource_id: str, operation: str, *, partial: bool = False
    ) -> InventoryError:
        """What a failed read leaves in the snapshot: the run goes on and reports it."""
        return InventoryError(
            resource_id=resource_id,
            operation=operation,
            status=self.status,
            message=str(self),
            retry_after=self.retry_after,
            partial=partial,
        )


class ResourceGone(AzureCallFailed):
    """404: the resource no longer exists. For a delta that removes access this is a no-op."""


# Handed each page of a vault list as it is mapped, and whether more pages follow.
VaultPage = Callable[[list[Vault], bool], None]


class KeyVaultManagementApi(Protocol):
    def list_vaults(
        self, scope: Scope, on_page: VaultPage | None = None, on_started: Callable[[], None] | None = None
    ) -> list[Vault]:
        """`on_page`: each page as it is mapped. `on_started`: called once, on the calling thread, when
        the list's first request is under way (start the reads that run beside it there)."""
        ...

    def update_access_policy(self, resource_group: str, vault_name: str, change: AccessPolicyChange) -> None:
        """PUT one delta; its response echoes the request, so `list_vaults` on the vault verifies."""
        ...

    def set_rbac_authorization(self, resource_group: str, vault_name: str, enabled: bool) -> bool:
        """PATCH `properties.enableRbacAuthorization`, then re-read the vault: the value it now has."""
        ...


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

    # RBAC-mode fixes: lists at any scope string, role definitions once per subscription,
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
    """Power Platform admin routes (adapters/powerplatform.py). Lists return the API's items."""

    def list_environments(self) -> list[dict[str, Any]]: ...

    def get_environment(self, environment: str) -> dict[str, Any]: ...

    def role_holders(self, environment: str) -> dict[str, tuple[str, ...]]: ...

    def principal_names(self, environment: str) -> dict[str, str]: ...

    def list_flows(self, environment: str) -> list[Flow]: ...

    def get_flow(self, environment: str, flow: str) -> Flow: ...

    def flow_permissions(self, environment: str, flow: str) -> list[Share]: ...

    def revoke_flow_access(
        self, environment: str, flow: str, principals: Sequence[tuple[str, PrincipalKind]]
    ) -> None: ...

    def turn_off_flow(self, environment: str, flow: str) -> None: ...

    def remove_security_role(self, environment: str, principal_id: str, role: str) -> None: ...

    def get_flow_client_data(self, environment: str, flow: str) -> dict[str, Any]: ...

    def update_flow_client_data(self, environment: str, flow: str, data: dict[str, Any]) -> None: ...

    def get_connection_reference(self, environment: str, logical_name: str) -> ConnectionReference | None: ...

    def update_connection_reference(self, environment: str, reference_id: str, connection: str) -> None: ...

    def security_roles(self, environment: str, principal_id: str) -> tuple[str, ...]: ...

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

    def own_object_id(self) -> str | None:
        """The object id of the identity the app signs in as (None when it cannot be told)."""
        ...
