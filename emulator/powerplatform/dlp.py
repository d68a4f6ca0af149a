"""DLP ("data policies") on api.bap.microsoft.com, in the v2 governance shape
terraform-provider-power-platform's `powerplatform_data_loss_prevention_policy` uses:

    GET    /providers/PowerPlatform.Governance/v2/policies              {"value": [{policyDefinition}...]}
                                                                        (no groups, no rules: GET each)
    POST   /providers/PowerPlatform.Governance/v2/policies              201, the created policy
    GET    /providers/PowerPlatform.Governance/v2/policies/{name}
    PATCH  /providers/PowerPlatform.Governance/v2/policies/{name}       200, the whole new policy
    DELETE /providers/PowerPlatform.Governance/v1/policies/{name}       200 (v1, as the provider does)

A policy is `{"policyDefinition": {name, displayName, defaultConnectorsClassification, environmentType,
environments[{name,id,type}], connectorGroups[{classification: Confidential|General|Blocked,
connectors[{id,name,type}]}], etag, createdBy, createdTime, lastModifiedBy, lastModifiedTime},
"connectorConfigurationsDefinition": {"connectorActionConfigurations": [{connectorId,
defaultConnectorActionRuleBehavior, actionRules[{actionId, behavior: Allow|Block}]}], ...},
"customConnectorUrlPatternsDefinition": {"rules": [...]}}`. No api-version is required (the provider
sends none).

Enforcement as the product does it: a flow using a Blocked connector, a blocked connector action, or
business (Confidential) together with non-business (General) connectors cannot be saved (403), and when a
policy is created or changed the started flows that now violate it are suspended; a run of a suspended
or violating flow is refused.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from emulator.powerplatform import definitions
from emulator.powerplatform.common import BAP_HOST, POWERAPPS_AUDIENCES, authenticate, require_admin
from emulator.powerplatform.state import Flow, now_iso
from emulator.wire import HttpError, Request, Response

if TYPE_CHECKING:
    from emulator.core import Emulator
    from emulator.state import State

CLASSIFICATIONS = ("Confidential", "General", "Blocked")
ENVIRONMENT_TYPES = ("AllEnvironments", "OnlyEnvironments", "ExceptEnvironments")
BEHAVIORS = ("Allow", "Block", "")
SUSPENSION_REASON = "CompanyDlpViolation"  # emulator's value for flowSuspensionReason


def validate_policy(body: Any, where: str = "policy") -> None:
    """Raises ValueError naming the field path of the first problem."""
    if not isinstance(body, dict) or not isinstance(body.get("policyDefinition"), dict):
        raise ValueError(f"{where}.policyDefinition: required object")
    definition = body["policyDefinition"]
    if not isinstance(definition.get("displayName"), str) or not definition["displayName"]:
        raise ValueError(f"{where}.policyDefinition.displayName: required string")
    default = definition.get("defaultConnectorsClassification", "General")
    if default not in CLASSIFICATIONS:
        raise ValueError(
            f"{where}.policyDefinition.defaultConnectorsClassification: one of {CLASSIFICATIONS}"
        )
    if definition.get("environmentType", "AllEnvironments") not in ENVIRONMENT_TYPES:
        raise ValueError(f"{where}.policyDefinition.environmentType: one of {ENVIRONMENT_TYPES}")
    for i, env in enumerate(definition.get("environments") or []):
        if not isinstance(env, dict) or not env.get("name"):
            raise ValueError(f"{where}.policyDefinition.environments[{i}].name: required")
    for i, group in enumerate(definition.get("connectorGroups") or []):
        if not isinstance(group, dict) or group.get("classification") not in CLASSIFICATIONS:
            raise ValueError(
                f"{where}.policyDefinition.connectorGroups[{i}].classification: one of {CLASSIFICATIONS}"
            )
        for j, connector in enumerate(group.get("connectors") or []):
            if not isinstance(connector, dict) or not connector.get("id"):
                raise ValueError(
                    f"{where}.policyDefinition.connectorGroups[{i}].connectors[{j}].id: required"
                )
    configs = (body.get("connectorConfigurationsDefinition") or {}).get("connectorActionConfigurations") or []
    for i, config in enumerate(configs):
        path = f"{where}.connectorConfigurationsDefinition.connectorActionConfigurations[{i}]"
        if not isinstance(config, dict) or not config.get("connectorId"):
            raise ValueError(f"{path}.connectorId: required")
        if config.get("defaultConnectorActionRuleBehavior", "") not in BEHAVIORS:
            raise ValueError(f"{path}.defaultConnectorActionRuleBehavior: Allow or Block")
        for j, rule in enumerate(config.get("actionRules") or []):
            if (
                not isinstance(rule, dict)
                or not rule.get("actionId")
                or rule.get("behavior") not in ("Allow", "Block")
            ):
                raise ValueError(f"{path}.actionRules[{j}]: needs actionId and behavior Allow|Block")


def normalise(
    state: State, body: dict[str, Any], name: str, existing: dict[str, Any] | None, actor: str
) -> dict[str, Any]:
    """Fills the server-side fields (name, etag, times, createdBy) and connector names/types."""
    definition = dict(body["policyDefinition"])
    definition["name"] = name
    definition.setdefault("defaultConnectorsClassification", "General")
    definition.setdefault("environmentType", "AllEnvironments")
    definition["environments"] = [
        {
            "name": e["name"],
            "id": f"/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{e['name']}",
            "type": "Microsoft.BusinessAppPlatform/scopes/environments",
        }
        for e in definition.get("environments") or []
    ]
    groups = {g["classification"]: g for g in definition.get("connectorGroups") or []}
    definition["connectorGroups"] = [
        {
            "classification": c,
            "connectors": [
                {
                    "id": x["id"],
                    "name": x.get("name") or str(x["id"]).rsplit("/", 1)[-1],
                    "type": x.get("type") or "Microsoft.PowerApps/apis",
                }
                for x in (groups.get(c) or {}).get("connectors") or []
            ],
        }
        for c in CLASSIFICATIONS
    ]
    now = now_iso()
    actor_name = state.powerplatform.directory.get(actor, {}).get("displayName", actor)
    previous = (existing or {}).get("policyDefinition") or {}
    definition["createdBy"] = previous.get("createdBy") or {"displayName": actor_name}
    definition["createdTime"] = previous.get("createdTime") or now
    definition["lastModifiedBy"] = {"displayName": actor_name}
    definition["lastModifiedTime"] = now
    definition["etag"] = str(uuid.uuid4())
    definition["isLegacySchemaVersion"] = False
    policy: dict[str, Any] = {
        "policyDefinition": definition,
        "customConnectorUrlPatternsDefinition": body.get("customConnectorUrlPatternsDefinition")
        or {"rules": [{"order": 1, "customConnectorRuleClassification": "Ignore", "pattern": "*"}]},
    }
    if body.get("connectorConfigurationsDefinition"):
        policy["connectorConfigurationsDefinition"] = body["connectorConfigurationsDefinition"]
    return policy


def applies_to(policy: dict[str, Any], environment: str) -> bool:
    definition = policy["policyDefinition"]
    names = {e["name"] for e in definition.get("environments") or []}
    kind = definition.get("environmentType", "AllEnvironments")
    if kind == "OnlyEnvironments":
        return environment in names
    if kind == "ExceptEnvironments":
        return environment not in names
    return True


def violations(state: State, environment: str, usage: dict[str, set[str]]) -> list[dict[str, Any]]:
    """The DLP violations of connector usage (api id lower case -> operation ids) in an environment."""
    found: list[dict[str, Any]] = []
    for policy in state.powerplatform.dlp_policies.values():
        if not applies_to(policy, environment):
            continue
        definition = policy["policyDefinition"]
        policy_ref = {
            "policyId": f"/providers/PowerPlatform.Governance/v2/policies/{definition['name']}",
            "policyDisplayName": definition["displayName"],
        }
        group_of: dict[str, str] = {}
        for group in definition.get("connectorGroups") or []:
            for connector in group.get("connectors") or []:
                group_of[str(connector["id"]).lower()] = group["classification"]
        classes: dict[str, list[str]] = {}
        for api_id in sorted(usage):
            classification = group_of.get(
                api_id, definition.get("defaultConnectorsClassification", "General")
            )
            classes.setdefault(classification, []).append(api_id)
            if classification == "Blocked":
                found.append({**policy_ref, "type": "BlockedConnector", "parameters": [api_id]})
        if classes.get("Confidential") and classes.get("General"):
            found.append(
                {
                    **policy_ref,
                    "type": "BusinessAndNonBusinessConnector",
                    "parameters": [classes["Confidential"][0], classes["General"][0]],
                }
            )
        configs = (policy.get("connectorConfigurationsDefinition") or {}).get(
            "connectorActionConfigurations"
        ) or []
        for config in configs:
            api_id = str(config["connectorId"]).lower()
            if api_id not in usage:
                continue
            rules = {r["actionId"]: r["behavior"] for r in config.get("actionRules") or []}
            default = config.get("defaultConnectorActionRuleBehavior") or "Allow"
            for operation in sorted(usage[api_id]):
                if rules.get(operation, default) == "Block":
                    found.append(
                        {**policy_ref, "type": "BlockedConnectorAction", "parameters": [api_id, operation]}
                    )
    return found


def flow_violations(
    state: State, flow_environment: str, definition: dict[str, Any], connection_references: dict[str, Any]
) -> list[dict[str, Any]]:
    return violations(state, flow_environment, definitions.connector_usage(definition, connection_references))


def violation_error(flow_name: str, found: list[dict[str, Any]]) -> HttpError:
    """403 as the Flow service answers a save/turn-on that breaks a data policy."""
    first = found[0]
    if first["type"] == "BusinessAndNonBusinessConnector":
        code = "ApiPolicyDataFlowViolation"
        message = (
            f"Admin data policy '{first['policyDisplayName']}' restricts the use of "
            f"{first['parameters'][0]} with {first['parameters'][1]}."
        )
    elif first["type"] == "BlockedConnectorAction":
        code = "DlpViolation"
        message = (
            f"Admin data policy '{first['policyDisplayName']}' blocks the action "
            f"'{first['parameters'][1]}' of {first['parameters'][0]} used by flow '{flow_name}'."
        )
    else:
        code = "DlpViolation"
        message = (
            f"Admin data policy '{first['policyDisplayName']}' restricts the use of these apis: "
            f"{first['parameters'][0]}."
        )
    return HttpError(
        403,
        code,
        message,
        payload={"error": {"code": code, "message": message, "extendedData": {"violation": first}}},
    )


def suspend_violating_flows(state: State) -> list[Flow]:
    """What the service does after a policy change: started flows that now violate are suspended."""
    suspended = []
    for flow in state.powerplatform.flows.values():
        if flow.state != "Started":
            continue
        if flow_violations(state, flow.environment, flow.definition, flow.connection_references):
            flow.state = "Suspended"
            flow.suspension_reason = SUSPENSION_REASON
            suspended.append(flow)
    return suspended


def list_item(policy: dict[str, Any]) -> dict[str, Any]:
    """What the v2 list answers per policy: the definition without connector groups, and no connector
    configurations. The Terraform provider's recorded list (`policiesResponose` in its DLP data source
    test) has only that, and the provider GETs each policy for its groups and rules."""
    definition = {k: v for k, v in policy["policyDefinition"].items() if k != "connectorGroups"}
    return {"policyDefinition": definition}


def _not_found(name: str) -> HttpError:
    return HttpError(404, "PolicyNotFound", f"The policy '{name}' could not be found.")


def register(emulator: Emulator) -> None:
    state = emulator.state
    router = emulator.router
    base = "/providers/PowerPlatform.Governance"

    def _body(request: Request) -> dict[str, Any]:
        body = request.json()
        try:
            validate_policy(body)
        except ValueError as error:
            raise HttpError(400, "InvalidPolicy", str(error)) from None
        return body  # type: ignore[no-any-return]

    def list_policies(request: Request) -> Response:
        claims = authenticate(request, POWERAPPS_AUDIENCES)
        with state.lock:
            require_admin(state, claims)
            return Response.json(
                200, {"value": [list_item(p) for p in state.powerplatform.dlp_policies.values()]}
            )

    def get_policy(request: Request) -> Response:
        claims = authenticate(request, POWERAPPS_AUDIENCES)
        with state.lock:
            require_admin(state, claims)
            policy = state.powerplatform.dlp_policies.get(request.params["name"])
            if policy is None:
                raise _not_found(request.params["name"])
            return Response.json(200, policy)

    def create_policy(request: Request) -> Response:
        claims = authenticate(request, POWERAPPS_AUDIENCES)
        body = _body(request)
        with state.lock:
            require_admin(state, claims)
            name = str(body["policyDefinition"].get("name") or uuid.uuid4())
            if name in state.powerplatform.dlp_policies:
                raise HttpError(409, "PolicyAlreadyExists", f"The policy '{name}' already exists.")
            policy = normalise(state, body, name, None, str(claims["oid"]))
            state.powerplatform.dlp_policies[name] = policy
            suspend_violating_flows(state)
            return Response.json(201, policy)

    def update_policy(request: Request) -> Response:
        claims = authenticate(request, POWERAPPS_AUDIENCES)
        body = _body(request)
        with state.lock:
            require_admin(state, claims)
            name = request.params["name"]
            existing = state.powerplatform.dlp_policies.get(name)
            if existing is None:
                raise _not_found(name)
            policy = normalise(state, body, name, existing, str(claims["oid"]))
            state.powerplatform.dlp_policies[name] = policy
            suspend_violating_flows(state)
            return Response.json(200, policy)

    def delete_policy(request: Request) -> Response:
        claims = authenticate(request, POWERAPPS_AUDIENCES)
        with state.lock:
            require_admin(state, claims)
            if state.powerplatform.dlp_policies.pop(request.params["name"], None) is None:
                raise _not_found(request.params["name"])
        return Response.empty(200)

    name = r"(?P<name>[^/]+)"
    router.add(BAP_HOST, "GET", rf"{base}/v2/policies", list_policies, "dlp.list")
    router.add(BAP_HOST, "POST", rf"{base}/v2/policies", create_policy, "dlp.create")
    router.add(BAP_HOST, "GET", rf"{base}/v2/policies/{name}", get_policy, "dlp.get")
    router.add(BAP_HOST, "PATCH", rf"{base}/v2/policies/{name}", update_policy, "dlp.update")
    router.add(BAP_HOST, "DELETE", rf"{base}/v1/policies/{name}", delete_policy, "dlp.delete")
