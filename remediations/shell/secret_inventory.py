"""The last deep inventory of each vault's secrets (names, expiry dates, tags, count; never values),
kept between sweeps so a quick sweep plans from it without a data-plane call per vault.

The deep sweep (and a per-vault refresh when an alert names a vault) lists secrets as before and saves
them here; a quick sweep reads vaults, policies and role assignments only and fills each vault's
secrets from this store. A vault with no stored inventory gets a partial "list secrets" error, so the
remediations that need secret metadata skip it with a reason, as they do for a refused list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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


def with_stored_secrets(
    snapshot: Snapshot, stored: Mapping[str, StoredSecrets], *, keep_secrets: bool = True
) -> Snapshot:
    """Pure over the store's answer (by lower-cased vault id): a quick snapshot (no secret list) with
    each vault's stored secrets, and a partial error (skipped by the remediations that need them) where
    there are none. `keep_secrets=False` fills counts only, as a deep read with the same option keeps
    them."""
    vaults: list[Vault] = []
    errors: list[InventoryError] = []
    for vault in snapshot.vaults:
        found = stored.get(vault.id.lower())
        if found is None or found.refused is not None:
            missing = InventoryError(
                resource_id=vault.id, operation="list secrets", message=NO_DEEP_INVENTORY, partial=True
            )
            errors.append(missing if found is None or found.refused is None else found.refused)
            vaults.append(vault)
            continue
        update = {
            "secrets": found.secrets if keep_secrets else (),
            "secret_count": found.count,
            "secrets_as_of": found.taken_at,
        }
        vaults.append(vault.model_copy(update=update))
    return snapshot.model_copy(
        update={"vaults": tuple(vaults), "errors": snapshot.errors + tuple(errors), "secrets_listed": True}
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
