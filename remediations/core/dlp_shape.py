"""The Power Platform admin API's DLP policy body -> `DlpPolicy` (pure).

The inventory (through the adapter) and the `enforce_keyvault_dlp` fix both read it: the fix PATCHes
the whole body it GETs (so it keeps what the policy already holds) and judges it with this reading,
without importing the adapters (which load the Azure SDK).
"""

from __future__ import annotations

from typing import Any

from remediations.core.model import DlpPolicy

# Where the admin API keeps DLP policies: an action on one names its target under this path.
DLP_POLICIES = "/providers/PowerPlatform.Governance/v2/policies"


def dlp_target(name: str) -> str:
    """The target of an action on DLP policy `name` (its id, or the display name of one to create)."""
    return f"{DLP_POLICIES}/{name}"


def dlp_state(policy: DlpPolicy | None) -> dict[str, list[str]]:
    """A policy as an action's `before` / `after` name it: environments (`*` for all), blocked actions
    (`connector:action`) and blocked connectors, by the connectors' short names."""
    if policy is None:
        return {"environments": [], "blockedActions": [], "blockedConnectors": []}
    envs = ["*"] if policy.environment_type == "AllEnvironments" else sorted(policy.environments)
    return {
        "environments": envs,
        "blockedActions": sorted(
            f"{k.rsplit('/', 1)[-1]}:{a}" for k, v in policy.blocked_actions.items() for a in v
        ),
        "blockedConnectors": sorted(c.rsplit("/", 1)[-1] for c in policy.blocked_connectors),
    }


def normalised_api_id(api_id: str) -> str:
    """`/providers/Microsoft.PowerApps/scopes/admin/environments/{env}/apis/x` -> `/providers/.../apis/x`."""
    name = api_id.rstrip("/").rsplit("/", 1)[-1]
    return f"/providers/Microsoft.PowerApps/apis/{name}"


def dlp_from_api(item: dict[str, Any]) -> DlpPolicy:
    definition = item.get("policyDefinition") or {}
    configs = (item.get("connectorConfigurationsDefinition") or {}).get("connectorActionConfigurations") or []
    blocked: dict[str, tuple[str, ...]] = {}
    for config in configs:
        default_block = config.get("defaultConnectorActionRuleBehavior") == "Block"
        rules = [r for r in config.get("actionRules") or [] if r.get("behavior") == "Block"]
        actions = tuple(sorted(str(r["actionId"]) for r in rules))
        if default_block:
            actions = ("*", *actions)
        if actions:
            blocked[normalised_api_id(str(config["connectorId"]))] = actions
    blocked_connectors = tuple(
        sorted(
            normalised_api_id(str(c["id"]))
            for g in definition.get("connectorGroups") or []
            if g.get("classification") == "Blocked"
            for c in g.get("connectors") or []
        )
    )
    return DlpPolicy(
        id=str(definition.get("name") or ""),
        display_name=str(definition.get("displayName") or ""),
        environments=tuple(str(e["name"]) for e in definition.get("environments") or []),
        blocked_actions=blocked,
        environment_type=str(definition.get("environmentType") or "AllEnvironments"),
        blocked_connectors=blocked_connectors,
    )
