"""Key Vault data plane: secret *metadata* only. Inventory never reads a secret value."""

from __future__ import annotations

from azure.core.credentials import TokenCredential
from azure.keyvault.secrets import SecretClient

from remediations.adapters.retry import with_retry
from remediations.core.model import SecretMeta

# 25 is Key Vault's page size floor and the unit of the data-plane cost model (LIMITS.md section 2).
PAGE_SIZE = 25


class KeyVaultSecrets:
    """Thin adapter over one vault's `SecretClient`."""

    def __init__(self, credential: TokenCredential, vault_uri: str) -> None:
        self.vault_uri = vault_uri
        self._client = SecretClient(vault_uri, credential, retry_total=0)

    def list_secret_metadata(self) -> list[SecretMeta]:
        def list_all() -> list[SecretMeta]:
            return [
                SecretMeta(
                    name=str(p.name),
                    id=str(p.id),
                    enabled=p.enabled,
                    expires=p.expires_on,
                    tags=dict(p.tags or {}),
                    content_type=p.content_type,
                )
                for p in self._client.list_properties_of_secrets(max_page_size=PAGE_SIZE)
            ]

        return with_retry(f"list secrets in {self.vault_uri}", list_all)

    def close(self) -> None:
        self._client.close()
