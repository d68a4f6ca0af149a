"""Key Vault data plane. Inventory reads secret *metadata* only. Rotation writes new versions and
version properties, and reads one value back only to compare it in memory with what was written."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from azure.core.credentials import TokenCredential
from azure.keyvault.secrets import SecretClient

from remediations.adapters.retry import with_retry
from remediations.core.model import SecretMeta, SecretVersionMeta
from remediations.core.secret_value import SecretValue

# 25 is Key Vault's page size floor and the unit of the data-plane cost model (LIMITS.md section 2).
PAGE_SIZE = 25


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
