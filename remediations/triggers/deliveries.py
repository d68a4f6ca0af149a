"""What an alert's or a Key Vault event's delivery records: `POST /api/alerts` returns an `AlertResult`,
the Event Grid trigger keeps an `EventResult`, and the run store keeps either, keyed by the delivery.
Both go through the same lifecycle (received, then acknowledged, planned, handled or failed) and record
their run the same way (`DeliveryResult`).

Both are received the same way too (`receive_once`): the delivery is reserved in the run store by its
id, a redelivery returns the stored result instead of running again (unless the earlier handling failed
or its worker died and left it unfinished), and the handling (acknowledged when there
is nothing to do or its vault is out of scope, a failure recorded, never raised) is saved over it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from remediations.shell.policy_file import load_policy
from remediations.shell.settings import AppSettings
from remediations.triggers import observability, scope_guard
from remediations.triggers.alerts import AlertSignal
from remediations.triggers.events import VaultEvent
from remediations.triggers.runs import stale_after
from remediations.triggers.tickets import TicketStatus

if TYPE_CHECKING:
    from remediations.triggers.runs import RunStore

DeliveryStatus = Literal["received", "acknowledged", "planned", "handled", "failed"]
DeliveryKind = Literal["alert", "event"]


def delivery_status(run_status: TicketStatus) -> DeliveryStatus:
    """A delivery's status once its run is over: a dry run planned, all applied handled, else failed."""
    if run_status == "planned":
        return "planned"
    return "handled" if run_status == "applied" else "failed"


class DeliveryResult(BaseModel):
    """The lifecycle and the run of one delivery (an alert or a Key Vault event)."""

    model_config = ConfigDict(extra="forbid")

    status: DeliveryStatus
    message: str | None = None
    receivedAt: str
    summary: dict[str, int] = {}
    dryRun: bool | None = None
    dryRunForcedBy: list[str] = []
    plan: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    notes: list[str] = []
    correlationId: str | None = None


class AlertResult(DeliveryResult):
    """What `POST /api/alerts` returns and the run store keeps per alert delivery."""

    alertId: str
    signal: AlertSignal
    ownChange: bool = Field(
        default=False, description="The change the alert reports was made by this app's own identity."
    )
    alreadyCompliant: bool | None = Field(
        default=None, description="The re-check found nothing to change (0 actions planned)."
    )


class EventResult(DeliveryResult):
    """What the run store keeps per Key Vault event."""

    eventId: str
    event: VaultEvent


Result = TypeVar("Result", bound=DeliveryResult)


class Delivered(Protocol):
    """What an alert signal and a Key Vault event both say of themselves."""

    @property
    def vaultId(self) -> str | None: ...

    @property
    def actionable(self) -> bool: ...

    @property
    def reason(self) -> str: ...

    def idempotency_key(self) -> str: ...


@dataclass(frozen=True)
class Replay:
    """The stored result of an earlier delivery with the same id, returned as it was stored."""

    body: dict[str, Any]


def receive_once(
    store: RunStore,
    kind: DeliveryKind,
    delivered: Delivered,
    received: Result,
    *,
    correlation_id: str,
    run: Callable[[AppSettings], Result],
) -> Result | Replay:
    """Reserve the delivery by its idempotency key (recorded `received`), or replay what an earlier
    one stored; otherwise handle it (`_handle_in_scope`) and save the result. A failed earlier handling
    is handled again, as is one left unfinished by a worker that died (stale `received`, re-claimed
    by exactly one redelivery)."""
    key = delivered.idempotency_key()
    existing = store.reserve(kind, key, key, received.model_dump(mode="json"), "received")
    if existing is not None and existing.status != "failed" and existing.body is not None:
        if not store.claim_stale(kind, key, stale_after()):
            observability.logger().info("%s redelivered: returning the stored handling", kind)
            return Replay(existing.body)
        observability.logger().warning("%s handled again: its stored handling was left unfinished", kind)
    result = _handle_in_scope(kind, delivered, received, correlation_id, run)
    store.save(kind, key, key, result.model_dump(mode="json"), result.status)
    return result


def _handle_in_scope(
    kind: DeliveryKind,
    delivered: Delivered,
    received: Result,
    correlation_id: str,
    run: Callable[[AppSettings], Result],
) -> Result:
    """`run` the delivery on its vault. Acknowledged instead (nothing read) when it is not actionable
    (its reason recorded) or its vault is out of scope; a run that raised is recorded failed (logged
    with its traceback; the body names only the correlation id)."""
    if not delivered.actionable or delivered.vaultId is None:
        return received.model_copy(update={"status": "acknowledged", "message": delivered.reason})
    try:
        settings = AppSettings.from_env()
        policy = load_policy(settings)
        ignored = scope_guard.ignored_out_of_scope(delivered.vaultId, settings.subscription_ids, policy)
        if ignored is not None:
            observability.logger().warning("%s %s", kind, ignored)
            return received.model_copy(update={"status": "acknowledged", "message": ignored})
        return run(settings)
    except Exception:  # noqa: BLE001 - logged with traceback; the delivery is recorded as failed
        observability.logger().exception("%s handling failed", kind)
        observability.record_run_metric(kind, failures=1, status="failed")
        return received.model_copy(
            update={"status": "failed", "message": f"Handling failed; correlation id {correlation_id}."}
        )
