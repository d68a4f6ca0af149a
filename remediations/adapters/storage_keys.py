"""Storage account access keys (`listKeys`, `regenerateKey`) via `StorageManagementClient`, for the
storage-key rotator. Key values are wrapped in `SecretValue` as soon as the SDK returns them.

Permissions: Microsoft.Storage/storageAccounts/listkeys/action and .../regeneratekey/action.
"""

from __future__ import annotations

from typing import Any

from azure.core.credentials import TokenCredential
from azure.mgmt.storage import StorageManagementClient
from azure.mgmt.storage.models import StorageAccountRegenerateKeyParameters

from remediations.adapters.retry import with_retry
from remediations.core.secret_value import SecretValue


def _keys(result: Any) -> dict[str, SecretValue]:
    # azure-mgmt-storage 22+ models are mappings, so the `keys` field is `keys_property`.
    listed = getattr(result, "keys_property", None)
    if listed is None and not callable(getattr(result, "keys", None)):
        listed = result.keys
    return {str(k.key_name).lower(): SecretValue(str(k.value)) for k in (listed or []) if k.value}


class StorageKeys:
    def __init__(self, credential: TokenCredential, subscription_id: str, **client_kwargs: Any) -> None:
        self.subscription_id = subscription_id
        self._client = StorageManagementClient(credential, subscription_id, retry_total=0, **client_kwargs)

    def list_keys(self, resource_group: str, account: str) -> dict[str, SecretValue]:
        return with_retry(
            f"listKeys on {account}",
            lambda: _keys(self._client.storage_accounts.list_keys(resource_group, account)),
        )

    def regenerate_key(self, resource_group: str, account: str, key_name: str) -> dict[str, SecretValue]:
        """Regenerate key1 or key2; returns both keys. Repeating it only regenerates the same key again."""
        parameters = StorageAccountRegenerateKeyParameters(key_name=key_name)
        return with_retry(
            f"regenerateKey {key_name} on {account}",
            lambda: _keys(self._client.storage_accounts.regenerate_key(resource_group, account, parameters)),
        )

    def close(self) -> None:
        self._client.close()
