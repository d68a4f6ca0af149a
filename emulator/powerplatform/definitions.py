"""Logic Apps workflow definitions as Power Automate stores them: builders for the Key Vault steps the
seed attack uses, and walkers (connector usage for DLP, summaries for the list APIs).

Key Vault connector steps look like (operation ids of the `shared_keyvault` connector):

    "Get_secret": {"type": "OpenApiConnection", "runAfter": {},
        "inputs": {"host": {"apiId": "/providers/Microsoft.PowerApps/apis/shared_keyvault",
                            "connectionName": "shared_keyvault", "operationId": "GetSecret"},
                   "parameters": {"secretName": "payroll-db-password"},
                   "authentication": "@parameters('$authentication')"},
        "runtimeConfiguration": {"secureData": {"properties": ["inputs", "outputs"]}}}
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from emulator.powerplatform.state import KEYVAULT_API_ID

SCHEMA = "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#"
CONNECTOR_TYPES = frozenset(
    {"OpenApiConnection", "ApiConnection", "OpenApiConnectionWebhook", "ApiConnectionWebhook"}
)


def definition(actions: dict[str, Any], trigger: dict[str, Any] | None = None) -> dict[str, Any]:
    """A whole definition with a manual (button) trigger unless one is given."""
    return {
        "$schema": SCHEMA,
        "contentVersion": "1.0.0.0",
        "parameters": {
            "$authentication": {"defaultValue": {}, "type": "SecureObject"},
            "$connections": {"defaultValue": {}, "type": "Object"},
        },
        "triggers": trigger
        or {
            "manual": {
                "type": "Request",
                "kind": "Button",
                "inputs": {"schema": {"type": "object", "properties": {}}},
            }
        },
        "actions": actions,
    }


def keyvault_action(
    operation_id: str,
    parameters: dict[str, Any] | None = None,
    *,
    run_after: dict[str, list[str]] | None = None,
    secure: bool = False,
    reference: str = "shared_keyvault",
) -> dict[str, Any]:
    action: dict[str, Any] = {
        "runAfter": run_after or {},
        "type": "OpenApiConnection",
        "inputs": {
            "host": {"apiId": KEYVAULT_API_ID, "connectionName": reference, "operationId": operation_id},
            "parameters": parameters or {},
            "authentication": "@parameters('$authentication')",
        },
    }
    if secure:
        action["runtimeConfiguration"] = {"secureData": {"properties": ["inputs", "outputs"]}}
    return action


def get_secret(name: str, **kwargs: Any) -> dict[str, Any]:
    return keyvault_action("GetSecret", {"secretName": name}, **kwargs)


def list_secrets(**kwargs: Any) -> dict[str, Any]:
    return keyvault_action("ListSecrets", {}, **kwargs)


def foreach(
    items: str, actions: dict[str, Any], *, run_after: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    return {"runAfter": run_after or {}, "type": "Foreach", "foreach": items, "actions": actions}


def connection_reference(connection_name: str, api: str = "shared_keyvault") -> dict[str, Any]:
    return {
        "connectionName": connection_name,
        "source": "Embedded",
        "id": f"/providers/Microsoft.PowerApps/apis/{api}",
        "tier": "NotSpecified",
    }


def dump_vault_definition(
    list_name: str = "List_secrets", loop_name: str = "Apply_to_each", get_name: str = "Get_secret"
) -> dict[str, Any]:
    """The attacker's edit: List secrets, then for each item Get secret, with secure outputs off."""
    return definition(
        {
            list_name: list_secrets(),
            loop_name: foreach(
                f"@body('{list_name}')?['value']",
                {
                    get_name: get_secret(f"@items('{loop_name}')?['name']"),
                },
                run_after={list_name: ["Succeeded"]},
            ),
        }
    )


def iter_actions(actions: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every action, nested ones included (Foreach/Scope/Until `actions`, If `else`, Switch cases)."""
    for name, action in actions.items():
        if not isinstance(action, dict):
            continue
        yield name, action
        nested = action.get("actions")
        if isinstance(nested, dict):
            yield from iter_actions(nested)
        otherwise = action.get("else")
        if isinstance(otherwise, dict) and isinstance(otherwise.get("actions"), dict):
            yield from iter_actions(otherwise["actions"])
        for case in (action.get("cases") or {}).values():
            if isinstance(case, dict) and isinstance(case.get("actions"), dict):
                yield from iter_actions(case["actions"])
        default = action.get("default")
        if isinstance(default, dict) and isinstance(default.get("actions"), dict):
            yield from iter_actions(default["actions"])


def api_id_of(step: dict[str, Any], connection_references: dict[str, Any]) -> str | None:
    """The connector api id of a connector step (`inputs.host.apiId`, else via its reference)."""
    if step.get("type") not in CONNECTOR_TYPES:
        return None
    host = (step.get("inputs") or {}).get("host") or {}
    api_id = host.get("apiId")
    if not api_id:
        reference = host.get("connectionName") or (host.get("connection") or {}).get("name", "")
        reference = str(reference).removeprefix("@parameters('$connections')['").split("']")[0]
        api_id = (connection_references.get(reference) or {}).get("id")
    return str(api_id).lower() if api_id else None


def operation_of(step: dict[str, Any]) -> str | None:
    host = (step.get("inputs") or {}).get("host") or {}
    operation = host.get("operationId")
    if operation:
        return str(operation)
    path = str((step.get("inputs") or {}).get("path", ""))  # old ApiConnection form
    if "/secrets" in path:
        return "GetSecret" if path.rstrip("/").endswith("/value") else "ListSecrets"
    return None


def connector_usage(
    definition_: dict[str, Any], connection_references: dict[str, Any]
) -> dict[str, set[str]]:
    """connector api id (lower case) -> operation ids used, over triggers and all nested actions."""
    usage: dict[str, set[str]] = {}
    steps = list(iter_actions(definition_.get("actions") or {}))
    steps += list((definition_.get("triggers") or {}).items())
    for _, step in steps:
        api_id = api_id_of(step, connection_references)
        if api_id:
            operation = operation_of(step)
            usage.setdefault(api_id, set()).update({operation} if operation else set())
    for reference in connection_references.values():
        if isinstance(reference, dict) and reference.get("id"):
            usage.setdefault(str(reference["id"]).lower(), set())
    return usage


def summary(definition_: dict[str, Any]) -> dict[str, Any]:
    """`definitionSummary` as the non-admin list renders it."""
    triggers = [
        {"type": t.get("type"), **({"kind": t["kind"]} if "kind" in t else {})}
        for t in (definition_.get("triggers") or {}).values()
        if isinstance(t, dict)
    ]
    actions = []
    for _, action in iter_actions(definition_.get("actions") or {}):
        item: dict[str, Any] = {"type": action.get("type")}
        operation = operation_of(action) if action.get("type") in CONNECTOR_TYPES else None
        if operation:
            item["swaggerOperationId"] = operation
            item["metadata"] = {"flowSystemMetadata": {"swaggerOperationId": operation}}
            api = ((action.get("inputs") or {}).get("host") or {}).get("apiId")
            if api:
                item["api"] = {"id": api, "name": str(api).rsplit("/", 1)[-1]}
        actions.append(item)
    return {"triggers": triggers, "actions": actions}


def secure_data(step: dict[str, Any]) -> tuple[bool, bool]:
    """(secure inputs, secure outputs) from `runtimeConfiguration.secureData.properties`."""
    props = ((step.get("runtimeConfiguration") or {}).get("secureData") or {}).get("properties") or []
    return "inputs" in props, "outputs" in props


def copy_definition(value: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(value)
