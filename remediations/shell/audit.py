"""Audit log: one row per action state. `pending` is written before a write, the outcome after.

Rows hold who/what/why and the before/after permission sets; the model has no field for a secret
value. PartitionKey = correlation (run) id, RowKey = `<action id>-<sequence>-<state>`. A fix that
writes in steps (core/registry.py `StepLog`) adds child rows per step between the action's two:
`<action id>-00-step<n>-<0 intent|1 result>-<state>`, each naming the change the step makes.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient
from azure.identity import DefaultAzureCredential
from pydantic import BaseModel, ConfigDict, Field

from remediations.core.model import Change
from remediations.core.request import Trigger
from remediations.shell.settings import AppSettings

AuditState = Literal["pending", "applied", "failed", "skipped", "noop", "deferred"]
TERMINAL_STATES = frozenset({"applied", "failed", "skipped", "noop", "deferred"})
DANGLING_LOOKBACK = timedelta(days=7)  # older interrupted runs are a human's job (the rows stay)


class AuditRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    correlation_id: str
    action_id: str
    sequence: int  # 0 = pending, 1 = outcome
    state: AuditState
    remediation_id: str
    target: str
    principal: str | None = None
    before: dict[str, list[str]] = Field(default_factory=dict)
    after: dict[str, list[str]] = Field(default_factory=dict)
    reason: str = ""
    error: str | None = None
    trigger: Trigger
    ticket_id: str | None = None
    caller: str | None = None
    # Set only when App Service Authentication named the caller: rows without it name a requester the
    # caller declared (or the trigger), not one anybody checked.
    caller_object_id: str | None = None
    declared_requester: str | None = None  # a ticket body's `requester` naming someone else than the caller
    recorded_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    # A step of a multi-step action (1, 2, ... in the order made; None: the action itself), its
    # description in `reason`. `changes`: on a step, the change it makes; on a reconciled outcome,
    # the changes the interrupted steps left in place (the next attempt adopts them).
    step: int | None = None
    changes: tuple[Change, ...] = ()

    @property
    def row_key(self) -> str:
        if self.step is not None:
            return f"{self.action_id}-00-step{self.step:03d}-{self.sequence}-{self.state}"
        return f"{self.action_id}-{self.sequence:02d}-{self.state}"


class AuditSink(Protocol):
    def record(self, entry: AuditRecord) -> None: ...

    def records(self, correlation_id: str) -> list[AuditRecord]: ...

    def dangling(self, older_than: datetime, scopes: tuple[str, ...] = ("/",)) -> list[AuditRecord]:
        """`pending` rows for targets under one of `scopes`, recorded before `older_than` (within
        DANGLING_LOOKBACK), with no outcome row in their run: writes interrupted between intent and
        result."""
        ...


def in_scope(target: str, scope_id: str) -> bool:
    target, scope_id = target.rstrip("/").lower(), scope_id.rstrip("/").lower()
    return scope_id in ("", target) or target.startswith(scope_id + "/")


def in_any(target: str, scopes: tuple[str, ...]) -> bool:
    return any(in_scope(target, scope_id) for scope_id in scopes)


def without_outcome(rows: list[AuditRecord], older_than: datetime) -> list[AuditRecord]:
    """The pending rows of `rows` (one or more runs) that have no terminal row for the same action
    (step rows aside: `steps_of` reads them for the action)."""
    done = {(r.correlation_id, r.action_id) for r in rows if r.state in TERMINAL_STATES and r.step is None}
    return [
        r
        for r in rows
        if r.state == "pending"
        and r.step is None
        and (r.correlation_id, r.action_id) not in done
        and r.recorded_at < older_than
        and r.recorded_at >= older_than - DANGLING_LOOKBACK
    ]


def steps_of(sink: AuditSink, rows: Iterable[AuditRecord]) -> dict[tuple[str, str], list[AuditRecord]]:
    """The step rows of each of `rows`' actions in its run, in the order recorded, by (run, action id).
    Each run's partition is read once, however many of its actions are asked about."""
    steps: dict[tuple[str, str], list[AuditRecord]] = {(r.correlation_id, r.action_id): [] for r in rows}
    for correlation_id in sorted({run for run, _ in steps}):
        for row in sink.records(correlation_id):
            key = (row.correlation_id, row.action_id)
            if row.step is not None and key in steps:
                steps[key].append(row)
    return steps


class MemoryAuditSink:
    """The same protocol in memory, for unit tests and dry runs that want a trail."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.entries: list[AuditRecord] = []

    def record(self, entry: AuditRecord) -> None:
        with self._lock:
            self.entries.append(entry)

    def records(self, correlation_id: str) -> list[AuditRecord]:
        with self._lock:
            return sorted(
                (e for e in self.entries if e.correlation_id == correlation_id), key=lambda e: e.row_key
            )

    def dangling(self, older_than: datetime, scopes: tuple[str, ...] = ("/",)) -> list[AuditRecord]:
        with self._lock:
            rows = without_outcome(list(self.entries), older_than)
        return [r for r in rows if in_any(r.target, scopes)]


class AttributedAuditSink:
    """Stamps who called on the rows of one run (the engine's RunContext carries only a caller name).
    Rows of other runs passing through (reconciled outcomes of an earlier run) keep their own."""

    def __init__(
        self,
        inner: AuditSink,
        correlation_id: str,
        *,
        caller_object_id: str | None,
        declared_requester: str | None,
    ) -> None:
        self._inner = inner
        self._correlation_id = correlation_id
        self._stamp = {"caller_object_id": caller_object_id, "declared_requester": declared_requester}

    def record(self, entry: AuditRecord) -> None:
        if entry.correlation_id == self._correlation_id:
            entry = entry.model_copy(update=self._stamp)
        self._inner.record(entry)

    def records(self, correlation_id: str) -> list[AuditRecord]:
        return self._inner.records(correlation_id)

    def dangling(self, older_than: datetime, scopes: tuple[str, ...] = ("/",)) -> list[AuditRecord]:
        return self._inner.dangling(older_than, scopes)


_JSON_FIELDS = ("before", "after", "changes")


def to_entity(entry: AuditRecord) -> dict[str, Any]:
    data = entry.model_dump(mode="json")
    entity: dict[str, Any] = {"PartitionKey": entry.correlation_id, "RowKey": entry.row_key}
    for key, value in data.items():
        if key in _JSON_FIELDS:
            entity[key] = json.dumps(value, sort_keys=True)
        elif value is not None:
            entity[key] = value
    return entity


def from_entity(entity: dict[str, Any]) -> AuditRecord:
    fields = {k: v for k, v in entity.items() if k in AuditRecord.model_fields}
    for key in _JSON_FIELDS:
        if key in fields:
            fields[key] = json.loads(fields[key])
    return AuditRecord.model_validate(fields)


class TableAuditSink:
    """Azure Table Storage: `AzureWebJobsStorage` connection string, or the table service URI with
    DefaultAzureCredential (identity-based storage in Azure)."""

    def __init__(self, table_client: Any) -> None:
        self._table = table_client
        self._created = False
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: AppSettings | None = None) -> TableAuditSink:
        settings = settings or AppSettings.from_env()
        if settings.storage_connection is not None:
            return cls(TableClient.from_connection_string(settings.storage_connection, settings.audit_table))
        if settings.storage_table_uri is not None:
            return cls(
                TableClient(
                    settings.storage_table_uri, settings.audit_table, credential=DefaultAzureCredential()
                )
            )
        raise RuntimeError(
            "audit storage is not configured: set AzureWebJobsStorage or AzureWebJobsStorage__tableServiceUri"
        )

    def _ensure_table(self) -> None:
        with self._lock:
            if self._created:
                return
            with contextlib.suppress(ResourceExistsError):  # created earlier: the state we want
                self._table.create_table()
            self._created = True

    def record(self, entry: AuditRecord) -> None:
        self._ensure_table()
        self._table.upsert_entity(to_entity(entry))  # upsert: re-recording the same state is idempotent

    def records(self, correlation_id: str) -> list[AuditRecord]:
        self._ensure_table()
        rows = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": correlation_id})
        return sorted((from_entity(dict(r)) for r in rows), key=lambda e: e.row_key)

    def dangling(self, older_than: datetime, scopes: tuple[str, ...] = ("/",)) -> list[AuditRecord]:
        # Server side: pending rows of the look-back window (the row's Timestamp). Then, only for those
        # in scope, the outcome rows of the same action (one range query each): a crash leaves few.
        self._ensure_table()
        since = (older_than - DANGLING_LOOKBACK).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        pending = [
            from_entity(dict(r))
            for r in self._table.query_entities(f"state eq 'pending' and Timestamp ge datetime'{since}'")
        ]
        rows: list[AuditRecord] = []
        for row in pending:
            if row.step is not None or not in_any(row.target, scopes) or row.recorded_at >= older_than:
                continue
            rows.append(row)
            prefix = f"{row.action_id}-01-"
            outcomes = self._table.query_entities(
                "PartitionKey eq @pk and RowKey ge @lo and RowKey lt @hi",
                parameters={"pk": row.correlation_id, "lo": prefix, "hi": prefix + "~"},
            )
            rows.extend(from_entity(dict(r)) for r in outcomes)
        return without_outcome(rows, older_than)

    def close(self) -> None:
        self._table.close()
