"""The last deep inventory of each vault's secrets (names, expiry dates, tags, count; never values),
kept between sweeps so a quick sweep plans from it without a data-plane call per vault.

The deep sweep (and a per-vault refresh when an alert names a vault) lists secrets as before and saves
them here; a quick sweep reads vaults, policies and role assignments only and fills each vault's
secrets from this store. A vault with no stored inventory gets a partial "list secrets" error, so the
remediations that need secret metadata skip it with a reason, as they do for a refused list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Executor, Future
from datetime import UTC, datetime
from typing import Protocol

from pydantic import BaseModel, ConfigDict

from remediations.core.model import InventoryError, Scope, SecretMeta, Snapshot, Vault, age_text

NO_DEEP_INVENTORY = (
    "no deep secret inventory is stored for this vault yet (the deep sweep, "
    "VAULTGUARD_DEEP_SWEEP_SCHEDULE, or an alert naming the vault reads it)"
)


class StoredSecrets(BaseModel):
    """One vault's secret metadata as the last deep read saw it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vault_id: str
    taken_at: datetime
    secrets: tuple[SecretMeta, ...] = ()
    # The deep read was refused (403: no data-plane list): the quick sweep skips as the deep one did.
    refused: InventoryError | None = None
    # Set when a store answered with counts only (`with_lists=False`): `secrets` is then empty.
    total: int | None = None

    @property
    def count(self) -> int:
        return len(self.secrets) if self.total is None else self.total

    def age(self, now: datetime) -> str:
        """`3h 05m` since the deep read: what a plan built from it says about its data."""
        return age_text(self.taken_at, now)


class SecretInventoryStore(Protocol):
    def get_many(self, vault_ids: Iterable[str], *, with_lists: bool = True) -> dict[str, StoredSecrets]:
        """Stored inventories by lower-cased vault id; vaults with none are absent. `with_lists=False`:
        a store may answer with each vault's count only (`total`), without reading its list."""
        ...

    def get_all(self, *, with_lists: bool = True) -> dict[str, StoredSecrets]:
        """Every stored vault's inventory (as `get_many`), in as few reads as the store allows: what a
        run over a subscription needs before it knows which vaults the list will return."""
        ...

    def put(self, stored: StoredSecrets) -> None: ...


class MemorySecretInventory:
    """In-process store: the CLI, bench and tests (the function app uses the Table one)."""

    def __init__(self) -> None:
        self._rows: dict[str, StoredSecrets] = {}

    def get_many(self, vault_ids: Iterable[str], *, with_lists: bool = True) -> dict[str, StoredSecrets]:
        return {k: self._rows[k] for k in (v.lower() for v in vault_ids) if k in self._rows}

    def get_all(self, *, with_lists: bool = True) -> dict[str, StoredSecrets]:
        return dict(self._rows)

    def put(self, stored: StoredSecrets) -> None:
        self._rows[stored.vault_id.lower()] = stored


class DeepInventory:
    """Saves a deep read into the store: each vault's list as it arrives (so memory stays one vault's
    list when the snapshot keeps counts only), then the refused lists once the read is done. A
    transient failure keeps the older row: it is retried, not a new answer."""

    def __init__(self, store: SecretInventoryStore) -> None:
        self._store = store
        self._taken_at = datetime.now(UTC)

    def listed(self, vault: Vault, secrets: tuple[SecretMeta, ...]) -> None:
        self._store.put(StoredSecrets(vault_id=vault.id, taken_at=self._taken_at, secrets=secrets))

    def refused(self, snapshot: Snapshot) -> None:
        for vault in snapshot.vaults:
            error = snapshot.secret_list_error(vault.id)
            if error is not None and error.partial:
                self._store.put(StoredSecrets(vault_id=vault.id, taken_at=self._taken_at, refused=error))


def stored_for(
    scope: Scope, store: SecretInventoryStore, *, with_lists: bool = True
) -> dict[str, StoredSecrets]:
    """What a quick run over `scope` needs from the store, asked before its vaults are listed so that
    both reads run side by side: the one vault's row, or every stored vault (the Table store reads its
    partition in pages of 1,000, not one GET per vault) for a subscription or resource group. Rows of
    vaults the list does not return are left unused."""
    if scope.vault_name is not None:
        return store.get_many([scope.resource_id], with_lists=with_lists)
    return store.get_all(with_lists=with_lists)


# A listed vault, the same vault with its stored secrets, and the error when it has none.
_Joined = tuple[Vault, Vault, InventoryError | None]


def with_stored_secrets(
    snapshot: Snapshot,
    stored: Mapping[str, StoredSecrets],
    *,
    keep_secrets: bool = True,
    joined: Mapping[int, _Joined] | None = None,
) -> Snapshot:
    """Pure over the store's answer (by lower-cased vault id): a quick snapshot (no secret list) with
    each vault's stored secrets, and a partial error (skipped by the remediations that need them) where
    there are none. `keep_secrets=False` fills counts only, as a deep read with the same option keeps
    them. `joined`: vaults already joined as their page arrived (`StoredJoin`), by `id()` of the vault
    object they were made from; a vault the snapshot holds in another object is joined again."""
    vaults: list[Vault] = []
    errors: list[InventoryError] = []
    for vault in snapshot.vaults:
        earlier = joined.get(id(vault)) if joined is not None else None
        if earlier is not None and earlier[0] is vault:
            result, error = earlier[1], earlier[2]
        else:
            result, error = _join(vault, stored, keep_secrets)
        vaults.append(result)
        if error is not None:
            errors.append(error)
    return snapshot.model_copy(
        update={"vaults": tuple(vaults), "errors": snapshot.errors + tuple(errors), "secrets_listed": True}
    )


def _join(
    vault: Vault, stored: Mapping[str, StoredSecrets], keep_secrets: bool
) -> tuple[Vault, InventoryError | None]:
    found = stored.get(vault.id.lower())
    if found is None:
        missing = InventoryError(
            resource_id=vault.id, operation="list secrets", message=NO_DEEP_INVENTORY, partial=True
        )
        return vault, missing
    if found.refused is not None:
        return vault, found.refused
    update = {
        "secrets": found.secrets if keep_secrets else (),
        "secret_count": found.count,
        "secrets_as_of": found.taken_at,
    }
    return vault.model_copy(update=update), None


class StoredJoin:
    """Joins each page of the vault list with the stored inventory as the page is mapped, while the next
    page is in flight, so that after the last page only that page's vaults are left to join. `stored`
    reads the store; `start` runs it on `pool`, beside the list (asked once the list's first page is
    requested), and the first page waits for its answer if it is not in yet.
    `on_joined` is handed each page's joined vaults (a quick run detects on them, shell/page_detection.py)."""

    def __init__(
        self,
        stored: Callable[[], Mapping[str, StoredSecrets]],
        pool: Executor,
        *,
        keep_secrets: bool,
        on_joined: Callable[[list[Vault]], None] | None = None,
    ) -> None:
        self._read, self._pool = stored, pool
        self._stored: Future[Mapping[str, StoredSecrets]] | None = None
        self._keep_secrets = keep_secrets
        self._joined: dict[int, _Joined] = {}
        self._on_joined = on_joined

    def start(self) -> None:
        """Starts the store's read (once)."""
        if self._stored is None:
            self._stored = self._pool.submit(self._read)

    def _answer(self) -> Mapping[str, StoredSecrets]:
        self.start()
        assert self._stored is not None
        return self._stored.result()

    def page(self, vaults: list[Vault], more: bool) -> None:
        """A `VaultPage` hook (ports.py)."""
        stored = self._answer()
        joined = []
        for vault in vaults:
            row = self._joined[id(vault)] = (vault, *_join(vault, stored, self._keep_secrets))
            joined.append(row[1])
        if self._on_joined is not None:
            self._on_joined(joined)

    def snapshot(self, snapshot: Snapshot) -> Snapshot:
        """`snapshot` with every vault's stored secrets (`with_stored_secrets`), reusing the pages'."""
        return with_stored_secrets(
            snapshot, self._answer(), keep_secrets=self._keep_secrets, joined=self._joined
        )


def inventory_ages(snapshot: Snapshot, now: datetime | None = None) -> list[str]:
    """One note per vault whose secret metadata came from a stored deep inventory, with its age."""
    at = now or datetime.now(UTC)
    return [
        f"secret metadata of vault {v.name} is from the deep inventory of "
        f"{v.secrets_as_of.isoformat(timespec='seconds')} "
        f"({age_text(v.secrets_as_of, at)} old)"
        for v in snapshot.vaults
        if v.secrets_as_of is not None
    ]
