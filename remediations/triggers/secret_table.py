"""The deep secret inventory in the app's run table (partition `secrets`, one row per vault):
metadata only (names, expiry dates, tags, count, when read; the model has no value field), compressed
and split over binary properties like the run records (Table storage caps a property at 64 KiB)."""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from remediations.core.model import InventoryError
from remediations.shell.secret_inventory import StoredSecrets
from remediations.triggers.runs import CHUNK_BYTES, CHUNKS_PER_ENTITY, RunStore, _as_datetime, _chunks_of

if TYPE_CHECKING:
    from azure.data.tables import TableClient

PARTITION = "secrets"


def _row_key(vault_id: str) -> str:
    # A resource id holds '/', which RowKey forbids.
    return hashlib.sha256(vault_id.lower().encode()).hexdigest()


class TableSecretInventory:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    @classmethod
    def from_env(cls) -> TableSecretInventory:
        return cls(RunStore.from_env().table)

    def get_many(self, vault_ids: Iterable[str], *, with_lists: bool = True) -> dict[str, StoredSecrets]:
        found: dict[str, StoredSecrets] = {}
        for vault_id in vault_ids:
            try:
                entity = self._table.get_entity(PARTITION, _row_key(vault_id))
            except ResourceNotFoundError:
                continue
            refused = entity.get("Refused")
            found[vault_id.lower()] = StoredSecrets(
                vault_id=vault_id,
                taken_at=_as_datetime(entity.get("TakenAt")),
                # Counts only: the row's SecretCount, without decompressing the list.
                secrets=json.loads(zlib.decompress(b"".join(_chunks_of(entity)))) if with_lists else (),
                total=None if with_lists else int(entity.get("SecretCount") or 0),
                refused=InventoryError.model_validate_json(refused) if refused else None,
            )
        return found

    def put(self, stored: StoredSecrets) -> None:
        raw = json.dumps([s.model_dump(mode="json") for s in stored.secrets], separators=(",", ":"))
        compressed = zlib.compress(raw.encode(), 6)
        chunks = [compressed[i : i + CHUNK_BYTES] for i in range(0, len(compressed), CHUNK_BYTES)]
        if len(chunks) > CHUNKS_PER_ENTITY:  # one entity (1 MiB); a vault's list is far smaller
            return  # too large to keep: the quick sweep skips this vault's secret fixes with a reason
        entity: dict[str, object] = {
            "PartitionKey": PARTITION,
            "RowKey": _row_key(stored.vault_id),
            "VaultId": stored.vault_id,
            "TakenAt": stored.taken_at,
            "SecretCount": stored.count,
            "Chunks": len(chunks),
        }
        if stored.refused is not None:
            entity["Refused"] = stored.refused.model_dump_json()
        for index, chunk in enumerate(chunks):
            entity[f"Body{index:02d}"] = chunk
        self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)
