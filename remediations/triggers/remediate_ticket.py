"""A ticket's run: its targets resolved to scopes, one pipeline run per scope under one write cap for
the whole ticket, and the ticket's result."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from remediations.core.model import Plan, Scope
from remediations.core.pinned import PinnedPlan, once_each
from remediations.core.registry import get_remediation
from remediations.core.request import RECONCILE_AFTER, RunRequest, SecretTarget, Targets
from remediations.shell import settings as names
from remediations.shell.policy_file import load_policy
from remediations.shell.settings import AppSettings
from remediations.triggers import ids, scope_guard
from remediations.triggers.caller import Attribution
from remediations.triggers.observability import logger
from remediations.triggers.service import (
    azure_session,
    closure_notes,
    effective_policy,
    forced_note,
    inventory_notes,
    outcomes_json,
    plan_json,
    run,
    run_status,
    secrets_needed,
    summarise,
)
from remediations.triggers.tickets import RunSummary, TicketRequest, TicketResult, TicketStatus

if TYPE_CHECKING:
    from remediations.adapters.clients import AzureClients
    from remediations.core.policy import Policy


def actionable_targets(request: TicketRequest) -> bool:
    """Targets the Key Vault engine can act on: vaults, secrets (their vault), principals."""
    targets = request.targets
    return bool(targets.vaults or targets.secrets or targets.principals)


def ticket_scopes(
    request: TicketRequest, settings: AppSettings, clients: AzureClients, policy: Policy
) -> tuple[list[Scope], list[str]]:
    """Vault scopes for the named vaults and the vaults of the named secrets; subscriptions when only
    principals are named. Secret URLs name a vault by host: found in the configured subscriptions."""
    targets = request.targets
    notes: list[str] = []
    vault_ids: dict[str, str] = {}
    for vault in targets.vaults:
        vault_ids.setdefault(vault.lower(), vault)
    by_host: set[str] = set()
    for secret in targets.secrets:
        secret_vault = ids.vault_id_in(secret)
        if secret_vault is not None:
            vault_ids.setdefault(secret_vault.lower(), secret_vault)
        else:
            by_host.add(secret.split("/")[2].split(".")[0].lower())
    if by_host:
        from remediations.adapters.errors import AzureCallFailed  # noqa: PLC0415

        for subscription in settings.subscription_ids:
            try:
                vaults = clients.keyvault_management(subscription).list_vaults(
                    Scope(subscription_id=subscription)
                )
            except AzureCallFailed as error:
                label = f"HTTP {error.status}" if error.status is not None else "no response"
                notes.append(f"could not list vaults of subscription {subscription}: {label}")
                continue
            for found in vaults:
                if found.name.lower() in by_host:
                    vault_ids.setdefault(found.id.lower(), found.id)
                    by_host.discard(found.name.lower())
        notes.extend(f"no vault named {host} in the configured subscriptions" for host in sorted(by_host))
    named = [Scope.parse(v) for v in vault_ids.values()]
    scopes = scope_guard.in_scope(named, settings.subscription_ids, policy)
    notes.extend(f"{v.resource_id} is out of scope: not read or changed" for v in named if v not in scopes)
    if not scopes and targets.principals:
        scopes = [Scope(subscription_id=s) for s in settings.subscription_ids]
        if not scopes:
            notes.append(f"principals alone need {names.SUBSCRIPTION_IDS} to know where to look")
    ignored = [k for k in ("flows", "connections", "environments") if getattr(targets, k)]
    if ignored:
        notes.append(
            f"targets of kind {', '.join(ignored)} are not acted on: "
            "no registered remediation handles them yet"
        )
    return scopes, notes


def secret_targets(secrets: Collection[str]) -> list[tuple[str, str]]:
    """`(vault reference, secret name)` of each validated secret target: the vault's ARM id for an ARM
    secret id, `https://{host}` for a secret URL (a version in the URL is ignored: the secret rotates)."""
    targets: list[tuple[str, str]] = []
    for secret in secrets:
        vault_id = ids.vault_id_in(secret)
        if vault_id is not None:
            targets.append((vault_id, secret.rstrip("/").rsplit("/secrets/", 1)[1].split("/")[0]))
        else:
            host = secret.split("/")[2]
            targets.append((f"https://{host}", secret.split("/secrets/", 1)[1].split("/")[0]))
    return targets


def ticket_targets(request: TicketRequest) -> Targets | None:
    """The secrets a ticket names, for the remediations that plan for named targets (rotation: exactly
    those secrets rotate, not every exposed or expiring secret of the vault)."""
    if not request.targets.secrets:
        return None
    return Targets(
        secrets=tuple(SecretTarget(vault=v, name=n) for v, n in secret_targets(request.targets.secrets)),
        reason=request.reason or "named in a ticket",
        reference=request.ticketId,
    )


def run_ticket(
    request: TicketRequest,
    *,
    settings: AppSettings,
    correlation_id: str,
    attribution: Attribution | None = None,
    reconcile_after: timedelta = RECONCILE_AFTER,
    pinned: PinnedPlan | None = None,
) -> TicketResult:
    """Plan (and unless a dry run, apply) the named remediations on the named targets.

    Named secrets are the request's targets: with `rotate_secret`, exactly those secrets rotate
    (rotation's own detectors, which would pick every exposed or expiring secret of the vault, are not
    used for this ticket).
    `attribution` (triggers/caller.py) says who the audit rows and the result name; without it, the
    body's requester as declared.

    The result carries the run's plan pinned (`planId`, `planHash`; the plans themselves in
    `pinned`, not serialised). With `pinned` (an approval), each scope applies its pinned plan, each
    action skipped as drifted where the target no longer shows the state it was planned from; a scope
    the pinned plan does not have gets no writes."""
    from remediations.shell.audit import AttributedAuditSink  # noqa: PLC0415 - keeps trigger import light

    who = attribution or Attribution(requester=request.requester)
    policy, forced = effective_policy(settings, load_policy(settings), request.dryRun)
    caller = who.audit_caller
    targets = ticket_targets(request)
    # The requester asked for these: a secret list they needed that failed is a failure of the ticket.
    partial_reads_fail = secrets_needed(request.remediations)
    with azure_session(settings) as (clients, table):
        audit = AttributedAuditSink(
            table,
            correlation_id,
            caller_object_id=who.caller.objectId if who.caller else None,
            declared_requester=who.declared_requester,
        )
        scopes, notes = ticket_scopes(request, settings, clients, policy)
        remaining = [policy.max_actions_per_run]  # one cap for the whole ticket, across its scopes

        def take(wanted: int) -> int:
            granted = min(wanted, remaining[0])
            remaining[0] -= granted
            return granted

        results = [
            run(
                RunRequest(
                    trigger="ticket",
                    scope=scope,
                    power_platform=policy.power_platform.scope(),
                    remediations=tuple(request.remediations),
                    principals=tuple(request.targets.principals) or None,
                    targets=targets,
                    correlation_id=correlation_id,
                    caller=caller,
                    ticket_id=request.ticketId,
                    reconcile_after=reconcile_after,
                ),
                policy,
                clients,
                audit,
                budget=take,
                pinned=None if pinned is None else pinned.for_scope(scope.resource_id) or _nothing(),
            )
            for scope in scopes
        ]
    kept = PinnedPlan.of(once_each([(s.resource_id, r.plan) for s, r in zip(scopes, results, strict=True)]))
    if not request.dryRun and forced:
        notes.insert(0, forced_note(forced))
    notes.extend(who.notes)
    if request.targets.secrets and not any(get_remediation(r).plans_targets for r in request.remediations):
        notes.append("secrets named without rotate_secret only select their vault")
    notes.extend(inventory_notes(results))
    notes.extend(closure_notes(results))
    summary = summarise(results, partial_reads_fail=partial_reads_fail)
    status = run_status(results, policy.dry_run, partial_reads_fail=partial_reads_fail)
    logger().info(
        "ticket run %s: %d scope(s), %d finding(s), %d write(s) planned, dry run %s",
        status,
        len(scopes),
        summary.findings,
        summary.actions,
        policy.dry_run,
    )
    return TicketResult(
        ticketId=request.ticketId,
        status=status,
        dryRun=policy.dry_run,
        requestedDryRun=request.dryRun,
        dryRunForcedBy=forced,
        remediations=list(request.remediations),
        targets=request.targets,
        plan=plan_json(results),
        outcomes=outcomes_json(results),
        findings=[f.model_dump(mode="json") for r in results for f in r.findings],
        scopes=[s.resource_id for s in scopes],
        summary=summary,
        notes=notes,
        message=_ticket_message(status, summary),
        correlationId=correlation_id,
        createdAt=datetime.now(UTC),
        completedAt=datetime.now(UTC),
        requester=who.requester,
        declaredRequester=who.declared_requester,
        caller=who.caller,
        reason=request.reason,
        planId=kept.id,
        planHash=kept.hash,
        pinned=kept,
    )


def _nothing() -> Plan:
    return Plan(id="nothing", created_at=datetime.now(UTC))


def _ticket_message(status: TicketStatus, summary: RunSummary) -> str:
    if status == "planned":
        return f"Dry run: {summary.actions} change(s) planned, none made."
    if status == "applied":
        return (
            f"{summary.actions} change(s) planned and applied." if summary.actions else "Nothing to change."
        )
    return f"{summary.failures} failure(s) among {summary.actions} planned change(s); see outcomes."
