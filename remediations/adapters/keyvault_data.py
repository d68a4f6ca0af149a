"""Key Vault data plane: secret *metadata* only. Inventory never reads a secret value.

The secret list is read through the SDK client's own pipeline (authentication challenge, proxy, TLS
settings) with `send_request`, and its JSON pages are mapped straight to `SecretMeta`. The SDK's
generated models cost about 0.5 ms of CPU per secret to build, which at 200,000 secrets is minutes of
CPU for fields we then copy out again (measured by `make bench`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.keyvault.secrets import SecretClient

from remediations.adapters.retry import with_retry
from remediations.core.model import SecretMeta

# 25 is Key Vault's page size floor and the unit of the data-plane cost model (LIMITS.md section 2).
PAGE_SIZE = 25


def _timestamp(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int | float) else None


def secret_meta_from_item(item: dict[str, Any]) -> SecretMeta:
    """One item of `GET /secrets` (SecretItem): id, attributes, tags, contentType. No value exists here."""
    secret_id = str(item["id"])
    attributes = item.get("attributes") or {}
    enabled = attributes.get("enabled")
    return SecretMeta(
        name=secret_id.rstrip("/").rsplit("/", 1)[-1],
        id=secret_id,
        enabled=enabled if isinstance(enabled, bool) else None,
        expires=_timestamp(attributes.get("exp")),
        tags={str(k): str(v) for k, v in (item.get("tags") or {}).items()},
        content_type=item.get("contentType"),
    )


class KeyVaultSecrets:
    """Thin adapter over one vault's `SecretClient`."""

    def __init__(self, credential: TokenCredential, vault_uri: str, **client_kwargs: Any) -> None:
        self.vault_uri = vault_uri
        self._client = SecretClient(vault_uri, credential, retry_total=0, **client_kwargs)

    def _page(self, url: str) -> dict[str, Any]:
        response = self._client.send_request(HttpRequest("GET", url))
        if response.status_code != 200:
            raise HttpResponseError(response=response)
        page: dict[str, Any] = response.json()
        return page

    def list_secret_metadata(self) -> list[SecretMeta]:
        """Every page of the list (maxresults=25, nextLink followed); one call per page, nothing more."""

        def list_all() -> list[SecretMeta]:
            found: list[SecretMeta] = []
            url: str | None = f"/secrets?maxresults={PAGE_SIZE}"
            while url:
                page = self._page(url)
                found.extend(secret_meta_from_item(item) for item in page.get("value") or ())
                url = page.get("nextLink")
            return found

        return with_retry(f"list secrets in {self.vault_uri}", list_all)

    def close(self) -> None:
        self._client.close()
