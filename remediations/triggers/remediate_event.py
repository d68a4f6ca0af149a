"""A Key Vault event's run (Event Grid trigger): the scope check, idempotency by event id, the one
pipeline bounded to the event's vault, and the run record.

`VaultAccessPolicyChanged` re-checks the vault with every remediation (as an access-policy alert
does); `SecretNearExpiry` / `SecretExpired` plan rotation of that one secret (rotate_secret's
`plan_for_targets`, exactly as a ticket naming it). Dry run, the write cap and audit are the
deployment's, as for alerts. Records live in the run store under kind `event`, keyed by event id and
vault, so a redelivery returns the stored result instead of running again (a failed one, or one whose
worker died, runs again); alerts are received the same way (deliveries.receive_once).

An event that cannot be parsed or whose handling fails raises: Event Grid retries it and, after its
retry policy, dead-letters it to the app's storage (infra/app/events.bicep), never drops it silently.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import azure.functions as func

from remediations.core.model import Scope
from remediations.core.policy import Policy
from remediations.core.request import RunRequest, SecretTarget, Targets
from remediations.shell.pipeline import RunResult
from remediations.triggers import observability
from remediations.triggers.deliveries import (
    EventResult,
    InScope,
    Replay,
    receive_once,
    record_run,
    run_on_vault,
)
from remediations.triggers.events import VaultEvent, parse_event
from remediations.triggers.runs import RunStore
from remediations.triggers.service import inventory_notes, summarise


class EventHandlingFailed(RuntimeError):
    """Raised so Event Grid retries the delivery (and dead-letters it when retries run out)."""


def on_event(event: func.EventGridEvent | func.CloudEvent) -> EventResult:
    """The Event Grid trigger's body (function_app.py): one event, in its own invocation context."""
    with observability.invocation("keyvault_events") as context:
        return receive_event(event_json(event), correlation_id=context.correlation_id)


def event_json(event: func.EventGridEvent | func.CloudEvent) -> dict[str, object]:
    """The event as its schema's JSON again (the parser reads either schema)."""
    if isinstance(event, func.CloudEvent):
        return {
            "specversion": event.specversion,
            "id": event.id,
            "source": event.source,
            "type": event.type,
            "subject": event.subject,
            "time": event.time.isoformat() if event.time else None,
            "data": event.get_json(),
        }
    return {
        "id": event.id,
        "topic": event.topic,
        "subject": event.subject,
        "eventType": event.event_type,
        "eventTime": event.event_time.isoformat() if event.event_time else None,
        "data": event.get_json(),
        "dataVersion": event.data_version,
    }


def receive_event(payload: object, *, correlation_id: str, store: RunStore | None = None) -> EventResult:
    """Parse, de-duplicate, check scope, run; the stored result of an earlier delivery is returned."""
    event = parse_event(payload)
    store = store or RunStore.from_env()
    received = EventResult(
        eventId=event.eventId,
        status="received",
        event=event,
        receivedAt=datetime.now(UTC).isoformat(),
        correlationId=correlation_id,
    )
    observability.logger().info(
        "event %s: %s", event.eventType, event.reason, extra={"event_kind": event.kind}
    )
    result = receive_once(
        store,
        "event",
        event,
        received,
        correlation_id=correlation_id,
        run=lambda target: handle_event(event, received, target=target, correlation_id=correlation_id),
    )
    if isinstance(result, Replay):
        return EventResult.model_validate(result.body)
    if result.status == "failed":
        raise EventHandlingFailed(f"handling event {event.eventId} failed; correlation id {correlation_id}")
    return result


def handle_event(
    event: VaultEvent, received: EventResult, *, target: InScope, correlation_id: str
) -> EventResult:
    """One pipeline run on the event's vault: every remediation (re-check), rotation of the secret, or
    a read-only refresh of the vault's secret list. Each run's live secret list is saved as the
    vault's stored deep inventory (what the quick sweep plans from)."""
    done = run_on_vault(target, lambda policy: _request(event, target.vault_id, policy, correlation_id))
    if event.kind == "refresh-inventory":
        return _refreshed(received, done.result, event)
    return record_run("event", received, event, done)


def _request(event: VaultEvent, vault_id: str, policy: Policy, correlation_id: str) -> RunRequest:
    """The event's run, bound to its vault exactly as an alert's (never environment-wide)."""
    common: dict[str, Any] = {
        "trigger": "event",
        "scope": Scope.parse(vault_id),
        "correlation_id": correlation_id,
        "caller": f"event-grid:{event.eventType}",
        "ticket_id": event.eventId,
    }
    if event.kind == "refresh-inventory":
        # Read the vault's secret list (saved to the store), detect, plan nothing, write nothing.
        return RunRequest(**common, remediations=(), include_secrets=True, stop_after="plan", dry_run=True)
    secret = event.secretName if event.kind == "plan-rotation" else None
    return RunRequest(
        **common,
        power_platform=policy.power_platform.scope(),
        remediations=("rotate_secret",) if secret is not None else None,
        targets=Targets(
            secrets=(SecretTarget(vault=vault_id, name=secret),) if secret is not None else (),
            reason=event.reason,
            reference=event.eventId,
        ),
    )


def _refreshed(received: EventResult, result: RunResult, event: VaultEvent) -> EventResult:
    """A refresh's record: how many secrets the vault's stored inventory now has, or why not."""
    notes = inventory_notes([result])
    vault = result.snapshot.vaults[0] if result.snapshot is not None and result.snapshot.vaults else None
    if vault is not None and not notes:
        notes.insert(
            0, f"refreshed the stored secret inventory of vault {vault.name}: {vault.secret_count} secrets"
        )
    failed = result.failures > 0 or vault is None
    observability.record_run_metric(
        "event", status="failed" if failed else "applied", read_errors=result.read_errors
    )
    return received.model_copy(
        update={
            "status": "failed" if failed else "handled",
            "message": event.reason,
            "summary": summarise([result]).model_dump(),
            "notes": notes,
        }
    )
