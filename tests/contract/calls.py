"""Every HTTP call the adapters make, in one place: how to recognise it on the wire, the public recording
it is held to (fixtures/, sources in fixtures/SOURCES.md) and what a test transport answers with.

`test_every_adapter_call.py` drives every public adapter method through `RoutedTransport`: a request that
matches no call here fails (a new call needs a row), each call is answered with its recording, and
docs/fidelity.md must have one row per call id, naming the recording and the tests, or saying "no public
recording", why, and the safest behaviour chosen.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest
from azure.core.rest._requests_basic import RestRequestsTransportResponse

from tests.contract.recorded import answer
from tests.contract.shapes import fixture


def _same(recorded: Any) -> Any:
    return recorded


def _example(status: str = "200") -> Callable[[Any], Any]:
    """The body of an azure-rest-api-specs example's response."""
    return lambda recorded: recorded["responses"][status]["body"]


def _nothing(recorded: Any) -> None:
    return None


def _environment_with_database(recorded: Any) -> Any:
    return next(
        i
        for i in recorded["value"]
        if (i["properties"].get("linkedEnvironmentMetadata") or {}).get("instanceApiUrl")
    )


def _user_page(recorded: Any) -> Any:
    return {"value": [recorded]}  # the recording is one row of a systemusers page


def team_page(recorded: Any) -> Any:
    """A `teams` row with `teamroles_association`, built from the recorded `RetrieveAadUserRoles` answer:
    the team's columns (`t_x002e_*`: teamid, azureactivedirectoryobjectid, name) and the role's
    (`roleid`, `name`) as Dataverse serialises them. The expansion itself is not recorded for teams;
    it is the one recorded for systemusers (`dataverse-systemuser.tf-provider.json`)."""
    (row,) = recorded["value"]
    return {
        "value": [
            {
                "teamid": row["t_x002e_teamid"],
                "azureactivedirectoryobjectid": row["t_x002e_azureactivedirectoryobjectid"],
                "name": row["t_x002e_name"],
                "teamroles_association": [{"roleid": row["roleid"], "name": row["name"]}],
            }
        ]
    }


CONNECTION_REFERENCE_ID = "a5b0e2c4-0000-4000-8000-00000000c0de"  # a made-up primary key (no recording)


def connection_reference_page(recorded: Any) -> Any:
    """A `connectionreferences` row for the logical name the recorded clientdata names (table columns
    from the Dataverse table reference, `connectionreferenceid` its primary key; no recorded response
    exists)."""
    data = json.loads(recorded["clientdata"])
    (reference,) = data["properties"]["connectionReferences"].values()
    return {
        "value": [
            {
                "connectionreferenceid": CONNECTION_REFERENCE_ID,
                "connectionreferencelogicalname": reference["connection"]["connectionReferenceLogicalName"],
                "connectionid": reference["connection"]["name"],
                "connectorid": f"/providers/Microsoft.PowerApps/apis/{reference['api']['name']}",
            }
        ]
    }


def _workflow_row(recorded: Any) -> Any:
    """The recorded workflows row with the recorded clientdata (the docs list it without the column)."""
    (row,) = recorded["value"]
    return row | fixture("dataverse-workflow-clientdata.docs.json")


def _role_definitions(recorded: Any) -> Any:
    return {"value": [recorded["responses"]["200"]["body"]]}


@dataclass(frozen=True)
class Call:
    """One HTTP call: `id` is its row key in docs/fidelity.md."""

    id: str
    method: str
    url: str  # a regular expression searched in the request URL
    fixture: (
        str  # the public recording (or, when `recorded` is False, the closest one the answer is built from)
    )
    answer: Callable[[Any], Any] = _same  # the body a test transport serves, from the fixture
    status: int = 200
    recorded: bool = True  # False: no public recording of this call (docs/fidelity.md says why)
    body_keys: frozenset[str] | None = None  # tells two calls on one URL apart by what they send

    def matches(self, method: str, url: str, sent: Any) -> bool:
        if method != self.method or not re.search(self.url, url):
            return False
        return self.body_keys is None or (isinstance(sent, dict) and set(sent) == self.body_keys)

    def body(self) -> Any:
        return self.answer(fixture(self.fixture))


_DV = r"\.dynamics\.com/api/data/v9\.2/"
_APPS = (
    r"^https://api\.powerapps\.com/providers/Microsoft\.PowerApps/scopes/admin/environments/[^/]+/apis/[^/]+"
)
_BAP = r"^https://api\.bap\.microsoft\.com/providers/Microsoft\.BusinessAppPlatform/scopes/admin/environments"
_DLP = r"^https://api\.bap\.microsoft\.com/providers/PowerPlatform\.Governance/v2/policies"
_ARM = r"^https://management\.azure\.com/subscriptions/[^/]+"
_VAULT = rf"{_ARM}/resourceGroups/[^/]+/providers/Microsoft\.KeyVault/vaults/[^/?]+"
_AUTHZ = r"/providers/Microsoft\.Authorization/"
_STORAGE = rf"{_ARM}/resourceGroups/[^/]+/providers/Microsoft\.Storage/storageAccounts/[^/]+"
_KV = r"^https://[^/]+\.vault\.azure\.net(:443)?/secrets"
_GRAPH = r"^https://graph\.microsoft\.com/v1\.0/"

CALLS: tuple[Call, ...] = (
    # Power Platform: BAP, Power Apps admin, DLP (adapters/powerplatform.py)
    Call(
        "BAP GET environments", "GET", rf"{_BAP}\?", "bap-environments-list-admin.tf-provider.response.json"
    ),
    Call(
        "BAP GET environments/{env}",
        "GET",
        rf"{_BAP}/[^/?]+\?",
        "bap-environments-list-admin.tf-provider.response.json",
        _environment_with_database,
    ),
    Call(
        "Power Apps GET connections",
        "GET",
        rf"{_APPS}/connections\?",
        "connections-list.tf-provider.response.json",
    ),
    Call(
        "Power Apps GET connections/{c}/permissions",
        "GET",
        rf"{_APPS}/connections/[^/]+/permissions\?",
        "connection-permissions-list.tf-provider.response.json",
    ),
    Call(
        "Power Apps POST connections/{c}/modifyPermissions",
        "POST",
        rf"{_APPS}/connections/[^/]+/modifyPermissions\?",
        "connection-modifyPermissions-delete.request.tf-provider.json",
        _nothing,  # the provider's test answers 200 with an empty body
    ),
    Call("DLP GET policies", "GET", rf"{_DLP}$", "dlp-list.tf-provider.json"),
    Call("DLP GET policies/{name}", "GET", rf"{_DLP}/[^/?]+$", "dlp-get.tf-provider.json"),
    Call("DLP POST policies", "POST", rf"{_DLP}$", "dlp-post.tf-provider.json", status=201),
    Call("DLP PATCH policies/{name}", "PATCH", rf"{_DLP}/[^/?]+$", "dlp-patch.tf-provider.json"),
    # Dataverse Web API of each environment (adapters/powerplatform.py, adapters/dataverse.py)
    Call("Dataverse GET workflows", "GET", rf"{_DV}workflows\?", "dataverse-workflows-list.docs.json"),
    Call(
        "Dataverse GET workflows({id})",
        "GET",
        rf"{_DV}workflows\([^)]+\)(\?|$)",
        "dataverse-workflows-list.docs.json",
        _workflow_row,
    ),
    Call(
        "Dataverse PATCH workflows({id}) statecode",
        "PATCH",
        rf"{_DV}workflows\([^)]+\)$",
        "dataverse-workflow-statecode.request.docs.json",
        _nothing,
        status=204,
        body_keys=frozenset({"statecode", "statuscode"}),
    ),
    Call(
        "Dataverse PATCH workflows({id}) clientdata",
        "PATCH",
        rf"{_DV}workflows\([^)]+\)$",
        "dataverse-workflow-clientdata.docs.json",
        _nothing,
        status=204,
        body_keys=frozenset({"clientdata"}),
    ),
    Call(
        "Dataverse GET systemusers",
        "GET",
        rf"{_DV}systemusers\?",
        "dataverse-systemuser.tf-provider.json",
        _user_page,
    ),
    Call(
        "Dataverse GET teams",
        "GET",
        rf"{_DV}teams\?",
        "dataverse-RetrieveAadUserRoles.docs.json",
        team_page,
        recorded=False,
    ),
    Call(
        "Dataverse GET connectionreferences",
        "GET",
        rf"{_DV}connectionreferences\?",
        "dataverse-workflow-clientdata.docs.json",
        connection_reference_page,
        recorded=False,
    ),
    Call(
        "Dataverse PATCH connectionreferences({id})",
        "PATCH",
        rf"{_DV}connectionreferences\([^)]+\)$",
        "dataverse-workflow-statecode.request.docs.json",  # the closest: a documented Dataverse PATCH
        _nothing,
        status=204,
        recorded=False,
        body_keys=frozenset({"connectionid"}),
    ),
    Call(
        "Dataverse GET RetrieveSharedPrincipalsAndAccess",
        "GET",
        rf"{_DV}RetrieveSharedPrincipalsAndAccess\(Target=@tid\)\?",
        "dataverse-RetrieveSharedPrincipalsAndAccess.docs.json",
    ),
    Call(
        "Dataverse POST RevokeAccess",
        "POST",
        rf"{_DV}RevokeAccess$",
        "dataverse-RevokeAccess.request.docs.json",
        _nothing,
        status=204,
    ),
    Call(
        "Dataverse DELETE {principal}/{roles association}({role})/$ref",
        "DELETE",
        rf"{_DV}(systemusers|teams)\([^)]+\)/(systemuserroles|teamroles)_association\([^)]+\)/\$ref$",
        "dataverse-disassociate.docs.json",
        _nothing,
        status=204,
    ),
    # ARM: Key Vault management, authorization, storage keys (SDK clients)
    Call(
        "ARM GET vaults",
        "GET",
        r"/providers/Microsoft\.KeyVault/vaults\?",
        "keyvault-listVaultByResourceGroup.json",
        _example(),
    ),
    Call("ARM GET vaults/{v}", "GET", rf"{_VAULT}\?", "keyvault-getVault.json", _example()),
    Call(
        "ARM PUT vaults/{v}/accessPolicies/{operation}",
        "PUT",
        rf"{_VAULT}/accessPolicies/(add|remove)\?",
        "keyvault-updateAccessPoliciesAdd.json",
        _example(),
    ),
    Call("ARM PATCH vaults/{v}", "PATCH", rf"{_VAULT}\?", "keyvault-updateVault.json", _example()),
    Call(
        "ARM GET roleAssignments",
        "GET",
        rf"{_AUTHZ}roleAssignments\?",
        "authorization-RoleAssignments_ListForScope.json",
        _example(),
    ),
    Call(
        "ARM GET roleDefinitions",
        "GET",
        rf"{_AUTHZ}roleDefinitions\?",
        "authorization-GetRoleDefinitionByName.json",
        _role_definitions,
    ),
    Call(
        "ARM PUT roleAssignments/{name}",
        "PUT",
        rf"{_AUTHZ}roleAssignments/[^/?]+\?",
        "authorization-RoleAssignments_CreateForSubscription.json",
        _example("201"),
        status=201,
    ),
    Call(
        "ARM DELETE roleAssignments/{name}",
        "DELETE",
        rf"{_AUTHZ}roleAssignments/[^/?]+\?",
        "authorization-RoleAssignments_Delete.json",
        _example(),
    ),
    Call(
        "ARM POST storageAccounts/{a}/listKeys",
        "POST",
        rf"{_STORAGE}/listKeys\?",
        "storage-StorageAccountListKeys.json",
        _example(),
    ),
    Call(
        "ARM POST storageAccounts/{a}/regenerateKey",
        "POST",
        rf"{_STORAGE}/regenerateKey\?",
        "storage-StorageAccountRegenerateKey.json",
        _example(),
    ),
    # Key Vault data plane (SecretClient's pipeline)
    Call("Key Vault GET secrets", "GET", rf"{_KV}\?", "keyvault-data-GetSecrets.json", _example()),
    Call(
        "Key Vault GET secrets/{name}/versions",
        "GET",
        rf"{_KV}/[^/?]+/versions\?",
        "keyvault-data-GetSecretVersions.json",
        _example(),
    ),
    Call(
        "Key Vault PUT secrets/{name}", "PUT", rf"{_KV}/[^/?]+\?", "keyvault-data-SetSecret.json", _example()
    ),
    Call(
        "Key Vault PATCH secrets/{name}/{version}",
        "PATCH",
        rf"{_KV}/[^/?]+/[^/?]+\?",
        "keyvault-data-UpdateSecret.json",
        _example(),
    ),
    Call(
        "Key Vault GET secrets/{name}/{version}",
        "GET",
        rf"{_KV}/[^/?]+/(?!versions\?)[^/?]+\?",
        "keyvault-data-GetSecret.json",
        _example(),
    ),
    # Microsoft Graph (adapters/graph_api.py, adapters/graph_applications.py)
    Call(
        "Graph POST directoryObjects/getByIds",
        "POST",
        rf"{_GRAPH}directoryObjects/getByIds$",
        "graph-getByIds.docs.json",
    ),
    Call(
        "Graph GET servicePrincipals",
        "GET",
        rf"{_GRAPH}servicePrincipals\?",
        "graph-servicePrincipals-list.docs.json",
    ),
    Call(
        "Graph GET groups/{id}/transitiveMembers",
        "GET",
        rf"{_GRAPH}groups/[^/]+/transitiveMembers\?",
        "graph-transitiveMembers.docs.json",
    ),
    Call(
        "Graph GET applications/{id}",
        "GET",
        rf"{_GRAPH}applications/[^/?]+\?",
        "graph-application-get.docs.json",
    ),
    Call(
        "Graph POST applications/{id}/addPassword",
        "POST",
        rf"{_GRAPH}applications/[^/]+/addPassword$",
        "graph-addPassword.docs.json",
    ),
    Call(
        "Graph POST applications/{id}/removePassword",
        "POST",
        rf"{_GRAPH}applications/[^/]+/removePassword$",
        "graph-removePassword.request.docs.json",
        _nothing,
        status=204,
    ),
)

NEXT_LINKS = ("nextLink", "@odata.nextLink")


class RoutedTransport(RequestsTransport):
    """Answers each request with the recording of the one call it matches. A list answers its recorded
    page (with the recorded next link) the first time and the same page without the link after, so
    paging is followed once and ends. A request matching no call, or more than one, is kept in
    `unmatched` and answered 400 (not retried), which fails the adapter method."""

    def __init__(self) -> None:
        super().__init__()
        self.overrides: dict[str, Any] = {}  # call id -> a body served instead of the recording
        self.requests: list[tuple[str, str]] = []  # (method, URL), in order
        self.served: list[str] = []  # call ids, in order
        self.sent: list[Any] = []  # each request's JSON body (None without one)
        self.unmatched: list[str] = []

    def send(self, request: HttpRequest, **kwargs: Any) -> RestRequestsTransportResponse:  # type: ignore[override]
        body = json.loads(request.body) if request.body else None
        self.requests.append((request.method, request.url))
        self.sent.append(body)
        found = [c for c in CALLS if c.matches(request.method, request.url, body)]
        if len(found) != 1:
            self.unmatched.append(f"{request.method} {request.url} -> {[c.id for c in found]}")
            return answer(
                request, 400, {"error": {"code": "NoRecordedCall", "message": "no call in calls.py"}}
            )
        call = found[0]
        recorded = self.overrides[call.id] if call.id in self.overrides else call.body()
        if call.id in self.served and isinstance(recorded, dict):
            recorded = {k: v for k, v in recorded.items() if k not in NEXT_LINKS}
        self.served.append(call.id)
        return answer(request, call.status, recorded, stream=bool(kwargs.get("stream")))
