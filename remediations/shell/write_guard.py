"""Rails at write time: one writer per vault, and the last-manager check against the vault as it is now.

A run plans from its snapshot; another run (another thread, another instance) may have changed the
vault since. So each vault's writes are made under a lease (`VaultLeases`): in one process a lock,
across instances a lease row in Azure Table storage taken and released with ETag / If-Match. Under
the lease the vault's access policies and the role assignments that cover it are read again and an
access-policy action is judged against them: already made (by another run) -> recorded as a `noop`
"already applied", one write in all; would now remove the last manager -> `skipped`.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from remediations.core.access_policy import entry_of, last_manager_reason, simulate
from remediations.core.model import AccessPolicyChange, Action, Outcome, Scope, Snapshot, VaultRef
from remediations.core.pinned import drift_reason
from remediations.ports import Clients
from remediations.shell.tables import update_if_unchanged

LEASE_TABLE = "vaultguardleases"
# Longer than any one vault's writes take; a holder that died frees the vault after this.
LEASE_SECONDS = 120.0
WAIT_SECONDS = 180.0
ALREADY_APPLIED = "already applied: the vault already shows this change (made by another run)"


class LeaseTimeout(RuntimeError):
    pass


class VaultLeases(Protocol):
    def hold(self, vault_id: str) -> contextlib.AbstractContextManager[None]: ...


class LocalLeases:
    """One writer per vault within this process (threads of one runner or one worker)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    @contextlib.contextmanager
    def hold(self, vault_id: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault(vault_id.lower(), threading.Lock())
        with lock:
            yield


PROCESS_LEASES = LocalLeases()


class TableLeases:
    """One writer per vault across instances: a row per vault in the app's Table storage.

    Taking the lease is an insert (free vault) or an If-Match replace of a released or expired row;
    a 409/412 means another holder won, so wait and try again. Release is an If-Match replace with
    the ETag we were given, so a lease that expired and was taken over is not released by us.
    The process lock is held too, so threads of one process do not spin on the table.
    """

    def __init__(
        self, table: Any, *, lease_seconds: float = LEASE_SECONDS, wait_seconds: float = WAIT_SECONDS
    ):
        self._table = table
        self._lease = lease_seconds
        self._wait = wait_seconds
        self._created = False

    @contextlib.contextmanager
    def hold(self, vault_id: str) -> Iterator[None]:
        with PROCESS_LEASES.hold(vault_id):
            key = hashlib.sha256(vault_id.lower().encode()).hexdigest()
            etag = self._take(key, vault_id)
            try:
                yield
            finally:
                self._release(key, etag)

    def _row(self, key: str, vault_id: str, holder: str, expires: datetime) -> dict[str, Any]:
        return {
            "PartitionKey": "vault",
            "RowKey": key,
            "VaultId": vault_id,
            "Holder": holder,
            "Expires": expires,
        }

    def _take(self, key: str, vault_id: str) -> str:
        if not self._created:
            with contextlib.suppress(ResourceExistsError):
                self._table.create_table()
            self._created = True
        holder = uuid.uuid4().hex
        deadline = time.monotonic() + self._wait
        delay = 0.05
        while True:
            now = datetime.now(UTC)
            row = self._row(key, vault_id, holder, now + timedelta(seconds=self._lease))
            try:
                current = self._table.get_entity("vault", key)
            except ResourceNotFoundError:
                current = None
            try:
                if current is None:
                    return str(self._table.create_entity(row)["etag"])
                expires = current.get("Expires")
                if not current.get("Holder") or (isinstance(expires, datetime) and expires <= now):
                    etag = current.metadata["etag"]
                    taken = update_if_unchanged(self._table, row, etag, mode=UpdateMode.REPLACE)
                    if taken is not None:
                        return taken
            except (ResourceExistsError, HttpResponseError) as error:
                if getattr(error, "status_code", None) not in (409, 412):
                    raise
            if time.monotonic() >= deadline:
                raise LeaseTimeout(f"vault {vault_id} stayed leased by another run for {self._wait:.0f}s")
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _release(self, key: str, etag: str) -> None:
        free = {"PartitionKey": "vault", "RowKey": key, "Holder": "", "Expires": datetime.now(UTC)}
        with contextlib.suppress(HttpResponseError):  # 412: it expired and someone else holds it now
            self._table.update_entity(
                free, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
            )


def table_leases(
    storage_connection: str | None, table_uri: str | None, lease_seconds: float = LEASE_SECONDS
) -> VaultLeases:
    """Leases in the app's Table storage when it is configured, else this process only.
    `lease_seconds`: how long a vault stays blocked after its holder died."""
    from azure.data.tables import TableClient  # noqa: PLC0415 - only when the app has storage

    if storage_connection:
        table = TableClient.from_connection_string(storage_connection, LEASE_TABLE)
        return TableLeases(table, lease_seconds=lease_seconds)
    if table_uri:
        from azure.identity import DefaultAzureCredential  # noqa: PLC0415

        table = TableClient(table_uri, LEASE_TABLE, credential=DefaultAzureCredential())
        return TableLeases(table, lease_seconds=lease_seconds)
    return PROCESS_LEASES


def _shows(change: AccessPolicyChange, held: set[str]) -> bool:
    wanted = {p.lower() for p in change.permissions.secrets}
    return not (wanted & held) if change.operation == "remove" else wanted <= held


def recheck(action: Action, clients: Clients, *, pinned: bool = False) -> Outcome | None:
    """For an access-policy action, the outcome the vault as it is now calls for (already applied,
    skipped by the last-manager rail, or for a `pinned` (reviewed) plan skipped as drifted when the
    entry no longer shows the action's `before`), or None when the write should go ahead."""
    changes = [c for c in action.changes if isinstance(c, AccessPolicyChange)]
    if not changes or len(changes) != len(action.changes):
        return None
    ref = VaultRef.parse(action.target)
    scope = Scope(subscription_id=ref.subscription_id, resource_group=ref.resource_group, vault_name=ref.name)
    listed = clients.keyvault_management(ref.subscription_id).list_vaults(scope)
    vault = next((v for v in listed if v.id.lower() == action.target.lower()), None)
    if vault is None:
        return None  # gone: the fix's own apply records that
    entry = entry_of(vault.access_policies, changes[0])
    held = {p.lower() for p in entry.permissions.secrets} if entry is not None else set()
    if all(_shows(c, held) for c in changes):
        return Outcome(
            action_id=action.id,
            status="noop",
            before=action.before,
            after=entry.permissions.as_dict() if entry is not None else {},
            error=ALREADY_APPLIED,
            verified=True,
        )
    drift = drift_reason(action, entry.permissions.as_dict() if entry is not None else {}) if pinned else None
    if drift is not None:
        before = entry.permissions.as_dict() if entry is not None else {}
        return Outcome(action_id=action.id, status="skipped", before=before, error=drift)
    if entry is None:
        return None
    assignments = clients.authorization(ref.subscription_id).list_role_assignments_at(vault.id)
    now = Snapshot(scope=scope, taken_at=datetime.now(UTC), role_assignments=tuple(assignments))
    reason = last_manager_reason(vault, list(vault.access_policies), now, entry, simulate(entry, changes))
    if reason is None:
        return None
    return Outcome(action_id=action.id, status="skipped", before=entry.permissions.as_dict(), error=reason)
