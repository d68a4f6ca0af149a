"""Key Vault data plane. Inventory reads secret *metadata* only. Rotation writes new versions and
version properties, and reads one value back only to compare it in memory with what was written.

The inventory's secret list is read through the SDK client's own pipeline (authentication challenge,
proxy, TLS settings) with `send_request`, and its JSON pages are mapped straight to `SecretMeta`: the
SDK's generated models cost about 0.5 ms of CPU per secret to build, which at 200,000 secrets is
minutes of CPU for fields we then copy out again (measured by `make bench`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.keyvault.secrets import SecretClient

from remediations.adapters.retry import with_retry
from remediations.core.model import SecretMeta, SecretVersionMeta
from remediations.core.secret_value import SecretValue

# 25 is Key Vault's page size floor and the unit of the data-plane cost model (docs/limits.md section 2).
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


def _version_meta(props: Any) -> SecretVersionMeta:
    return SecretVersionMeta(
        name=str(props.name),
        version=str(props.version),
        enabled=props.enabled,
        created=props.created_on,
        expires=props.expires_on,
        tags=dict(props.tags or {}),
        content_type=props.content_type,
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

    def _pages(self) -> list[list[dict[str, Any]]]:
        """Every page of the list (maxresults=25, nextLink followed); one call per page, nothing more."""
        pages: list[list[dict[str, Any]]] = []
        url: str | None = f"/secrets?maxresults={PAGE_SIZE}"
        while url:
            page = self._page(url)
            pages.append(list(page.get("value") or ()))
            url = page.get("nextLink")
        return pages

    def list_secret_metadata(self) -> list[SecretMeta]:
        def list_all() -> list[SecretMeta]:
            return [secret_meta_from_item(item) for page in self._pages() for item in page]

        return with_retry(f"list secrets in {self.vault_uri}", list_all)

    def count_secrets(self) -> int:
        """The same calls as `list_secret_metadata`, without building a model per secret (a sweep that
        keeps no secret metadata needs only the count: 200,000 models are seconds of CPU)."""
        return with_retry(f"list secrets in {self.vault_uri}", lambda: sum(map(len, self._pages())))

    def list_versions(self, name: str) -> list[SecretVersionMeta]:
        """Every version's metadata (no values). Requires secrets/list."""

        def list_all() -> list[SecretVersionMeta]:
            return [
                _version_meta(p)
                for p in self._client.list_properties_of_secret_versions(name, max_page_size=PAGE_SIZE)
            ]

        return with_retry(f"list versions of {name}", list_all)

    def set_secret(
        self,
        name: str,
        value: SecretValue,
        *,
        content_type: str | None,
        expires: datetime | None,
        tags: dict[str, str],
    ) -> SecretVersionMeta:
        """A new version (secrets/set). Not retried: each call creates a version, and a failed rotation is
        safe to run again as a whole (the old version stays enabled)."""

        def put() -> SecretVersionMeta:
            secret = self._client.set_secret(
                name, value.reveal(), content_type=content_type, expires_on=expires, tags=tags
            )
            return _version_meta(secret.properties)  # the returned value is dropped here

        return with_retry(f"set a new version of {name}", put, attempts=1)

    def update_version(
        self, name: str, version: str, *, enabled: bool | None = None, tags: dict[str, str] | None = None
    ) -> SecretVersionMeta:
        """Enable/disable or retag one version (secrets/set). Idempotent, so retried."""

        def patch() -> SecretVersionMeta:
            return _version_meta(
                self._client.update_secret_properties(name, version, enabled=enabled, tags=tags)
            )

        return with_retry(f"update version {version} of {name}", patch)

    def value_matches(self, name: str, version: str, value: SecretValue) -> bool:
        """Read the version back (secrets/get) and compare in memory; the read value goes nowhere."""
        return with_retry(
            f"read back version {version} of {name}",
            lambda: value.same_as(self._client.get_secret(name, version).value),
        )

    def is_readable(self, name: str, version: str) -> bool:
        """Whether the version reads back with a non-empty value (used when resuming a rotation)."""
        return with_retry(
            f"read back version {version} of {name}",
            lambda: bool(self._client.get_secret(name, version).value),
        )

    def close(self) -> None:
        self._client.close()
