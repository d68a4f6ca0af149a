"""Run store on Azure Table Storage: ticket results by ticketId, alert handling by alert id, Key Vault
events by event id + vault, queue scope runs by sweep + scope (`scope-{key}`, deliveries counted so a
redelivery is marked duplicate), an index.

Layout (one table, `VAULTGUARD_RUNS_TABLE`, default `vaultguardruns`):

| PartitionKey | RowKey | what |
|---|---|---|
| `{kind}-{key}` (ticket, alert, scope) | `head` | fingerprint, status, times, first body chunks |
| same | `part-0001`... | further body chunks when the result is large |
| `index` | `{inverted ms}-{kind}-{key}` | a summary per run, so listing newest first is one range read |

Why chunks: a property holds at most 64 KiB and an entity at most 1 MiB. The result JSON is
zlib-compressed and cut into binary properties of 64,000 bytes, 12 per entity; head and parts are
written in one entity-group transaction (same partition), so a reader never sees half a result.
Results over `MAX_COMPRESSED_BYTES` (about 20 MB of JSON) are refused with `ResultTooLarge` instead
of being cut short. Idempotency: the head is created with `create_entity` (insert, fails if it
exists), so two concurrent requests with one ticketId cannot both run.
"""

from __future__ import annotations

import contextlib
import json
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from remediations.shell import settings as names
from remediations.shell.tables import update_if_unchanged
from remediations.triggers.storage import table_client

if TYPE_CHECKING:
    from azure.data.tables import TableClient

# "plan": a dry-run ticket's pinned plan (per scope), kept for its approval; "approval": the run that
# applied it, keyed by ticket id.
RunKind = Literal["ticket", "alert", "scope", "event", "plan", "approval"]
CHUNK_BYTES = 64_000
CHUNKS_PER_ENTITY = 12
MAX_ENTITIES = 3
MAX_COMPRESSED_BYTES = CHUNK_BYTES * CHUNKS_PER_ENTITY * MAX_ENTITIES
INDEX_PARTITION = "index"
_INVERT_BASE = 10**13
_created_tables: set[tuple[str, str]] = set()
# Longer than a ticket or alert run takes; a record older than this and still unfinished was left
# by a worker that died (killed, crashed, timed out).
DEFAULT_STALE_SECONDS = 600.0
UNFINISHED = frozenset({"running", "received"})


def stale_after(env: Mapping[str, str] | None = None) -> timedelta:
    raw = (os.environ if env is None else env).get(names.STALE_RUN_SECONDS, "").strip()
    try:
        seconds = float(raw) if raw else DEFAULT_STALE_SECONDS
    except ValueError:
        seconds = DEFAULT_STALE_SECONDS
    return timedelta(seconds=seconds if 0 < seconds < 86_400 else DEFAULT_STALE_SECONDS)


class ResultTooLarge(ValueError):
    pass


@dataclass(frozen=True)
class StoredRun:
    kind: RunKind
    key: str
    fingerprint: str
    status: str
    created_at: datetime
    updated_at: datetime
    body: dict[str, Any] | None


@dataclass(frozen=True)
class RunSummaryRow:
    kind: RunKind
    key: str
    status: str
    created_at: datetime
    dry_run: bool | None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.key,
            "status": self.status,
            "createdAt": self.created_at.isoformat(),
            "dryRun": self.dry_run,
        }


def runs_table_name(env: Mapping[str, str] | None = None) -> str:
    source = os.environ if env is None else env
    return source.get(names.RUNS_TABLE, "").strip() or names.DEFAULT_RUNS_TABLE


class RunStore:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RunStore:
        name = runs_table_name(env)
        table = table_client(name, env)
        marker = (table.url, name)
        if marker not in _created_tables:
            with contextlib.suppress(ResourceExistsError):
                table.create_table()
            _created_tables.add(marker)
        return cls(table)

    @property
    def table(self) -> TableClient:
        """The run table (the sweep budget keeps its rows here too, partition `budget`)."""
        return self._table

    # --- records ----------------------------------------------------------------------------

    def get(self, kind: RunKind, key: str) -> StoredRun | None:
        partition = _partition(kind, key)
        try:
            head = self._table.get_entity(partition, "head")
        except ResourceNotFoundError:
            return None
        chunks = _chunks_of(head)
        for number in range(1, int(head.get("Parts", 0)) + 1):
            part = self._table.get_entity(partition, f"part-{number:04d}")
            chunks.extend(_chunks_of(part))
        body = json.loads(zlib.decompress(b"".join(chunks))) if chunks else None
        return StoredRun(
            kind=kind,
            key=key,
            fingerprint=str(head.get("Fingerprint", "")),
            status=str(head.get("Status", "")),
            created_at=_as_datetime(head.get("CreatedAt")),
            updated_at=_as_datetime(head.get("UpdatedAt")),
            body=body,
        )

    def reserve(
        self,
        kind: RunKind,
        key: str,
        fingerprint: str,
        body: Mapping[str, Any],
        status: str,
        dry_run: bool | None = None,
    ) -> StoredRun | None:
        """Insert the record if absent and return None; if present, return what is stored (unchanged)."""
        now = datetime.now(UTC)
        index_key = f"{_INVERT_BASE - int(now.timestamp() * 1000):013d}-{kind}-{key[:200]}"
        columns = {"Fingerprint": fingerprint, "Status": status, "CreatedAt": now, "UpdatedAt": now}
        head, parts = _entities(kind, key, body, {**columns, "IndexKey": index_key})
        try:
            if parts:
                self._table.submit_transaction([("create", head), *_replacing(parts)])
            else:
                self._table.create_entity(head)
        except ResourceExistsError:
            return self.get(kind, key)
        except TableTransactionError as error:  # the head's insert conflicted inside the batch
            if _is_conflict(error):
                return self.get(kind, key)
            raise
        self._write_index(index_key, kind, key, status, now, dry_run)
        return None

    def claim_stale(self, kind: RunKind, key: str, older_than: timedelta) -> bool:
        """Take over a record left `running`/`received` for longer than `older_than` (its worker died):
        True for exactly one caller (If-Match on the record's ETag), which then runs it again."""
        partition = _partition(kind, key)
        try:
            head = self._table.get_entity(partition, "head")
        except ResourceNotFoundError:
            return False
        updated = _as_datetime(head.get("UpdatedAt"))
        if head.get("Status") not in UNFINISHED or datetime.now(UTC) - updated < older_than:
            return False
        claim = {"PartitionKey": partition, "RowKey": "head", "UpdatedAt": datetime.now(UTC)}
        # None: another re-send took it over first
        return update_if_unchanged(self._table, claim, head.metadata["etag"]) is not None

    def save(
        self,
        kind: RunKind,
        key: str,
        fingerprint: str,
        body: Mapping[str, Any],
        status: str,
        dry_run: bool | None = None,
    ) -> None:
        """Replace the record's body and status (after the run); created time and index row kept."""
        partition = _partition(kind, key)
        current = self._table.get_entity(partition, "head")
        now = datetime.now(UTC)
        index_key = str(current.get("IndexKey", ""))
        columns = {
            "Fingerprint": fingerprint,
            "Status": status,
            "CreatedAt": current.get("CreatedAt", now),
            "UpdatedAt": now,
            "IndexKey": index_key,
        }
        head, parts = _entities(kind, key, body, columns)
        self._table.submit_transaction(_replacing([head, *parts]))
        if index_key:
            self._write_index(index_key, kind, key, status, _as_datetime(head["CreatedAt"]), dry_run)

    def keep(self, kind: RunKind, key: str, body: Mapping[str, Any]) -> None:
        """Store a document (a pinned plan) under the same chunked layout, without an index row: it is
        part of its ticket's record, not a run of its own. Replaces what was kept before."""
        now = datetime.now(UTC)
        head, parts = _entities(kind, key, body, {"Status": "kept", "CreatedAt": now, "UpdatedAt": now})
        self._table.submit_transaction(_replacing([head, *parts]))

    # --- index ------------------------------------------------------------------------------

    def _write_index(
        self, index_key: str, kind: RunKind, key: str, status: str, created: datetime, dry_run: bool | None
    ) -> None:
        entity: dict[str, Any] = {
            "PartitionKey": INDEX_PARTITION,
            "RowKey": index_key,
            "Kind": kind,
            "Key": key,
            "Status": status,
            "CreatedAt": created,
        }
        if dry_run is not None:
            entity["DryRun"] = dry_run
        self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def recent(self, limit: int = 50, kind: RunKind | None = None) -> list[RunSummaryRow]:
        query = f"PartitionKey eq '{INDEX_PARTITION}'"
        parameters: dict[str, Any] = {}
        if kind is not None:
            query += " and Kind eq @kind"
            parameters["kind"] = kind
        rows: list[RunSummaryRow] = []
        pages = self._table.query_entities(query, parameters=parameters, results_per_page=min(limit, 1000))
        for entity in pages:
            rows.append(
                RunSummaryRow(
                    kind=_kind(entity.get("Kind")),
                    key=str(entity.get("Key", "")),
                    status=str(entity.get("Status", "")),
                    created_at=_as_datetime(entity.get("CreatedAt")),
                    dry_run=entity.get("DryRun"),
                )
            )
            if len(rows) >= limit:
                break
        return rows


def _kind(value: object) -> RunKind:
    kinds: tuple[RunKind, ...] = ("alert", "scope", "event", "plan", "approval")
    return next((kind for kind in kinds if kind == value), "ticket")


def _partition(kind: RunKind, key: str) -> str:
    return f"{kind}-{key}"


def _replacing(entities: list[dict[str, Any]]) -> list[Any]:
    """Batch operations that write each entity whole (a shorter body leaves no stale chunk behind)."""
    return [("upsert", entity, {"mode": UpdateMode.REPLACE}) for entity in entities]


def _entities(
    kind: RunKind, key: str, body: Mapping[str, Any], columns: Mapping[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The record's head (`columns`, its kind, key and part count, the first chunks) and its parts."""
    raw = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode()
    compressed = zlib.compress(raw, 6)
    if len(compressed) > MAX_COMPRESSED_BYTES:
        raise ResultTooLarge(
            f"the result is {len(compressed)} bytes compressed; the limit is {MAX_COMPRESSED_BYTES}"
        )
    chunks = [compressed[i : i + CHUNK_BYTES] for i in range(0, len(compressed), CHUNK_BYTES)]
    groups = [chunks[i : i + CHUNKS_PER_ENTITY] for i in range(0, len(chunks), CHUNKS_PER_ENTITY)] or [[]]
    partition = _partition(kind, key)
    head: dict[str, Any] = {"PartitionKey": partition, "RowKey": "head", "Chunks": len(groups[0])}
    for index, chunk in enumerate(groups[0]):
        head[f"Body{index:02d}"] = chunk
    parts: list[dict[str, Any]] = []
    for number, group in enumerate(groups[1:], start=1):
        part: dict[str, Any] = {
            "PartitionKey": partition,
            "RowKey": f"part-{number:04d}",
            "Chunks": len(group),
        }
        for index, chunk in enumerate(group):
            part[f"Body{index:02d}"] = chunk
        parts.append(part)
    head.update({**columns, "Kind": kind, "Key": key, "Parts": len(parts)})
    return head, parts


def _chunks_of(entity: Mapping[str, Any]) -> list[bytes]:
    out: list[bytes] = []
    for index in range(int(entity.get("Chunks", 0))):
        value = entity.get(f"Body{index:02d}")
        if isinstance(value, bytes | bytearray):
            out.append(bytes(value))
        elif value is not None and hasattr(value, "value"):  # EntityProperty
            out.append(bytes(value.value))
    return out


def _as_datetime(value: object) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return datetime.fromtimestamp(0, UTC)


def _is_conflict(error: Exception) -> bool:
    status = getattr(error, "status_code", None)
    code = str(getattr(error, "error_code", "") or "")
    return status == 409 or "EntityAlreadyExists" in code or "EntityAlreadyExists" in str(error)[:2000]
