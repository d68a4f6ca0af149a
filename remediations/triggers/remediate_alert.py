"""An alert's delivery (`POST /api/alerts`): idempotency by alert id, the scope check, the one pipeline
bounded to the alerted vault (and for a Defender alert, its secrets rotated per policy), and the run
record.

Received as a Key Vault event is (remediate_event.py, through the same `receive_once`): records live
in the run store under kind `alert`, keyed by the alert's idempotency key, so a redelivery returns the
stored result (200, `Idempotent-Replayed`) instead of running again; a failed one, or one whose worker
died, runs again when Azure Monitor retries it. A handling that failed is answered 500.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import azure.functions as func

from remediations.core.model import Scope
from remediations.core.policy import Policy
from remediations.core.request import RECONCILE_AFTER, RunRequest, Targets
from remediations.triggers import observability
from remediations.triggers.alerts import AlertSignal, parse_alert
from remediations.triggers.deliveries import (
    AlertResult,
    InScope,
    Replay,
    receive_once,
    record_run,
    run_on_vault,
)
from remediations.triggers.http import json_response, read_json, run_store
from remediations.triggers.observability import InvocationContext
from remediations.triggers.problems import ProblemError, internal_error
from remediations.triggers.runs import RunStore, stale_after

if TYPE_CHECKING:
    from remediations.adapters.clients import AzureClients


def on_alert(req: func.HttpRequest, context: InvocationContext) -> func.HttpResponse:
    """The HTTP trigger's body (function_app.py): 202 with the handling, 200 with a stored one."""
    received = receive_alert(read_json(req), correlation_id=context.correlation_id)
    if isinstance(received, Replay):
        return json_response(received.body, 200, {"Idempotent-Replayed": "true"}, context.correlation_id)
    if received.status == "failed":
        raise ProblemError(internal_error(context.correlation_id))
    return json_response(received.model_dump(mode="json"), 202, correlation_id=context.correlation_id)


def receive_alert(
    payload: object, *, correlation_id: str, store: RunStore | None = None
) -> AlertResult | Replay:
    """Parse, de-duplicate, check scope, run; an earlier delivery's stored result is replayed."""
    signal = parse_alert(payload)
    store = store or run_store()
    received = AlertResult(
        alertId=signal.alertId,
        status="received",
        signal=signal,
        receivedAt=datetime.now(UTC).isoformat(),
        correlationId=correlation_id,
    )
    observability.logger().info(
        "alert %s from %s: %s",
        signal.kind,
        signal.source,
        signal.reason,
        extra={"alert_kind": signal.kind, "alert_source": signal.source},
    )
    return receive_once(
        store,
        "alert",
        signal,
        received,
        correlation_id=correlation_id,
        run=lambda target: handle_alert(
            signal,
            received=received,
            target=target,
            correlation_id=correlation_id,
            reconcile_after=stale_after(),
        ),
    )


def handle_alert(
    signal: AlertSignal,
    *,
    received: AlertResult,
    target: InScope,
    correlation_id: str,
    reconcile_after: timedelta = RECONCILE_AFTER,
) -> AlertResult:
    """`recheck-vault`: run every remediation on the vault. `revoke-and-rotate` (Defender): the same
    (revoke exposed access) plus rotation of the vault's secrets per policy `rotation.onAlert`
    (`report`: skipped actions naming each secret; `rotate`: rotated). A change the app made itself
    is recognised (caller = the app's identity): the re-check then plans 0 actions."""
    from remediations.adapters.identity import own_identity  # noqa: PLC0415

    vault_id = target.vault_id
    caller = signal.caller or signal.callerObjectId or f"azure-monitor:{signal.alertRule or signal.source}"
    # The alert is the run's target: a Defender alert names its vault exposed (rotated per policy
    # `rotation.onAlert`); a re-check names none, so what plans for targets (rotation) plans nothing.
    exposed = (vault_id,) if signal.kind == "revoke-and-rotate" else ()

    def request(policy: Policy) -> RunRequest:
        return RunRequest(
            trigger="alert",
            scope=Scope.parse(vault_id),
            power_platform=policy.power_platform.scope(),
            targets=Targets(exposed_vaults=exposed, reason=signal.reason, reference=signal.alertId),
            correlation_id=correlation_id,
            caller=caller,
            ticket_id=signal.alertId,
            reconcile_after=reconcile_after,
        )

    def own_change(clients: AzureClients) -> bool:
        if not (signal.caller or signal.callerObjectId):
            return False
        return own_identity(clients.credential).is_caller(signal.callerObjectId, signal.caller)

    done = run_on_vault(target, request, own_change=own_change)
    notes = (
        [f"rotation of the vault's secrets per policy rotation.onAlert={done.policy.rotation.on_alert}"]
        if exposed
        else []
    )
    handled = record_run("alert", received, signal, done, notes)
    return handled.model_copy(update={"ownChange": done.own_change, "alreadyCompliant": done.compliant})
