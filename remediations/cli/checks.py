"""What the CLI checks before it reads or writes anything, so a first try fails in one line with what to
do (exit 2) instead of a traceback or a silent "0 change(s)": remediation names, Azure sign-in, audit
storage and Power Platform environment names.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ClientAuthenticationError

from remediations.adapters.errors import AzureCallFailed
from remediations.adapters.identity import ARM_SCOPE
from remediations.shell.audit import AuditSink, TableAuditSink
from remediations.shell.settings import STORAGE_CONNECTION, STORAGE_TABLE_URI, AppSettings

SIGN_IN_HELP = (
    "sign in with `az login` (or `azd auth login`), or set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
    "AZURE_CLIENT_SECRET for a service principal, or run where a managed identity is available"
)


class UsageError(Exception):
    """Bad input or a missing prerequisite the user can fix: one line on stderr, exit 2."""


def require_sign_in(credential: TokenCredential) -> None:
    """Ask for one ARM token before any read, so a missing sign-in is reported once, not once per client
    (DefaultAzureCredential logs its whole chain at WARNING on every failed attempt)."""
    identity_logger = logging.getLogger("azure.identity")
    level = identity_logger.level
    identity_logger.setLevel(logging.CRITICAL)
    try:
        credential.get_token(ARM_SCOPE)
    except ClientAuthenticationError as error:  # CredentialUnavailableError is one
        raise UsageError(f"no Azure sign-in (DefaultAzureCredential got no token): {SIGN_IN_HELP}") from error
    finally:
        identity_logger.setLevel(level)


def audit_sink(settings: AppSettings | None = None) -> AuditSink:
    """The audit table; a one-line error naming the settings when storage is not configured."""
    settings = settings or AppSettings.from_env()
    if settings.storage_connection is None and settings.storage_table_uri is None:
        raise UsageError(
            "audit storage is not configured (every change is audited before and after it is made): set "
            f"{STORAGE_CONNECTION} to a Storage connection string (`UseDevelopmentStorage=true` for Azurite) "
            f"or {STORAGE_TABLE_URI} to https://<account>.table.core.windows.net"
        )
    return TableAuditSink.from_settings(settings)


def unknown_remediations(requested: Iterable[str], known: Iterable[str]) -> None:
    """Unknown remediation ids are an error listing the valid ones (a typo must not plan nothing)."""
    valid = sorted(known)
    unknown = [name for name in requested if name not in valid]
    if unknown:
        raise UsageError(
            f"unknown remediation {', '.join(repr(n) for n in unknown)}; valid: {', '.join(valid)}"
        )


def _label(item: dict[str, Any]) -> str:
    display = (item.get("properties") or {}).get("displayName")
    return f"{item.get('name')} ({display})" if display else str(item.get("name"))


def match_environments(requested: Sequence[str], listed: Sequence[dict[str, Any]]) -> tuple[str, ...]:
    """`--environment` values (environment id / name, or display name, case-insensitive) -> environment
    names. A display name shared by several environments is an error listing them."""
    resolved: list[str] = []
    for wanted in requested:
        key = wanted.strip().lower()
        by_id = [i for i in listed if key in {str(i.get("name", "")).lower(), str(i.get("id", "")).lower()}]
        by_display = [
            i
            for i in listed
            if str((i.get("properties") or {}).get("displayName", "")).strip().lower() == key
        ]
        matches = by_id or by_display
        if len(matches) > 1:
            labels = "; ".join(_label(i) for i in matches)
            raise UsageError(
                f"--environment {wanted!r} matches {len(matches)} environments: {labels}; give the id"
            )
        if not matches:
            known = "; ".join(_label(i) for i in listed) or "none listed"
            raise UsageError(
                f"--environment {wanted!r}: no environment has that id or name (environments: {known})"
            )
        resolved.append(str(matches[0]["name"]))
    return tuple(resolved)


def resolve_environments(
    requested: Sequence[str], list_environments: Callable[[], list[dict[str, Any]]]
) -> tuple[str, ...]:
    """Names for `--environment` values; as given when the environment list cannot be read (a caller who
    may read one environment but not list them all can still name it by id)."""
    if not requested:
        return ()
    try:
        listed = list_environments()
    except AzureCallFailed:
        return tuple(requested)
    return match_environments(requested, listed)
