"""The timer's sweep plan: one queue message per vault of the configured subscriptions and one per
Power Platform environment the policy names. Reads lists only; no remediation here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from remediations.core.model import Scope
from remediations.core.policy import Policy
from remediations.shell.policy_file import load_policy
from remediations.shell.settings import AppSettings
from remediations.triggers.messages import ScopeMessage, SweepDepth
from remediations.triggers.observability import logger
from remediations.triggers.service import (
    effective_policy,
)

if TYPE_CHECKING:
    from remediations.adapters.clients import AzureClients


@dataclass(frozen=True)
class SweepPlan:
    messages: list[ScopeMessage]
    dry_run: bool
    budget: int  # writes allowed for the whole sweep
    failures: list[str] = field(default_factory=list)  # subscriptions that could not be listed


def plan_sweep(
    settings: AppSettings, *, sweep_id: str, correlation_id: str | None = None, depth: SweepDepth = "quick"
) -> SweepPlan:
    """One ARM list call (paged) per configured subscription; one message per vault, then one per
    Power Platform environment the policy names (for "*", one environment list call). No remediation
    here. A quick sweep's vault workers plan from the stored secret inventory; a deep sweep's list
    every vault's secrets (and store them) and leaves the environments to the quick sweeps."""
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
                ScopeMessage.for_scope("vault", v.id, sweep_id, policy.dry_run, correlation_id, depth)
                for v in vaults
                if not policy.excludes_vault(v)
            )
        environments = _sweep_environments(policy, clients, failures) if depth == "quick" else []
    messages.extend(
        ScopeMessage.for_scope("environment", e, sweep_id, policy.dry_run, correlation_id)
        for e in environments
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
