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

import azure.functions as func

from remediations.core.model import Scope
from remediations.core.request import RECONCILE_AFTER, RunRequest, Targets
from remediations.shell.policy_file import load_policy
from remediations.shell.settings import AppSettings
from remediations.triggers import observability
from remediations.triggers.alerts import AlertSignal, parse_alert
from remediations.triggers.deliveries import (
    AlertResult,
    Replay,
    delivery_status,
    receive_once,
)
from remediations.triggers.http import json_response, read_json, run_store
from remediations.triggers.observability import InvocationContext
from remediations.triggers.problems import ProblemError, internal_error
from remediations.triggers.runs import RunStore, stale_after
from remediations.triggers.service import (
    azure_session,
    closure_notes,
    effective_policy,
    inventory_notes,
    outcomes_json,
    plan_json,
    run,
    run_status,
    summarise,
)


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
        alertId=signal.alertId, status="received", signal=signal, receivedAt=datetime.now(UTC).isoformat()
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
        run=lambda settings: handle_alert(
            signal, settings=settings, correlation_id=correlation_id, reconcile_after=stale_after()
        ),
    )


def handle_alert(
    signal: AlertSignal,
    *,
    settings: AppSettings,
    correlation_id: str,
    reconcile_after: timedelta = RECONCILE_AFTER,
) -> AlertResult:
    """`recheck-vault`: run every remediation on the vault. `revoke-and-rotate` (Defender): the same
    (revoke exposed access) plus rotation of the vault's secrets per policy `rotation.onAlert`
    (`report`: skipped actions naming each secret; `rotate`: rotated). A change the app made itself
    is recognised (caller = the app's identity): the re-check then plans 0 actions."""
    from remediations.adapters.identity import own_identity  # noqa: PLC0415

    if signal.vaultId is None:  # the parser never makes an actionable signal without one
        raise ValueError("an actionable alert signal must name a vault")
    policy, forced = effective_policy(settings, load_policy(settings))
    caller = signal.caller or signal.callerObjectId or f"azure-monitor:{signal.alertRule or signal.source}"
    notes: list[str] = []
    # The alert is the run's target: a Defender alert names its vault exposed (rotated per policy
    # `rotation.onAlert`); a re-check names none, so what plans for targets (rotation) plans nothing.
    exposed = (signal.vaultId,) if signal.kind == "revoke-and-rotate" else ()
    targets = Targets(exposed_vaults=exposed, reason=signal.reason, reference=signal.alertId)
    if exposed:
        notes.append(
            f"rotation of the vault's secrets per policy rotation.onAlert={policy.rotation.on_alert}"
        )
    from remediations.triggers.secret_table import TableSecretInventory  # noqa: PLC0415 - SDK import

    with azure_session(settings) as (clients, audit):
        own_change = False
        if signal.caller or signal.callerObjectId:
            own_change = own_identity(clients.credential).is_caller(signal.callerObjectId, signal.caller)
        result = run(
            RunRequest(
                trigger="alert",
                scope=Scope.parse(signal.vaultId),
                power_platform=policy.power_platform.scope(),
                targets=targets,
                correlation_id=correlation_id,
                caller=caller,
                ticket_id=signal.alertId,
                reconcile_after=reconcile_after,
            ),
            policy,
            clients,
            audit,
            # The alert's live secret list refreshes the vault's stored deep inventory.
            secret_store=TableSecretInventory.from_env(),
        )
    summary = summarise([result])
    # Compliant: nothing to write and no read that stopped the run (a refused secret list is in notes).
    compliant = summary.actions == 0 and result.failures == 0
    if own_change:
        notes.insert(
            0,
            "recognised the app's own change (the caller is vaultguard's identity); "
            f"re-checked the vault: {summary.actions} action(s) planned",
        )
    elif compliant:
        notes.insert(0, "the vault is already compliant: re-checked, 0 actions planned")
    notes.extend(inventory_notes([result]))
    notes.extend(closure_notes([result]))
    status = delivery_status(run_status([result], policy.dry_run))
    observability.record_run_metric("alert", status=status, dry_run=policy.dry_run, **summary.metric())
    return AlertResult(
        alertId=signal.alertId,
        status=status,
        signal=signal,
        message=signal.reason,
        receivedAt=datetime.now(UTC).isoformat(),
        summary=summary.model_dump(),
        dryRun=policy.dry_run,
        dryRunForcedBy=forced,
        ownChange=own_change,
        alreadyCompliant=compliant,
        plan=plan_json([result]),
        outcomes=outcomes_json([result]),
        notes=notes,
        correlationId=correlation_id,
    )
