"""Flows (api.flow.microsoft.com, Microsoft.ProcessSimple), api-version 2016-11-01 on every route.
`[A]` = also served under `scopes/admin/` (tenant admins, or System Administrators of the environment).

    GET    /providers/Microsoft.ProcessSimple/environments                    caller's environments
    GET    .../scopes/admin/environments/{env}/v2/flows         admin list, 250 a page, nextLink ($skiptoken)
    GET    .../scopes/admin/environments/{env}/flows            old admin list (PS 2.0.64), same paging
    GET    .../environments/{env}/flows                         caller's flows (any role on them)
    GET    [A] .../environments/{env}/flows/{flow}              with definition, connectionReferences
                                                                (the admin route: no definition)
    POST   .../environments/{env}/flows                        create: {"properties": {displayName,
                                                                definition, connectionReferences,
                                                                state?: Started|Stopped}} -> 201
    PATCH  .../environments/{env}/flows/{flow}                  edit: {"properties": {definition,
                                                                connectionReferences?, displayName?}}
    DELETE [A] .../environments/{env}/flows/{flow}
    POST   [A] .../environments/{env}/flows/{flow}/start | /stop
    GET    [A] .../environments/{env}/flows/{flow}/permissions
    POST   [A] .../environments/{env}/flows/{flow}/modifyPermissions   {"put": [...], "delete": [...]}
    POST   .../environments/{env}/flows/{flow}/triggers/{trigger}/run  202, x-ms-workflow-run-id
    GET    .../environments/{env}/flows/{flow}/runs                    newest first, nextLink
    GET    .../environments/{env}/flows/{flow}/runs/{run}              [$expand=properties/actions]
    GET    .../runs/{run}/actions, .../runs/{run}/actions/{action}, .../actions/{action}/repetitions
    GET    /workflows/{flow}/runs/{run}/actions/{action}[/repetitions/{rep}]/contents/{kind}
           ?...&sig=...   (kind: ActionInputs|ActionOutputs) the SAS-signed inputsLink/outputsLink (no
           bearer needed). **Emulator deviation:** the real links point at
           prod-NN.{region}.logic.azure.com; ours at api.flow.microsoft.com.

Who may do what, as in the product: reading a flow needs a role on it (Owner, CanEdit co-owner, CanView
run-only user) or System Customizer/Administrator in its environment; editing (PATCH) and sharing need
Owner/CanEdit or System Customizer/Administrator; running and reading run history: any role on the flow
or System Customizer/Administrator. Turning a flow on (start, create on, an edit of a flow that is on that
adds a connection) also needs the right to use its connections (activation.py: 403
ConnectionAuthorizationFailed). Secured inputs/outputs have no inputsLink/outputsLink in the run
history (the portal shows "Content not shown due to security configuration."). A flow edit or start that
breaks a DLP policy is refused (403 DlpViolation / ApiPolicyDataFlowViolation); a run of a flow that
violates a policy suspends it and is refused.

As the real service: the admin GET omits `properties.definition` (pnp/cli-microsoft365#6624; Microsoft's
CoE Starter Kit makes itself co-owner to read details), the admin lists carry `workflowEntityId` (the
Dataverse `workflows` row; PACE's FlowList model). App-only (service principal) tokens: the maker routes
refuse them (403 "Principal Service authentication is supported for administrative actions only.", the
message recorded in microsoft/coe-starter-kit#10172); the `scopes/admin` routes accept them for a
registered management app (the Power Automate Management connector reference: "Service Principal
authentication is supported for administrative actions only"; #10172: "Get Flow as Admin" works with a
service principal), except the admin permission routes (owners and shares are user details, which the
Power Automate for Admins connector reference says service principals cannot reach). docs/fidelity.md,
"The Flow API and app-only tokens". The app does not call the Flow API (it uses Dataverse).

Errors: unknown environment 403 `EnvironmentAccessDenied` "Access to the environment 'x' is denied." (as
the Flow service answers), unknown flow 404 `FlowNotFound` "Could not find flow 'x'.", unknown run 404
`WorkflowRunNotFound`, unknown action 404 `WorkflowRunActionNotFound`.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from emulator.powerplatform import activation, definitions, dlp
from emulator.powerplatform.bap import visible_environments
from emulator.powerplatform.common import (
    FLOW_AUDIENCES,
    FLOW_HOST,
    api_version,
    authenticate,
    caller_oid,
    paged_response,
    require_admin,
)
from emulator.powerplatform.runner import FlowRunner
from emulator.powerplatform.state import (
    EDIT_ALL_FLOWS_ROLES,
    ENVIRONMENT_ROLES,
    ActionRecord,
    Flow,
    Run,
    Share,
    new_id,
    now_iso,
)
from emulator.wire import HttpError, Request, Response

if TYPE_CHECKING:
    from emulator.core import Emulator
    from emulator.state import State

_F = "/providers/Microsoft.ProcessSimple"
_FLOW_TYPE = "Microsoft.ProcessSimple/environments/flows"
MAKER_ROLES = frozenset(ENVIRONMENT_ROLES)  # Environment Maker and above may create flows

# App-only callers (docs/fidelity.md, "The Flow API and app-only tokens"): the first message is the one
# recorded in microsoft/coe-starter-kit#10172, the second the Power Automate for Admins connector's note.
SERVICE_PRINCIPAL_ADMIN_ONLY = (
    "Principal Service authentication is supported for administrative actions only."
)
SERVICE_PRINCIPAL_NO_USER_DETAILS = (
    "Service Principal authentication is not supported for administrative actions involving user details."
)


def flow_id(flow: Flow) -> str:
    return f"{_F}/environments/{flow.environment}/flows/{flow.name}"


def flow_json(
    state: State, flow: Flow, *, full: bool, user_type: str | None = None, admin: bool = False
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "apiId": "/providers/Microsoft.PowerApps/apis/shared_logicflows",
        "displayName": flow.display_name,
        "state": flow.state,
        "createdTime": flow.created_time,
        "lastModifiedTime": flow.last_modified_time,
        "flowSuspensionReason": flow.suspension_reason,
        "environment": {
            "name": flow.environment,
            "type": "Microsoft.ProcessSimple/environments",
            "id": f"{_F}/environments/{flow.environment}",
        },
        "definitionSummary": definitions.summary(flow.definition),
        "creator": {
            "tenantId": state.azure.tenant_id,
            "objectId": flow.creator,
            "userId": flow.creator,
            "userType": "ActiveDirectory",
        },
        "provisioningMethod": "FromDefinition",
        "flowFailureAlertSubscribed": False,
        "isManaged": False,
    }
    if user_type:
        properties["userType"] = user_type
    if admin:
        properties["workflowEntityId"] = flow.name  # the Dataverse workflowid (emulated: the same id)
    if full and not admin:
        properties["definition"] = definitions.copy_definition(flow.definition)
    if full:
        properties["connectionReferences"] = _references_json(state, flow)
        properties["plan"] = "NotSpecified"
        properties["flowTriggerUri"] = f"https://api.flow.microsoft.com{flow_id(flow)}/triggers/manual/run"
    return {"name": flow.name, "id": flow_id(flow), "type": _FLOW_TYPE, "properties": properties}


def _references_json(state: State, flow: Flow) -> dict[str, Any]:
    rendered = {}
    for key, reference in flow.connection_references.items():
        api_id = str(reference.get("id", ""))
        connection = state.powerplatform.connections.get(str(reference.get("connectionName", "")))
        rendered[key] = {
            "connectionName": reference.get("connectionName"),
            "source": reference.get("source", "Embedded"),
            "id": api_id,
            "displayName": connection.display_name if connection else api_id.rsplit("/", 1)[-1],
            "apiName": api_id.rsplit("/", 1)[-1].removeprefix("shared_"),
            "tier": reference.get("tier", "NotSpecified"),
            "isProcessSimpleApiReferenceConversion": False,
        }
    return rendered


def permission_json(flow: Flow, share: Share) -> dict[str, Any]:
    return {
        "name": share.principal_id,
        "id": f"{flow_id(flow)}/permissions/{share.principal_id}",
        "type": "/providers/Microsoft.ProcessSimple/environments/flows/permissions",
        "properties": {
            "roleName": share.role,
            "permissionType": "Principal",
            "principal": {"id": share.principal_id, "type": share.principal_type},
        },
    }


def apply_modify_permissions(state: State, flow: Flow, body: Any) -> None:
    """`put[].properties{principal{id,type}, roleName: CanView|CanEdit}`, `delete[].id` (object id or
    the permission's full id)."""
    if not isinstance(body, dict):
        raise HttpError(400, "InvalidRequestContent", "The request body must be an object with put/delete.")
    for i, item in enumerate(body.get("delete") or []):
        target = str((item or {}).get("id", "")).rsplit("/", 1)[-1]
        if not target:
            raise HttpError(400, "InvalidRequestContent", f"delete[{i}].id is required.")
        if target == flow.creator:
            raise HttpError(
                400, "CannotRemoveFlowCreator", "The creator of a flow cannot be removed as its owner."
            )
        flow.shares.pop(target, None)
    for i, item in enumerate(body.get("put") or []):
        props = (item or {}).get("properties") or {}
        who = props.get("principal") or {}
        role = props.get("roleName")
        if role not in ("CanView", "CanEdit"):
            raise HttpError(
                400, "InvalidRoleName", f"put[{i}].properties.roleName must be CanView or CanEdit."
            )
        if not who.get("id"):
            raise HttpError(400, "InvalidPrincipal", f"put[{i}].properties.principal.id is required.")
        principal_id = str(who["id"])
        if principal_id == flow.creator:
            continue
        kind = str(who.get("type") or state.powerplatform.directory.get(principal_id, {}).get("type", "User"))
        flow.shares[principal_id] = Share(
            name=principal_id, principal_id=principal_id, role=role, principal_type=kind
        )


def _references(props: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """`properties.connectionReferences` as stored (`id` or `apiId`); `current` when not sent."""
    sent = props.get("connectionReferences")
    if sent is None:
        return current
    if not isinstance(sent, dict) or not all(isinstance(v, dict) for v in sent.values()):
        raise HttpError(400, "InvalidRequestContent", "properties.connectionReferences must be an object.")
    return {
        k: {
            "connectionName": v.get("connectionName"),
            "id": v.get("id") or v.get("apiId"),
            "source": v.get("source", "Embedded"),
            "tier": v.get("tier", "NotSpecified"),
        }
        for k, v in sent.items()
    }


def _sign(state: State, path: str) -> str:
    return hmac.new(state.powerplatform.link_key.encode(), path.encode(), hashlib.sha256).hexdigest()[:43]


def _content_link(
    state: State, flow: Flow, run: Run, record: ActionRecord, kind: str, content: Any
) -> dict[str, Any]:
    import json

    rep = f"/repetitions/{record.repetition_index:06d}" if record.repetition_index is not None else ""
    path = f"/workflows/{flow.name}/runs/{run.name}/actions/{record.name}{rep}/contents/{kind}"
    query = urlencode(
        {"api-version": "2016-06-01", "sp": "/runs/*/read", "sv": "1.0", "sig": _sign(state, path)}
    )
    data = json.dumps(content).encode()
    return {
        "uri": f"https://api.flow.microsoft.com{path}?{query}",
        "contentVersion": hashlib.md5(data).hexdigest(),
        "contentSize": len(data),
        "contentHash": {"algorithm": "md5", "value": hashlib.md5(data).hexdigest()},
    }


def action_properties(state: State, flow: Flow, run: Run, record: ActionRecord) -> dict[str, Any]:
    props: dict[str, Any] = {
        "startTime": record.start_time,
        "endTime": record.end_time,
        "status": record.status,
        "code": record.code,
        "correlation": {"actionTrackingId": record.name},
    }
    if record.error:
        props["error"] = record.error
    if record.repetitions:
        props["repetitionCount"] = len(record.repetitions)
        return props
    if record.repetition_index is not None:
        props["repetitionIndexes"] = [{"scopeName": record.scope_name, "itemIndex": record.repetition_index}]
    if record.inputs is not None and not record.secure_inputs:
        props["inputsLink"] = _content_link(state, flow, run, record, "ActionInputs", record.inputs)
    if record.outputs is not None and not record.secure_outputs:
        props["outputsLink"] = _content_link(state, flow, run, record, "ActionOutputs", record.outputs)
    return props


def action_json(state: State, flow: Flow, run: Run, record: ActionRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "id": f"{flow_id(flow)}/runs/{run.name}/actions/{record.name}",
        "type": f"{_FLOW_TYPE}/runs/actions",
        "properties": action_properties(state, flow, run, record),
    }


def run_json(state: State, flow: Flow, run: Run, expand_actions: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "startTime": run.start_time,
        "endTime": run.end_time,
        "status": run.status,
        "correlation": {"clientTrackingId": run.name},
        "trigger": {
            "name": run.trigger_name,
            "startTime": run.start_time,
            "endTime": run.start_time,
            "originHistoryName": run.name,
            "code": "OK",
            "status": "Succeeded",
        },
    }
    if run.error:
        properties["error"] = run.error
        properties["code"] = run.error["code"]
    if expand_actions:
        properties["actions"] = {n: action_properties(state, flow, run, r) for n, r in run.actions.items()}
    return {
        "name": run.name,
        "id": f"{flow_id(flow)}/runs/{run.name}",
        "type": f"{_FLOW_TYPE}/runs",
        "properties": properties,
    }


def register(emulator: Emulator) -> None:
    state = emulator.state
    router = emulator.router
    runner = FlowRunner(emulator)
    env_re = r"(?P<env>[^/]+)"
    flow_re = r"(?P<flow>[^/]+)"
    run_re = r"(?P<run>[^/]+)"
    action_re = r"(?P<action>[^/]+)"
    admin = rf"{_F}/scopes/admin/environments/{env_re}"
    user = rf"{_F}/environments/{env_re}"

    # -- lookups and checks ----------------------------------------------------------------------
    def _env(request: Request) -> str:
        name = request.params["env"]
        if name not in state.powerplatform.environments:
            raise HttpError(403, "EnvironmentAccessDenied", f"Access to the environment '{name}' is denied.")
        return name

    def _flow(request: Request) -> Flow:
        env = _env(request)
        flow = state.powerplatform.flows.get(request.params["flow"])
        if flow is None or flow.environment != env:
            raise HttpError(404, "FlowNotFound", f"Could not find flow '{request.params['flow']}'.")
        return flow

    def _is_admin_route(request: Request) -> bool:
        return "/scopes/admin/" in request.path.lower()

    def _authenticate(request: Request) -> dict[str, Any]:
        """The caller's claims; an app-only token only on `scopes/admin` routes, never for user details."""
        claims = authenticate(request, FLOW_AUDIENCES)
        if str(claims.get("idtyp") or "") == "app":
            if not _is_admin_route(request):
                raise HttpError(403, "ServicePrincipalNotSupported", SERVICE_PRINCIPAL_ADMIN_ONLY)
            if "/permissions" in request.path.lower() or "/modifypermissions" in request.path.lower():
                raise HttpError(403, "ServicePrincipalNotSupported", SERVICE_PRINCIPAL_NO_USER_DETAILS)
        return claims

    def _access(request: Request, claims: dict[str, Any], flow: Flow) -> tuple[str | None, bool]:
        """(the caller's role on the flow, whether its environment role lets it edit every flow)."""
        if _is_admin_route(request):
            require_admin(state, claims, flow.environment)
            return None, True
        principals = state.principals_of(caller_oid(claims))
        env = state.powerplatform.environments[flow.environment]
        return flow.role_of(principals), bool(env.roles_of(principals) & EDIT_ALL_FLOWS_ROLES)

    def _forbidden(claims: dict[str, Any], flow: Flow, what: str) -> HttpError:
        return HttpError(
            403,
            "Forbidden",
            f"The caller with object id '{caller_oid(claims)}' does not have "
            f"permission to {what} flow '{flow.name}'.",
        )

    def _readable(request: Request, claims: dict[str, Any]) -> Flow:
        flow = _flow(request)
        role, edit_all = _access(request, claims, flow)
        if role is None and not edit_all:
            raise _forbidden(claims, flow, "read")
        return flow

    def _editable(request: Request, claims: dict[str, Any]) -> Flow:
        flow = _flow(request)
        role, edit_all = _access(request, claims, flow)
        if role not in ("Owner", "CanEdit") and not edit_all:
            raise _forbidden(claims, flow, "edit")
        return flow

    def _run(flow: Flow, name: str) -> Run:
        for run in flow.runs:
            if run.name == name:
                return run
        raise HttpError(404, "WorkflowRunNotFound", f"The workflow run '{name}' could not be found.")

    def _action(run: Run, name: str) -> ActionRecord:
        record = run.actions.get(name)
        if record is None:
            raise HttpError(
                404,
                "WorkflowRunActionNotFound",
                f"The workflow run action '{name}' of run '{run.name}' could not be found.",
            )
        return record

    # -- environments and flow lists -------------------------------------------------------------
    def environments(request: Request) -> Response:
        api_version(request)
        claims = _authenticate(request)
        with state.lock:
            value = [
                {
                    "name": e.name,
                    "id": f"{_F}/environments/{e.name}",
                    "type": "Microsoft.ProcessSimple/environments",
                    "location": e.location,
                    "properties": {
                        "displayName": e.display_name,
                        "isDefault": e.is_default,
                        "provisioningState": "Succeeded",
                    },
                }
                for e in visible_environments(state, claims)
            ]
        return Response.json(200, {"value": value})

    def _listing(request: Request, flows: list[Flow]) -> Response:
        admin = _is_admin_route(request)
        return paged_response(
            request,
            flows,
            state.powerplatform.page_size_flows,
            lambda f: flow_json(state, f, full=False, admin=admin),
        )

    def admin_list(request: Request) -> Response:
        api_version(request)
        claims = _authenticate(request)
        with state.lock:
            env = _env(request)
            require_admin(state, claims, env)
            return _listing(request, state.powerplatform.flows_in(env))

    def user_list(request: Request) -> Response:
        api_version(request)
        claims = _authenticate(request)
        with state.lock:
            env = _env(request)
            principals = state.principals_of(caller_oid(claims))
            return _listing(request, [f for f in state.powerplatform.flows_in(env) if f.role_of(principals)])

    # -- one flow --------------------------------------------------------------------------------
    def get_flow(request: Request) -> Response:
        api_version(request)
        claims = _authenticate(request)
        with state.lock:
            flow = _readable(request, claims)
            role, _ = _access(request, claims, flow)
            admin = _is_admin_route(request)
            return Response.json(200, flow_json(state, flow, full=True, user_type=role, admin=admin))

    def _properties(request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the caller's claims, the body's `properties`) of a create or edit."""
        api_version(request)
        claims = _authenticate(request)
        body = request.json()
        props = body.get("properties") if isinstance(body, dict) else None
        if not isinstance(props, dict):
            raise HttpError(400, "InvalidRequestContent", "The request body must have 'properties'.")
        definition = props.get("definition")
        if definition is not None and not (
            isinstance(definition, dict) and isinstance(definition.get("actions", {}), dict)
        ):
            raise HttpError(
                400, "InvalidFlowDefinition", "properties.definition must be a workflow definition."
            )
        return claims, props

    def patch_flow(request: Request) -> Response:
        claims, props = _properties(request)
        new_definition = props.get("definition")
        with state.lock:
            flow = _editable(request, claims)
            definition = new_definition if new_definition is not None else flow.definition
            references = _references(props, flow.connection_references)
            found = dlp.flow_violations(state, flow.environment, definition, references)
            if found:
                raise dlp.violation_error(flow.name, found)
            if flow.state == "Started":  # saving a flow that is on activates what the edit brings in
                before = {
                    c.name for c in activation.referenced_connections(state, flow.connection_references)
                }
                added = [
                    c for c in activation.referenced_connections(state, references) if c.name not in before
                ]
                activation.authorize(state, flow, caller_oid(claims), added)
            flow.definition = definitions.copy_definition(definition)
            flow.connection_references = references
            if isinstance(props.get("displayName"), str):
                flow.display_name = props["displayName"]
            flow.last_modified_time = now_iso()
            role, _ = _access(request, claims, flow)
            return Response.json(200, flow_json(state, flow, full=True, user_type=role))

    def create_flow(request: Request) -> Response:
        """A new flow owned by the caller (Environment Maker or above); `properties.state` "Stopped" saves
        it off (as the portal's Save As does), else it is turned on, which needs the right to use every
        connection it references (activation.py)."""
        claims, props = _properties(request)
        definition = props.get("definition")
        if definition is None:
            raise HttpError(400, "InvalidFlowDefinition", "properties.definition is required.")
        wanted = str(props.get("state") or "Started")
        if wanted not in ("Started", "Stopped"):
            raise HttpError(400, "InvalidRequestContent", "properties.state must be Started or Stopped.")
        with state.lock:
            env_name = _env(request)
            creator = caller_oid(claims)
            env = state.powerplatform.environments[env_name]
            if not env.roles_of(state.principals_of(creator)) & MAKER_ROLES:
                raise HttpError(
                    403,
                    "Forbidden",
                    f"The caller with object id '{creator}' cannot create flows in environment '{env_name}'.",
                )
            references = _references(props, {})
            found = dlp.flow_violations(state, env_name, definition, references)
            if found:
                raise dlp.violation_error("new flow", found)
            now = now_iso()
            flow = Flow(
                name=new_id(),
                environment=env_name,
                display_name=str(props.get("displayName") or "Untitled"),
                creator=creator,
                definition=definitions.copy_definition(definition),
                connection_references=references,
                state="Stopped",
                created_time=now,
                last_modified_time=now,
            )
            flow.shares[creator] = Share(name=creator, principal_id=creator, role="Owner")
            if wanted == "Started":
                activation.activate(state, flow, creator)  # refused: nothing is created
            state.powerplatform.flows[flow.name] = flow
            return Response.json(201, flow_json(state, flow, full=True, user_type="Owner"))

    def delete_flow(request: Request) -> Response:
        api_version(request)
        claims = _authenticate(request)
        with state.lock:
            flow = _editable(request, claims)
            del state.powerplatform.flows[flow.name]
        return Response.empty(200)

    def start_flow(request: Request) -> Response:
        api_version(request)
        claims = _authenticate(request)
        with state.lock:
            flow = _editable(request, claims)
            if dlp.flow_violations(state, flow.environment, flow.definition, flow.connection_references):
                raise HttpError(
                    403, "DlpViolation", f"Flow '{flow.name}' cannot be activated due to admin API policies."
                )
            activation.activate(state, flow, caller_oid(claims))
        return Response.empty(200)

    def stop_flow(request: Request) -> Response:
        api_version(request)
        claims = _authenticate(request)
        with state.lock:
            flow = _editable(request, claims)
            if flow.state == "Started":
                flow.state = "Stopped"
        return Response.empty(200)

    # -- permissions -----------------------------------------------------------------------------
    def permissions(request: Request) -> Response:
        api_version(request)
        claims = _authenticate(request)
        with state.lock:
            flow = _readable(request, claims)
            return Response.json(200, {"value": [permission_json(flow, s) for s in flow.shares.values()]})

    def modify_permissions(request: Request) -> Response:
        api_version(request)
        claims = _authenticate(request)
        body = request.json()
        with state.lock:
            flow = _editable(request, claims)
            apply_modify_permissions(state, flow, body)
        return Response.empty(200)

    # -- runs ------------------------------------------------------------------------------------
    def trigger_run(request: Request) -> Response:
        api_version(request)
        claims = _authenticate(request)
        trigger_body = request.json() if request.body else {}
        with state.lock:
            flow = _readable(request, claims)
            trigger = request.params["trigger"]
            if trigger not in (flow.definition.get("triggers") or {}):
                raise HttpError(
                    404,
                    "WorkflowTriggerNotFound",
                    f"The workflow '{flow.name}' trigger '{trigger}' could not be found.",
                )
            if flow.state == "Started" and dlp.flow_violations(
                state, flow.environment, flow.definition, flow.connection_references
            ):
                flow.state, flow.suspension_reason = "Suspended", dlp.SUSPENSION_REASON
            if flow.state == "Suspended":
                raise HttpError(
                    403,
                    "DlpViolation",
                    f"This flow is suspended due to data loss prevention "
                    f"policies applied to this flow: '{flow.display_name}'.",
                )
            if flow.state != "Started":
                raise HttpError(409, "WorkflowNotEnabled", f"The workflow '{flow.name}' is not enabled.")
        run = runner.run(flow, trigger, trigger_body, caller_oid(claims))  # Key Vault calls: outside the lock
        with state.lock:
            flow.runs.append(run)
        location = f"https://api.flow.microsoft.com{flow_id(flow)}/runs/{run.name}?api-version=2016-11-01"
        return Response.empty(202, {"x-ms-workflow-run-id": run.name, "Location": location})

    def list_runs(request: Request) -> Response:
        api_version(request)
        claims = _authenticate(request)
        with state.lock:
            flow = _readable(request, claims)
            return paged_response(request, list(reversed(flow.runs)), 50, lambda r: run_json(state, flow, r))

    def get_run(request: Request) -> Response:
        api_version(request)
        claims = _authenticate(request)
        expand = "properties/actions" in request.query.get("$expand", "")
        with state.lock:
            flow = _readable(request, claims)
            return Response.json(200, run_json(state, flow, _run(flow, request.params["run"]), expand))

    def list_actions(request: Request) -> Response:
        api_version(request)
        claims = _authenticate(request)
        with state.lock:
            flow = _readable(request, claims)
            run = _run(flow, request.params["run"])
            return Response.json(
                200, {"value": [action_json(state, flow, run, r) for r in run.actions.values()]}
            )

    def get_action(request: Request) -> Response:
        api_version(request)
        claims = _authenticate(request)
        with state.lock:
            flow = _readable(request, claims)
            run = _run(flow, request.params["run"])
            return Response.json(200, action_json(state, flow, run, _action(run, request.params["action"])))

    def repetitions(request: Request) -> Response:
        api_version(request)
        claims = _authenticate(request)
        with state.lock:
            flow = _readable(request, claims)
            run = _run(flow, request.params["run"])
            record = _action(run, request.params["action"])
            base = f"{flow_id(flow)}/runs/{run.name}/actions/{record.name}/repetitions"
            value = [
                {
                    "name": f"{r.repetition_index:06d}",
                    "id": f"{base}/{r.repetition_index:06d}",
                    "type": f"{_FLOW_TYPE}/runs/actions/repetitions",
                    "properties": action_properties(state, flow, run, r),
                }
                for r in record.repetitions
            ]
        return Response.json(200, {"value": value})

    def contents(request: Request) -> Response:
        """The SAS-signed content behind inputsLink/outputsLink: no bearer token, the signature is the key."""
        if not hmac.compare_digest(request.query.get("sig", ""), _sign(state, request.path)):
            raise HttpError(403, "AuthorizationFailed", "The signature of the request is not valid.")
        with state.lock:
            flow = state.powerplatform.flows.get(request.params["flow"])
            if flow is None:
                raise HttpError(
                    404, "WorkflowNotFound", f"The workflow '{request.params['flow']}' could not be found."
                )
            run = _run(flow, request.params["run"])
            record = _action(run, request.params["action"])
            rep = request.params.get("rep")
            if rep is not None:
                record = next((r for r in record.repetitions if r.repetition_index == int(rep)), None)  # type: ignore[assignment]
                if record is None:
                    raise HttpError(
                        404, "WorkflowRunActionRepetitionNotFound", f"Repetition '{rep}' not found."
                    )
            kind = request.params["kind"]
            secured = record.secure_inputs if kind == "ActionInputs" else record.secure_outputs
            if secured:  # links are never issued for secured content; a forged one still gets nothing
                raise HttpError(403, "ContentSecured", "Content not shown due to security configuration.")
            return Response.json(200, record.inputs if kind == "ActionInputs" else record.outputs)

    add = router.add
    add(FLOW_HOST, "GET", rf"{_F}/environments", environments, "flow.environments.list")
    add(FLOW_HOST, "GET", rf"{admin}/v2/flows", admin_list, "flow.flows.adminListV2")
    add(FLOW_HOST, "GET", rf"{admin}/flows", admin_list, "flow.flows.adminList")
    add(FLOW_HOST, "GET", rf"{user}/flows", user_list, "flow.flows.list")
    for prefix, tag in ((admin, "admin"), (user, "")):
        one = rf"{prefix}/flows/{flow_re}"
        add(FLOW_HOST, "GET", one, get_flow, f"flow.flows.{tag}get")
        add(FLOW_HOST, "DELETE", one, delete_flow, f"flow.flows.{tag}delete")
        add(FLOW_HOST, "POST", rf"{one}/start", start_flow, f"flow.flows.{tag}start")
        add(FLOW_HOST, "POST", rf"{one}/stop", stop_flow, f"flow.flows.{tag}stop")
        add(FLOW_HOST, "GET", rf"{one}/permissions", permissions, f"flow.permissions.{tag}list")
        add(
            FLOW_HOST,
            "POST",
            rf"{one}/modifyPermissions",
            modify_permissions,
            f"flow.permissions.{tag}modify",
        )
    add(FLOW_HOST, "POST", rf"{user}/flows", create_flow, "flow.flows.create")
    one = rf"{user}/flows/{flow_re}"
    add(FLOW_HOST, "PATCH", one, patch_flow, "flow.flows.patch")  # makers edit; there is no admin-scope edit
    add(FLOW_HOST, "POST", rf"{one}/triggers/(?P<trigger>[^/]+)/run", trigger_run, "flow.triggers.run")
    add(FLOW_HOST, "GET", rf"{one}/runs", list_runs, "flow.runs.list")
    add(FLOW_HOST, "GET", rf"{one}/runs/{run_re}", get_run, "flow.runs.get")
    add(FLOW_HOST, "GET", rf"{one}/runs/{run_re}/actions", list_actions, "flow.runs.actions.list")
    add(FLOW_HOST, "GET", rf"{one}/runs/{run_re}/actions/{action_re}", get_action, "flow.runs.actions.get")
    add(
        FLOW_HOST,
        "GET",
        rf"{one}/runs/{run_re}/actions/{action_re}/repetitions",
        repetitions,
        "flow.runs.actions.repetitions",
    )
    content = (
        rf"/workflows/{flow_re}/runs/{run_re}/actions/{action_re}(?:/repetitions/(?P<rep>\d+))?"
        r"/contents/(?P<kind>ActionInputs|ActionOutputs)"
    )
    add(FLOW_HOST, "GET", content, contents, "flow.runs.contents")
