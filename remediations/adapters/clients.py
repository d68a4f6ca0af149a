"""`Clients`: everything that talks to Azure, built once per invocation (no import-time singletons).

`Clients` (in `remediations.ports`) is a Protocol so the engine and remediations depend on shapes, not on
the SDK. `AzureClients` is the real one: one SDK client per service and subscription, a SecretClient per
vault URL, all reused for the invocation and closed at the end. It knows only public endpoints and
standard environment variables (AZURE_*, HTTPS_PROXY, REQUESTS_CA_BUNDLE).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, TypeVar, cast

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


class _Closable(Protocol):
    def close(self) -> None: ...


Made = TypeVar("Made", bound=_Closable)


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
        # One client per service (and subscription), made on first use and closed with the rest.
        self._made: dict[tuple[Callable[..., _Closable], tuple[str, ...]], _Closable] = {}

    def _new(self, adapter: Callable[..., Made], *args: str) -> Made:
        """Every adapter takes the credential, then its subscription or vault URL, then SDK options."""
        return adapter(self.credential, *args, transport=shared_transport(self._session))

    def _once(self, adapter: Callable[..., Made], *args: str) -> Made:
        with self._lock:
            if (adapter, args) not in self._made:
                self._made[adapter, args] = self._new(adapter, *args)
            return cast(Made, self._made[adapter, args])

    def keyvault_management(self, subscription_id: str) -> KeyVaultManagement:
        return self._once(KeyVaultManagement, subscription_id)

    def keyvault_secrets(self, vault_uri: str) -> KeyVaultSecrets:
        return self._new(KeyVaultSecrets, vault_uri)

    def authorization(self, subscription_id: str) -> Authorization:
        return self._once(Authorization, subscription_id)

    def directory(self) -> Directory:
        return self._once(Directory)

    def applications(self) -> Applications:
        return self._once(Applications)

    def storage(self, subscription_id: str) -> StorageKeys:
        return self._once(StorageKeys, subscription_id)

    def power_platform(self) -> PowerPlatform:
        return self._once(PowerPlatform)

    def own_object_id(self) -> str | None:
        """From the claims of the credential's ARM token (cached by the credential)."""
        return own_identity(self.credential).object_id

    def close(self) -> None:
        with self._lock:
            closables, self._made = list(self._made.values()), {}
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
