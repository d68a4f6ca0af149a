"""The seam between the triggers and the engine. The triggers call only these four functions.

Until the engine lands, each does the honest minimum: it records that the work was accepted and
says the engine is not wired in (`status: "pending-engine"`); none invents a plan. To wire the
engine in, replace each body with a call into `remediations.core.engine` (imported inside the
function, so `import function_app` stays light). Signatures are the contract:

    run_ticket(request, *, settings, correlation_id) -> TicketResult
    handle_alert(signal, *, settings, correlation_id) -> AlertResult
    enumerate_scopes(settings, *, sweep_id, correlation_id=None) -> list[ScopeMessage]
    work(message, *, settings, correlation_id) -> RunSummary

Each may raise; the trigger records the run as failed and answers 500 (HTTP) or lets the message
be retried and then poisoned (queue). None may log or return a secret value.
"""

from __future__ import annotations

from datetime import UTC, datetime

from remediations.core.settings import AppSettings
from remediations.triggers.alerts import AlertResult, AlertSignal
from remediations.triggers.messages import ScopeMessage
from remediations.triggers.observability import logger
from remediations.triggers.tickets import RunSummary, TicketRequest, TicketResult

PENDING_ENGINE = (
    "Accepted and recorded; the remediation engine is not wired in yet, so nothing was planned or changed."
)


def run_ticket(request: TicketRequest, *, settings: AppSettings, correlation_id: str) -> TicketResult:
    """Plan (and unless `request.dryRun`, apply) the named remediations on the named targets."""
    logger().info(
        "ticket accepted: %d remediation(s), dryRun=%s (engine pending)",
        len(request.remediations),
        request.dryRun,
    )
    return TicketResult.accepted(request, status="pending-engine", message=PENDING_ENGINE)


def handle_alert(signal: AlertSignal, *, settings: AppSettings, correlation_id: str) -> AlertResult:
    """Act on an actionable signal: `recheck-vault` or `revoke-and-rotate` for `signal.vaultId`."""
    logger().info("alert signal %s for a vault accepted (engine pending)", signal.kind)
    return AlertResult(
        alertId=signal.alertId,
        status="pending-engine",
        signal=signal,
        message=PENDING_ENGINE,
        receivedAt=datetime.now(UTC).isoformat(),
    )


def enumerate_scopes(
    settings: AppSettings, *, sweep_id: str, correlation_id: str | None = None
) -> list[ScopeMessage]:
    """The scopes one sweep fans out to. For now: one per configured subscription.

    The engine replaces this with per-vault / per-environment scopes from its inventory.
    """
    return [
        ScopeMessage.for_subscription(subscription, sweep_id, settings.dry_run, correlation_id)
        for subscription in settings.subscription_ids
    ]


def work(message: ScopeMessage, *, settings: AppSettings, correlation_id: str) -> RunSummary:
    """detect -> plan -> apply for one scope; must be safe to run twice for the same message."""
    logger().info("scope %s received for sweep %s (engine pending)", message.kind, message.sweepId)
    return RunSummary()
