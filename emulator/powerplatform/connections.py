"""Connections (api.powerapps.com, Microsoft.PowerApps), the classic admin API the PowerShell module
(`Get-AdminPowerAppConnection`, `*-AdminPowerAppConnectionRoleAssignment`) and PACE use.

    GET  /providers/Microsoft.PowerApps/scopes/admin/environments/{env}/connections             2016-11-01
    GET  /providers/Microsoft.PowerApps/scopes/admin/environments/{env}/apis/{api}/connections  2016-11-01
    GET  /providers/Microsoft.PowerApps/scopes/admin/environments/{env}/apis/{api}/connections/{c}
    GET  .../scopes/admin/environments/{env}/apis/{api}/connections/{c}/permissions             2017-06-01
    POST .../scopes/admin/environments/{env}/apis/{api}/connections/{c}/modifyPermissions       2017-06-01
    GET  /providers/Microsoft.PowerApps/apis/{api}/connections?$filter=environment eq '{env}'        caller's
    GET  /providers/Microsoft.PowerApps/apis/{api}/connections/{c}?$filter=environment eq '{env}'
    GET  /providers/Microsoft.PowerApps/apis/{api}/connections/{c}/permissions?$filter=environment eq '{env}'
    POST /providers/Microsoft.PowerApps/apis/{api}/connections/{c}/modifyPermissions?$filter=...

Lists page with `nextLink` (`$skiptoken`). Which identity a connection authenticates as: OAuth connections
act as their creator (`createdBy`, `authenticatedUser`); service-principal and certificate connections
carry `connectionParametersSet {name, values: {token:clientId, token:TenantId}}` (never the secret or
certificate); managed-identity ones `{name: "managedIdentityAuth"}` with the identity's object id in
`values.managedIdentity`. The runner uses `Connection.identity` (an object id) for all of them.

Key Vault connections use the connector reference's auth ids and its "Shareable" column
(learn.microsoft.com/connectors/keyvault, MicrosoftDocs/BusinessApplicationPlatform-Connectors
`docs/keyvault/index.yml`): `oauthDefault` and `oauthServicePrincipal` are not shareable, `CertOauth`
(client certificate) is; `allowSharing` says so. "Shareable" is implicit sharing with a canvas app; no
source says an explicit share (`modifyPermissions`) is refused on the others, so it is accepted for
every connection: the app must find and revoke a share whatever the connection's auth type.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from emulator.powerplatform.bap import get_environment
from emulator.powerplatform.common import (
    POWERAPPS_AUDIENCES,
    POWERAPPS_HOST,
    api_version,
    authenticate,
    caller_oid,
    paged_response,
    principal,
    require_admin,
)
from emulator.powerplatform.state import CONNECTION_ROLES, Connection, Share
from emulator.wire import HttpError, Request, Response

if TYPE_CHECKING:
    from emulator.core import Emulator
    from emulator.state import State

_P = "/providers/Microsoft.PowerApps"
_ICONS = "https://connectoricons-prod.azureedge.net/releases/v1.0.1700/1.0.1700.3800"
_PARAMETER_SETS = {
    "oauth": "oauthDefault",
    "servicePrincipal": "servicePrincipalAuth",
    "certificate": "CertOauth",
    "managedIdentity": "managedIdentityAuth",
}
# The Key Vault connector reference's auth ids where they differ, and its only shareable one.
_KEYVAULT_PARAMETER_SETS = _PARAMETER_SETS | {"servicePrincipal": "oauthServicePrincipal"}
_KEYVAULT_SHAREABLE = frozenset({"certificate"})
_APP_AUTH = frozenset({"servicePrincipal", "certificate"})  # an app registration's client id and tenant


def _allow_sharing(connection: Connection) -> bool:
    if connection.api.lower() == "shared_keyvault":
        return connection.auth_type in _KEYVAULT_SHAREABLE
    return connection.auth_type != "oauth"


def _parameter_set_name(connection: Connection) -> str:
    names = _KEYVAULT_PARAMETER_SETS if connection.api.lower() == "shared_keyvault" else _PARAMETER_SETS
    return names.get(connection.auth_type, connection.auth_type)


def connection_json(state: State, connection: Connection, admin: bool) -> dict[str, Any]:
    api_path = (
        f"{_P}/scopes/admin/environments/{connection.environment}/apis/{connection.api}"
        if admin
        else f"{_P}/apis/{connection.api}"
    )
    creator = principal(state, connection.created_by)
    creator_info = state.powerplatform.directory.get(connection.created_by, {})
    if creator_info.get("email"):
        creator["userPrincipalName"] = creator_info["email"]
    values: dict[str, Any] = {k: {"value": v} for k, v in connection.parameters.items()}
    identity_info = state.powerplatform.directory.get(connection.identity, {})
    if connection.auth_type in _APP_AUTH:
        values["token:clientId"] = {"value": identity_info.get("appId", connection.identity)}
        values["token:TenantId"] = {"value": state.azure.tenant_id}
    elif connection.auth_type == "managedIdentity":
        values["managedIdentity"] = {"value": connection.identity}
    properties: dict[str, Any] = {
        "apiId": api_path,
        "displayName": connection.display_name,
        "iconUri": f"{_ICONS}/{connection.api.removeprefix('shared_')}/icon.png",
        "statuses": [{"status": "Connected"}],
        "connectionParametersSet": {
            "name": _parameter_set_name(connection),
            "values": values,
        },
        "keywordsRemaining": 39,
        "createdBy": creator,
        "createdTime": connection.created_time,
        "lastModifiedTime": connection.created_time,
        "environment": {"id": f"{_P}/environments/{connection.environment}", "name": connection.environment},
        "testLinks": [],
        "allowSharing": _allow_sharing(connection),
    }
    if connection.auth_type == "oauth":
        # A connection made with a parameter set (service principal, managed identity) has no
        # `connectionParameters`; its values are only under `connectionParametersSet.values`, as in the
        # Terraform provider's recorded list (get_connections.json, the firstParty connection).
        properties["connectionParameters"] = dict(connection.parameters)
        account = creator_info.get("email") or connection.created_by
        properties["accountName"] = account
        properties["authenticatedUser"] = {"name": account}
    else:
        properties["accountName"] = identity_info.get("displayName", connection.identity)
    return {
        "name": connection.name,
        "id": f"{api_path}/connections/{connection.name}",
        "type": "Microsoft.PowerApps/scopes/apis/connections"
        if admin
        else "Microsoft.PowerApps/apis/connections",
        "properties": properties,
    }


def permission_json(state: State, connection: Connection, share: Share) -> dict[str, Any]:
    return {
        "name": share.name,
        "id": f"{_P}/apis/{connection.api}/connections/{connection.name}/permissions/{share.name}",
        "type": "Microsoft.PowerApps/apis/connections/permissions",
        "properties": {
            "roleName": share.role,
            "principal": principal(state, share.principal_id, share.principal_type),
            "notifyShareTargetOption": "NotSpecified",
            "inviteGuestToTenant": False,
        },
    }


def owner_share(connection: Connection) -> Share:
    return Share(name=connection.created_by, principal_id=connection.created_by, role="Owner")


def _environment_filter(request: Request) -> str:
    match = re.search(r"environment\s+eq\s+'([^']+)'", request.query.get("$filter", ""))
    if match is None:
        raise HttpError(
            400, "InvalidFilter", "The $filter query parameter must be \"environment eq '{name}'\"."
        )
    return match.group(1)


def get_connection(state: State, environment: str, api: str, name: str) -> Connection:
    connection = state.powerplatform.connections.get(name)
    if connection is None or connection.environment != environment or connection.api.lower() != api.lower():
        raise HttpError(404, "ConnectionNotFound", f"Could not find connection '{name}' for API '{api}'.")
    return connection


def _caller_role(state: State, connection: Connection, claims: dict[str, Any]) -> str | None:
    principals = state.principals_of(caller_oid(claims))
    principals.add(state.azure.tenant_id)  # tenant-wide shares name the tenant id
    roles = {s.role for s in connection.shares.values() if s.principal_id in principals}
    for role in ("Owner", "CanEdit", "CanViewWithShare", "CanView"):
        if role in roles:
            return role
    return None


def apply_modify_permissions(state: State, connection: Connection, body: Any) -> None:
    """`{"put": [{"properties": {roleName, principal{id, type?, tenantId?}}}], "delete": [{"id"}]}`."""
    if not isinstance(body, dict):
        raise HttpError(400, "InvalidRequestContent", "The request body must be an object with put/delete.")
    for i, item in enumerate(body.get("delete") or []):
        target = str((item or {}).get("id", "")).rsplit("/", 1)[-1]
        if not target:
            raise HttpError(400, "InvalidRequestContent", f"delete[{i}].id is required.")
        share = connection.shares.get(target) or next(
            (s for s in connection.shares.values() if s.principal_id == target), None
        )
        if share is not None and share.role == "Owner":
            raise HttpError(400, "CannotRemoveOwner", "The owner of a connection cannot be removed.")
        if share is not None:
            del connection.shares[share.name]
    for i, item in enumerate(body.get("put") or []):
        props = (item or {}).get("properties") or {}
        role = props.get("roleName")
        who = props.get("principal") or {}
        if role not in CONNECTION_ROLES or role == "Owner":
            raise HttpError(
                400,
                "InvalidRoleName",
                f"put[{i}].properties.roleName must be CanView, CanViewWithShare or CanEdit.",
            )
        if not who.get("id"):
            raise HttpError(400, "InvalidPrincipal", f"put[{i}].properties.principal.id is required.")
        principal_id = str(who["id"])
        kind = str(
            who.get("type")
            or (
                "Tenant"
                if principal_id == state.azure.tenant_id
                else state.powerplatform.directory.get(principal_id, {}).get("type", "User")
            )
        )
        existing = next((s for s in connection.shares.values() if s.principal_id == principal_id), None)
        if existing is not None and existing.role == "Owner":
            continue
        if existing is not None:
            existing.role = role
        else:
            name = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{connection.name}/{principal_id}"))
            connection.shares[name] = Share(
                name=name, principal_id=principal_id, role=role, principal_type=kind
            )


def register(emulator: Emulator) -> None:
    state = emulator.state
    router = emulator.router
    env_re = r"(?P<env>[^/]+)"
    api_re = r"(?P<api>[^/]+)"
    conn_re = r"(?P<conn>[^/]+)"
    admin_api = rf"{_P}/scopes/admin/environments/{env_re}/apis/{api_re}/connections"
    user_api = rf"{_P}/apis/{api_re}/connections"

    def _listing(request: Request, connections: list[Connection], admin: bool) -> Response:
        return paged_response(
            request,
            connections,
            state.powerplatform.page_size_connections,
            lambda c: connection_json(state, c, admin),
        )

    def admin_list_env(request: Request) -> Response:
        api_version(request)
        claims = authenticate(request, POWERAPPS_AUDIENCES)
        with state.lock:
            env = get_environment(state, request.params["env"])
            require_admin(state, claims, env.name)
            return _listing(request, state.powerplatform.connections_in(env.name), admin=True)

    def admin_list_api(request: Request) -> Response:
        api_version(request)
        claims = authenticate(request, POWERAPPS_AUDIENCES)
        with state.lock:
            env = get_environment(state, request.params["env"])
            require_admin(state, claims, env.name)
            api = request.params["api"].lower()
            return _listing(
                request,
                [c for c in state.powerplatform.connections_in(env.name) if c.api.lower() == api],
                admin=True,
            )

    def admin_get(request: Request) -> Response:
        api_version(request)
        claims = authenticate(request, POWERAPPS_AUDIENCES)
        with state.lock:
            env = get_environment(state, request.params["env"])
            require_admin(state, claims, env.name)
            connection = get_connection(state, env.name, request.params["api"], request.params["conn"])
            return Response.json(200, connection_json(state, connection, admin=True))

    def admin_permissions(request: Request) -> Response:
        api_version(request)
        claims = authenticate(request, POWERAPPS_AUDIENCES)
        with state.lock:
            env = get_environment(state, request.params["env"])
            require_admin(state, claims, env.name)
            connection = get_connection(state, env.name, request.params["api"], request.params["conn"])
            return Response.json(
                200, {"value": [permission_json(state, connection, s) for s in connection.shares.values()]}
            )

    def admin_modify(request: Request) -> Response:
        api_version(request)
        claims = authenticate(request, POWERAPPS_AUDIENCES)
        body = request.json()
        with state.lock:
            env = get_environment(state, request.params["env"])
            require_admin(state, claims, env.name)
            connection = get_connection(state, env.name, request.params["api"], request.params["conn"])
            apply_modify_permissions(state, connection, body)
        return Response.empty(200)

    def user_list(request: Request) -> Response:
        api_version(request)
        claims = authenticate(request, POWERAPPS_AUDIENCES)
        env_name = _environment_filter(request)
        with state.lock:
            env = get_environment(state, env_name)
            api = request.params["api"].lower()
            mine = [
                c
                for c in state.powerplatform.connections_in(env.name)
                if c.api.lower() == api and _caller_role(state, c, claims)
            ]
            return _listing(request, mine, admin=False)

    def _user_connection(request: Request, claims: dict[str, Any]) -> tuple[Connection, str]:
        env = get_environment(state, _environment_filter(request))
        connection = get_connection(state, env.name, request.params["api"], request.params["conn"])
        role = _caller_role(state, connection, claims)
        if role is None:
            raise HttpError(
                403,
                "Forbidden",
                f"The caller with object id '{caller_oid(claims)}' does not have "
                f"permission for connection '{connection.name}' under API '{connection.api}'.",
            )
        return connection, role

    def user_get(request: Request) -> Response:
        api_version(request)
        claims = authenticate(request, POWERAPPS_AUDIENCES)
        with state.lock:
            connection, _ = _user_connection(request, claims)
            return Response.json(200, connection_json(state, connection, admin=False))

    def user_permissions(request: Request) -> Response:
        api_version(request)
        claims = authenticate(request, POWERAPPS_AUDIENCES)
        with state.lock:
            connection, _ = _user_connection(request, claims)
            return Response.json(
                200, {"value": [permission_json(state, connection, s) for s in connection.shares.values()]}
            )

    def user_modify(request: Request) -> Response:
        api_version(request)
        claims = authenticate(request, POWERAPPS_AUDIENCES)
        body = request.json()
        with state.lock:
            connection, role = _user_connection(request, claims)
            if role != "Owner":
                raise HttpError(
                    403, "Forbidden", "Only the owner of a connection can change its permissions."
                )
            apply_modify_permissions(state, connection, body)
        return Response.empty(200)

    router.add(
        POWERAPPS_HOST,
        "GET",
        rf"{_P}/scopes/admin/environments/{env_re}/connections",
        admin_list_env,
        "powerapps.connections.adminListEnvironment",
    )
    router.add(POWERAPPS_HOST, "GET", admin_api, admin_list_api, "powerapps.connections.adminList")
    router.add(POWERAPPS_HOST, "GET", rf"{admin_api}/{conn_re}", admin_get, "powerapps.connections.adminGet")
    router.add(
        POWERAPPS_HOST,
        "GET",
        rf"{admin_api}/{conn_re}/permissions",
        admin_permissions,
        "powerapps.connections.adminPermissions",
    )
    router.add(
        POWERAPPS_HOST,
        "POST",
        rf"{admin_api}/{conn_re}/modifyPermissions",
        admin_modify,
        "powerapps.connections.adminModifyPermissions",
    )
    router.add(POWERAPPS_HOST, "GET", user_api, user_list, "powerapps.connections.list")
    router.add(POWERAPPS_HOST, "GET", rf"{user_api}/{conn_re}", user_get, "powerapps.connections.get")
    router.add(
        POWERAPPS_HOST,
        "GET",
        rf"{user_api}/{conn_re}/permissions",
        user_permissions,
        "powerapps.connections.permissions",
    )
    router.add(
        POWERAPPS_HOST,
        "POST",
        rf"{user_api}/{conn_re}/modifyPermissions",
        user_modify,
        "powerapps.connections.modifyPermissions",
    )
