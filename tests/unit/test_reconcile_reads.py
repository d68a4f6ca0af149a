"""Reconcile reads each interrupted run's audit partition once, however many of its writes it settles."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from remediations.core.model import Plan
from remediations.shell.apply import RunContext, reconcile_dangling
from remediations.shell.audit import AuditRecord, MemoryAuditSink
from tests.unit.kv_builders import policy_entry, snapshot, vault, vault_id

PRINCIPALS = [f"00000000-0000-0000-0000-00000000010{n}" for n in range(4)]


class CountingSink(MemoryAuditSink):
    """The in-memory sink, counting the partition reads (`records`) by correlation id."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def records(self, correlation_id: str) -> list[AuditRecord]:
        self.reads.append(correlation_id)
        return super().records(correlation_id)


def _pending(sink: MemoryAuditSink, run: str, principal: str) -> None:
    sink.record(
        AuditRecord(
            correlation_id=run,
            action_id=f"act-{principal[-4:]}",
            sequence=0,
            state="pending",
            remediation_id="remove_list_permission",
            target=vault_id("kv-app"),
            principal=principal,
            before={"secrets": ["get", "list"]},
            after={"secrets": ["get"]},
            trigger="timer",
            recorded_at=datetime.now(UTC) - timedelta(hours=1),
        )
    )


def test_each_interrupted_runs_partition_is_read_once() -> None:
    sink = CountingSink()
    for principal in PRINCIPALS[:3]:
        _pending(sink, "crashed", principal)
    _pending(sink, "other", PRINCIPALS[3])
    # Two of the crashed run's writes took effect, one did not; the other run's write did.
    snap = snapshot(
        vault(
            "kv-app",
            policy_entry(PRINCIPALS[0], "get"),
            policy_entry(PRINCIPALS[1], "get"),
            policy_entry(PRINCIPALS[2], "get", "list"),
            policy_entry(PRINCIPALS[3], "get"),
        )
    )
    plan = Plan(id="p", created_at=datetime.now(UTC), dry_run=False)
    rows = reconcile_dangling(snap, plan, sink, RunContext(correlation_id="next", trigger="timer"))
    assert sorted(sink.reads) == ["crashed", "other"]
    assert sorted((r.correlation_id, r.principal, r.state) for r in rows) == [
        ("crashed", PRINCIPALS[0], "applied"),
        ("crashed", PRINCIPALS[1], "applied"),
        ("crashed", PRINCIPALS[2], "noop"),
        ("other", PRINCIPALS[3], "applied"),
    ]
