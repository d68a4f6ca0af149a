"""Microsoft Graph v1.0 (directory part): `POST /directoryObjects/getByIds` (at most 1,000 ids;
only existing objects come back, each with `@odata.type`), users, servicePrincipals and
applications (get, list, create, delete), `addPassword` (the `secretText` is returned once) and
`removePassword`. A password added here works at the token endpoint for the application's appId.
`GET /groups/{id}/transitiveMembers`: every member, nested groups flattened (the nested groups are
listed too), `$top` (default 100, at most 999) a page, `$select`, paged with `@odata.nextLink`
(`$skiptoken`). Memberships come from the one directory the Power Platform half authorizes
group shares with.

Deleting an identity leaves its access-policy entries in vaults, as in Azure: that is how
orphaned principals arise. Deleting an application deletes its service principal too.
Authorization: any token for Graph from this tenant may call these (the emulator does not model
Graph application permissions)."""

from __future__ import annotations

import secrets
import uuid
from typing import Any
from urllib.parse import urlencode

from emulator.azure.common import GRAPH, AzureContext
from emulator.azure.state import Application, PasswordCredential, Principal, new_id
from emulator.wire import HttpError, Request, Response

V1 = r"/v1\.0"
MAX_IDS = 1000
MEMBERS_PAGE = 100  # Graph's default page size for directory-object collections
MEMBERS_PAGE_MAX = 999


def _graph_error(status: int, code: str, message: str) -> HttpError:
    return HttpError(
        status,
        code,
        message,
        inner={"date": "", "request-id": str(uuid.uuid4()), "client-request-id": str(uuid.uuid4())},
    )


def _not_found(object_id: str) -> HttpError:
    return _graph_error(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property objects "
        "are not present.",
    )


def _body(request: Request) -> dict[str, Any]:
    try:
        payload = request.json()
    except HttpError:
        raise _graph_error(400, "BadRequest", "Unable to read JSON request payload.") from None
    if not isinstance(payload, dict):
        raise _graph_error(400, "BadRequest", "Unable to read JSON request payload.")
    return payload


def _collection(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"@odata.context": f"https://graph.microsoft.com/v1.0/$metadata#{kind}", "value": items}


def register(ctx: AzureContext) -> None:
    route = ctx.route

    def principal(object_id: str, kind: str) -> Principal:
        found = ctx.state.principals.get(object_id.lower())
        if found is None or found.kind != kind:
            raise _not_found(object_id)
        return found

    def application(object_id: str) -> Application:
        found = ctx.state.applications.get(object_id.lower())
        if found is None:
            raise _not_found(object_id)
        return found

    @route(GRAPH, "POST", V1 + r"/directoryObjects/getByIds")
    def get_by_ids(request: Request) -> Response:
        body = _body(request)
        ids = body.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise _graph_error(400, "Request_BadRequest", "The 'ids' property must be an array of strings.")
        if len(ids) > MAX_IDS:
            raise _graph_error(
                400,
                "Request_BadRequest",
                f"Too many ids: {len(ids)}. At most {MAX_IDS} ids can be requested at once.",
            )
        types = {str(t).lower() for t in body.get("types") or []}
        found: list[dict[str, Any]] = []
        for object_id in ids:
            key = object_id.lower()
            if key in ctx.state.principals:
                item = ctx.state.principals[key].to_graph()
            elif key in ctx.state.applications:
                item = ctx.state.applications[key].to_graph()
            else:
                continue
            if types and item["@odata.type"].rsplit(".", 1)[-1].lower() not in types:
                continue
            found.append(item)
        return Response.json(200, _collection("directoryObjects", found))

    # -- groups ---------------------------------------------------------------------------------
    @route(GRAPH, "GET", V1 + r"/groups/(?P<id>[^/]+)")
    def get_group(request: Request) -> Response:
        return Response.json(200, principal(request.params["id"], "Group").to_graph())

    @route(GRAPH, "GET", V1 + r"/groups/(?P<id>[^/]+)/transitiveMembers")
    def transitive_members(request: Request) -> Response:
        group = principal(request.params["id"], "Group")
        try:
            top = int(request.query.get("$top", str(MEMBERS_PAGE)))
            start = int(request.query.get("$skiptoken", "0"))
        except ValueError:
            raise _graph_error(400, "Request_BadRequest", "Invalid value for $top or $skiptoken.") from None
        if not 1 <= top <= MEMBERS_PAGE_MAX or start < 0:
            raise _graph_error(
                400, "Request_BadRequest", f"Invalid page size specified: '{top}'. Must be between 1 and 999."
            )
        selected = [f.strip() for f in request.query.get("$select", "").split(",") if f.strip()]
        items: list[dict[str, Any]] = []
        for member_id in ctx.state.transitive_members(group.id):
            member = ctx.state.principals.get(member_id)
            if member is None:
                continue
            item = member.to_graph()
            if selected:  # `@odata.type` and `id` always come back, as from Graph
                item = {k: v for k, v in item.items() if k in {"@odata.type", "id", *selected}}
            items.append(item)
        body = _collection("directoryObjects", items[start : start + top])
        if start + top < len(items):
            query = {k: v for k, v in request.query.items() if k != "$skiptoken"}
            query["$skiptoken"] = str(start + top)
            body["@odata.nextLink"] = f"https://graph.microsoft.com{request.path}?{urlencode(query)}"
        return Response.json(200, body)

    # -- users ----------------------------------------------------------------------------------
    @route(GRAPH, "GET", V1 + r"/users")
    def list_users(request: Request) -> Response:
        return Response.json(
            200,
            _collection("users", [p.to_graph() for p in ctx.state.principals.values() if p.kind == "User"]),
        )

    @route(GRAPH, "GET", V1 + r"/users/(?P<id>[^/]+)")
    def get_user(request: Request) -> Response:
        wanted = request.params["id"].lower()
        for p in ctx.state.principals.values():
            if p.kind == "User" and wanted in {p.id.lower(), (p.user_principal_name or "").lower()}:
                return Response.json(200, p.to_graph())
        raise _not_found(request.params["id"])

    @route(GRAPH, "POST", V1 + r"/users")
    def create_user(request: Request) -> Response:
        body = _body(request)
        upn = body.get("userPrincipalName")
        if not isinstance(upn, str) or "@" not in upn:
            raise _graph_error(
                400,
                "Request_BadRequest",
                "Invalid value specified for property 'userPrincipalName' of resource 'User'.",
            )
        if any((p.user_principal_name or "").lower() == upn.lower() for p in ctx.state.principals.values()):
            raise _graph_error(
                400,
                "Request_BadRequest",
                "Another object with the same value for property userPrincipalName already exists.",
            )
        user = ctx.state.add_principal(
            new_id(), "User", str(body.get("displayName") or upn), user_principal_name=upn
        )
        return Response.json(201, user.to_graph())

    @route(GRAPH, "DELETE", V1 + r"/users/(?P<id>[^/]+)")
    def delete_user(request: Request) -> Response:
        user = principal(request.params["id"], "User")
        del ctx.state.principals[user.id.lower()]
        return Response.empty(204)

    # -- service principals ---------------------------------------------------------------------
    @route(GRAPH, "GET", V1 + r"/servicePrincipals")
    def list_service_principals(request: Request) -> Response:
        return Response.json(
            200,
            _collection(
                "servicePrincipals",
                [p.to_graph() for p in ctx.state.principals.values() if p.kind == "ServicePrincipal"],
            ),
        )

    @route(GRAPH, "GET", V1 + r"/servicePrincipals/(?P<id>[^/]+)")
    def get_service_principal(request: Request) -> Response:
        return Response.json(200, principal(request.params["id"], "ServicePrincipal").to_graph())

    @route(GRAPH, "POST", V1 + r"/servicePrincipals")
    def create_service_principal(request: Request) -> Response:
        app_id = str(_body(request).get("appId", ""))
        app = ctx.state.application_by_app_id(app_id)
        if app is None:
            raise _graph_error(
                400,
                "Request_BadRequest",
                f"The appId '{app_id}' of the service principal does not reference a valid "
                "application object.",
            )
        if ctx.state.service_principal_by_app_id(app_id) is not None:
            raise _graph_error(
                409,
                "Request_MultipleObjectsWithSameKeyValue",
                "The service principal cannot be created, updated, or restored because the service "
                "principal name is already in use.",
            )
        sp = ctx.state.add_principal(new_id(), "ServicePrincipal", app.display_name, app_id=app.app_id)
        return Response.json(201, sp.to_graph())

    @route(GRAPH, "DELETE", V1 + r"/servicePrincipals/(?P<id>[^/]+)")
    def delete_service_principal(request: Request) -> Response:
        sp = principal(request.params["id"], "ServicePrincipal")
        del ctx.state.principals[sp.id.lower()]
        return Response.empty(204)

    # -- applications ---------------------------------------------------------------------------
    @route(GRAPH, "GET", V1 + r"/applications")
    def list_applications(request: Request) -> Response:
        return Response.json(
            200, _collection("applications", [a.to_graph() for a in ctx.state.applications.values()])
        )

    @route(GRAPH, "GET", V1 + r"/applications/(?P<id>[^/]+)")
    def get_application(request: Request) -> Response:
        return Response.json(200, application(request.params["id"]).to_graph())

    @route(GRAPH, "POST", V1 + r"/applications")
    def create_application(request: Request) -> Response:
        body = _body(request)
        name = body.get("displayName")
        if not isinstance(name, str) or not name:
            raise _graph_error(
                400, "Request_BadRequest", "Property 'displayName' is required for resource 'Application'."
            )
        app = ctx.state.add_application(new_id(), name, with_service_principal=False)
        return Response.json(201, app.to_graph())

    @route(GRAPH, "DELETE", V1 + r"/applications/(?P<id>[^/]+)")
    def delete_application(request: Request) -> Response:
        app = application(request.params["id"])
        del ctx.state.applications[app.id.lower()]
        sp = ctx.state.service_principal_by_app_id(app.app_id)
        if sp is not None:
            del ctx.state.principals[sp.id.lower()]
        return Response.empty(204)

    @route(GRAPH, "POST", V1 + r"/applications/(?P<id>[^/]+)/addPassword")
    def add_password(request: Request) -> Response:
        app = application(request.params["id"])
        body = _body(request) if request.body else {}
        spec = body.get("passwordCredential") or {}
        credential = PasswordCredential(
            new_id(), secrets.token_urlsafe(30), spec.get("displayName") if isinstance(spec, dict) else None
        )
        app.passwords.append(credential)
        payload = credential.to_graph(with_secret=True)
        payload["@odata.context"] = (
            "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.passwordCredential"
        )
        return Response.json(200, payload)

    @route(GRAPH, "POST", V1 + r"/applications/(?P<id>[^/]+)/removePassword")
    def remove_password(request: Request) -> Response:
        app = application(request.params["id"])
        key_id = str(_body(request).get("keyId", "")).lower()
        before = len(app.passwords)
        app.passwords = [p for p in app.passwords if p.key_id.lower() != key_id]
        if len(app.passwords) == before:
            raise _graph_error(
                400, "Request_BadRequest", f"No password credential found with keyId {key_id}."
            )
        return Response.empty(204)
