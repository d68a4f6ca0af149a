"""A run about one vault changes that vault and the flows and connections that use it, nothing else.

A ticket or an alert names a vault; the policy's Power Platform environments are read with it so the
flow -> connection -> identity edges are known. Without a bound, the run would also plan share
revocations on flows of other vaults and environment-wide changes (DLP policies): tenant-wide writes
from a request about one vault. Pure: findings and plan in, the bounded findings and plan out.
"""

from __future__ import annotations

import re

from remediations.core.connection_references import connection_reference_resource_id, reference_bindings
from remediations.core.detect import detector_ids_on
from remediations.core.model import Finding, Plan, Scope, Snapshot, stable_id
from remediations.core.pp_detect import (
    connection_resource_id,
    flow_resource_id,
    keyvault_connections,
    keyvault_flows,
)
from remediations.core.registry import get_remediation

# a flow's, a connection's or a connection reference's id
_SHARED_RESOURCE = re.compile(r"/(flows|connections|connectionReferences)/", re.IGNORECASE)


def vault_resources(snapshot: Snapshot, vault_name: str) -> frozenset[str]:
    """Lower-case resource ids of the Key Vault connections to `vault_name`, the flows using them and the
    connection reference rows binding them."""
    wanted = vault_name.lower()

    def to_vault(parameters: dict[str, str]) -> bool:
        return parameters.get("vaultName", "").lower() == wanted

    to_this_vault = {
        c.id.lower(): c for c in keyvault_connections(snapshot).values() if to_vault(c.parameters)
    }
    connections = {connection_resource_id(c).lower() for c in to_this_vault.values()}
    references = {
        connection_reference_resource_id(row.environment, row.logical_name).lower()
        for row in reference_bindings(snapshot).values()
        if row.connections & set(to_this_vault)
    }
    flows = {
        flow_resource_id(flow).lower()
        for flow, used in keyvault_flows(snapshot)
        if any(to_vault(c.parameters) for c in used)
    }
    return frozenset(connections | flows | references)


def bound_to_vault(
    scope: Scope, snapshot: Snapshot, findings: list[Finding], plan: Plan, *, environment_wide: bool
) -> tuple[list[Finding], Plan]:
    """For a vault scope: Power Platform findings and share actions only on that vault's flows and
    connections. `environment_wide`: whether an environment-level action (the Key Vault DLP policy, which
    a ticket may ask for by name) may stay; an alert's run never makes one. Other scopes (a subscription,
    a sweep's environment) are returned as is."""
    if scope.vault_name is None:
        return findings, plan
    mine = vault_resources(snapshot, scope.vault_name)
    power_platform = detector_ids_on("power_platform")
    kept_findings = [
        f for f in findings if f.detector_id not in power_platform or f.resource_id.lower() in mine
    ]

    def bounded(action_target: str, remediation_id: str) -> bool:
        if not get_remediation(remediation_id).power_platform or action_target.lower() in mine:
            return True
        return environment_wide and not _SHARED_RESOURCE.search(action_target)

    actions = tuple(a for a in plan.actions if bounded(a.target, a.remediation_id))
    deferred = tuple(a for a in plan.deferred if bounded(a.target, a.remediation_id))
    if len(actions) == len(plan.actions) and len(deferred) == len(plan.deferred):
        return kept_findings, plan
    return kept_findings, plan.model_copy(
        update={
            "id": stable_id("plan", [a.id for a in actions], [a.id for a in deferred]),
            "actions": actions,
            "deferred": deferred,
        }
    )
