"""The deep secret inventory in the app's run table (partition `secrets`, one row per vault):
metadata only (names, expiry dates, tags, count, when read; the model has no value field), compressed
and split over binary properties like the run records (Table storage caps a property at 64 KiB)."""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from remediations.core.model import InventoryError
from remediations.shell.secret_inventory import StoredSecrets
from remediations.triggers.runs import CHUNK_BYTES, CHUNKS_PER_ENTITY, RunStore, _as_datetime, _chunks_of

if TYPE_CHECKING:
    from azure.data.tables import TableClient

PARTITION = "secrets"


# A ticket's or an alert's few vaults are read by key; more than this, by one partition query.
POINT_READS = 16
# What a quick sweep that keeps counts only selects of each row.
COUNT_COLUMNS = ("VaultId", "TakenAt", "SecretCount", "Refused")
# learn.microsoft.com/rest/api/storageservices/payload-format-for-table-service-operations
NO_METADATA = "application/json;odata=nometadata"


def _stored(entity: Mapping[str, Any], vault_id: str, with_lists: bool) -> StoredSecrets:
    refused = entity.get("Refused")
    return StoredSecrets(
        vault_id=str(entity.get("VaultId") or vault_id),
        taken_at=_as_datetime(entity.get("TakenAt")),
        # Counts only: the row's SecretCount, without decompressing the list.
        secrets=json.loads(zlib.decompress(b"".join(_chunks_of(entity)))) if with_lists else (),
        total=None if with_lists else int(entity.get("SecretCount") or 0),
        refused=InventoryError.model_validate_json(refused) if refused else None,
    )


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
        """A point read per vault for the few a ticket, alert or event names; past `POINT_READS`, one
        partition query (pages of 1,000) costs fewer calls than a GET per vault."""
        wanted = list(dict.fromkeys(v.lower() for v in vault_ids))
        if len(wanted) > POINT_READS:
            every = self.get_all(with_lists=with_lists)
            return {v: every[v] for v in wanted if v in every}
        found: dict[str, StoredSecrets] = {}
        for vault_id in wanted:
            try:
                entity = self._table.get_entity(PARTITION, _row_key(vault_id))
            except ResourceNotFoundError:
                continue
            found[vault_id] = _stored(entity, vault_id, with_lists)
        return found

    def get_all(self, *, with_lists: bool = True) -> dict[str, StoredSecrets]:
        """The whole partition, paged by the service (at most 1,000 entities a page, docs/limits.md
        1f). Counts only: the list bodies are not selected, so a page carries four short properties
        per vault, and without OData type annotations (`$format` nometadata; `TakenAt` then arrives
        as ISO text): the client's typed deserialization cost 30 us a row, 150 ms of CPU at 5,000
        vaults (Azurite), about half of it parsing the timestamps."""
        if with_lists:  # the compressed lists are Edm.Binary: their type annotation is needed
            rows = self._table.query_entities(f"PartitionKey eq '{PARTITION}'", results_per_page=1000)
        else:
            rows = self._table.query_entities(
                f"PartitionKey eq '{PARTITION}'",
                select=list(COUNT_COLUMNS),
                results_per_page=1000,
                format=NO_METADATA,
            )
        found: dict[str, StoredSecrets] = {}
        for entity in rows:
            vault_id = str(entity.get("VaultId") or "")
            if vault_id:
                found[vault_id.lower()] = _stored(entity, vault_id, with_lists)
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
