"""What an alert's or a Key Vault event's delivery records: `POST /api/alerts` returns an `AlertResult`,
the Event Grid trigger keeps an `EventResult`, and the run store keeps either, keyed by the delivery.
Both go through the same lifecycle (received, then acknowledged, planned, handled or failed) and record
their run the same way (`DeliveryResult`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from remediations.triggers.alerts import AlertSignal
from remediations.triggers.events import VaultEvent
from remediations.triggers.tickets import TicketStatus

DeliveryStatus = Literal["received", "acknowledged", "planned", "handled", "failed"]


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
