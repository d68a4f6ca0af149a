"""Power Platform admin APIs: environments and role holders (BAP), flows with definitions and
permissions (Power Automate, api.flow.microsoft.com), connections and their permissions (Power Apps,
api.powerapps.com), DLP policies (v2 governance API on api.bap.microsoft.com).

There is no SDK for these, so this is an `azure.core` pipeline per audience with a bearer token from
azure-identity: `https://service.flow.microsoft.com//.default` for the Flow host and
`https://service.powerapps.com//.default` for the Power Apps and BAP hosts (the scopes Microsoft's own
admin tools ask for; shared/powerplatform/README.md). The pipelines have no RetryPolicy: retries are
ours, around whole idempotent operations (adapters/retry.py), honouring Retry-After. Lists follow
`nextLink`. Every route is an admin (`scopes/admin`) route, so the app's identity needs the Power
Platform administrator role (or to be registered as a management app), not a share on each flow.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import quote

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.rest import HttpRequest, HttpResponse

from remediations.adapters.errors import AzureCallFailed, failure_from_response
from remediations.adapters.rest import bearer_pipeline
from remediations.adapters.retry import with_retry
from remediations.core.model import (
    Connection,
    DlpPolicy,
    Environment,
    Flow,
    Share,
)

FLOW = "https://api.flow.microsoft.com"
POWERAPPS = "https://api.powerapps.com"
BAP = "https://api.bap.microsoft.com"
FLOW_SCOPE = "https://service.flow.microsoft.com//.default"
POWERAPPS_SCOPE = "https://service.powerapps.com//.default"

FLOW_VERSION = "2016-11-01"
CONNECTIONS_VERSION = "2016-11-01"
CONNECTION_PERMISSIONS_VERSION = "2017-06-01"
BAP_VERSION = "2020-10-01"
ROLES_VERSION = "2016-11-01"
MAX_PAGES = 10_000  # a loop guard: a nextLink that never ends is a service bug, not a reason to hang

_ADMIN_FLOWS = "/providers/Microsoft.ProcessSimple/scopes/admin/environments"
_ADMIN_APPS = "/providers/Microsoft.PowerApps/scopes/admin/environments"
_ADMIN_BAP = "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments"
_DLP = "/providers/PowerPlatform.Governance/v2/policies"


def _q(value: str) -> str:
    return quote(value, safe="")


# --- mapping from the wire to the model (pure) ------------------------------------------------------


def _principal_kind(raw: str | None) -> Literal["user", "group"]:
    return "group" if str(raw or "").lower() == "group" else "user"


def environment_from_api(item: dict[str, Any], role_holders: dict[str, tuple[str, ...]]) -> Environment:
    props = item.get("properties") or {}
    return Environment(
        id=str(item.get("id") or item["name"]),
        name=str(item["name"]),
        display_name=str(props.get("displayName") or ""),
        role_holders=role_holders,
    )


def role_holders_from_api(items: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    """BAP roleAssignments -> {principal id: role names} (Dataverse security role names)."""
    holders: dict[str, set[str]] = {}
    for item in items:
        props = item.get("properties") or {}
        principal = (props.get("principal") or {}).get("id")
        role = (props.get("roleDefinition") or {}).get("name")
        if principal and role:
            holders.setdefault(str(principal).lower(), set()).add(str(role))
    return {p: tuple(sorted(r)) for p, r in sorted(holders.items())}


def flow_from_api(item: dict[str, Any], environment: str) -> Flow:
    props = item.get("properties") or {}
    creator = (props.get("creator") or {}).get("objectId")
    references = props.get("connectionReferences") or {}
    keys = {
        str(key): str(ref.get("connectionName"))
        for key, ref in references.items()
        if isinstance(ref, dict) and ref.get("connectionName")
    }
    return Flow(
        id=str(item["name"]),
        environment=environment,
        display_name=str(props.get("displayName") or ""),
        creator=str(creator).lower() if creator else None,
        connection_references=tuple(sorted(set(keys.values()))),
        definition=props.get("definition") or {},
        state=str(props.get("state") or "Started"),
        reference_keys=keys,
    )


def _normalised_api_id(api_id: str) -> str:
    """`/providers/Microsoft.PowerApps/scopes/admin/environments/{env}/apis/x` -> `/providers/.../apis/x`."""
    name = api_id.rstrip("/").rsplit("/", 1)[-1]
    return f"/providers/Microsoft.PowerApps/apis/{name}"


def connection_from_api(
    item: dict[str, Any], environment: str, app_object_ids: dict[str, str] | None = None
) -> Connection:
    """Which identity the connection authenticates as, from what the admin API shows:
    service principal (`connectionParametersSet.values["token:clientId"]`, an application id that
    `app_object_ids` maps to the object id), managed identity (`values.managedIdentity`), otherwise the
    signed-in user who created it (OAuth: `createdBy`, `authenticatedUser`)."""
    props = item.get("properties") or {}
    parameter_set = props.get("connectionParametersSet") or {}
    values = parameter_set.get("values") or {}
    set_name = str(parameter_set.get("name") or "").lower()
    created_by = (props.get("createdBy") or {}).get("id")
    creator = str(created_by).lower() if created_by else None

    def value(key: str) -> str | None:
        for k, v in values.items():
            if k.lower() == key.lower():
                raw = v.get("value") if isinstance(v, dict) else v
                return str(raw) if raw else None
        return None

    identity: str | None = creator
    kind: Any = "user"
    client_id = value("token:clientId")
    managed = value("managedIdentity")
    if "managedidentity" in set_name or managed:
        identity, kind = (managed.lower() if managed else None), "managedIdentity"
    elif "serviceprincipal" in set_name or client_id:
        app_id = (client_id or "").lower()
        identity, kind = (app_object_ids or {}).get(app_id), "servicePrincipal"
    parameters = {str(k): str(v) for k, v in (props.get("connectionParameters") or {}).items()}
    return Connection(
        id=str(item["name"]),
        environment=environment,
        connector_id=_normalised_api_id(
            str(props.get("apiId") or item.get("id", "").split("/connections/")[0])
        ),
        identity_principal_id=identity,
        identity_kind=kind,
        parameters=parameters,
        display_name=str(props.get("displayName") or ""),
        created_by=creator,
    )


def service_principal_client_id(item: dict[str, Any]) -> str | None:
    values = ((item.get("properties") or {}).get("connectionParametersSet") or {}).get("values") or {}
    for key, value in values.items():
        if key.lower() == "token:clientid":
            raw = value.get("value") if isinstance(value, dict) else value
            return str(raw).lower() if raw else None
    return None


def flow_share_from_api(item: dict[str, Any], environment: str, flow: str) -> Share:
    props = item.get("properties") or {}
    principal = props.get("principal") or {}
    return Share(
        resource_kind="flow",
        resource_id=flow,
        principal_id=str(principal.get("id") or item.get("name")).lower(),
        principal_kind=_principal_kind(principal.get("type")),
        role=str(props.get("roleName") or ""),
        environment=environment,
        permission_id=str(item.get("id") or "") or None,
    )


def connection_share_from_api(item: dict[str, Any], environment: str, connection: str) -> Share:
    props = item.get("properties") or {}
    principal = props.get("principal") or {}
    principal_type = str(principal.get("type") or "")
    # A tenant-wide share names the tenant; PS reads the id from principal.tenantId for those.
    principal_id = principal.get("tenantId") if principal_type == "Tenant" else principal.get("id")
    return Share(
        resource_kind="connection",
        resource_id=connection,
        principal_id=str(principal_id or "").lower(),
        principal_kind=_principal_kind(principal_type),
        role=str(props.get("roleName") or ""),
        environment=environment,
        permission_id=str(item.get("id") or "") or None,
    )


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
            blocked[_normalised_api_id(str(config["connectorId"]))] = actions
    blocked_connectors = tuple(
        sorted(
            _normalised_api_id(str(c["id"]))
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


# --- the adapter -------------------------------------------------------------------------------------


class PowerPlatform:
    """One pipeline per token audience; reused for the invocation and closed at the end."""

    def __init__(self, credential: TokenCredential, **client_kwargs: Any) -> None:
        self._flow: PipelineClient[HttpRequest, HttpResponse] = bearer_pipeline(
            FLOW, credential, FLOW_SCOPE, **client_kwargs
        )
        self._apps: PipelineClient[HttpRequest, HttpResponse] = bearer_pipeline(
            POWERAPPS, credential, POWERAPPS_SCOPE, **client_kwargs
        )

    # -- plumbing ----------------------------------------------------------------------------------
    def _client(self, url: str) -> PipelineClient[HttpRequest, HttpResponse]:
        return self._flow if url.startswith(FLOW) else self._apps

    def _send(self, operation: str, method: str, url: str, body: Any = None) -> HttpResponse:
        def once() -> HttpResponse:
            request = HttpRequest(method, url, json=body) if body is not None else HttpRequest(method, url)
            response = self._client(url).send_request(request)
            response.read()
            if response.status_code >= 300:
                raise failure_from_response(operation, response)
            return response

        return with_retry(operation, once)

    def _json(self, operation: str, method: str, url: str, body: Any = None) -> Any:
        response = self._send(operation, method, url, body)
        text = response.text()
        return json.loads(text) if text.strip() else None

    def _list(self, operation: str, url: str) -> list[dict[str, Any]]:
        """Every page: each page is retried on its own, so a throttled page 7 does not re-read 1-6."""
        items: list[dict[str, Any]] = []
        next_url: str | None = url
        for _ in range(MAX_PAGES):
            if not next_url:
                return items
            page = self._json(operation, "GET", next_url) or {}
            items += page.get("value") or []
            next_url = page.get("nextLink") or page.get("@odata.nextLink")
        raise AzureCallFailed(operation, None, "TooManyPages", f"more than {MAX_PAGES} pages")

    # -- environments ------------------------------------------------------------------------------
    def list_environments(self) -> list[dict[str, Any]]:
        return self._list("list environments", f"{BAP}{_ADMIN_BAP}?api-version={BAP_VERSION}")

    def get_environment(self, environment: str) -> dict[str, Any]:
        url = f"{BAP}{_ADMIN_BAP}/{_q(environment)}?api-version={BAP_VERSION}"
        result: dict[str, Any] = self._json(f"get environment {environment}", "GET", url)
        return result

    def role_holders(self, environment: str) -> dict[str, tuple[str, ...]]:
        url = f"{BAP}{_ADMIN_BAP}/{_q(environment)}/roleAssignments?api-version={ROLES_VERSION}"
        return role_holders_from_api(self._list(f"list role assignments of {environment}", url))

    # -- flows -------------------------------------------------------------------------------------
    def list_flows(self, environment: str) -> list[dict[str, Any]]:
        url = f"{FLOW}{_ADMIN_FLOWS}/{_q(environment)}/v2/flows?api-version={FLOW_VERSION}"
        return self._list(f"list flows of {environment}", url)

    def get_flow(self, environment: str, flow: str) -> Flow:
        """One GET per flow: the admin list has no definition."""
        url = f"{FLOW}{_ADMIN_FLOWS}/{_q(environment)}/flows/{_q(flow)}?api-version={FLOW_VERSION}"
        return flow_from_api(self._json(f"get flow {flow}", "GET", url), environment)

    def flow_permissions(self, environment: str, flow: str) -> list[Share]:
        url = (
            f"{FLOW}{_ADMIN_FLOWS}/{_q(environment)}/flows/{_q(flow)}/permissions?api-version={FLOW_VERSION}"
        )
        items = self._list(f"list permissions of flow {flow}", url)
        return [flow_share_from_api(i, environment, flow) for i in items]

    def modify_flow_permissions(
        self,
        environment: str,
        flow: str,
        *,
        delete: Sequence[str] = (),
        put: Sequence[dict[str, Any]] = (),
    ) -> None:
        """`delete` holds principal object ids (the CLI's form); `put` the API's permission items."""
        url = (
            f"{FLOW}{_ADMIN_FLOWS}/{_q(environment)}/flows/{_q(flow)}/modifyPermissions"
            f"?api-version={FLOW_VERSION}"
        )
        body = {"put": list(put), "delete": [{"id": principal} for principal in delete]}
        self._send(f"modifyPermissions on flow {flow}", "POST", url, body)

    # -- connections -------------------------------------------------------------------------------
    def list_connections(self, environment: str, api: str = "shared_keyvault") -> list[dict[str, Any]]:
        url = (
            f"{POWERAPPS}{_ADMIN_APPS}/{_q(environment)}/apis/{_q(api)}/connections"
            f"?api-version={CONNECTIONS_VERSION}"
        )
        return self._list(f"list {api} connections of {environment}", url)

    def _connection_url(self, environment: str, api: str, connection: str) -> str:
        return f"{POWERAPPS}{_ADMIN_APPS}/{_q(environment)}/apis/{_q(api)}/connections/{_q(connection)}"

    def connection_permissions(self, environment: str, api: str, connection: str) -> list[Share]:
        url = (
            f"{self._connection_url(environment, api, connection)}/permissions"
            f"?api-version={CONNECTION_PERMISSIONS_VERSION}"
        )
        items = self._list(f"list permissions of connection {connection}", url)
        return [connection_share_from_api(i, environment, connection) for i in items]

    def modify_connection_permissions(
        self, environment: str, api: str, connection: str, *, delete: Sequence[str]
    ) -> None:
        """`delete` holds permission ids as listed (PS `Remove-AdminPowerAppConnectionRoleAssignment`)."""
        url = (
            f"{self._connection_url(environment, api, connection)}/modifyPermissions"
            f"?api-version={CONNECTION_PERMISSIONS_VERSION}"
        )
        body = {"put": [], "delete": [{"id": permission} for permission in delete]}
        self._send(f"modifyPermissions on connection {connection}", "POST", url, body)

    # -- DLP ---------------------------------------------------------------------------------------
    def list_dlp_policies(self) -> list[dict[str, Any]]:
        """The v2 list: each item is the policy definition only, without connector groups or action
        rules (the Terraform provider GETs every policy for those); see `get_dlp_policy`."""
        return self._list("list DLP policies", f"{BAP}{_DLP}")

    def get_dlp_policy(self, name: str) -> dict[str, Any]:
        """One whole policy: definition, connector groups and connector action rules."""
        result: dict[str, Any] = self._json(f"get DLP policy {name}", "GET", f"{BAP}{_DLP}/{_q(name)}")
        return result

    def create_dlp_policy(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._json("create DLP policy", "POST", f"{BAP}{_DLP}", body)
        return result

    def update_dlp_policy(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            f"update DLP policy {name}", "PATCH", f"{BAP}{_DLP}/{_q(name)}", body
        )
        return result

    def close(self) -> None:
        self._flow.close()
        self._apps.close()
