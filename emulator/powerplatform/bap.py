"""BAP (api.bap.microsoft.com): environments and who holds which role in them.

Routes (api-version as the real clients send it: 2020-10-01 for CLI `pp environment list`,
2016-11-01 for the PowerShell admin module; any value is accepted, one is required):

    GET /providers/Microsoft.BusinessAppPlatform/scopes/admin/environments            admin list, nextLink
    GET /providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{env}      admin get
    GET /providers/Microsoft.BusinessAppPlatform/environments[/{env}]                 caller's environments
    GET /providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{env}/roleAssignments

`roleAssignments` is the BAP route `Get-AdminPowerAppEnvironmentRoleAssignment` calls (api-version
2016-11-01). The real service serves it for environments *without* Dataverse (roles EnvironmentAdmin /
EnvironmentMaker) and answers 403 `LinkedEnvironmentForbiddenOperation` for Dataverse environments,
whose security roles are read from the environment's Dataverse (`systemusers`, `teams` and their
roles; emulator/powerplatform/dataverse.py). Every emulated environment has Dataverse, so this route
always answers that 403 (after the admin check).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emulator.powerplatform.common import (
    BAP_HOST,
    POWERAPPS_AUDIENCES,
    api_version,
    authenticate,
    caller_oid,
    is_tenant_admin,
    paged_response,
    principal,
    require_admin,
)
from emulator.powerplatform.state import Environment
from emulator.wire import HttpError, Request, Response

if TYPE_CHECKING:
    from emulator.core import Emulator
    from emulator.state import State

_BAP = "/providers/Microsoft.BusinessAppPlatform"
_ENV = r"(?P<env>[^/]+)"


def dataverse_org(env: Environment) -> str:
    """The Dataverse organization's host label: `{org}.crm4.dynamics.com`, `{org}.api.crm4.dynamics.com`."""
    return f"org{env.name.replace('-', '')[:12]}".lower()


def environment_json(state: State, env: Environment, admin: bool) -> dict[str, Any]:
    prefix = f"{_BAP}/scopes/admin" if admin else _BAP
    created_by = (
        principal(state, env.created_by)
        if env.created_by
        else {"id": "SYSTEM", "displayName": "SYSTEM", "type": "NotSpecified"}
    )
    org = dataverse_org(env).removeprefix("org")
    return {
        "id": f"{prefix}/environments/{env.name}",
        "type": "Microsoft.BusinessAppPlatform/scopes/environments",
        "location": env.location,
        "name": env.name,
        "properties": {
            "tenantId": state.azure.tenant_id,
            "azureRegion": env.azure_region,
            "displayName": env.display_name,
            "description": "",
            "createdTime": env.created_time,
            "createdBy": created_by,
            "lastModifiedTime": env.created_time,
            "provisioningState": "Succeeded",
            "creationType": "User",
            "environmentSku": env.sku,
            "isDefault": env.is_default,
            "clientUris": {
                "admin": f"https://admin.powerplatform.microsoft.com/environments/{env.name}/hub",
                "maker": f"https://make.powerapps.com/environments/{env.name}/home",
            },
            "runtimeEndpoints": {
                "microsoft.BusinessAppPlatform": f"https://{env.location}.api.bap.microsoft.com",
                "microsoft.PowerApps": f"https://{env.location}.api.powerapps.com",
                "microsoft.Flow": f"https://{env.location}.api.flow.microsoft.com",
            },
            "databaseType": "CommonDataService",
            "linkedEnvironmentMetadata": {
                "type": "Dynamics365Instance",
                "resourceId": env.name,
                "friendlyName": env.display_name,
                "uniqueName": f"unq{org}",
                "domainName": f"org{org}",
                "version": "9.2.24101.00000",
                "instanceUrl": f"https://org{org}.crm4.dynamics.com/",
                "instanceApiUrl": f"https://org{org}.api.crm4.dynamics.com",
                "instanceState": "Ready",
            },
            "states": {"management": {"id": "Ready"}, "runtime": {"id": "Enabled"}},
        },
    }


def get_environment(state: State, name: str) -> Environment:
    env = state.powerplatform.environments.get(name)
    if env is None:
        raise HttpError(
            404,
            "EnvironmentNotFound",
            f"The environment '{name}' could not be found in the tenant '{state.azure.tenant_id}'.",
        )
    return env


def visible_environments(state: State, claims: dict[str, Any]) -> list[Environment]:
    """Environments a non-admin caller sees: the default one, those where it holds a role, and
    those where it owns or shares a flow or connection."""
    pp = state.powerplatform
    principals = state.principals_of(caller_oid(claims))
    names = {f.environment for f in pp.flows.values() if f.role_of(principals)}
    names |= {
        c.environment
        for c in pp.connections.values()
        if c.created_by in principals or any(s.principal_id in principals for s in c.shares.values())
    }
    return [e for e in pp.environments.values() if e.is_default or e.roles_of(principals) or e.name in names]


def register(emulator: Emulator) -> None:
    state = emulator.state
    router = emulator.router

    def admin_list(request: Request) -> Response:
        api_version(request)
        claims = authenticate(request, POWERAPPS_AUDIENCES)
        with state.lock:
            if is_tenant_admin(state, claims):
                envs = list(state.powerplatform.environments.values())
            else:  # environment admins see the environments they administer
                principals = state.principals_of(caller_oid(claims))
                envs = [
                    e
                    for e in state.powerplatform.environments.values()
                    if "System Administrator" in e.roles_of(principals)
                ]
                if not envs:
                    require_admin(state, claims)
            return paged_response(
                request,
                envs,
                state.powerplatform.page_size_environments,
                lambda e: environment_json(state, e, admin=True),
            )

    def admin_get(request: Request) -> Response:
        api_version(request)
        claims = authenticate(request, POWERAPPS_AUDIENCES)
        with state.lock:
            env = get_environment(state, request.params["env"])
            require_admin(state, claims, env.name)
            return Response.json(200, environment_json(state, env, admin=True))

    def user_list(request: Request) -> Response:
        api_version(request)
        claims = authenticate(request, POWERAPPS_AUDIENCES)
        with state.lock:
            envs = visible_environments(state, claims)
            return paged_response(
                request,
                envs,
                state.powerplatform.page_size_environments,
                lambda e: environment_json(state, e, admin=False),
            )

    def user_get(request: Request) -> Response:
        api_version(request)
        claims = authenticate(request, POWERAPPS_AUDIENCES)
        with state.lock:
            env = get_environment(state, request.params["env"])
            if env not in visible_environments(state, claims) and not is_tenant_admin(state, claims):
                raise HttpError(
                    403, "EnvironmentAccessDenied", f"Access to the environment '{env.name}' is denied."
                )
            return Response.json(200, environment_json(state, env, admin=False))

    def role_assignments(request: Request) -> Response:
        api_version(request)
        claims = authenticate(request, POWERAPPS_AUDIENCES)
        with state.lock:
            env = get_environment(state, request.params["env"])
            require_admin(state, claims, env.name)
            # Every emulated environment has a Dataverse database, and for those BAP role assignments
            # answer 403: their security roles live in Dataverse (systemusers/teams and their roles).
            raise HttpError(
                403,
                "LinkedEnvironmentForbiddenOperation",
                f"Environment '{env.name}' has a Dataverse database: its roles are Dataverse security "
                "roles; read them through the environment's Dataverse Web API.",
            )

    router.add(
        BAP_HOST, "GET", rf"{_BAP}/scopes/admin/environments", admin_list, "bap.environments.adminList"
    )
    router.add(
        BAP_HOST, "GET", rf"{_BAP}/scopes/admin/environments/{_ENV}", admin_get, "bap.environments.adminGet"
    )
    router.add(
        BAP_HOST,
        "GET",
        rf"{_BAP}/scopes/admin/environments/{_ENV}/roleAssignments",
        role_assignments,
        "bap.environments.roleAssignments",
    )
    router.add(BAP_HOST, "GET", rf"{_BAP}/environments", user_list, "bap.environments.list")
    router.add(BAP_HOST, "GET", rf"{_BAP}/environments/{_ENV}", user_get, "bap.environments.get")
