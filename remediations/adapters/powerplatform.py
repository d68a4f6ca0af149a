"""Power Platform, through the APIs that work for the app's own (app-only) identity in a real tenant:
environments and each one's Dataverse instance URL (BAP, api.bap.microsoft.com); flows, definitions,
owners, shares, security-role holders and turning a flow off (the Dataverse Web API of each
environment, adapters/dataverse.py); connections and their permissions (Power Apps admin API,
api.powerapps.com); DLP policies (v2 governance API on api.bap.microsoft.com).

The Flow API (api.flow.microsoft.com) is not called: its admin GET has no flow definition, its maker
routes refuse service principals, and Dataverse is the documented way to work with flows in code.

There is no SDK for these, so this is an `azure.core` pipeline per token audience with a bearer token
from azure-identity: `https://service.powerapps.com//.default` for the Power Apps and BAP hosts (the
scope Microsoft's own admin tools ask for; shared/powerplatform/README.md) and
`https://{org}.crm.dynamics.com/.default` for each environment's Dataverse. The pipelines have no
RetryPolicy: retries are ours, around whole idempotent operations (adapters/retry.py), honouring
Retry-After. Lists follow `nextLink` / `@odata.nextLink`. The app's identity needs a registered
management app (or the Power Platform administrator role) for the `scopes/admin` routes and an
application user with a security role in every environment it reads (docs/permissions.md).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.rest import HttpRequest, HttpResponse

from remediations.adapters.dataverse import (
    CONNECTION_REFERENCE_COLUMNS,
    OFF,
    PAGE_SIZE,
    ROLE_COLUMNS,
    TEAM_COLUMNS,
    USER_COLUMNS,
    WEB_API,
    DataverseInstance,
    DataversePrincipals,
    client_data,
    connection_reference_from_api,
    connection_reference_query,
    connection_references_from_api,
    flow_from_workflow,
    flow_shares_from_api,
    instance_from_environment,
    needs_connection_references,
    principals_from_api,
    revoke_body,
    role_association_path,
    shared_principals_query,
    workflows_query,
)
from remediations.adapters.errors import AzureCallFailed, failure_from_response
from remediations.adapters.powerapps_shapes import connection_share_from_api
from remediations.adapters.rest import bearer_pipeline
from remediations.adapters.retry import with_retry
from remediations.core.model import (
    ConnectionReference,
    Flow,
    PrincipalKind,
    Share,
)

POWERAPPS = "https://api.powerapps.com"
BAP = "https://api.bap.microsoft.com"
POWERAPPS_SCOPE = "https://service.powerapps.com//.default"

CONNECTIONS_VERSION = "2016-11-01"
CONNECTION_PERMISSIONS_VERSION = "2017-06-01"
BAP_VERSION = "2020-10-01"
MAX_PAGES = 10_000  # a loop guard: a nextLink that never ends is a service bug, not a reason to hang

_ADMIN_APPS = "/providers/Microsoft.PowerApps/scopes/admin/environments"
_ADMIN_BAP = "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments"
_DLP = "/providers/PowerPlatform.Governance/v2/policies"


def _q(value: str) -> str:
    return quote(value, safe="")


class PowerPlatform:
    """One pipeline per token audience (Power Apps/BAP, and each environment's Dataverse), reused for
    the invocation and closed at the end. Each environment's Dataverse URL and users/teams are read
    once per invocation."""

    def __init__(self, credential: TokenCredential, **client_kwargs: Any) -> None:
        self._credential = credential
        self._client_kwargs = client_kwargs
        self._apps: PipelineClient[HttpRequest, HttpResponse] = bearer_pipeline(
            POWERAPPS, credential, POWERAPPS_SCOPE, **client_kwargs
        )
        self._lock = threading.Lock()  # inventory reads environments concurrently
        self._instances: dict[str, DataverseInstance | None] = {}
        self._dataverse: dict[str, PipelineClient[HttpRequest, HttpResponse]] = {}
        self._principals: dict[str, DataversePrincipals] = {}
        # Each listed flow's owner (`_ownerid_value`), so the inventory's shares read needs no owner GET.
        self._owners: dict[tuple[str, str], str | None] = {}

    # -- plumbing ----------------------------------------------------------------------------------
    def _client(self, url: str) -> PipelineClient[HttpRequest, HttpResponse]:
        with self._lock:
            for base, client in self._dataverse.items():
                if url.startswith(base):
                    return client
        return self._apps

    def _send(
        self, operation: str, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> HttpResponse:
        def once() -> HttpResponse:
            request = (
                HttpRequest(method, url, json=body, headers=headers)
                if body is not None
                else HttpRequest(method, url, headers=headers)
            )
            response = self._client(url).send_request(request)
            response.read()
            if response.status_code >= 300:
                raise failure_from_response(operation, response)
            return response

        return with_retry(operation, once)

    def _json(
        self, operation: str, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Any:
        response = self._send(operation, method, url, body, headers)
        text = response.text()
        return json.loads(text) if text.strip() else None

    def _list(self, operation: str, url: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
        """Every page: each page is retried on its own, so a throttled page 7 does not re-read 1-6."""
        items: list[dict[str, Any]] = []
        next_url: str | None = url
        for _ in range(MAX_PAGES):
            if not next_url:
                return items
            page = self._json(operation, "GET", next_url, headers=headers) or {}
            items += page.get("value") or []
            next_url = page.get("nextLink") or page.get("@odata.nextLink")
        raise AzureCallFailed(operation, None, "TooManyPages", f"more than {MAX_PAGES} pages")

    # -- environments ------------------------------------------------------------------------------
    def _remember(self, items: list[dict[str, Any]]) -> None:
        with self._lock:
            for item in items:
                self._instances[str(item["name"])] = instance_from_environment(item)

    def list_environments(self) -> list[dict[str, Any]]:
        items = self._list("list environments", f"{BAP}{_ADMIN_BAP}?api-version={BAP_VERSION}")
        self._remember(items)
        return items

    def get_environment(self, environment: str) -> dict[str, Any]:
        url = f"{BAP}{_ADMIN_BAP}/{_q(environment)}?api-version={BAP_VERSION}"
        result: dict[str, Any] = self._json(f"get environment {environment}", "GET", url)
        self._remember([result])
        return result

    # -- Dataverse (per environment) ---------------------------------------------------------------
    def _instance(self, environment: str) -> str:
        """The environment's Dataverse Web API base URL, with its pipeline ready."""
        with self._lock:
            known = environment in self._instances
        if not known:
            self.get_environment(environment)
        with self._lock:
            instance = self._instances.get(environment)
            if instance is None:
                raise AzureCallFailed(
                    f"Dataverse of {environment}",
                    None,
                    "NoDataverse",
                    f"environment {environment} has no Dataverse database: its flows cannot be read "
                    "with the app's identity",
                )
            if instance.api_url not in self._dataverse:
                self._dataverse[instance.api_url] = bearer_pipeline(
                    instance.api_url, self._credential, instance.scope, **self._client_kwargs
                )
            return instance.api_url

    def _dataverse_list(self, operation: str, environment: str, path: str) -> list[dict[str, Any]]:
        url = f"{self._instance(environment)}{path}"
        return self._list(operation, url, {"Prefer": f"odata.maxpagesize={PAGE_SIZE}"})

    def principals(self, environment: str) -> DataversePrincipals:
        """Users (with their security roles) and teams (with theirs) of one environment, read once."""
        with self._lock:
            cached = self._principals.get(environment)
        if cached is not None:
            return cached
        users = self._dataverse_list(
            f"list users of {environment}",
            environment,
            f"{WEB_API}/systemusers?$select={USER_COLUMNS}"
            f"&$expand=systemuserroles_association($select={ROLE_COLUMNS})",
        )
        teams = self._dataverse_list(
            f"list teams of {environment}",
            environment,
            f"{WEB_API}/teams?$select={TEAM_COLUMNS}&$expand=teamroles_association($select={ROLE_COLUMNS})",
        )
        found = principals_from_api(users, teams)
        with self._lock:
            self._principals[environment] = found
        return found

    def remove_security_role(self, environment: str, principal_id: str, role: str) -> None:
        """Disassociate the role from the user or team (DELETE of the association's `$ref`, 204);
        nothing to do when the principal no longer holds it. The environment's users are read again
        on the next call, so a verify sees the change."""
        principals = self.principals(environment)
        oid = principal_id.lower()
        role_id = principals.role_ids.get(oid, {}).get(role)
        dataverse_id = principals.dataverse_ids.get(oid)
        if role_id and dataverse_id:
            _, kind = principals.resolve(dataverse_id)
            path = role_association_path(_q(dataverse_id), kind, _q(role_id))
            url = f"{self._instance(environment)}{WEB_API}/{path}"
            self._send(f"remove role {role} from {principal_id}", "DELETE", url)
        with self._lock:
            self._principals.pop(environment, None)

    def security_roles(self, environment: str, principal_id: str) -> tuple[str, ...]:
        """The roles the principal holds now, from a fresh read of the environment's users and teams."""
        with self._lock:
            self._principals.pop(environment, None)
        return self.principals(environment).roles.get(principal_id.lower(), ())

    def principal_names(self, environment: str) -> dict[str, str]:
        """Full names of the environment's users and names of its teams by Entra object id (read once)."""
        return self.principals(environment).names

    def role_holders(self, environment: str) -> dict[str, tuple[str, ...]]:
        """Dataverse security roles by Entra object id (System Customizer / Administrator edit every flow)."""
        return self.principals(environment).roles

    def list_flows(self, environment: str) -> list[Flow]:
        """Every cloud flow (`workflows`, category 5) with its definition and owner, 5,000 a page."""
        principals = self.principals(environment)
        rows = self._dataverse_list(f"list flows of {environment}", environment, workflows_query())
        logical_names = self._connection_references(environment, rows)
        flows = [flow_from_workflow(row, environment, principals, logical_names) for row in rows]
        with self._lock:
            for flow, row in zip(flows, rows, strict=True):
                owner = row.get("_ownerid_value")
                self._owners[(environment, flow.id)] = str(owner) if owner else None
        return flows

    def _connection_references(self, environment: str, rows: list[dict[str, Any]]) -> dict[str, str]:
        """Solution flows name a connection reference, not a connection: read the environment's
        `connectionreferences` (one paged list) only when a flow needs it."""
        if not any(needs_connection_references(row) for row in rows):
            return {}
        return connection_references_from_api(
            self._dataverse_list(
                f"list connection references of {environment}",
                environment,
                f"{WEB_API}/connectionreferences?$select={CONNECTION_REFERENCE_COLUMNS}",
            )
        )

    def get_flow(self, environment: str, flow: str) -> Flow:
        url = f"{self._instance(environment)}{WEB_API}/workflows({_q(flow)})"
        row = self._json(f"get flow {flow}", "GET", url)
        logical_names = self._connection_references(environment, [row])
        return flow_from_workflow(row, environment, self.principals(environment), logical_names)

    def get_flow_client_data(self, environment: str, flow: str) -> dict[str, Any]:
        """The flow's `clientdata` (its definition and connectionReferences), parsed, from a fresh GET."""
        url = f"{self._instance(environment)}{WEB_API}/workflows({_q(flow)})?$select=clientdata"
        return client_data(self._json(f"get flow {flow}", "GET", url))

    def update_flow_client_data(self, environment: str, flow: str, data: dict[str, Any]) -> None:
        """PATCH only `clientdata` (a string-encoded JSON column), as "Work with cloud flows using
        code" updates a flow: set only the properties to change; 204."""
        url = f"{self._instance(environment)}{WEB_API}/workflows({_q(flow)})"
        body = {"clientdata": json.dumps(data)}
        self._send(f"update flow {flow}", "PATCH", url, body, {"If-Match": "*"})

    def get_connection_reference(self, environment: str, logical_name: str) -> ConnectionReference | None:
        """The `connectionreferences` row of one logical name, fresh (a filtered list: the row's id is
        not in the flows' clientdata); None when the environment has no such row."""
        rows = self._dataverse_list(
            f"get connection reference {logical_name}", environment, connection_reference_query(logical_name)
        )
        wanted = logical_name.lower()
        found = [r for r in rows if str(r.get("connectionreferencelogicalname") or "").lower() == wanted]
        return connection_reference_from_api(found[0]) if found else None

    def update_connection_reference(self, environment: str, reference_id: str, connection: str) -> None:
        """PATCH only `connectionid` of the row ("Update and delete table rows using the Web API": the
        columns to change, `If-Match: *` so it never creates one; 204): every flow naming it moves."""
        url = f"{self._instance(environment)}{WEB_API}/connectionreferences({_q(reference_id)})"
        self._send(
            f"update connection reference {reference_id}",
            "PATCH",
            url,
            {"connectionid": connection},
            {"If-Match": "*"},
        )

    def flow_permissions(self, environment: str, flow: str) -> list[Share]:
        """The owner and every share (`RetrieveSharedPrincipalsAndAccess`) of one flow. The owner comes
        from the flow list when this invocation listed the flow (so a sweep pays one call per Key Vault
        flow), else from one GET of the row."""
        base = self._instance(environment)
        with self._lock:
            listed = (environment, flow.lower()) in self._owners
            owner = self._owners.get((environment, flow.lower()))
        if not listed:
            row = self._json(
                f"get owner of flow {flow}",
                "GET",
                f"{base}{WEB_API}/workflows({_q(flow)})?$select=_ownerid_value",
            )
            found = (row or {}).get("_ownerid_value")
            owner = str(found) if found else None
        access = self._json(f"list shares of flow {flow}", "GET", f"{base}{shared_principals_query(flow)}")
        return flow_shares_from_api(environment, flow, owner, access or {}, self.principals(environment))

    def revoke_flow_access(
        self, environment: str, flow: str, principals: Sequence[tuple[str, PrincipalKind]]
    ) -> None:
        """`RevokeAccess` for each (Dataverse principal id, kind): removes every right that share gave."""
        url = f"{self._instance(environment)}{WEB_API}/RevokeAccess"
        for principal, kind in principals:
            self._send(f"RevokeAccess on flow {flow}", "POST", url, revoke_body(flow, principal, kind))

    def turn_off_flow(self, environment: str, flow: str) -> None:
        """Draft (off): the flow stops triggering; its definition, owner and shares stay."""
        url = f"{self._instance(environment)}{WEB_API}/workflows({_q(flow)})"
        self._send(f"turn off flow {flow}", "PATCH", url, OFF, {"If-Match": "*"})

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
        self._apps.close()
        with self._lock:
            clients, self._dataverse = list(self._dataverse.values()), {}
        for client in clients:
            client.close()
