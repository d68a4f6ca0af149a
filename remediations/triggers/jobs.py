"""The timer sweep and the queue worker (function_app.py only routes here).

Worker contract, per queue message (one scope):
- a message that is not a ScopeMessage, or whose run fails (a read or write failed), raises, so the
  host retries it; on the last try (`MAX_DEQUEUE_COUNT`, as in host.json) the worker itself puts it
  on `<queue>-poison` with the reason, and returns, so the poison message says why;
- throttling (429 left after the adapters' retries) is not a failure: the worker puts the message
  back with a visibility delay (Retry-After) and succeeds, instead of burning invocations;
- the same message twice is safe: the engine plans 0 writes the second time, and the run store
  records the delivery count, marking the repeat `duplicate`.
"""

from __future__ import annotations

import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError
from pydantic import ValidationError

from remediations.shell.settings import AppSettings
from remediations.triggers import observability, scope_work, sweep_plan
from remediations.triggers.budget import SweepBudget
from remediations.triggers.messages import ScopeMessage, SweepDepth, new_sweep_id
from remediations.triggers.problems import pydantic_errors
from remediations.triggers.runs import RunStore
from remediations.triggers.storage import queue_client
from remediations.triggers.tickets import RunSummary

MAX_DEQUEUE_COUNT = 5  # host.json extensions.queues.maxDequeueCount (a test keeps them equal)
MAX_THROTTLE_REQUEUES = 20
SEND_CONCURRENCY = 8


class InvalidScopeMessage(ValueError):
    """Raised for a queue message that is not a ScopeMessage: the host retries, then poisons it."""


class ScopeRunFailed(RuntimeError):
    """A scope run had failed reads or writes: raised so the host retries (then the poison queue)."""


def poison_queue_name(queue_name: str) -> str:
    return f"{queue_name}-poison"


def _ensure_queue(name: str) -> Any:
    queue = queue_client(name)
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()
    return queue


def sweep(
    *, past_due: bool = False, correlation_id: str | None = None, depth: SweepDepth = "quick"
) -> list[ScopeMessage]:
    """Enqueue one message per scope on `VAULTGUARD_QUEUE_NAME`; returns what was sent. The quick
    sweep (every `VAULTGUARD_SWEEP_SCHEDULE` tick) reads lists only; the deep one
    (`VAULTGUARD_DEEP_SWEEP_SCHEDULE`, or on demand) lists every vault's secrets and stores them."""
    with observability.invocation("sweep" if depth == "quick" else "deep_sweep", correlation_id) as context:
        log = observability.logger()
        if past_due:
            log.info("sweep timer is past due; running now", extra={"past_due": True})
        settings = AppSettings.from_env()
        sweep_id = new_sweep_id()
        plan = sweep_plan.plan_sweep(
            settings, sweep_id=sweep_id, correlation_id=context.correlation_id, depth=depth
        )
        messages = plan.messages
        if not settings.subscription_ids:
            log.error("sweep found no scopes: set VAULTGUARD_SUBSCRIPTION_IDS", extra={"sweep_id": sweep_id})
        if messages and not plan.dry_run:
            # One write budget for the whole sweep, created before any worker can ask for it.
            SweepBudget(RunStore.from_env().table).open(sweep_id, plan.budget)
        if messages:
            queue = _ensure_queue(settings.queue_name)
            bodies = [m.model_dump_json().encode() for m in messages]
            with ThreadPoolExecutor(max_workers=SEND_CONCURRENCY) as pool:
                list(pool.map(queue.send_message, bodies))
        log.info(
            "sweep %s enqueued %d scope(s)",
            sweep_id,
            len(messages),
            extra={
                "sweep_id": sweep_id,
                "scopes": len(messages),
                "past_due": past_due,
                "dry_run": plan.dry_run,
                "budget": plan.budget,
            },
        )
        observability.record_run_metric(
            "sweep", failures=len(plan.failures), dry_run=plan.dry_run, status="enqueued"
        )
        if plan.failures:
            raise RuntimeError(
                f"sweep {sweep_id}: {len(plan.failures)} subscription(s) could not be listed; "
                "the others were enqueued"
            )
        return messages


def parse_message(body: bytes) -> ScopeMessage:
    try:
        return ScopeMessage.model_validate_json(body)
    except ValidationError as error:
        paths = ", ".join(f"{e.path} {e.message}" for e in pydantic_errors(error.errors()))
        raise InvalidScopeMessage(f"not a scope message: {paths}"[:1000]) from None


def _poison(settings: AppSettings, body: bytes, reason: str, message_id: str | None, dequeue: int) -> None:
    record = {
        "reason": reason[:4000],
        "messageId": message_id,
        "dequeueCount": dequeue,
        "poisonedAt": datetime.now(UTC).isoformat(),
        "message": body.decode("utf-8", errors="replace")[:32_000],
    }
    _ensure_queue(poison_queue_name(settings.queue_name)).send_message(
        json.dumps(record, sort_keys=True).encode()
    )


def _requeue(settings: AppSettings, message: ScopeMessage, delay: float) -> None:
    again = message.model_copy(update={"requeues": message.requeues + 1})
    _ensure_queue(settings.queue_name).send_message(
        again.model_dump_json().encode(), visibility_timeout=int(delay + 0.999)
    )


def work(body: bytes, *, message_id: str | None = None, dequeue_count: int | None = None) -> RunSummary:
    """Run one scope. Raises on a bad message or a failed run (-> retried, then poisoned with reason)."""
    with observability.invocation("remediate_worker") as context:
        log = observability.logger()
        settings = AppSettings.from_env()
        dequeue = dequeue_count or 1
        extra = {"message_id": message_id, "dequeue_count": dequeue}
        try:
            message = parse_message(body)
        except InvalidScopeMessage as error:
            log.error("rejecting queue message %s (dequeue %s): %s", message_id, dequeue, error, extra=extra)
            if dequeue >= MAX_DEQUEUE_COUNT:
                _poison(settings, body, str(error), message_id, dequeue)
                return RunSummary()
            raise
        try:
            return _run(message, settings, context.correlation_id, extra)
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"
            log.exception("scope %s %s failed (dequeue %s)", message.kind, message.id, dequeue, extra=extra)
            observability.record_run_metric("scope", failures=1, dry_run=message.dryRun, status="failed")
            if dequeue >= MAX_DEQUEUE_COUNT:
                _poison(settings, body, reason, message_id, dequeue)
                return RunSummary(failures=1)
            raise


def _run(
    message: ScopeMessage, settings: AppSettings, correlation_id: str, extra: dict[str, Any]
) -> RunSummary:
    log = observability.logger()
    store = RunStore.from_env()
    key = message.idempotency_key()
    record: dict[str, Any] = {
        "scope": message.model_dump(mode="json"),
        "deliveries": 1,
        "duplicate": False,
        "status": "running",
    }
    existing = store.reserve("scope", key, key, record, "running", message.dryRun)
    if existing is not None and existing.body is not None:
        record = {
            **existing.body,
            "deliveries": int(existing.body.get("deliveries", 1)) + 1,
            "duplicate": True,
        }
        log.info("scope %s %s delivered again (duplicate)", message.kind, message.id, extra=extra)
    budget_store = SweepBudget(store.table)

    def take(wanted: int) -> int:
        granted = budget_store.take(message.sweepId, wanted)
        if granted is None:  # no sweep budget (a message from elsewhere): the per-run cap holds
            return wanted
        if granted < wanted:
            log.info(
                "sweep budget: %d of %d write(s) granted; the rest deferred", granted, wanted, extra=extra
            )
        return granted

    outcome = scope_work.work(message, settings=settings, correlation_id=correlation_id, budget=take)
    summary = outcome.summary
    observability.record_run_metric(
        "scope", dry_run=outcome.dry_run, status=outcome.status, **summary.metric()
    )
    record.update(
        {
            "status": outcome.status,
            "summary": summary.model_dump(),
            "notes": outcome.notes,
            "plan": outcome.plan,
            "correlationId": correlation_id,
        }
    )
    if outcome.throttled and message.requeues < MAX_THROTTLE_REQUEUES:
        assert outcome.retry_after is not None
        _requeue(settings, message, outcome.retry_after)
        record["status"] = "throttled-requeued"
        store.save("scope", key, key, record, "throttled-requeued", message.dryRun)
        log.warning(
            "scope %s throttled; put back with a %.0f s delay", message.id, outcome.retry_after, extra=extra
        )
        return summary
    store.save("scope", key, key, record, outcome.status, message.dryRun)
    if outcome.failed:
        raise ScopeRunFailed("; ".join(outcome.notes)[:2000] or f"{summary.failures} failure(s)")
    return summary
