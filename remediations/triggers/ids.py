"""Strict validation of the resource identifiers that reach ARM, Key Vault and Power Platform URLs.

Every id a caller sends ends up inside a request path. So ids are matched in full against the
documented shape (anchored, ASCII only), after a pre-check that rejects what could change a URL:
`..`, `?`, `#`, `%`, `\\`, whitespace and control characters. Error messages never echo the input.
"""

from __future__ import annotations

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


def vault_id(value: str) -> str:
    _precheck(value, "a vault id")
    if not VAULT_ID.match(value):
        raise ValueError(
            "must be a Key Vault resource id: /subscriptions/{guid}/resourceGroups/{name}"
            "/providers/Microsoft.KeyVault/vaults/{3-24 letters, digits, hyphens}"
        )
    return value


def is_vault_id(value: str) -> bool:
    try:
        vault_id(value)
    except ValueError:
        return False
    return True


def secret_id(value: str) -> str:
    _precheck(value, "a secret id")
    if not (SECRET_ARM_ID.match(value) or SECRET_URL.match(value)):
        raise ValueError(
            "must be a secret resource id (<vault id>/secrets/{name}) "
            "or a secret URL https://{vault}.vault.azure.net/secrets/{name}[/{version}]"
        )
    return value


def flow_id(value: str) -> str:
    _precheck(value, "a flow id")
    if not FLOW_ID.match(value):
        raise ValueError(
            "must be a flow id: /providers/Microsoft.ProcessSimple/environments/{environment}/flows/{guid}"
        )
    return value


def connection_id(value: str) -> str:
    _precheck(value, "a connection id")
    if not CONNECTION_ID.match(value):
        raise ValueError(
            "must be a connection id: /providers/Microsoft.PowerApps/apis/shared_{api}/connections/{name}"
        )
    return value


def environment_name(value: str) -> str:
    _precheck(value, "an environment name")
    if not ENVIRONMENT_NAME.match(value):
        raise ValueError("must be a Power Platform environment name (1-64 letters, digits, hyphens)")
    return value


def principal_id(value: str) -> str:
    _precheck(value, "a principal id")
    if not GUID.match(value):
        raise ValueError("must be a principal object id (a GUID)")
    return str(uuid.UUID(value))


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
