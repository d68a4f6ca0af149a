"""Dataverse Web API of each environment (`{org}.crm4.dynamics.com` and `{org}.api.crm4.dynamics.com`,
the `linkedEnvironmentMetadata.instanceUrl` / `instanceApiUrl` BAP lists), over the same state as the
Flow API: cloud flows are rows of the `workflows` table, their co-owners and run-only users are
Dataverse shares, and security roles belong to users and (Entra group) teams.

    GET   /api/data/v9.2/workflows?$filter=category eq 5&$select=...    Prefer: odata.maxpagesize=N
    GET   /api/data/v9.2/workflows({id})[?$select=...]
    PATCH /api/data/v9.2/workflows({id})        {"statecode": 0, "statuscode": 1} turns a flow off
    GET   /api/data/v9.2/systemusers?$expand=systemuserroles_association(...)
    GET   /api/data/v9.2/teams?$expand=teamroles_association(...)
    GET   /api/data/v9.2/connectionreferences[?$filter=connectionreferencelogicalname eq '<name>']
    PATCH /api/data/v9.2/connectionreferences({id})   {"connectionid": ...}  rebinds every flow naming it
    GET   /api/data/v9.2/RetrieveSharedPrincipalsAndAccess(Target=@tid)?@tid={'@odata.id':'workflows({id})'}
    POST  /api/data/v9.2/RevokeAccess           {"Target": {workflowid}, "Revokee": {ownerid}}  204
    DELETE /api/data/v9.2/systemusers({id})/systemuserroles_association({roleid})/$ref          204
    DELETE /api/data/v9.2/teams({id})/teamroles_association({roleid})/$ref                      204

Sources: "Work with cloud flows using code" (MicrosoftDocs/power-automate-docs,
`articles/manage-flows-with-code.md`): the workflows query and its recorded response, `clientdata`
(`connectionReferences` entries `{runtimeSource, connection{name}, api{name}}` and `definition`),
statecode 0 Draft / 1 Activated / 2 Suspended, PATCH answering 204; the same article's older version
for the `RetrieveSharedPrincipalsAndAccess` request/response and the `RevokeAccess` body; the
Terraform provider's recorded `systemusers` row (`internal/services/authorization/tests/resource/user/
Validate_Create_And_Update/get_systemuser_...json`) for users with `systemuserroles_association`;
"Associate and disassociate table rows using the Web API" (Power Apps developer docs: DELETE of a
collection-valued navigation property's `.../<navigation>(<id>)/$ref`, 204 No Content) and "Sample:
Remove a role for a user" (the `systemuserroles_association` relationship) for taking a role away.

Who may call: an application user of the environment (`applicationUsers` in the scenario; the
emulator's admin app stands for the app the one-time grant made an application user with System
Administrator in every environment), a Power Platform administrator, or a user holding System
Administrator / System Customizer there; others get 403. A registered management app that is not an
application user is refused, as in a real tenant.
Dataverse ids: `systemuserid` / `teamid` are derived from the environment and the Entra object id
(`azureactivedirectoryobjectid`). **Emulator deviations:** `$skiptoken` is an offset, not Dataverse's
paging cookie (clients follow `@odata.nextLink` as given); `$filter` understands `category eq N`,
`statecode eq N` and `connectionreferencelogicalname eq '<name>'` only. Connection reference rows are
derived from the flows naming them (a row no flow names is not held).
"""

from __future__ import annotations

import json
import re
import uuid
import zlib
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from emulator.powerplatform import activation, dlp
from emulator.powerplatform.bap import dataverse_org
from emulator.powerplatform.common import authenticate, caller_oid
from emulator.powerplatform.state import (
    EDIT_ALL_FLOWS_ROLES,
    SYSTEM_ADMINISTRATOR,
    Environment,
    Flow,
    now_iso,
)
from emulator.wire import HttpError, Request, Response

if TYPE_CHECKING:
    from emulator.core import Emulator
    from emulator.state import State

DATAVERSE_HOST = r"(?P<org>[a-z0-9]+)\.(?:api\.)?crm4\.dynamics\.com"
_API = "/api/data/v9.2"
_NS = uuid.UUID("5b0b8f1e-3c1a-4f5e-9d52-7f0d1f6c2a10")
MAX_PAGE = 5000
# statecode/statuscode of a workflow row by the Flow API's state.
_STATES = {"Stopped": (0, 1), "Started": (1, 2), "Suspended": (2, 3)}
_EDIT_MASK = "ReadAccess, WriteAccess, AppendAccess, AppendToAccess, DeleteAccess, ShareAccess, AssignAccess"


def dataverse_id(environment: str, object_id: str) -> str:
    """The systemuserid / teamid of an Entra principal in one environment (stable, distinct per env)."""
    return str(uuid.uuid5(_NS, f"{environment}/{object_id.lower()}"))


def _not_found(kind: str, key: str) -> HttpError:
    return HttpError(404, "0x80040217", f"{kind} With Id = {key} Does Not Exist")


class _Directory:
    """One environment's users and teams, as Dataverse would hold them after directory sync: everyone
    holding a role there, every flow owner and share holder, and the app's application user."""

    def __init__(self, state: State, env: Environment) -> None:
        self.state, self.env = state, env
        pp = state.powerplatform
        kinds: dict[str, str] = {}
        for assignment in env.roles:
            kinds.setdefault(assignment.principal_id, assignment.principal_type)
        for principal, principal_type in env.synced_principals.items():
            kinds.setdefault(principal, principal_type)
        for flow in pp.flows_in(env.name):
            kinds.setdefault(flow.creator, "User")
            for share in flow.shares.values():
                kinds.setdefault(share.principal_id, share.principal_type)
        self.app_ids = {state.azure.admin_object_id: state.azure.admin_client_id}
        for app_id in env.application_users:
            principal = state.azure.service_principal_by_app_id(app_id)
            if principal is not None:
                self.app_ids[principal.id] = app_id
        for oid in self.app_ids:
            kinds.setdefault(oid, "ServicePrincipal")
        self.kinds = {oid: pp.directory.get(oid, {}).get("type", kind) for oid, kind in kinds.items()}
        self.by_dataverse_id = {dataverse_id(env.name, oid): oid for oid in self.kinds}

    def roles(self, object_id: str) -> list[str]:
        held = {r.role for r in self.env.roles if r.principal_id == object_id}
        if object_id in self.app_ids:
            held.add(SYSTEM_ADMINISTRATOR)  # the one-time grant: application user with System Administrator
        return sorted(held)

    def role_id(self, name: str) -> str:
        return str(uuid.uuid5(_NS, f"{self.env.name}/role/{name}"))

    def _role_json(self, name: str) -> dict[str, Any]:
        return {
            "@odata.etag": 'W/"1"',
            "roleid": self.role_id(name),
            "name": name,
        }

    def users(self) -> list[dict[str, Any]]:
        rows = []
        for oid, kind in sorted(self.kinds.items()):
            if kind == "Group":
                continue
            info = self.state.powerplatform.directory.get(oid, {})
            app_id = self.app_ids.get(oid)
            rows.append(
                {
                    "@odata.etag": 'W/"1"',
                    "systemuserid": dataverse_id(self.env.name, oid),
                    "azureactivedirectoryobjectid": oid,
                    "applicationid": app_id or (info.get("appId") if kind == "ServicePrincipal" else None),
                    "fullname": info.get("displayName", oid),
                    "isdisabled": False,
                    "systemuserroles_association": [self._role_json(r) for r in self.roles(oid)],
                }
            )
        return rows

    def teams(self) -> list[dict[str, Any]]:
        return [
            {
                "@odata.etag": 'W/"1"',
                "teamid": dataverse_id(self.env.name, oid),
                "azureactivedirectoryobjectid": oid,
                "teamtype": 2,  # Entra security group team
                "name": self.state.powerplatform.directory.get(oid, {}).get("displayName", oid),
                "teamroles_association": [self._role_json(r) for r in self.roles(oid)],
            }
            for oid, kind in sorted(self.kinds.items())
            if kind == "Group"
        ]

    def principal_json(self, object_id: str) -> dict[str, Any]:
        entity = "team" if self.kinds.get(object_id) == "Group" else "systemuser"
        return {
            "@odata.type": f"#Microsoft.Dynamics.CRM.{entity}",
            "ownerid": dataverse_id(self.env.name, object_id),
        }


def _connection(reference: dict[str, Any]) -> dict[str, Any]:
    """A solution flow's reference names its connection reference only (live clientdata carries just
    `connection.connectionReferenceLogicalName`); other flows name the connection."""
    logical_name = reference.get("connectionReferenceLogicalName")
    return (
        {"connectionReferenceLogicalName": logical_name}
        if logical_name
        else {"name": reference.get("connectionName")}
    )


def _client_data(flow: Flow) -> str:
    references = {
        key: {
            "runtimeSource": "embedded",
            "connection": _connection(reference),
            "api": {"name": str(reference.get("id", "")).rsplit("/", 1)[-1]},
        }
        for key, reference in flow.connection_references.items()
    }
    return json.dumps(
        {
            "properties": {"connectionReferences": references, "definition": flow.definition},
            "schemaVersion": "1.0.0.0",
        }
    )


def _update_client_data(state: State, flow: Flow, raw: Any) -> None:
    """`clientdata` is a string-encoded JSON of the definition and connectionReferences ("Work with
    cloud flows using code"); a flow that is on and now breaks a DLP policy is suspended."""
    try:
        data = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        data = None
    properties = data.get("properties") if isinstance(data, dict) else None
    definition = properties.get("definition") if isinstance(properties, dict) else None
    if not isinstance(properties, dict) or not isinstance(definition, dict):
        raise HttpError(400, "0x80040203", "clientdata must be a JSON string with properties.definition.")
    references = dict(flow.connection_references)
    for key, reference in (properties.get("connectionReferences") or {}).items():
        if not isinstance(reference, dict):
            continue
        connection = reference.get("connection") if isinstance(reference.get("connection"), dict) else {}
        api = reference.get("api") if isinstance(reference.get("api"), dict) else {}
        entry = dict(references.get(key) or {})
        if connection.get("name"):
            entry["connectionName"] = connection["name"]
        if api.get("name"):
            entry["id"] = f"/providers/Microsoft.PowerApps/apis/{api['name']}"
        references[key] = entry
    flow.definition, flow.connection_references = definition, references
    if flow.state == "Started" and dlp.flow_violations(state, flow.environment, definition, references):
        flow.state = "Suspended"  # saved, but a flow that breaks a DLP policy does not run
    flow.last_modified_time = now_iso()


def workflow_json(flow: Flow) -> dict[str, Any]:
    statecode, statuscode = _STATES.get(flow.state, (0, 1))
    owner = dataverse_id(flow.environment, flow.creator)
    return {
        "@odata.etag": f'W/"{zlib.crc32(f"{flow.name}/{flow.last_modified_time}/{flow.state}".encode())}"',
        "category": 5,
        "type": 1,
        "workflowid": flow.name,
        "workflowidunique": str(uuid.uuid5(_NS, f"unique/{flow.name}")),
        "name": flow.display_name,
        "description": None,
        "ismanaged": False,
        "clientdata": _client_data(flow),
        "statecode": statecode,
        "statuscode": statuscode,
        "_ownerid_value": owner,
        "_createdby_value": owner,
        "createdon": flow.created_time,
        "modifiedon": flow.last_modified_time,
    }


def _selected(row: dict[str, Any], request: Request, key: str) -> dict[str, Any]:
    select = request.query.get("$select")
    if not select:
        return row
    relations = re.split(r",(?![^(]*\))", request.query.get("$expand", ""))  # commas outside (...)
    expanded = {e.split("(", 1)[0].strip() for e in relations if e}
    wanted = {c.strip() for c in select.split(",")} | {key} | expanded
    return {k: v for k, v in row.items() if k in wanted or k.startswith("@odata.")}


def _page(request: Request, rows: list[dict[str, Any]], collection: str) -> Response:
    preference = re.search(r"odata\.maxpagesize=(\d+)", request.headers.get("prefer", ""))
    size = max(1, min(int(preference.group(1)) if preference else MAX_PAGE, MAX_PAGE))
    try:
        start = max(0, int(request.query.get("$skiptoken", "0")))
    except ValueError:
        raise HttpError(400, "0x80060888", "Invalid $skiptoken.") from None
    base = f"https://{request.host}{_API}"
    body: dict[str, Any] = {
        "@odata.context": f"{base}/$metadata#{collection}",
        "value": rows[start : start + size],
    }
    if start + size < len(rows):
        query = {k: v for k, v in request.query.items() if k != "$skiptoken"}
        query["$skiptoken"] = str(start + size)
        body["@odata.nextLink"] = f"https://{request.host}{request.path}?{urlencode(query)}"
    return Response.json(200, body)


def register(emulator: Emulator) -> None:
    state = emulator.state
    add = emulator.router.add

    def _environment(request: Request) -> Environment:
        org = request.params["org"].lower()
        for env in state.powerplatform.environments.values():
            if dataverse_org(env) == org:
                return env
        raise HttpError(404, "0x80072560", f"The organization '{org}' does not exist.")

    def _caller(request: Request) -> tuple[Environment, _Directory]:
        """Authenticated caller with a security role in the environment (application user or admin)."""
        org = request.params["org"].lower()
        audiences = frozenset({f"https://{org}.crm4.dynamics.com", f"https://{org}.api.crm4.dynamics.com"})
        claims = authenticate(request, audiences)
        env = _environment(request)
        app_id = str(claims.get("appid") or claims.get("azp") or "").lower()
        application_user = app_id == state.azure.admin_client_id.lower() or app_id in env.application_users
        admin_user = caller_oid(claims) in state.powerplatform.admins
        roles = env.roles_of(state.principals_of(caller_oid(claims)))
        if not (application_user or admin_user or roles & EDIT_ALL_FLOWS_ROLES):
            raise HttpError(
                403,
                "0x80040220",
                f"Principal user (Id={caller_oid(claims)}) is missing prvReadWorkflow privilege.",
            )
        return env, _Directory(state, env)

    def _flow(env: Environment, key: str) -> Flow:
        flow = state.powerplatform.flows.get(key)
        if flow is None or flow.environment != env.name:
            raise _not_found("workflow", key)
        return flow

    def list_workflows(request: Request) -> Response:
        with state.lock:
            env, _ = _caller(request)
            text = request.query.get("$filter", "")
            category = re.search(r"category\s+eq\s+(\d+)", text)
            statecode = re.search(r"statecode\s+eq\s+(\d+)", text)
            rows = [
                workflow_json(f) for f in sorted(state.powerplatform.flows_in(env.name), key=lambda f: f.name)
            ]
            if category and int(category.group(1)) != 5:
                rows = []
            if statecode:
                rows = [r for r in rows if r["statecode"] == int(statecode.group(1))]
            return _page(request, [_selected(r, request, "workflowid") for r in rows], "workflows")

    def get_workflow(request: Request) -> Response:
        with state.lock:
            env, _ = _caller(request)
            row = workflow_json(_flow(env, request.params["id"]))
            body = {"@odata.context": f"https://{request.host}{_API}/$metadata#workflows/$entity", **row}
            return Response.json(200, _selected(body, request, "workflowid"))

    def patch_workflow(request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise HttpError(400, "0x80040203", "The request body must be a JSON object.")
        with state.lock:
            env, _ = _caller(request)
            flow = _flow(env, request.params["id"])
            if "statecode" in body:
                if body["statecode"] == 1:
                    if dlp.flow_violations(
                        state, flow.environment, flow.definition, flow.connection_references
                    ):
                        raise HttpError(400, "0x80060467", "The flow violates a data loss prevention policy.")
                    try:
                        activation.activate(state, flow, caller_oid(request.caller or {}))
                    except HttpError as refused:  # Dataverse wraps the Flow client's answer
                        raise HttpError(
                            refused.status,
                            activation.DATAVERSE_ACTIVATION_FAILED,
                            'Flow client error returned with status code "Forbidden" and details '
                            f'"{{"error":{{"code":"{refused.code}","message":"{refused.message}"}}}}".',
                        ) from None
                elif body["statecode"] == 0:
                    flow.state = "Stopped"
                else:
                    raise HttpError(400, "0x80040203", "statecode must be 0 (Draft) or 1 (Activated).")
            if isinstance(body.get("name"), str):
                flow.display_name = body["name"]
            if "clientdata" in body:
                _update_client_data(state, flow, body["clientdata"])
        return Response.empty(204)

    def list_users(request: Request) -> Response:
        with state.lock:
            _, directory = _caller(request)
            rows = [_selected(r, request, "systemuserid") for r in directory.users()]
            return _page(request, rows, "systemusers")

    def list_teams(request: Request) -> Response:
        with state.lock:
            _, directory = _caller(request)
            return _page(request, [_selected(r, request, "teamid") for r in directory.teams()], "teams")

    def _connection_reference_rows(env: Environment) -> dict[str, dict[str, Any]]:
        """Solution connection references of the environment's flows, by logical name (lower case): a
        row binds every flow naming it to one connection."""
        found: dict[str, dict[str, Any]] = {}
        for flow in state.powerplatform.flows_in(env.name):
            for reference in flow.connection_references.values():
                name = reference.get("connectionReferenceLogicalName")
                if name and str(name).lower() not in found:
                    found[str(name).lower()] = {
                        "@odata.etag": 'W/"1"',
                        "connectionreferenceid": str(uuid.uuid5(_NS, f"{env.name}/reference/{name}")),
                        "connectionreferencelogicalname": name,
                        "connectionreferencedisplayname": name,
                        "connectionid": reference.get("connectionName"),
                        "connectorid": reference.get("id"),
                        "statecode": 0,
                    }
        return found

    def list_connection_references(request: Request) -> Response:
        """`$filter=connectionreferencelogicalname eq '<name>'` picks one row (Dataverse compares strings
        case-insensitively; a doubled quote is one quote)."""
        with state.lock:
            env, _ = _caller(request)
            found = _connection_reference_rows(env)
            wanted = re.search(
                r"connectionreferencelogicalname\s+eq\s+'((?:[^']|'')*)'", request.query.get("$filter", "")
            )
            if wanted:
                name = wanted.group(1).replace("''", "'").lower()
                found = {k: v for k, v in found.items() if k == name}
            rows = [_selected(found[k], request, "connectionreferenceid") for k in sorted(found)]
            return _page(request, rows, "connectionreferences")

    def patch_connection_reference(request: Request) -> Response:
        """Update of `connectionid` (204): every flow of the environment naming the row now runs on that
        connection. No check that the connection exists or that the caller may use it (no public
        source; docs/fidelity.md)."""
        body = request.json()
        if not isinstance(body, dict) or not isinstance(body.get("connectionid"), str):
            raise HttpError(400, "0x80040203", "The request body must be a JSON object with connectionid.")
        with state.lock:
            env, _ = _caller(request)
            key = request.params["id"].lower()
            row = next(
                (r for r in _connection_reference_rows(env).values() if r["connectionreferenceid"] == key),
                None,
            )
            if row is None:
                raise _not_found("connectionreference", request.params["id"])
            name = str(row["connectionreferencelogicalname"]).lower()
            for flow in state.powerplatform.flows_in(env.name):
                for reference in flow.connection_references.values():
                    if str(reference.get("connectionReferenceLogicalName") or "").lower() == name:
                        reference["connectionName"] = body["connectionid"]
        return Response.empty(204)

    def shared_principals(request: Request) -> Response:
        target = re.search(r"workflows\(([^)]+)\)", request.query.get("@tid", ""))
        if target is None:
            raise HttpError(400, "0x80040203", "Target must be {'@odata.id':'workflows(<id>)'}.")
        with state.lock:
            env, directory = _caller(request)
            flow = _flow(env, target.group(1))
            accesses = [
                {
                    "AccessMask": "ReadAccess" if share.role == "CanView" else _EDIT_MASK,
                    "Principal": directory.principal_json(share.principal_id),
                }
                for share in flow.shares.values()
                if share.principal_id != flow.creator  # the owner holds the record, not a share
            ]
        context = f"https://{request.host}{_API}/$metadata#Microsoft.Dynamics.CRM.RetrieveSharedPrincipalsAndAccessResponse"
        return Response.json(200, {"@odata.context": context, "PrincipalAccesses": accesses})

    def revoke_access(request: Request) -> Response:
        body = request.json()
        target = body.get("Target") if isinstance(body, dict) else None
        revokee = body.get("Revokee") if isinstance(body, dict) else None
        if not isinstance(target, dict) or not isinstance(revokee, dict) or not target.get("workflowid"):
            raise HttpError(400, "0x80040203", "RevokeAccess needs Target.workflowid and Revokee.ownerid.")
        with state.lock:
            env, directory = _caller(request)
            flow = _flow(env, str(target["workflowid"]))
            principal = directory.by_dataverse_id.get(str(revokee.get("ownerid") or "").lower())
            if principal is None:
                raise _not_found("principal", str(revokee.get("ownerid")))
            if principal != flow.creator:  # revoking the owner's own access changes nothing
                flow.shares.pop(principal, None)
        return Response.empty(204)

    def disassociate_role(request: Request) -> Response:
        """A role leaves a user or team: they hold it no longer (Web API disassociate, 204)."""
        with state.lock:
            env, directory = _caller(request)
            principal = directory.by_dataverse_id.get(request.params["id"].lower())
            if principal is None:
                raise _not_found(request.params["entity"][:-1], request.params["id"])
            held = [r for r in env.roles if r.principal_id == principal]
            role = next(
                (r for r in held if directory.role_id(r.role) == request.params["role"].lower()), None
            )
            if role is None:  # Dataverse answers 404 when the association does not exist
                raise _not_found("role association", request.params["role"])
            env.roles.remove(role)
            env.synced_principals.setdefault(principal, role.principal_type)  # the row stays
        return Response.empty(204)

    one = rf"{_API}/workflows\((?P<id>[^)]+)\)"
    add(DATAVERSE_HOST, "GET", rf"{_API}/workflows", list_workflows, "dataverse.workflows.list")
    add(DATAVERSE_HOST, "GET", one, get_workflow, "dataverse.workflows.get")
    add(DATAVERSE_HOST, "PATCH", one, patch_workflow, "dataverse.workflows.update")
    add(DATAVERSE_HOST, "GET", rf"{_API}/systemusers", list_users, "dataverse.systemusers.list")
    add(DATAVERSE_HOST, "GET", rf"{_API}/teams", list_teams, "dataverse.teams.list")
    add(
        DATAVERSE_HOST,
        "GET",
        rf"{_API}/connectionreferences",
        list_connection_references,
        "dataverse.connectionreferences.list",
    )
    add(
        DATAVERSE_HOST,
        "PATCH",
        rf"{_API}/connectionreferences\((?P<id>[^)]+)\)",
        patch_connection_reference,
        "dataverse.connectionreferences.update",
    )
    add(
        DATAVERSE_HOST,
        "GET",
        rf"{_API}/RetrieveSharedPrincipalsAndAccess\(Target=@tid\)",
        shared_principals,
        "dataverse.RetrieveSharedPrincipalsAndAccess",
    )
    add(DATAVERSE_HOST, "POST", rf"{_API}/RevokeAccess", revoke_access, "dataverse.RevokeAccess")
    add(
        DATAVERSE_HOST,
        "DELETE",
        rf"{_API}/(?P<entity>systemusers|teams)\((?P<id>[^)]+)\)/"
        r"(?:systemuserroles|teamroles)_association\((?P<role>[^)]+)\)/\$ref",
        disassociate_role,
        "dataverse.roles.disassociate",
    )
