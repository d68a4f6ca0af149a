"""An alert's run: the alerted vault re-checked (and for a Defender alert, its secrets rotated per
policy) through the pipeline, and the alert's result."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from remediations.core.model import Scope
from remediations.core.request import RECONCILE_AFTER, RunRequest, Targets
from remediations.shell.policy_file import load_policy
from remediations.shell.settings import AppSettings
from remediations.triggers.alerts import AlertSignal
from remediations.triggers.deliveries import AlertResult, delivery_status
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

if TYPE_CHECKING:
    pass


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
    status = run_status([result], policy.dry_run)
    return AlertResult(
        alertId=signal.alertId,
        status=delivery_status(status),
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
