"""Microsoft Graph: `directoryObjects/getByIds` (which principals in access policies still exist),
service principals by appId, and `groups/{id}/transitiveMembers` (who a group share reaches).

There is no Graph SDK in our dependencies, so this is an `azure.core` pipeline with a bearer token.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from typing import Any
from urllib.parse import quote

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.rest import HttpRequest

from remediations.adapters.errors import failure_from_response
from remediations.adapters.rest import bearer_pipeline
from remediations.adapters.retry import with_retry
from remediations.core.model import Identity, IdentityKind

GRAPH = "https://graph.microsoft.com"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
BATCH = 1000  # getByIds accepts up to 1,000 ids per call
MEMBERS_PAGE = 999  # transitiveMembers: default page 100, at most 999 (fewer round trips)
_KINDS: dict[str, IdentityKind] = {
    "#microsoft.graph.user": "user",
    "#microsoft.graph.group": "group",
    "#microsoft.graph.servicePrincipal": "servicePrincipal",
}


def identity_from_graph(item: dict[str, Any]) -> Identity:
    kind = _KINDS.get(str(item.get("@odata.type", "")), "unknown")
    if kind == "servicePrincipal" and item.get("servicePrincipalType") == "ManagedIdentity":
        kind = "managedIdentity"
    return Identity(object_id=str(item["id"]), kind=kind, display_name=item.get("displayName"), exists=True)


class Directory:
    def __init__(self, credential: TokenCredential, **client_kwargs: Any) -> None:
        self._client: PipelineClient[HttpRequest, Any] = bearer_pipeline(
            GRAPH, credential, GRAPH_SCOPE, **client_kwargs
        )

    def _get_by_ids(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        request = HttpRequest(
            "POST",
            f"{GRAPH}/v1.0/directoryObjects/getByIds",
            json={"ids": list(ids), "types": ["user", "group", "servicePrincipal"]},
        )
        response = self._client.send_request(request)
        if response.status_code != 200:
            raise failure_from_response("directoryObjects/getByIds", response)
        values: list[dict[str, Any]] = json.loads(response.text()).get("value", [])
        return values

    def resolve(self, object_ids: Sequence[str]) -> list[Identity]:
        """One Identity per id: exists=True if found, False if Graph says it is gone."""
        unique = list(dict.fromkeys(i.lower() for i in object_ids))
        found: dict[str, Identity] = {}
        for start in range(0, len(unique), BATCH):
            batch = unique[start : start + BATCH]
            for item in with_retry("directoryObjects/getByIds", partial(self._get_by_ids, batch)):
                identity = identity_from_graph(item)
                found[identity.object_id.lower()] = identity
        return [found.get(i, Identity(object_id=i, exists=False)) for i in unique]

    def _service_principals(self, app_id: str) -> list[dict[str, Any]]:
        request = HttpRequest(
            "GET",
            f"{GRAPH}/v1.0/servicePrincipals?$filter=appId eq '{app_id}'&$select=id,appId,displayName",
        )
        response = self._client.send_request(request)
        if response.status_code != 200:
            raise failure_from_response("servicePrincipals by appId", response)
        values: list[dict[str, Any]] = json.loads(response.text()).get("value", [])
        return values

    def object_ids_for_app_ids(self, app_ids: Sequence[str]) -> dict[str, str]:
        """Application (client) id -> service principal object id; ids Graph does not know are left out.

        Service-principal connections show only the client id; Key Vault access policies name object ids.
        The appId match is re-checked here, so a server that ignores `$filter` still maps correctly.
        """
        found: dict[str, str] = {}
        for app_id in dict.fromkeys(a.lower() for a in app_ids):
            items = with_retry("servicePrincipals by appId", partial(self._service_principals, app_id))
            for item in items:
                if str(item.get("appId", "")).lower() == app_id and item.get("id"):
                    found[app_id] = str(item["id"]).lower()
        return found

    def _page(self, url: str) -> tuple[list[dict[str, Any]], str | None]:
        response = self._client.send_request(HttpRequest("GET", url))
        if response.status_code != 200:
            raise failure_from_response("groups/transitiveMembers", response)
        body = json.loads(response.text())
        next_link = body.get("@odata.nextLink")
        return list(body.get("value", [])), str(next_link) if next_link else None

    def group_members(self, group_id: str) -> list[str]:
        """Object ids (lower case) of every member of the group, nested groups flattened (Graph lists
        the nested groups too). Needs GroupMember.Read.All. Each page is retried on its own (a page
        read is idempotent); `@odata.nextLink` is followed as given."""
        url: str | None = (
            f"{GRAPH}/v1.0/groups/{quote(group_id, safe='')}/transitiveMembers?$select=id&$top={MEMBERS_PAGE}"
        )
        members: list[str] = []
        while url is not None:
            items, url = with_retry("groups/transitiveMembers", partial(self._page, url))
            members += [str(i["id"]).lower() for i in items if i.get("id")]
        return list(dict.fromkeys(members))

    def close(self) -> None:
        self._client.close()
