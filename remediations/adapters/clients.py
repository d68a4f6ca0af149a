"""`Clients`: everything that talks to Azure, built once per invocation (no import-time singletons).

`Clients` (in `remediations.ports`) is a Protocol so the engine and remediations depend on shapes, not on
the SDK. `AzureClients` is the real one: one SDK client per service and subscription, a SecretClient per
vault URL, all reused for the invocation and closed at the end. It knows only public endpoints and
standard environment variables (AZURE_*, HTTPS_PROXY, REQUESTS_CA_BUNDLE).
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from azure.core.credentials import TokenCredential
from azure.identity import DefaultAzureCredential

from remediations.adapters.authorization import Authorization
from remediations.adapters.graph_api import Directory
from remediations.adapters.graph_applications import Applications
from remediations.adapters.http import EnvOnceSession, shared_transport
from remediations.adapters.identity import own_identity
from remediations.adapters.keyvault_data import KeyVaultSecrets
from remediations.adapters.keyvault_mgmt import KeyVaultManagement
from remediations.adapters.powerplatform import PowerPlatform
from remediations.adapters.storage_keys import StorageKeys
from remediations.ports import (
    ApplicationsApi,
    AuthorizationApi,
    Clients,
    DirectoryApi,
    KeyVaultManagementApi,
    KeyVaultSecretsApi,
    PowerPlatformApi,
    StorageKeysApi,
)

# The ports, re-exported for callers that still import them from here.
__all__ = [
    "ApplicationsApi",
    "AuthorizationApi",
    "AzureClients",
    "Clients",
    "DirectoryApi",
    "KeyVaultManagementApi",
    "KeyVaultSecretsApi",
    "PowerPlatformApi",
    "StorageKeysApi",
]


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

    def own_object_id(self) -> str | None:
        """From the claims of the credential's ARM token (cached by the credential)."""
        return own_identity(self.credential).object_id

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
