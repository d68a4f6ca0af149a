"""The timer sweep and the queue worker (function_app.py only routes here)."""

from __future__ import annotations

import contextlib

from azure.core.exceptions import ResourceExistsError
from pydantic import ValidationError

from remediations.core.settings import AppSettings
from remediations.triggers import observability, service
from remediations.triggers.messages import ScopeMessage, new_sweep_id
from remediations.triggers.problems import pydantic_errors
from remediations.triggers.storage import queue_client
from remediations.triggers.tickets import RunSummary


class InvalidScopeMessage(ValueError):
    """Raised for a queue message that is not a ScopeMessage: the host retries, then poisons it."""


def sweep(*, past_due: bool = False, correlation_id: str | None = None) -> list[ScopeMessage]:
    """Enqueue one message per scope on `VAULTGUARD_QUEUE_NAME`; returns what was sent."""
    with observability.invocation("sweep", correlation_id) as context:
        log = observability.logger()
        if past_due:
            log.info("sweep timer is past due; running now", extra={"past_due": True})
        settings = AppSettings.from_env()
        sweep_id = new_sweep_id()
        messages = service.enumerate_scopes(
            settings, sweep_id=sweep_id, correlation_id=context.correlation_id
        )
        if not messages:
            log.error("sweep found no scopes: set VAULTGUARD_SUBSCRIPTION_IDS", extra={"sweep_id": sweep_id})
            return []
        queue = queue_client(settings.queue_name)
        with contextlib.suppress(ResourceExistsError):
            queue.create_queue()
        for message in messages:
            queue.send_message(message.model_dump_json().encode())
        log.info(
            "sweep %s enqueued %d scope(s)",
            sweep_id,
            len(messages),
            extra={"sweep_id": sweep_id, "scopes": len(messages), "past_due": past_due},
        )
        return messages


def parse_message(body: bytes) -> ScopeMessage:
    try:
        return ScopeMessage.model_validate_json(body)
    except ValidationError as error:
        paths = ", ".join(f"{e.path} {e.message}" for e in pydantic_errors(error.errors()))
        raise InvalidScopeMessage(f"not a scope message: {paths}"[:1000]) from None


def work(body: bytes, *, message_id: str | None = None, dequeue_count: int | None = None) -> RunSummary:
    """Validate one queue message and hand it to the engine. Raises on a bad message (-> poison queue)."""
    with observability.invocation("remediate_worker") as context:
        log = observability.logger()
        try:
            message = parse_message(body)
        except InvalidScopeMessage as error:
            log.error(
                "rejecting queue message %s (dequeue %s): %s",
                message_id,
                dequeue_count,
                error,
                extra={"message_id": message_id, "dequeue_count": dequeue_count},
            )
            raise
        summary = service.work(
            message, settings=AppSettings.from_env(), correlation_id=context.correlation_id
        )
        observability.record_run_metric("scope", dry_run=message.dryRun, **summary.model_dump())
        return summary
