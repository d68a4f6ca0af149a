"""The seam between the triggers and the engine. The triggers call only the functions below.

    run_ticket(request, *, settings, correlation_id, attribution=None) -> TicketResult
    handle_alert(signal, *, settings, correlation_id) -> AlertResult
    plan_sweep(settings, *, sweep_id, correlation_id=None) -> SweepPlan   (enumerate_scopes: its messages)
    work(message, *, settings, correlation_id) -> WorkOutcome

Each builds its Azure clients (`AzureClients`, DefaultAzureCredential) and audit sink per invocation
and runs detect -> plan -> apply through `remediations.core.engine`.

Safety rails of the deployment: the effective dry run is a dry run if the app setting
`VAULTGUARD_DRY_RUN` OR the policy's `dryRun` says so (a ticket's `dryRun: false` cannot lift it; its
`dryRun: true` always wins), and the effective cap on writes is the minimum of
`VAULTGUARD_MAX_ACTIONS_PER_RUN` and the policy's `maxActionsPerRun`. For a sweep the cap is one
budget for the whole sweep (remediations/triggers/budget.py), not one per worker.

Power Platform in a sweep: the policy's `powerPlatform.environments` (names, or "*": listed at sweep
time) get one environment message each. Its worker reads that environment only and plans the Power
Platform remediations (share revocations, DLP) and reports the Power Platform findings, once per sweep.
Vault workers plan only the Key Vault remediations; they still read the Power Platform inventory when
environments are configured, because Key Vault decisions use the flows (`allowList: fromFlows`,
rotation of secrets exposed by flow definitions, oversized vaults reached by flow identities).

None of these may log or return a secret value: plans, findings and outcomes carry permission
names and resource ids only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from remediations.core import settings as names
from remediations.core.model import Action, Plan, PowerPlatformScope, Scope, Snapshot, stable_id
from remediations.core.policy import Policy, load_policy
from remediations.core.read_once import ReadOnce
from remediations.core.registry import get_remediation, remediation_ids
from remediations.core.settings import AppSettings
from remediations.triggers import ids, scope_guard, tickets
from remediations.triggers.alerts import AlertResult, AlertSignal
from remediations.triggers.caller import Attribution
from remediations.triggers.messages import ScopeMessage
from remediations.triggers.observability import logger
from remediations.triggers.tickets import RunSummary, TicketRequest, TicketResult, TicketStatus

if TYPE_CHECKING:
    from remediations.adapters.clients import AzureClients
    from remediations.core.audit import AuditSink, Trigger
    from remediations.core.engine import RunResult
    from remediations.core.pp_inventory import PowerPlatformInventory

# Unknown remediation names in a ticket are a 422: validate against what is registered.
tickets.use_remediation_registry(remediation_ids)

ROTATION_ID = "rotate_secret"
DEFAULT_THROTTLE_DELAY_SECONDS = 60.0
MAX_THROTTLE_DELAY_SECONDS = 3600.0
_HTTP_429 = re.compile(r"\bHTTP 429\b")  # AzureCallFailed's message format, kept in Outcome.error

NO_POWER_PLATFORM = (
    "the policy names no Power Platform environments (powerPlatform.environments); "
    "the environment scope is acknowledged"
)


def power_platform_remediations(only: Collection[str] | None = None) -> list[str]:
    return [r for r in (remediation_ids() if only is None else only) if get_remediation(r).power_platform]


def keyvault_remediations(only: Collection[str] | None = None) -> list[str]:
    return [r for r in (remediation_ids() if only is None else only) if not get_remediation(r).power_platform]


# --- shared ----------------------------------------------------------------------------------------


def effective_policy(
    settings: AppSettings, policy: Policy, requested_dry_run: bool | None = None
) -> tuple[Policy, list[str]]:
    """The policy with the deployment's rails applied, and which rails forced a dry run."""
    forced = []
    if settings.dry_run:
        forced.append(names.DRY_RUN)
    if policy.dry_run:
        forced.append("policy.dryRun")
    dry_run = bool(forced) or requested_dry_run is True
    cap = min(settings.max_actions_per_run, policy.max_actions_per_run)
    return policy.model_copy(update={"dry_run": dry_run, "max_actions_per_run": cap}), forced


@contextmanager
def _azure(settings: AppSettings) -> Iterator[tuple[AzureClients, AuditSink]]:
    from remediations.adapters.clients import AzureClients  # noqa: PLC0415 - keeps trigger import light
    from remediations.core.audit import TableAuditSink  # noqa: PLC0415

    audit = TableAuditSink.from_settings(settings)
    try:
        with AzureClients() as clients:
            yield clients, audit
    finally:
        audit.close()


Budget = Callable[[int], int]
# Actions planned outside detection for one scope's snapshot (a ticket's named secrets, an alert's vault).
Planner = Callable[[Snapshot, Policy], list[Action]]


def secrets_needed(only: Collection[str] | None) -> bool:
    """Whether any selected remediation plans from secret metadata (so the inventory must list it)."""
    return any(
        get_remediation(r).needs_secret_metadata for r in (remediation_ids() if only is None else only)
    )


def limit_writes(plan: Plan, granted: int) -> Plan:
    """Keep the first `granted` writes (plan order); defer the rest. Skipped actions stay."""
    writes = [a for a in plan.actions if a.skip_reason is None]
    if len(writes) <= granted:
        return plan
    allowed = {a.id for a in writes[: max(granted, 0)]}
    kept = tuple(a for a in plan.actions if a.skip_reason is not None or a.id in allowed)
    deferred = tuple(a for a in writes if a.id not in allowed) + plan.deferred
    return plan.model_copy(
        update={
            "id": stable_id("plan", [a.id for a in kept], [a.id for a in deferred]),
            "actions": kept,
            "deferred": deferred,
        }
    )


# Power Platform inventories read for a sweep's vault workers in this process, by (sweep, scope).
SWEEP_POWER_PLATFORM: ReadOnce[PowerPlatformInventory] = ReadOnce(
    ttl_s=1800.0, size=4, keep=lambda read: not read.errors
)


def _shared_power_platform(
    sweep_id: str, pp_scope: PowerPlatformScope | None, clients: AzureClients
) -> Callable[[], PowerPlatformInventory] | None:
    if pp_scope is None or pp_scope.empty:
        return None
    from remediations.core.pp_inventory import inventory_powerplatform  # noqa: PLC0415

    key = (sweep_id, pp_scope.model_dump_json())
    return lambda: SWEEP_POWER_PLATFORM.get(key, lambda: inventory_powerplatform(pp_scope, clients))


def run_scope(
    scope: Scope,
    policy: Policy,
    clients: AzureClients,
    audit: AuditSink,
    *,
    trigger: Trigger,
    correlation_id: str,
    caller: str,
    ticket_id: str | None = None,
    only: Collection[str] | None = None,
    principals: Collection[str] | None = None,
    budget: Budget | None = None,
    extra: Planner | None = None,
    keyvault_only: bool = False,
    sweep_id: str | None = None,
) -> RunResult:
    """engine.run for one scope, plus: a principal filter on findings, actions from `extra` merged into
    the plan, and a write budget taken between planning and applying (so a shared cap is spent only on
    writes that will be made).

    `keyvault_only` (a sweep's vault worker): only the Key Vault remediations are planned and the Power
    Platform findings are left out; the environment messages of the same sweep own those, once.
    `sweep_id`: the vault workers of one sweep in this process share one read of the Power Platform
    inventory (`SWEEP_POWER_PLATFORM`) instead of reading every environment once per vault.

    Secret metadata is read only when a selected remediation plans from it (rotation, RBAC narrowing).
    The app's identity often has no data-plane `list` on access-policy vaults: a refused list is an
    InventoryError marked partial, the access-policy fixes still run, and the remediations that need
    the list plan skipped actions for that vault saying why."""
    from remediations.core.detect import detect  # noqa: PLC0415
    from remediations.core.engine import (  # noqa: PLC0415
        RunContext,
        RunResult,
        apply_plan,
        build_plan,
        inventory,
        reconcile_dangling,
    )
    from remediations.core.vault_bound import bound_to_vault  # noqa: PLC0415

    context = RunContext(correlation_id=correlation_id, trigger=trigger, ticket_id=ticket_id, caller=caller)
    # Power Platform environments named by the policy are read with the vault, so the flow ->
    # connection -> identity edges (and the fixes that cut them) are part of every trigger's run.
    pp_scope = policy.power_platform.scope()
    snapshot = inventory(
        scope,
        clients,
        include_secrets=secrets_needed(only) or extra is not None,
        pp_scope=pp_scope,
        power_platform=_shared_power_platform(sweep_id, pp_scope, clients) if sweep_id else None,
    )
    findings = detect(snapshot, policy)
    if keyvault_only:
        from remediations.core.pp_detect import POWER_PLATFORM_DETECTORS  # noqa: PLC0415

        only = keyvault_remediations(only)
        findings = [f for f in findings if f.detector_id not in POWER_PLATFORM_DETECTORS]
    if principals is not None:
        wanted = {p.lower() for p in principals}
        findings = [f for f in findings if (f.principal or "").lower() in wanted]
    planned = extra(snapshot, policy) if extra is not None else []
    plan = build_plan(findings, snapshot, policy, remediation_ids=only, extra=planned)
    # A run about one vault plans only on that vault and the flows and connections that use it.
    findings, plan = bound_to_vault(scope, snapshot, findings, plan, environment_wide=trigger == "ticket")
    if budget is not None and not plan.dry_run and plan.writes:
        plan = limit_writes(plan, budget(len(plan.writes)))
    # Writes a crashed earlier run left pending in this scope; a filtered plan (named remediations or
    # principals) cannot say "no longer planned", so only re-read access-policy rows are judged then.
    reconciled = reconcile_dangling(
        snapshot, plan, audit, context, complete_plan=only is None and principals is None
    )
    outcomes = apply_plan(plan, clients, audit, context)
    return RunResult(
        correlation_id=context.correlation_id,
        scope=scope,
        findings=tuple(findings),
        plan=plan,
        outcomes=tuple(outcomes),
        inventory_errors=snapshot.errors,
        reconciled=tuple(reconciled),
    )


def environment_policy(policy: Policy, environment: str) -> Policy:
    """The policy as one environment's worker applies it. `dlp.blockConnectorInEnvironments` is a
    tenant-wide list: each worker plans only its own environment, so no two workers of a sweep plan the
    same DLP write; names the sweep has no message for are left to the first configured environment."""
    rules = policy.power_platform
    swept = {e.lower() for e in rules.environments}
    first = next(iter(rules.environments), "").lower()
    wanted = environment.lower()
    mine = tuple(
        e
        for e in rules.dlp.block_connector_in_environments
        if e.lower() == wanted or ("*" not in swept and e.lower() not in swept and wanted == first)
    )
    dlp = rules.dlp.model_copy(update={"block_connector_in_environments": mine})
    return policy.model_copy(update={"power_platform": rules.model_copy(update={"dlp": dlp})})


def run_environment(
    environment: str,
    policy: Policy,
    clients: AzureClients,
    audit: AuditSink,
    *,
    trigger: Trigger,
    correlation_id: str,
    caller: str,
    ticket_id: str | None = None,
    budget: Budget | None = None,
) -> RunResult:
    """The Power Platform half of a sweep, for one environment: read it (no Azure read), detect with the
    Power Platform detectors, plan and apply the Power Platform remediations (shares, DLP) under the
    sweep's budget, audited like every write. Safe twice: the second run plans 0 writes."""
    from remediations.core.detect import detect  # noqa: PLC0415
    from remediations.core.engine import (  # noqa: PLC0415
        RunContext,
        RunResult,
        apply_plan,
        build_plan,
        inventory_environment,
    )
    from remediations.core.pp_detect import POWER_PLATFORM_DETECTORS  # noqa: PLC0415

    context = RunContext(correlation_id=correlation_id, trigger=trigger, ticket_id=ticket_id, caller=caller)
    policy = environment_policy(policy, environment)
    snapshot = inventory_environment(environment, clients)
    findings = detect(snapshot, policy, only=set(POWER_PLATFORM_DETECTORS))
    plan = build_plan(findings, snapshot, policy, remediation_ids=power_platform_remediations())
    if budget is not None and not plan.dry_run and plan.writes:
        plan = limit_writes(plan, budget(len(plan.writes)))
    outcomes = apply_plan(plan, clients, audit, context)
    return RunResult(
        correlation_id=context.correlation_id,
        scope=snapshot.scope,
        findings=tuple(findings),
        plan=plan,
        outcomes=tuple(outcomes),
        inventory_errors=snapshot.errors,
    )


def throttled_calls(result: RunResult) -> int:
    """Reads and writes that ended in 429 after the adapters' own retries gave up."""
    reads = sum(1 for e in result.inventory_errors if e.status == 429)
    writes = sum(1 for o in result.outcomes if o.status == "failed" and _HTTP_429.search(o.error or ""))
    return reads + writes


def retry_after(result: RunResult) -> float:
    asked = [e.retry_after for e in result.inventory_errors if e.status == 429 and e.retry_after]
    delay = max(asked) if asked else DEFAULT_THROTTLE_DELAY_SECONDS
    return min(max(delay, 1.0), MAX_THROTTLE_DELAY_SECONDS)


def _failures(results: Collection[RunResult], partial_reads_fail: bool) -> int:
    if partial_reads_fail:
        return sum(r.count("failed") + r.read_errors for r in results)
    return sum(r.failures for r in results)


def summarise(results: Collection[RunResult], *, partial_reads_fail: bool = False) -> RunSummary:
    """`partial_reads_fail`: a partial read failure counts as a failure too (a ticket that asked for a
    remediation the failed read kept from running)."""
    return RunSummary(
        findings=sum(len(r.findings) for r in results),
        actions=sum(len(r.plan.writes) for r in results),
        failures=_failures(results, partial_reads_fail),
        throttled=sum(throttled_calls(r) for r in results),
        readErrors=sum(r.read_errors for r in results),
    )


def run_status(
    results: Collection[RunResult], dry_run: bool, *, partial_reads_fail: bool = False
) -> TicketStatus:
    if dry_run:
        return "planned"
    failures = _failures(results, partial_reads_fail)
    if failures == 0:
        return "applied"
    done = sum(r.count("applied") + r.count("noop") for r in results)
    return "partially-applied" if done else "failed"


def _actions(results: Collection[RunResult]) -> list[dict[str, Any]]:
    return [a.model_dump(mode="json") for r in results for a in (*r.plan.actions, *r.plan.deferred)]


def _outcomes(results: Collection[RunResult]) -> list[dict[str, Any]]:
    return [o.model_dump(mode="json") for r in results for o in r.outcomes]


def _inventory_notes(results: Collection[RunResult]) -> list[str]:
    return [
        f"read failed: {e.operation} {e.resource_id}: {e.label}"
        + (
            "; the scope's other remediations still ran, those needing this read were skipped"
            if e.partial
            else ""
        )
        for r in results
        for e in r.inventory_errors
    ]


def _forced_note(forced: list[str]) -> str:
    return (
        f"dryRun false was asked for, but {' and '.join(forced)} keep this deployment in dry run: "
        "the plan was made and nothing was changed"
    )


# --- tickets ---------------------------------------------------------------------------------------


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


def _ticket_rotation(request: TicketRequest) -> Planner:
    """Rotation of exactly the secrets the ticket names (those of the vault being run)."""
    from remediations.core.rotation import find_vault  # noqa: PLC0415
    from remediations.rotate_secret import plan_for_targets  # noqa: PLC0415

    named = secret_targets(request.targets.secrets)
    reason = request.reason or "named in a ticket"

    def plan(snapshot: Snapshot, policy: Policy) -> list[Action]:
        mine = [(v, n) for v, n in named if find_vault(snapshot, v) is not None]
        return plan_for_targets(snapshot, policy, mine, reason, request.ticketId)

    return plan


def run_ticket(
    request: TicketRequest,
    *,
    settings: AppSettings,
    correlation_id: str,
    attribution: Attribution | None = None,
) -> TicketResult:
    """Plan (and unless a dry run, apply) the named remediations on the named targets.

    With `rotate_secret` and named secrets, exactly those secrets rotate (rotation's own detectors,
    which would pick every exposed or expiring secret of the vault, are not used for this ticket).
    `attribution` (triggers/caller.py) says who the audit rows and the result name; without it, the
    body's requester as declared."""
    from remediations.core.audit import AttributedAuditSink  # noqa: PLC0415 - keeps trigger import light

    who = attribution or Attribution(requester=request.requester)
    policy, forced = effective_policy(settings, load_policy(settings), request.dryRun)
    caller = who.audit_caller
    principals = list(request.targets.principals) or None
    named_rotation = ROTATION_ID in request.remediations and bool(request.targets.secrets)
    only = [r for r in request.remediations if not (named_rotation and r == ROTATION_ID)]
    extra = _ticket_rotation(request) if named_rotation else None
    # The requester asked for these: a secret list they needed that failed is a failure of the ticket.
    partial_reads_fail = named_rotation or secrets_needed(request.remediations)
    with _azure(settings) as (clients, table):
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
            run_scope(
                scope,
                policy,
                clients,
                audit,
                trigger="ticket",
                correlation_id=correlation_id,
                caller=caller,
                ticket_id=request.ticketId,
                only=only,
                principals=principals,
                budget=take,
                extra=extra,
            )
            for scope in scopes
        ]
    if not request.dryRun and forced:
        notes.insert(0, _forced_note(forced))
    notes.extend(who.notes)
    if request.targets.secrets and not named_rotation:
        notes.append("secrets named without rotate_secret only select their vault")
    notes.extend(_inventory_notes(results))
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
        plan=_actions(results),
        outcomes=_outcomes(results),
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
    )


def _ticket_message(status: TicketStatus, summary: RunSummary) -> str:
    if status == "planned":
        return f"Dry run: {summary.actions} change(s) planned, none made."
    if status == "applied":
        return (
            f"{summary.actions} change(s) planned and applied." if summary.actions else "Nothing to change."
        )
    return f"{summary.failures} failure(s) among {summary.actions} planned change(s); see outcomes."


# --- alerts ----------------------------------------------------------------------------------------


def handle_alert(signal: AlertSignal, *, settings: AppSettings, correlation_id: str) -> AlertResult:
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
    extra: Planner | None = None
    # Rotation's own detectors are left out of an alert's run: a re-check is about access, and a
    # Defender alert rotates exactly the alerted vault's secrets (planned below), never twice.
    only = [r for r in remediation_ids() if r != ROTATION_ID]
    if signal.kind == "revoke-and-rotate":
        from remediations.rotate_secret import plan_for_alert, unreadable_vaults  # noqa: PLC0415

        vault_id, reason, alert_id = signal.vaultId, signal.reason, signal.alertId

        def rotate_per_policy(snapshot: Snapshot, policy: Policy) -> list[Action]:
            return plan_for_alert(snapshot, policy, vault_id, reason, alert_id) + unreadable_vaults(
                snapshot, policy
            )

        extra = rotate_per_policy
        notes.append(
            f"rotation of the vault's secrets per policy rotation.onAlert={policy.rotation.on_alert}"
        )
    with _azure(settings) as (clients, audit):
        own_change = False
        if signal.caller or signal.callerObjectId:
            own_change = own_identity(clients.credential).is_caller(signal.callerObjectId, signal.caller)
        result = run_scope(
            Scope.parse(signal.vaultId),
            policy,
            clients,
            audit,
            trigger="alert",
            correlation_id=correlation_id,
            caller=caller,
            ticket_id=signal.alertId,
            only=only,
            extra=extra,
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
    notes.extend(_inventory_notes([result]))
    status = run_status([result], policy.dry_run)
    return AlertResult(
        alertId=signal.alertId,
        status="planned" if status == "planned" else "handled" if status == "applied" else "failed",
        signal=signal,
        message=signal.reason,
        receivedAt=datetime.now(UTC).isoformat(),
        summary=summary.model_dump(),
        dryRun=policy.dry_run,
        dryRunForcedBy=forced,
        ownChange=own_change,
        alreadyCompliant=compliant,
        plan=_actions([result]),
        outcomes=_outcomes([result]),
        notes=notes,
        correlationId=correlation_id,
    )


# --- sweep and worker ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepPlan:
    messages: list[ScopeMessage]
    dry_run: bool
    budget: int  # writes allowed for the whole sweep
    failures: list[str] = field(default_factory=list)  # subscriptions that could not be listed


def plan_sweep(settings: AppSettings, *, sweep_id: str, correlation_id: str | None = None) -> SweepPlan:
    """One ARM list call (paged) per configured subscription; one message per vault, then one per
    Power Platform environment the policy names (for "*", one environment list call). No remediation
    here."""
    from remediations.adapters.clients import AzureClients  # noqa: PLC0415
    from remediations.adapters.errors import AzureCallFailed  # noqa: PLC0415

    policy, _ = effective_policy(settings, load_policy(settings))
    messages: list[ScopeMessage] = []
    failures: list[str] = []
    with AzureClients() as clients:
        for subscription in settings.subscription_ids:
            try:
                vaults = clients.keyvault_management(subscription).list_vaults(
                    Scope(subscription_id=subscription)
                )
            except AzureCallFailed as error:
                logger().error("sweep could not list the vaults of subscription %s: %s", subscription, error)
                failures.append(subscription)
                continue
            messages.extend(
                ScopeMessage.for_vault(v.id, sweep_id, policy.dry_run, correlation_id)
                for v in vaults
                if not policy.excludes_vault(v)
            )
        environments = _sweep_environments(policy, clients, failures)
    messages.extend(
        ScopeMessage.for_environment(e, sweep_id, policy.dry_run, correlation_id) for e in environments
    )
    return SweepPlan(messages, policy.dry_run, policy.max_actions_per_run, failures)


def _sweep_environments(policy: Policy, clients: AzureClients, failures: list[str]) -> list[str]:
    from remediations.adapters.errors import AzureCallFailed  # noqa: PLC0415

    configured = list(dict.fromkeys(policy.power_platform.environments))
    if "*" not in configured:
        return configured
    try:
        listed = clients.power_platform().list_environments()
    except AzureCallFailed as error:
        logger().error("sweep could not list the Power Platform environments: %s", error)
        failures.append("Power Platform environments")
        return []
    return sorted({str(item["name"]) for item in listed if item.get("name")})


def enumerate_scopes(
    settings: AppSettings, *, sweep_id: str, correlation_id: str | None = None
) -> list[ScopeMessage]:
    return plan_sweep(settings, sweep_id=sweep_id, correlation_id=correlation_id).messages


@dataclass(frozen=True)
class WorkOutcome:
    summary: RunSummary
    status: str  # planned | applied | partially-applied | failed | skipped
    dry_run: bool
    retry_after: float | None = None  # set when Azure throttled the run: put the message back
    notes: list[str] = field(default_factory=list)
    # The actions planned (and deferred), as JSON: stored with the run so a dry-run sweep can be read.
    plan: list[dict[str, Any]] = field(default_factory=list)

    @property
    def throttled(self) -> bool:
        return self.retry_after is not None

    @property
    def failed(self) -> bool:
        return self.summary.failures > 0


def work(
    message: ScopeMessage, *, settings: AppSettings, correlation_id: str, budget: Budget | None = None
) -> WorkOutcome:
    """detect -> plan -> apply for one scope. Safe twice: the second run plans 0 writes.

    A vault or subscription message plans the Key Vault remediations; an environment message the Power
    Platform ones (so a sweep plans each share revocation and DLP change once, not once per vault)."""
    policy, forced = effective_policy(settings, load_policy(settings), message.dryRun)
    if message.kind == "environment" and not policy.power_platform.environments:
        logger().info(NO_POWER_PLATFORM, extra={"scope_kind": "environment"})
        return WorkOutcome(RunSummary(), "skipped", policy.dry_run, notes=[NO_POWER_PLATFORM])
    with _azure(settings) as (clients, audit):
        if message.kind == "environment":
            result = run_environment(
                message.id,
                policy,
                clients,
                audit,
                trigger="timer",
                correlation_id=correlation_id,
                caller="sweep",
                ticket_id=message.sweepId,
                budget=budget,
            )
        else:
            scope = (
                Scope(subscription_id=message.id)
                if message.kind == "subscription"
                else Scope.parse(message.id)
            )
            result = run_scope(
                scope,
                policy,
                clients,
                audit,
                trigger="timer",
                correlation_id=correlation_id,
                caller="sweep",
                ticket_id=message.sweepId,
                budget=budget,
                keyvault_only=True,
                sweep_id=message.sweepId,
            )
    summary = summarise([result])
    delay = retry_after(result) if summary.throttled else None
    notes = _inventory_notes([result]) + [
        f"{o.action_id}: {o.error}" for o in result.outcomes if o.status == "failed"
    ]
    if forced and not message.dryRun:
        notes.insert(0, _forced_note(forced))
    return WorkOutcome(
        summary, run_status([result], policy.dry_run), policy.dry_run, delay, notes, _actions([result])
    )
