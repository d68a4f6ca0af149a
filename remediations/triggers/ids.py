"""Strict validation of the resource identifiers that reach ARM, Key Vault and Power Platform URLs.

Every id a caller sends ends up inside a request path. So ids are matched in full against the
documented shape (anchored, ASCII only), after a pre-check that rejects what could change a URL:
`..`, `?`, `#`, `%`, `\\`, whitespace and control characters. Error messages never echo the input.
"""

from __future__ import annotations

import hashlib
import re
import uuid

_FORBIDDEN = re.compile(r"\.\.|[?#%\\\s\x00-\x1f\x7f]")
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
# Resource group: 1-90 of letters, digits, _ - . ( ) and not ending with a period.
_RG = r"[A-Za-z0-9_.()-]{0,89}[A-Za-z0-9_()-]"
# Key Vault name: 3-24, letters/digits/hyphens, starts with a letter, ends with a letter or digit,
# no consecutive hyphens.
_VAULT = r"(?!.*--)[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]"
_SECRET_NAME = r"[A-Za-z0-9-]{1,127}"  # noqa: S105 - a name pattern, not a password
_VERSION = r"[0-9a-fA-F]{32}"
_ENV = r"[A-Za-z0-9-]{1,64}"
_CONNECTION = r"[A-Za-z0-9-]{1,64}"
_API = r"shared_[a-z0-9]{1,60}"

VAULT_ID = re.compile(
    rf"^/subscriptions/(?P<sub>{_GUID})/resourceGroups/(?P<rg>{_RG})"
    rf"/providers/Microsoft\.KeyVault/vaults/(?P<vault>{_VAULT})$",
    re.IGNORECASE,
)
SECRET_ARM_ID = re.compile(
    rf"^/subscriptions/{_GUID}/resourceGroups/{_RG}/providers/Microsoft\.KeyVault/vaults/{_VAULT}"
    rf"/secrets/{_SECRET_NAME}$",
    re.IGNORECASE,
)
SECRET_URL = re.compile(
    rf"^https://{_VAULT}\.vault\.(?:azure\.net|azure\.cn|usgovcloudapi\.net)/secrets/{_SECRET_NAME}(?:/{_VERSION})?$",
    re.IGNORECASE,
)
FLOW_ID = re.compile(
    rf"^/providers/Microsoft\.ProcessSimple/environments/{_ENV}/flows/{_GUID}$", re.IGNORECASE
)
CONNECTION_ID = re.compile(
    rf"^/providers/Microsoft\.PowerApps/apis/{_API}/connections/{_CONNECTION}$", re.IGNORECASE
)
ENVIRONMENT_NAME = re.compile(rf"^{_ENV}$")
GUID = re.compile(rf"^{_GUID}$")


def _precheck(value: str, what: str) -> None:
    if not value.isascii():
        raise ValueError(f"{what} must be ASCII")
    if _FORBIDDEN.search(value):
        raise ValueError(
            f"{what} must not contain '..', '?', '#', '%', '\\', whitespace or control characters"
        )


def _checked(value: str, what: str, shape: str, *patterns: re.Pattern[str]) -> str:
    """`value` when it passes the pre-check and matches one of `patterns`; else a ValueError naming
    the expected `shape` (never the input)."""
    _precheck(value, what)
    if not any(pattern.match(value) for pattern in patterns):
        raise ValueError(f"must be {shape}")
    return value


def vault_id(value: str) -> str:
    return _checked(
        value,
        "a vault id",
        "a Key Vault resource id: /subscriptions/{guid}/resourceGroups/{name}"
        "/providers/Microsoft.KeyVault/vaults/{3-24 letters, digits, hyphens}",
        VAULT_ID,
    )


def is_vault_id(value: str) -> bool:
    try:
        vault_id(value)
    except ValueError:
        return False
    return True


def secret_id(value: str) -> str:
    return _checked(
        value,
        "a secret id",
        "a secret resource id (<vault id>/secrets/{name}) "
        "or a secret URL https://{vault}.vault.azure.net/secrets/{name}[/{version}]",
        SECRET_ARM_ID,
        SECRET_URL,
    )


def flow_id(value: str) -> str:
    return _checked(
        value,
        "a flow id",
        "a flow id: /providers/Microsoft.ProcessSimple/environments/{environment}/flows/{guid}",
        FLOW_ID,
    )


def connection_id(value: str) -> str:
    return _checked(
        value,
        "a connection id",
        "a connection id: /providers/Microsoft.PowerApps/apis/shared_{api}/connections/{name}",
        CONNECTION_ID,
    )


def environment_name(value: str) -> str:
    shape = "a Power Platform environment name (1-64 letters, digits, hyphens)"
    return _checked(value, "an environment name", shape, ENVIRONMENT_NAME)


def principal_id(value: str) -> str:
    return str(uuid.UUID(_checked(value, "a principal id", "a principal object id (a GUID)", GUID)))


def delivery_key(*parts: str) -> str:
    """A delivery's idempotency key: the same parts give the same 48 hex digits (a Table-safe key)."""
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:48]


def vault_id_in(text: str) -> str | None:
    """The Key Vault resource id that `text` is or starts with (alert target ids may name a child)."""
    match = re.match(
        rf"^/subscriptions/{_GUID}/resourceGroups/{_RG}/providers/Microsoft\.KeyVault/vaults/{_VAULT}(?=/|$)",
        text.strip(),
        re.IGNORECASE,
    )
    if match is None or _FORBIDDEN.search(match.group(0)):
        return None
    return match.group(0)
