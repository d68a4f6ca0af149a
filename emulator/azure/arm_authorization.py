"""ARM Microsoft.Authorization: role assignments (list with `$filter=atScope()` or
`principalId eq '...'`, get, create, delete) at subscription, resource group, vault and secret
scope, and role definitions (list with `$filter=roleName eq '...'`, get) for the built-in roles.

Limits as Azure: 4,000 role assignments per subscription (docs/limits.md 1a), assignment names are
GUIDs, the same principal + role + scope twice is 409 `RoleAssignmentExists`."""

from __future__ import annotations

import re
import uuid
from typing import Any

from emulator.azure import roles
from emulator.azure.arm_resources import subscription_or_404
from emulator.azure.common import ARM, AzureContext, arm_error, body_json, require_arm
from emulator.azure.state import RoleAssignment
from emulator.wire import Request, Response

SCOPE = r"(?P<scope>/subscriptions/[^/]+(?:/resourceGroups/[^/]+(?:/providers/.+?)?)?)"
ASSIGNMENTS = SCOPE + r"/providers/Microsoft\.Authorization/roleAssignments"
DEFINITIONS = (
    r"(?P<scope>(?:/subscriptions/[^/]+(?:/resourceGroups/[^/]+(?:/providers/.+?)?)?)?)"
    + r"/providers/Microsoft\.Authorization/roleDefinitions"
)
MAX_ASSIGNMENTS_PER_SUBSCRIPTION = 4000
_PRINCIPAL_FILTER = re.compile(r"principalId\s+eq\s+'([^']+)'", re.IGNORECASE)
_ROLE_NAME_FILTER = re.compile(r"roleName\s+eq\s+'([^']+)'", re.IGNORECASE)
_ROLE_ID = re.compile(r"([0-9a-fA-F-]{36})/?$")


def _subscription_of(scope: str) -> str:
    return scope.split("/")[2]


def _check_scope(ctx: AzureContext, scope: str) -> None:
    """Resource groups and vaults named in a scope must exist, as ARM checks."""
    parts = scope.strip("/").split("/")
    subscription_or_404(ctx, parts[1])
    if len(parts) >= 4 and ctx.state.resource_group(parts[1], parts[3]) is None:
        raise arm_error(404, "ResourceGroupNotFound", f"Resource group '{parts[3]}' could not be found.")
    lowered = [p.lower() for p in parts]
    if len(parts) >= 8 and lowered[4:7] == ["providers", "microsoft.keyvault", "vaults"]:
        vault = ctx.state.vaults.get(lowered[7])
        if vault is None or vault.resource_group.lower() != lowered[3]:
            raise arm_error(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.KeyVault/vaults/{parts[7]}' under resource group "
                f"'{parts[3]}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix",
            )


def register(ctx: AzureContext) -> None:
    route = ctx.route

    def render(assignment: RoleAssignment) -> dict[str, Any]:
        return assignment.to_arm(_subscription_of(assignment.scope))

    @route(ARM, "GET", ASSIGNMENTS)
    def list_role_assignments(request: Request) -> Response:
        scope = request.params["scope"]
        _check_scope(ctx, scope)
        require_arm(ctx, request, "Microsoft.Authorization/roleAssignments/read", scope)
        flt = request.query.get("$filter", "")
        principal = _PRINCIPAL_FILTER.search(flt)
        at_scope = "atscope()" in flt.replace(" ", "").lower()
        found = []
        for assignment in ctx.state.role_assignments.values():
            above = roles.scope_covers(assignment.scope, scope)
            below = roles.scope_covers(scope, assignment.scope)
            # atScope(): at or above the scope. Otherwise also below it, as ARM does.
            if not (above or (below and not at_scope)):
                continue
            if principal and assignment.principal_id.lower() != principal.group(1).lower():
                continue
            found.append(render(assignment))
        return Response.json(200, {"value": found})

    @route(ARM, "GET", ASSIGNMENTS + r"/(?P<name>[^/]+)")
    def get_role_assignment(request: Request) -> Response:
        scope = request.params["scope"]
        require_arm(ctx, request, "Microsoft.Authorization/roleAssignments/read", scope)
        assignment = ctx.state.role_assignments.get(request.params["name"].lower())
        if assignment is None or assignment.scope.rstrip("/").lower() != scope.rstrip("/").lower():
            raise arm_error(
                404, "RoleAssignmentNotFound", f"The role assignment '{request.params['name']}' is not found."
            )
        return Response.json(200, render(assignment))

    @route(ARM, "PUT", ASSIGNMENTS + r"/(?P<name>[^/]+)")
    def create_role_assignment(request: Request) -> Response:
        scope, name = request.params["scope"], request.params["name"]
        require_arm(ctx, request, "Microsoft.Authorization/roleAssignments/write", scope)
        _check_scope(ctx, scope)
        try:
            uuid.UUID(name)
        except ValueError:
            raise arm_error(
                400,
                "InvalidRoleAssignmentId",
                f"The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID.",
            ) from None
        props = body_json(request).get("properties")
        if not isinstance(props, dict):
            raise arm_error(400, "InvalidRequestContent", "The 'properties' property is required.")
        match = _ROLE_ID.search(str(props.get("roleDefinitionId", "")))
        definition = ctx.state.role_definitions.get(match.group(1).lower()) if match else None
        if definition is None:
            raise arm_error(
                400,
                "InvalidRoleDefinitionId",
                f"The role definition ID '{props.get('roleDefinitionId')}' is not valid.",
            )
        principal_id = str(props.get("principalId", ""))
        principal = ctx.state.principals.get(principal_id.lower())
        if principal is None:
            raise arm_error(
                400,
                "PrincipalNotFound",
                f"Principal {principal_id.replace('-', '')} does not exist in the directory "
                f"{ctx.state.tenant_id}. Check that you have the correct principal ID. If you are "
                "creating this principal and then immediately assigning a role, this error might "
                "be related to a replication delay. In this case, set the role assignment "
                "principalType property to a value, such as ServicePrincipal, User, or Group.",
            )
        existing = ctx.state.role_assignments.get(name.lower())
        if existing is not None:
            if (
                existing.scope.rstrip("/").lower() != scope.rstrip("/").lower()
                or existing.principal_id.lower() != principal_id.lower()
                or existing.role_definition_id.lower() != definition.id.lower()
            ):
                raise arm_error(
                    400,
                    "RoleAssignmentUpdateNotPermitted",
                    "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
                )
            return Response.json(201, render(existing))
        for other in ctx.state.role_assignments.values():
            if (
                other.scope.rstrip("/").lower() == scope.rstrip("/").lower()
                and other.principal_id.lower() == principal_id.lower()
                and other.role_definition_id.lower() == definition.id.lower()
            ):
                raise arm_error(409, "RoleAssignmentExists", "The role assignment already exists.")
        subscription_id = _subscription_of(scope)
        if ctx.state.subscription_assignment_count(subscription_id) >= MAX_ASSIGNMENTS_PER_SUBSCRIPTION:
            raise arm_error(
                400,
                "RoleAssignmentLimitExceeded",
                f"No more role assignments can be created for subscription '{subscription_id}'. The "
                f"limit of {MAX_ASSIGNMENTS_PER_SUBSCRIPTION} role assignments has been reached.",
            )
        assignment = ctx.state.add_role_assignment(
            scope, definition.id, principal.id, str(props.get("principalType") or principal.kind), name=name
        )
        return Response.json(201, render(assignment))

    @route(ARM, "DELETE", ASSIGNMENTS + r"/(?P<name>[^/]+)")
    def delete_role_assignment(request: Request) -> Response:
        scope = request.params["scope"]
        require_arm(ctx, request, "Microsoft.Authorization/roleAssignments/delete", scope)
        assignment = ctx.state.role_assignments.get(request.params["name"].lower())
        if assignment is None or assignment.scope.rstrip("/").lower() != scope.rstrip("/").lower():
            return Response.empty(204)
        del ctx.state.role_assignments[assignment.name.lower()]
        return Response.json(200, render(assignment))

    @route(ARM, "GET", DEFINITIONS)
    def list_role_definitions(request: Request) -> Response:
        scope = request.params["scope"] or "/"
        match = _ROLE_NAME_FILTER.search(request.query.get("$filter", ""))
        definitions = [
            d
            for d in ctx.state.role_definitions.values()
            if match is None or d.role_name.lower() == match.group(1).lower()
        ]
        return Response.json(200, {"value": [d.to_arm(scope) for d in definitions]})

    @route(ARM, "GET", DEFINITIONS + r"/(?P<id>[^/]+)")
    def get_role_definition(request: Request) -> Response:
        definition = ctx.state.role_definitions.get(request.params["id"].lower())
        if definition is None:
            raise arm_error(
                404,
                "RoleDefinitionDoesNotExist",
                f"The specified role definition with ID '{request.params['id']}' does not exist.",
            )
        return Response.json(200, definition.to_arm(request.params["scope"] or "/"))
