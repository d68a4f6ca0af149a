"""Alert wiring: activity-log alerts on vault access-policy changes (and Defender for Key Vault alerts) go to
one action group whose webhook calls /api/alerts with the function key, in the common alert schema."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.infra.bicep_model import body, condition, dotted, only, resources, template

ACTIVITY_LOG_ALERT = "Microsoft.Insights/activityLogAlerts"


def _alerts() -> dict[str, Any]:
    return template("app/alerts.bicep")


def _leaves(condition_tree: dict[str, Any]) -> list[dict[str, str]]:
    leaves: list[dict[str, str]] = []
    for item in condition_tree["allOf"]:
        leaves.extend(item.get("anyOf", [item]))
    return leaves


def _action_group_symbols(alerts: dict[str, Any], properties: dict[str, Any]) -> list[str]:
    """The action groups an alert calls, checked to be ones this template declares."""
    declared = resources(alerts, "Microsoft.Insights/actionGroups")
    symbols = []
    for group in properties["actions"]["actionGroups"]:
        reference = dotted(group["actionGroupId"])
        assert reference.endswith(".id"), reference
        symbol = reference.removesuffix(".id")
        assert symbol in declared, f"{symbol} is not an action group declared in alerts.bicep"
        symbols.append(symbol)
    return symbols


def test_action_group_posts_the_common_alert_schema_to_api_alerts_with_the_function_key() -> None:
    group = only(_alerts(), "Microsoft.Insights/actionGroups")
    assert group["location"] == "Global"
    assert group["properties"]["enabled"] is True
    receivers = group["properties"]["webhookReceivers"]
    assert len(receivers) == 1
    receiver = receivers[0]
    assert receiver["useCommonAlertSchema"] is True
    assert re.fullmatch(
        r"https://\$\{functionApp\.properties\.defaultHostName\}/api/alerts\?code="
        r"\$\{listKeys\('\$\{functionApp\.id\}/host/default', '2023-12-01'\)\.functionKeys\.default\}",
        receiver["serviceUri"],
    ), receiver["serviceUri"]
    # the key is read from the app deployed by this template, not passed in
    site = _alerts()["resources"]["functionApp"]
    assert site["existing"] is True and site["type"] == "Microsoft.Web/sites"
    assert not any("key" in name.lower() for name in _alerts()["parameters"])


def test_vault_change_alert_watches_access_policy_writes_and_calls_the_action_group() -> None:
    alerts = _alerts()
    entry = resources(alerts, ACTIVITY_LOG_ALERT)["vaultChangeAlert"]
    alert = body(entry)
    assert entry["api_version"] == "2020-10-01"
    assert alert["location"] == "Global"
    properties = alert["properties"]
    assert properties["enabled"] is True
    assert properties["scopes"] == "activityLogScopes"
    leaves = _leaves(properties["condition"])
    assert {"field": "category", "equals": "Administrative"} in leaves
    operations = {leaf["equals"] for leaf in leaves if leaf["field"] == "operationName"}
    assert operations == {"Microsoft.KeyVault/vaults/accessPolicies/write", "Microsoft.KeyVault/vaults/write"}
    assert _action_group_symbols(alerts, properties) == ["actionGroup"]


def test_defender_alert_is_optional_category_security_and_uses_the_same_action_group() -> None:
    alerts = _alerts()
    entry = resources(alerts, ACTIVITY_LOG_ALERT)["defenderAlert"]
    assert "enableDefenderAlerts" in json.dumps(condition(entry))
    properties = body(entry)["properties"]
    assert {"field": "category", "equals": "Security"} in _leaves(properties["condition"])
    assert properties["scopes"] == "activityLogScopes"
    assert _action_group_symbols(alerts, properties) == ["actionGroup"]


def test_main_wires_the_alerts_to_the_deployed_app_and_the_target_scope() -> None:
    main = template("main.bicep")
    params = body(main["modules"]["alerts"])["params"]
    assert dotted(params["functionAppName"]) == "api.outputs.name"
    assert params["activityLogScopes"] == "activityLogScopes"
    scopes = json.dumps(main["variables"]["activityLogScopes"]["value"])
    assert "wholeSubscription" in scopes and "resourceGroupScopes" in scopes
    assert params["enableDefenderAlerts"] == "enableDefenderAlerts"


def test_defender_for_key_vault_can_be_enabled_by_parameter() -> None:
    main = template("main.bicep")
    entry = resources(main, "Microsoft.Security/pricings")["defenderForKeyVault"]
    assert condition(entry) == "enableDefenderForKeyVault"
    pricing = body(entry)
    assert pricing["name"] == "KeyVaults"
    assert pricing["properties"]["pricingTier"] == "Standard"
    assert main["parameters"]["enableDefenderForKeyVault"]["default"] is False
