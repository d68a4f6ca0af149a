"""What the trigger jobs share between them and the pipeline. The jobs, one module each:

    remediate_ticket.run_ticket(request, *, settings, correlation_id, attribution=None) -> TicketResult
    remediate_alert.handle_alert(signal, *, received, target, correlation_id) -> AlertResult
    remediate_event.handle_event(event, received, *, target, correlation_id) -> EventResult
    sweep_plan.plan_sweep(settings, *, sweep_id, correlation_id=None) -> SweepPlan
    scope_work.work(message, *, settings, correlation_id, budget=None) -> WorkOutcome

Each builds its Azure clients (`AzureClients`, DefaultAzureCredential) and audit sink per invocation,
describes its run as a `RunRequest` and runs the one pipeline (`remediations.shell.pipeline.run`).

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
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from remediations.core.policy import Policy
from remediations.core.registry import get_remediation, remediation_ids
from remediations.core.request import RunRequest
from remediations.shell import settings as names
from remediations.shell.settings import AppSettings
from remediations.triggers.tickets import RunSummary, TicketStatus

if TYPE_CHECKING:
    from remediations.adapters.clients import AzureClients
    from remediations.core.model import Plan
    from remediations.shell.audit import AuditSink
    from remediations.shell.pipeline import Budget, RunResult
    from remediations.shell.secret_inventory import SecretInventoryStore

DEFAULT_THROTTLE_DELAY_SECONDS = 60.0
MAX_THROTTLE_DELAY_SECONDS = 3600.0
_HTTP_429 = re.compile(r"\bHTTP 429\b")  # AzureCallFailed's message format, kept in Outcome.error


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
def azure_session(settings: AppSettings) -> Iterator[tuple[AzureClients, AuditSink]]:
    from remediations.adapters.clients import AzureClients  # noqa: PLC0415 - keeps trigger import light
    from remediations.shell.audit import TableAuditSink  # noqa: PLC0415

    audit = TableAuditSink.from_settings(settings)
    try:
        with AzureClients() as clients:
            yield clients, audit
    finally:
        audit.close()


def run(
    request: RunRequest,
    policy: Policy,
    clients: AzureClients,
    audit: AuditSink,
    *,
    budget: Budget | None = None,
    secret_store: SecretInventoryStore | None = None,
    pinned: Plan | None = None,
) -> RunResult:
    """The one pipeline (remediations/shell/pipeline.py), imported when a trigger runs, not when it
    is indexed: it loads the Azure SDK."""
    from remediations.shell import pipeline  # noqa: PLC0415 - keeps trigger import light
    from remediations.shell.write_guard import table_leases  # noqa: PLC0415

    settings = AppSettings.from_env()
    # A dead holder blocks its vault no longer than a run counts as alive (VAULTGUARD_STALE_RUN_SECONDS).
    from remediations.triggers.runs import stale_after  # noqa: PLC0415

    hold = min(stale_after().total_seconds(), 120.0)
    leases = table_leases(settings.storage_connection, settings.storage_table_uri, hold)
    return pipeline.run(
        request,
        policy,
        clients,
        audit,
        budget=budget,
        secret_store=secret_store,
        leases=leases,
        pinned=pinned,
    )


def secrets_needed(only: Collection[str] | None) -> bool:
    """Whether any selected remediation plans from secret metadata (so the inventory must list it)."""
    return any(
        get_remediation(r).needs_secret_metadata for r in (remediation_ids() if only is None else only)
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
        return sum(r.count("failed") + r.read_errors + len(r.unaccepted_paths) for r in results)
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


def plan_json(results: Collection[RunResult]) -> list[dict[str, Any]]:
    return [a.model_dump(mode="json") for r in results for a in (*r.plan.actions, *r.plan.deferred)]


def outcomes_json(results: Collection[RunResult]) -> list[dict[str, Any]]:
    return [o.model_dump(mode="json") for r in results for o in r.outcomes]


def inventory_notes(results: Collection[RunResult]) -> list[str]:
    """The failed reads, each with what would let it through, then what the runs left alone on purpose."""
    failed = [
        f"read failed: {e.operation} {e.resource_id}: {e.label}{e.remedy_note}"
        + (
            "; the scope's other remediations still ran, those needing this read were skipped"
            if e.partial
            else ""
        )
        for r in results
        for e in r.inventory_errors
    ]
    return failed + [note for r in results for note in r.notes]


def closure_notes(results: Collection[RunResult]) -> list[str]:
    """The person -> flow -> secret paths a fresh read after apply still has, each with its reason
    (an unaccepted one is a failure of the run), then those closed, with why
    (remediations/core/closure.py)."""
    return [p.describe() for r in results for p in r.closure_paths]


def forced_note(forced: list[str]) -> str:
    return (
        f"dryRun false was asked for, but {' and '.join(forced)} keep this deployment in dry run: "
        "the plan was made and nothing was changed"
    )
