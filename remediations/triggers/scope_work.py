"""The queue worker's run of one scope message: a vault (or subscription) plans the Key Vault
remediations, an environment the Power Platform ones, each through the pipeline under the sweep's budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from remediations.core.model import PowerPlatformScope, Scope
from remediations.core.policy import Policy
from remediations.core.request import RunRequest
from remediations.shell.policy_file import load_policy
from remediations.shell.secret_inventory import inventory_ages
from remediations.shell.settings import AppSettings
from remediations.triggers.messages import ScopeMessage
from remediations.triggers.observability import logger
from remediations.triggers.service import (
    azure_session,
    effective_policy,
    forced_note,
    inventory_notes,
    plan_json,
    retry_after,
    run,
    run_status,
    summarise,
)
from remediations.triggers.tickets import RunSummary

if TYPE_CHECKING:
    from remediations.shell.pipeline import Budget

NO_POWER_PLATFORM = (
    "the policy names no Power Platform environments (powerPlatform.environments); "
    "the environment scope is acknowledged"
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
    if message.kind == "environment":
        policy = environment_policy(policy, message.id)
        request = RunRequest(
            trigger="timer",
            scope=None,
            power_platform=PowerPlatformScope(environments=(message.id,)),
            part="power_platform",
            correlation_id=correlation_id,
            caller="sweep",
            ticket_id=message.sweepId,
        )
    else:
        request = RunRequest(
            trigger="timer",
            scope=Scope(subscription_id=message.id)
            if message.kind == "subscription"
            else Scope.parse(message.id),
            power_platform=policy.power_platform.scope(),
            part="key_vault",
            correlation_id=correlation_id,
            caller="sweep",
            ticket_id=message.sweepId,
            sweep_id=message.sweepId,
            secrets_from="store" if message.depth == "quick" else "read",
        )
    from remediations.triggers.secret_table import TableSecretInventory  # noqa: PLC0415 - SDK import

    # The last deep inventory per vault: a quick sweep plans from it, a deep one refreshes it.
    store = TableSecretInventory.from_env() if message.kind != "environment" else None
    with azure_session(settings) as (clients, audit):
        result = run(request, policy, clients, audit, budget=budget, secret_store=store)
    summary = summarise([result])
    delay = retry_after(result) if summary.throttled else None
    ages = inventory_ages(result.snapshot) if result.snapshot is not None else []
    notes = (
        inventory_notes([result])
        + ages
        + [f"{o.action_id}: {o.error}" for o in result.outcomes if o.status == "failed"]
    )
    if forced and not message.dryRun:
        notes.insert(0, forced_note(forced))
    return WorkOutcome(
        summary, run_status([result], policy.dry_run), policy.dry_run, delay, notes, plan_json([result])
    )
