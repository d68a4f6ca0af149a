"""Rails at write time: one writer per vault, and the last-manager check against the vault as it is now.

A run plans from its snapshot; another run (another thread, another instance) may have changed the
vault since. So each vault's writes are made under a lease (`VaultLeases`): in one process a lock,
across instances a lease row in Azure Table storage taken and released with ETag / If-Match. Under
the lease the vault's access policies are read again, once for all the vault's actions (the lease
keeps this app's other writers out), and each access-policy action is judged against them
(`LeasedVault`, rules in core/write_check.py): already made (by another run) -> recorded as a
`noop` "already applied", one write in all; drifted from a reviewed plan -> `skipped`; would now
remove the last manager (role assignments over the vault read once, only when an action takes
management) -> `skipped`. A migration to RBAC (core/rbac_migration.py) is judged on the vault as first
read under the lease and the role assignments bearing on it, read once: anything but what it was
planned from (its `before`) -> `skipped` as drifted, before its first create, for any plan (the switch
takes away every access the plan does not carry over), also when the run only creates and leaves the
switch to a later run (those creates are what the switch will rely on); the assignments interrupted
attempts of the same migration created (handed on by reconcile) are not counted as drift, so a
reviewed migration resumes after a crash. One read after the vault's writes verifies them.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from remediations.core.model import (
    AccessPolicyChange,
    Action,
    Change,
    Outcome,
    RoleAssignment,
    RoleDefinition,
    Scope,
    Vault,
    VaultRef,
)
from remediations.core.rbac import known_definitions
from remediations.core.rbac_migration import is_migration
from remediations.core.write_check import (
    EntryCheck,
    after_writes,
    confirm,
    migration_drift,
    policy_changes,
    switches_to_rbac,
)
from remediations.ports import AzureCallFailed, Clients
from remediations.shell.tables import update_if_unchanged

LEASE_TABLE = "vaultguardleases"
# Longer than any one vault's writes take; a holder that died frees the vault after this.
LEASE_SECONDS = 120.0
WAIT_SECONDS = 180.0


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
    """One writer per vault across instances: a row per vault in the app's Table storage. Any lease
    key a fix names is held the same way (a DLP policy by its display name; `Remediation.lease_key`).

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
        with contextlib.suppress(HttpResponseError):  # a 412 is None: it expired and someone else holds it
            update_if_unchanged(self._table, free, etag, mode=UpdateMode.REPLACE)


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


class LeasedVault:
    """One vault under its lease: read once, every access-policy action judged against that read with
    this lease's earlier writes made, and the writes verified by one read after them all.

    The lease keeps other writers of this app out, so the read taken under it stays current for
    the vault's actions; only a failed write (its effect unknown) makes the next judgement read again.
    A read taken after writes is their verification."""

    def __init__(
        self,
        target: str,
        clients: Clients,
        *,
        pinned: bool = False,
        roles: Mapping[str, RoleDefinition] | None = None,
    ) -> None:
        self._target = target  # any plan target; parsed as a vault only for access-policy actions
        self._clients = clients
        self._pinned = pinned
        self._roles = roles if roles is not None else known_definitions()  # names a migration's `before`
        self._vault: Vault | None = None
        self._read_at: datetime | None = None
        self._found: tuple[Vault | None, datetime] | None = None  # the first read, before any write
        self._assignments: list[RoleAssignment] | None = None
        self._changes: dict[str, tuple[AccessPolicyChange, ...]] = {}  # by action id: its deltas
        self._sent: list[tuple[Action, Outcome]] = []  # written, not verified yet
        self._verified: dict[str, Outcome] = {}

    def _read(self) -> Vault | None:
        scope = Scope.parse(self._target)
        listed = self._clients.keyvault_management(scope.subscription_id).list_vaults(scope)
        vault = next((v for v in listed if v.id.lower() == self._target.lower()), None)
        self._vault, self._read_at = vault, datetime.now(UTC)
        if self._found is None:
            self._found = (vault, self._read_at)
        for action, sent in self._sent:
            self._verified[action.id] = confirm(self._policy_changes(action), sent, vault)
        self._sent = []
        return vault

    def _policy_changes(self, action: Action) -> tuple[AccessPolicyChange, ...]:
        """The action's access-policy deltas, picked out once for its judgement, write and verification."""
        if action.id not in self._changes:
            self._changes[action.id] = policy_changes(action)
        return self._changes[action.id]

    def settle(self, action: Action, own: tuple[Change, ...] = ()) -> Outcome | None:
        """The outcome the vault as it is now calls for (already applied, drifted, or skipped by the
        last-manager rail; a migration that drifted, not counting `own`: what interrupted attempts of
        it created), or None when the write should go ahead."""
        if is_migration(action):  # the switch, or the creates a later run's switch relies on
            return self._settle_migration(action, own)
        changes = self._policy_changes(action)
        if not changes:
            return None
        vault = self._vault if self._read_at is not None else self._read()
        if vault is None:  # gone: the fix's own apply records that
            return None
        assert self._read_at is not None  # set by the read above
        check = EntryCheck(action, changes, vault, self._read_at)
        settled = check.settle(pinned=self._pinned)
        if settled is not None or not check.takes_management():
            return settled
        return check.last_manager_skip(self._role_assignments(vault))

    def _role_assignments(self, vault: Vault) -> list[RoleAssignment]:
        """The role assignments at, above and below the vault: read once per lease."""
        if self._assignments is None:
            api = self._clients.authorization(VaultRef.parse(vault.id).subscription_id)
            self._assignments = api.list_role_assignments_at(vault.id)
        return self._assignments

    def _settle_migration(self, action: Action, own: tuple[Change, ...]) -> Outcome | None:
        """The migration judged on the vault as found under the lease (before this lease's writes: an
        earlier action of the same plan is not drift) and the role assignments bearing on it."""
        try:
            vault, read_at = self._found if self._found is not None else (self._read(), datetime.now(UTC))
            assignments = self._role_assignments(vault) if vault is not None else []
        except AzureCallFailed as error:
            why = f"re-read the vault under its lease: {error}; nothing written"
            return Outcome(action_id=action.id, status="failed", before=action.before, error=why)
        return migration_drift(action, vault, assignments, self._roles, read_at=read_at, own=own)

    def wrote(self, action: Action, outcome: Outcome) -> bool:
        """Record the fix's outcome; True when it waits for the read after the writes: sent deltas (to
        verify) and failed ones (some steps may have gone through: the read says what the entry holds).
        After anything but a clean send the vault's state is unknown: the next judgement reads again."""
        changes = self._policy_changes(action)
        if not changes:
            if switches_to_rbac(action):
                self._read_at = None  # the vault changed its permission model: judge the next on a new read
            return False
        if outcome.verified or outcome.status not in ("applied", "failed"):
            self._read_at = None  # e.g. the vault was gone: whatever comes next reads it again
            return False
        self._sent.append((action, outcome))
        if outcome.status == "applied" and self._vault is not None:
            self._vault = after_writes(self._vault, changes)
        else:
            self._read_at = None
        return True

    def verify(self) -> dict[str, Outcome]:
        """One read after the vault's writes; each written action's outcome as a read after it shows
        it. A read that fails leaves them applied but not verified, with the reason."""
        if self._sent:
            try:
                self._read()
            except AzureCallFailed as error:  # applied stays applied, unverified; failed keeps its error
                for action, sent in self._sent:
                    unread = {"error": f"written, not verified: {error}"} if sent.status == "applied" else {}
                    self._verified[action.id] = sent.model_copy(update=unread)
                self._sent = []
        verified, self._verified = self._verified, {}
        return verified
