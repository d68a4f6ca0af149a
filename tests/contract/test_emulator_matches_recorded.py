"""(b) The emulator answers the same requests with the same shape as the recorded public responses: the
paths the adapters read exist with the same JSON types, the keys the real service leaves out stay out,
and lists page with the same next-link key. A drift on either side fails here (sources:
fixtures/SOURCES.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from emulator import Emulator, tokens
from emulator.powerplatform.state import RoleAssignment
from emulator.scenario import load_scenario, load_scenario_file
from remediations.adapters.dataverse import OFF
from tests.contract.calls import connection_reference_page, team_page
from tests.contract.shapes import absent, fixture, same_shape, values_at
from tests.emulator.helpers import Raw, admin_token
from tests.emulator.test_powerplatform_attack import SEED

BAP = "https://api.bap.microsoft.com/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments"
APPS = "https://api.powerapps.com/providers/Microsoft.PowerApps/scopes/admin/environments"
DLP = "https://api.bap.microsoft.com/providers/PowerPlatform.Governance/v2/policies"
POWERAPPS_SCOPE = "https://service.powerapps.com//.default"


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(load_scenario_file(SEED)) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def seed() -> dict[str, Any]:
    return json.loads(SEED.read_text())  # type: ignore[no-any-return]


def _app(emu: Emulator, scope: str) -> Raw:
    """The app's own identity (client credentials from the emulated Entra): an app-only token."""
    return Raw(emu, admin_token(emu, scope))


def _dataverse(emu: Emulator, environment: str) -> tuple[Raw, str]:
    item = _app(emu, POWERAPPS_SCOPE).call("GET", f"{BAP}/{environment}?api-version=2020-10-01").json()
    meta = item["properties"]["linkedEnvironmentMetadata"]
    return _app(emu, f"{meta['instanceUrl'].rstrip('/')}/.default"), meta["instanceApiUrl"].rstrip("/")


def _ok(problems: list[str]) -> None:
    assert not problems, "\n".join(problems)


def test_bap_environment_list(emu: Emulator) -> None:
    page = _app(emu, POWERAPPS_SCOPE).call("GET", f"{BAP}?api-version=2020-10-01").json()
    recorded = fixture("bap-environments-list-admin.tf-provider.response.json")
    paths = ["value[]/name", "value[]/id", "value[]/properties/displayName"]
    paths += [f"value[]/properties/linkedEnvironmentMetadata/{k}" for k in ("instanceUrl", "instanceApiUrl")]
    _ok(same_shape(recorded, page, paths))
    _ok(same_shape(fixture("bap-environments-list-admin.response.json"), page, paths[:3]))


def test_dataverse_workflows_page(emu: Emulator, seed: dict[str, Any]) -> None:
    environment = seed["powerPlatform"]["environments"][0]["name"]
    client, base = _dataverse(emu, environment)
    columns = (
        "category,_createdby_value,createdon,description,ismanaged,modifiedon,name,_ownerid_value,"
        "statecode,type,workflowid,workflowidunique"
    )
    response = client.call(
        "GET",
        f"{base}/api/data/v9.2/workflows?$filter=category eq 5&$select={columns},clientdata",
        headers={"Prefer": "odata.maxpagesize=1"},
    )
    page = response.json()
    recorded = fixture("dataverse-workflows-list.docs.json")
    paths = [f"value[]/{c}" for c in columns.split(",")] + ["value[]/@odata.etag", "@odata.context"]
    _ok(same_shape(recorded, page, paths))
    assert "@odata.nextLink" in page  # Dataverse pages with @odata.nextLink
    clientdata = fixture("dataverse-workflow-clientdata.docs.json")
    recorded_data, emulated_data = (json.loads(d["clientdata"]) for d in (clientdata, page["value"][0]))
    data_paths = [
        "properties/connectionReferences/*/runtimeSource",
        "properties/connectionReferences/*/connection/name",
        "properties/connectionReferences/*/api/name",
        "properties/definition/actions",
        "properties/definition/triggers",
        "schemaVersion",
    ]
    _ok(same_shape(recorded_data, emulated_data, data_paths))


def test_dataverse_users_with_security_roles(emu: Emulator, seed: dict[str, Any]) -> None:
    environment = seed["powerPlatform"]["environments"][0]["name"]
    client, base = _dataverse(emu, environment)
    page = client.call(
        "GET",
        f"{base}/api/data/v9.2/systemusers?$select=systemuserid,azureactivedirectoryobjectid,applicationid,"
        "fullname,isdisabled&$expand=systemuserroles_association($select=roleid,name)",
    ).json()
    recorded = {"value": [fixture("dataverse-systemuser.tf-provider.json")]}  # one recorded row, as a page
    columns = ["systemuserid", "azureactivedirectoryobjectid", "applicationid", "fullname", "isdisabled"]
    paths = [f"value[]/{c}" for c in columns]
    paths += ["value[]/systemuserroles_association[]/roleid", "value[]/systemuserroles_association[]/name"]
    _ok(same_shape(recorded, page, paths))
    held = {r["name"] for u in page["value"] for r in u["systemuserroles_association"]}
    assert "System Customizer" in held  # the seed's customizer, now seen through Dataverse


def test_dataverse_shares_and_revoke(emu: Emulator, seed: dict[str, Any]) -> None:
    flow = next(f for f in seed["powerPlatform"]["flows"] if f.get("shares"))
    client, base = _dataverse(emu, flow["environment"])
    target = "{'@odata.id':'workflows(" + flow["name"] + ")'}"
    access = client.call(
        "GET", f"{base}/api/data/v9.2/RetrieveSharedPrincipalsAndAccess(Target=@tid)", params={"@tid": target}
    ).json()
    recorded = fixture("dataverse-RetrieveSharedPrincipalsAndAccess.docs.json")
    paths = [
        "@odata.context",
        "PrincipalAccesses[]/AccessMask",
        "PrincipalAccesses[]/Principal/@odata.type",
        "PrincipalAccesses[]/Principal/ownerid",
    ]
    _ok(same_shape(recorded, access, paths))
    # The recorded RevokeAccess body, with this flow and one of its principals, is accepted (204).
    body = fixture("dataverse-RevokeAccess.request.docs.json")
    body["Target"]["workflowid"] = flow["name"]
    body["Revokee"] = {
        "@odata.type": access["PrincipalAccesses"][0]["Principal"]["@odata.type"].lstrip("#"),
        "ownerid": access["PrincipalAccesses"][0]["Principal"]["ownerid"],
    }
    assert client.call("POST", f"{base}/api/data/v9.2/RevokeAccess", json=body).status_code == 204
    after = client.call(
        "GET", f"{base}/api/data/v9.2/RetrieveSharedPrincipalsAndAccess(Target=@tid)", params={"@tid": target}
    ).json()
    assert body["Revokee"]["ownerid"] not in {a["Principal"]["ownerid"] for a in after["PrincipalAccesses"]}


def test_connections_and_their_permissions(emu: Emulator, seed: dict[str, Any]) -> None:
    environment = seed["powerPlatform"]["environments"][0]["name"]
    apps = _app(emu, POWERAPPS_SCOPE)
    page = apps.call(
        "GET", f"{APPS}/{environment}/apis/shared_keyvault/connections?api-version=2016-11-01"
    ).json()
    recorded = fixture("connections-list.tf-provider.response.json")
    paths = ["value[]/name", "value[]/id", "value[]/properties/apiId", "value[]/properties/displayName"]
    paths += ["value[]/properties/createdBy/id", "value[]/properties/connectionParametersSet/name"]
    paths += ["value[]/properties/connectionParametersSet/values", "value[]/properties/statuses[]/status"]
    _ok(same_shape(recorded, page, paths))
    # A parameter-set connection has no connectionParameters (the recorded firstParty connection).
    parameter_set = [
        c for c in page["value"] if c["properties"]["connectionParametersSet"]["name"] != "oauth"
    ]
    for item in parameter_set:
        if item["properties"]["connectionParametersSet"]["name"].lower() not in {"", "oauth", "oauthdefault"}:
            _ok(absent(item, ["properties/connectionParameters"]))
    shared = next(c for c in page["value"] if c["name"] == seed["powerPlatform"]["connections"][0]["name"])
    permissions = apps.call(
        "GET",
        f"{APPS}/{environment}/apis/shared_keyvault/connections/{shared['name']}/permissions?api-version=2017-06-01",
    ).json()
    recorded_permissions = fixture("connection-permissions-list.tf-provider.response.json")
    permission_paths = ["value[]/name", "value[]/id", "value[]/properties/roleName"]
    permission_paths += [f"value[]/properties/principal/{k}" for k in ("id", "type", "tenantId")]
    _ok(same_shape(recorded_permissions, permissions, permission_paths))


def test_dlp_list_has_definitions_only_and_get_has_rules(emu: Emulator, seed: dict[str, Any]) -> None:
    bap = _app(emu, POWERAPPS_SCOPE)
    policy = fixture("dlp-get.tf-provider.json")
    policy["policyDefinition"]["environments"] = []
    policy["policyDefinition"]["environmentType"] = "AllEnvironments"
    created = bap.call("POST", DLP, json=policy)
    assert created.status_code == 201, created.text
    name = created.json()["policyDefinition"]["name"]
    try:
        listed = bap.call("GET", DLP).json()
        definition_paths = [
            "value[]/policyDefinition/" + k for k in ("name", "displayName", "environmentType")
        ]
        definition_paths += [
            "value[]/policyDefinition/environments",
            "value[]/policyDefinition/defaultConnectorsClassification",
        ]
        _ok(same_shape(fixture("dlp-list.tf-provider.json"), listed, definition_paths))
        _ok(
            absent(
                listed,
                ["value[]/policyDefinition/connectorGroups", "value[]/connectorConfigurationsDefinition"],
            )
        )
        whole = bap.call("GET", f"{DLP}/{name}").json()
        rule_paths = [
            "policyDefinition/connectorGroups[]/classification",
            "policyDefinition/connectorGroups[]/connectors[]/id",
            "connectorConfigurationsDefinition/connectorActionConfigurations[]/connectorId",
            "connectorConfigurationsDefinition/connectorActionConfigurations[]/defaultConnectorActionRuleBehavior",
            "connectorConfigurationsDefinition/connectorActionConfigurations[]/actionRules[]/actionId",
            "connectorConfigurationsDefinition/connectorActionConfigurations[]/actionRules[]/behavior",
        ]
        _ok(same_shape(policy, whole, rule_paths))
    finally:
        assert bap.call("DELETE", DLP.replace("/v2/", "/v1/") + f"/{name}").status_code == 200


def test_keyvault_access_policy_put_echoes_the_request(emu: Emulator, seed: dict[str, Any]) -> None:
    arm = _app(emu, "https://management.azure.com/.default")
    vault = seed["vaults"][0]
    url = (
        f"https://management.azure.com/subscriptions/{seed['subscriptions'][0]['subscriptionId']}/resourceGroups/"
        f"{vault['resourceGroup']}/providers/Microsoft.KeyVault/vaults/{vault['name']}"
    )
    example = fixture("keyvault-updateAccessPoliciesAdd.json")
    entry = {
        "tenantId": emu.state.azure.tenant_id,
        "objectId": "0e0e0e0e-0000-4000-8000-00000000c0de",
        "permissions": {"secrets": ["get"]},
    }
    response = arm.call(
        "PUT",
        f"{url}/accessPolicies/add?api-version=2023-07-01",
        json={"properties": {"accessPolicies": [entry]}},
    )
    assert response.status_code == 200, response.text
    recorded = example["responses"]["200"]["body"]
    assert sorted(response.json()) == sorted(recorded)  # type, id, properties: no name, no location
    assert response.json()["properties"]["accessPolicies"] == [entry]  # the request, echoed
    assert response.json()["id"].endswith("/accessPolicies/") and recorded["id"].endswith("/accessPolicies/")
    listed = arm.call("GET", f"{url.rsplit('/', 1)[0]}?api-version=2023-07-01").json()
    recorded_list = _body("keyvault-listVaultByResourceGroup.json")
    paths = ["value[]/id", "value[]/name", "value[]/properties/vaultUri", "value[]/properties/tenantId"]
    paths += [
        f"value[]/properties/accessPolicies[]/{k}" for k in ("objectId", "tenantId", "permissions/secrets")
    ]
    _ok(same_shape(recorded_list, listed, paths))
    assert "0e0e0e0e-0000-4000-8000-00000000c0de" in values_at(
        listed, "value[]/properties/accessPolicies[]/objectId"
    )


def test_keyvault_secret_list_pages(emu: Emulator, seed: dict[str, Any]) -> None:
    vault = seed["vaults"][0]
    reader = vault["accessPolicies"][0]["objectId"]  # holds get, list
    token = tokens.issue({"oid": reader, "tid": emu.state.azure.tenant_id, "aud": "https://vault.azure.net"})
    page = Raw(emu, token).call(
        "GET", f"https://{vault['name']}.vault.azure.net/secrets?api-version=7.4&maxresults=1"
    )
    assert page.status_code == 200, page.text
    recorded = _body("keyvault-data-GetSecrets.json")
    paths = [
        "value[]/id",
        "value[]/attributes/enabled",
        "value[]/attributes/created",
        "value[]/attributes/updated",
    ]
    _ok(same_shape(recorded, page.json(), [*paths, "nextLink"]))
    _ok(absent(page.json(), ["value[]/value"]))  # a list never carries values


def test_graph_get_by_ids(emu: Emulator, seed: dict[str, Any]) -> None:
    graph = _app(emu, "https://graph.microsoft.com/.default")
    ids = [u["id"] for u in seed["users"][:2]]
    found = graph.call(
        "POST",
        "https://graph.microsoft.com/v1.0/directoryObjects/getByIds",
        json={"ids": ids, "types": ["user"]},
    ).json()
    paths = ["@odata.context", "value[]/@odata.type", "value[]/id", "value[]/displayName"]
    _ok(same_shape(fixture("graph-getByIds.docs.json"), found, paths))


def test_role_assignments_and_definitions(emu: Emulator, seed: dict[str, Any]) -> None:
    arm = _app(emu, "https://management.azure.com/.default")
    base = f"https://management.azure.com/subscriptions/{seed['subscriptions'][0]['subscriptionId']}/providers/Microsoft.Authorization"
    assignments = arm.call("GET", f"{base}/roleAssignments?api-version=2022-04-01").json()
    recorded = _body("authorization-RoleAssignments_ListForScope.json")
    paths = ["value[]/id", "value[]/name", "value[]/type"]
    paths += [
        f"value[]/properties/{k}" for k in ("roleDefinitionId", "principalId", "principalType", "scope")
    ]
    _ok(same_shape(recorded, assignments, paths))
    definitions = arm.call("GET", f"{base}/roleDefinitions?api-version=2022-04-01").json()
    definition = _body("authorization-GetRoleDefinitionByName.json")
    definition_paths = [
        "value[]/id",
        "value[]/name",
        "value[]/properties/roleName",
        "value[]/properties/type",
    ]
    definition_paths += [
        f"value[]/properties/permissions[]/{k}"
        for k in ("actions", "notActions", "dataActions", "notDataActions")
    ]
    _ok(same_shape({"value": [definition]}, definitions, definition_paths))


def test_keyvault_secret_versions_set_and_update(emu: Emulator, seed: dict[str, Any]) -> None:
    vault = seed["vaults"][0]
    writer = "0e0e0e0e-0000-4000-8000-00000000beef"
    arm = _app(emu, "https://management.azure.com/.default")
    url = (
        f"https://management.azure.com/subscriptions/{seed['subscriptions'][0]['subscriptionId']}/resourceGroups/"
        f"{vault['resourceGroup']}/providers/Microsoft.KeyVault/vaults/{vault['name']}"
    )
    entry = {
        "tenantId": emu.state.azure.tenant_id,
        "objectId": writer,
        "permissions": {"secrets": ["get", "list", "set"]},
    }
    added = arm.call(
        "PUT",
        f"{url}/accessPolicies/add?api-version=2023-07-01",
        json={"properties": {"accessPolicies": [entry]}},
    )
    assert added.status_code == 200
    token = tokens.issue({"oid": writer, "tid": emu.state.azure.tenant_id, "aud": "https://vault.azure.net"})
    kv, base = Raw(emu, token), f"https://{vault['name']}.vault.azure.net/secrets/contract-probe"
    created = kv.call("PUT", f"{base}?api-version=7.4", json={"value": "probe-value-1"}).json()
    kv.call("PUT", f"{base}?api-version=7.4", json={"value": "probe-value-2"})
    paths = [
        "value",
        "id",
        "attributes/enabled",
        "attributes/created",
        "attributes/updated",
        "attributes/recoveryLevel",
    ]
    _ok(same_shape(_body("keyvault-data-SetSecret.json"), created, paths))
    version = created["id"].rsplit("/", 1)[-1]
    read = kv.call("GET", f"{base}/{version}?api-version=7.4").json()  # value_matches / is_readable
    _ok(same_shape(_body("keyvault-data-GetSecret.json"), read, ["value", "id", "attributes/enabled"]))
    update = {"tags": {"mytag": "myvalue"}, "contentType": "myContentType", "attributes": {"enabled": True}}
    updated = kv.call("PATCH", f"{base}/{version}?api-version=7.4", json=update).json()
    update_paths = [
        "id",
        "contentType",
        "attributes/enabled",
        "attributes/created",
        "attributes/updated",
        "tags",
    ]
    _ok(same_shape(_body("keyvault-data-UpdateSecret.json"), updated, update_paths))
    _ok(absent(updated, ["value"]))  # an update answers without the value
    versions = kv.call("GET", f"{base}/versions?api-version=7.4&maxresults=1").json()
    version_paths = ["value[]/id", "value[]/attributes/enabled", "value[]/attributes/created", "nextLink"]
    _ok(same_shape(_body("keyvault-data-GetSecretVersions.json"), versions, version_paths))


def _body(name: str) -> Any:
    return fixture(name)["responses"]["200"]["body"]


def test_role_assignment_create_and_delete(emu: Emulator, seed: dict[str, Any]) -> None:
    arm = _app(emu, "https://management.azure.com/.default")
    authz = (
        f"https://management.azure.com/subscriptions/{seed['subscriptions'][0]['subscriptionId']}"
        "/providers/Microsoft.Authorization"
    )
    example = fixture("authorization-RoleAssignments_CreateForSubscription.json")
    reader = (
        "acdd72a7-3385-48ef-bd42-f606fba81ae7"  # the built-in Reader (the recording's role is a placeholder)
    )
    body = {
        "properties": {
            "roleDefinitionId": f"{authz.removeprefix('https://management.azure.com')}/roleDefinitions/{reader}",
            "principalId": seed["users"][0]["id"],
            "principalType": "User",
        }
    }
    url = f"{authz}/roleAssignments/5c0e0e0e-0000-4000-8000-000000000001?api-version=2022-04-01"
    created = arm.call("PUT", url, json=body)
    assert created.status_code == 201, created.text
    paths = ["id", "name", "type"]
    paths += [f"properties/{k}" for k in ("roleDefinitionId", "principalId", "principalType", "scope")]
    _ok(same_shape(example["responses"]["201"]["body"], created.json(), paths))
    deleted = arm.call("DELETE", url)
    assert deleted.status_code == 200
    _ok(same_shape(_body("authorization-RoleAssignments_Delete.json"), deleted.json(), paths))


def _vault_url(seed: dict[str, Any]) -> str:
    vault = seed["vaults"][0]
    return (
        f"https://management.azure.com/subscriptions/{seed['subscriptions'][0]['subscriptionId']}/resourceGroups/"
        f"{vault['resourceGroup']}/providers/Microsoft.KeyVault/vaults/{vault['name']}"
    )


VAULT_PATHS = [
    "id",
    "name",
    "type",
    "location",
    "tags",
    "properties/tenantId",
    "properties/vaultUri",
    "properties/sku/name",
    "properties/accessPolicies[]/tenantId",
    "properties/accessPolicies[]/objectId",
    "properties/accessPolicies[]/permissions/secrets",
]


def test_keyvault_vault_get_and_patch(emu: Emulator, seed: dict[str, Any]) -> None:
    """The GET that verifies an access-policy write, and the PATCH that changes a vault's permission
    model (sent here with the model it already has, so the shared emulator is left as it was)."""
    arm = _app(emu, "https://management.azure.com/.default")
    url = _vault_url(seed)
    got = arm.call("GET", f"{url}?api-version=2023-07-01")
    assert got.status_code == 200, got.text
    _ok(same_shape(_body("keyvault-getVault.json"), got.json(), VAULT_PATHS))
    model = bool(got.json()["properties"].get("enableRbacAuthorization"))
    patched = arm.call(
        "PATCH",
        f"{url}?api-version=2025-05-01",
        json={"properties": {"enableRbacAuthorization": model}},
    )
    assert patched.status_code == 200, patched.text
    _ok(same_shape(_body("keyvault-updateVault.json"), patched.json(), VAULT_PATHS))


def test_dlp_create_and_update_answer_with_the_whole_policy(emu: Emulator) -> None:
    bap = _app(emu, POWERAPPS_SCOPE)
    body = fixture("dlp-patch.tf-provider.json")
    body["policyDefinition"] |= {"environmentType": "AllEnvironments", "environments": []}
    body["policyDefinition"]["displayName"] = "contract probe"
    created = bap.call("POST", DLP, json=body)
    assert created.status_code == 201, created.text
    name = created.json()["policyDefinition"]["name"]
    try:
        definition = [f"policyDefinition/{k}" for k in ("name", "displayName", "environmentType")]
        definition += ["policyDefinition/connectorGroups[]/classification"]
        definition += ["policyDefinition/connectorGroups[]/connectors[]/id"]
        rules = [
            "connectorConfigurationsDefinition/connectorActionConfigurations[]/connectorId",
            "connectorConfigurationsDefinition/connectorActionConfigurations[]/actionRules[]/actionId",
            "connectorConfigurationsDefinition/connectorActionConfigurations[]/actionRules[]/behavior",
        ]
        _ok(same_shape(fixture("dlp-post.tf-provider.json"), created.json(), definition + rules))
        body["policyDefinition"]["name"] = name
        updated = bap.call("PATCH", f"{DLP}/{name}", json=body)
        assert updated.status_code == 200, updated.text
        _ok(same_shape(fixture("dlp-patch.tf-provider.json"), updated.json(), definition + rules))
    finally:
        assert bap.call("DELETE", DLP.replace("/v2/", "/v1/") + f"/{name}").status_code == 200


def test_connection_share_removed_with_the_providers_delete_body(emu: Emulator, seed: dict[str, Any]) -> None:
    environment = seed["powerPlatform"]["environments"][0]["name"]
    connection = seed["powerPlatform"]["connections"][0]["name"]
    apps = _app(emu, POWERAPPS_SCOPE)
    base = f"{APPS}/{environment}/apis/shared_keyvault/connections/{connection}"
    grantee = seed["users"][-1]["id"]
    put = {
        "put": [{"properties": {"roleName": "CanView", "principal": {"id": grantee, "type": "User"}}}],
        "delete": [],
    }
    assert apps.call("POST", f"{base}/modifyPermissions?api-version=2017-06-01", json=put).status_code == 200
    listed = apps.call("GET", f"{base}/permissions?api-version=2017-06-01").json()["value"]
    share = next(p for p in listed if p["properties"]["principal"]["id"] == grantee)
    body = fixture("connection-modifyPermissions-delete.request.tf-provider.json")
    body["delete"][0]["id"] = share["id"]
    removed = apps.call("POST", f"{base}/modifyPermissions?api-version=2017-06-01", json=body)
    assert removed.status_code == 200, removed.text  # the provider expects 200 (empty body)
    after = apps.call("GET", f"{base}/permissions?api-version=2017-06-01").json()["value"]
    assert grantee not in {p["properties"]["principal"]["id"] for p in after}


def test_dataverse_turn_off_and_the_documented_turn_on(emu: Emulator, seed: dict[str, Any]) -> None:
    flow = seed["powerPlatform"]["flows"][0]
    client, base = _dataverse(emu, flow["environment"])
    row = f"{base}/api/data/v9.2/workflows({flow['name']})"

    def state() -> Any:
        return client.call("GET", f"{row}?$select=statecode").json()["statecode"]

    assert state() == 1
    off = client.call("PATCH", row, json=OFF, headers={"If-Match": "*"})
    assert off.status_code == 204 and not off.content and state() == 0
    documented = fixture("dataverse-workflow-statecode.request.docs.json")
    on = client.call("PATCH", row, json=documented)
    # The documented turn-on body is understood (no 400); turning on needs the right to use the flow's
    # connections, which the app's application user lacks (docs/fidelity.md), so the flow stays off.
    assert on.status_code == 403 and "0x80060467" in on.text, on.text
    assert state() == 0


def test_graph_application_passwords(emu: Emulator) -> None:
    graph = _app(emu, "https://graph.microsoft.com/.default")
    app = graph.call(
        "POST", "https://graph.microsoft.com/v1.0/applications", json={"displayName": "contract probe"}
    ).json()
    url = f"https://graph.microsoft.com/v1.0/applications/{app['id']}"
    added = graph.call("POST", f"{url}/addPassword", json={"passwordCredential": {"displayName": "p"}}).json()
    item_paths = ["keyId", "displayName", "endDateTime", "startDateTime", "hint", "secretText"]
    _ok(same_shape(fixture("graph-addPassword.docs.json"), added, item_paths))
    got = graph.call("GET", f"{url}?$select=id,passwordCredentials").json()
    _ok(same_shape(fixture("graph-application-get.docs.json"), got, ["id", "passwordCredentials"]))
    _ok(
        same_shape(
            {"passwordCredentials": [fixture("graph-addPassword.docs.json")]},  # a listed credential
            got,
            [f"passwordCredentials[]/{p}" for p in item_paths[:5]],
        )
    )
    assert values_at(got, "passwordCredentials[]/secretText") in ([], [None])  # returned once, at creation
    body = fixture("graph-removePassword.request.docs.json") | {"keyId": added["keyId"]}
    removed = graph.call("POST", f"{url}/removePassword", json=body)
    assert removed.status_code == 204 and not removed.content
    assert graph.call("GET", url).json()["passwordCredentials"] == []
    assert graph.call("DELETE", url).status_code == 204


def test_graph_service_principals_and_transitive_members(emu: Emulator, seed: dict[str, Any]) -> None:
    graph = _app(emu, "https://graph.microsoft.com/.default")
    sp = seed["servicePrincipals"][0]
    listed = graph.call(
        "GET",
        "https://graph.microsoft.com/v1.0/servicePrincipals",
        params={"$filter": f"appId eq '{sp['appId']}'"},
    ).json()
    paths = ["value[]/id", "value[]/appId", "value[]/displayName"]
    _ok(same_shape(fixture("graph-servicePrincipals-list.docs.json"), listed, paths))
    group = "0e0e0e0e-0000-4000-8000-00000000a50b"  # a new group, shared on nothing
    emu.state.azure.add_group_members(group, [seed["users"][0]["id"]], "contract probe group")
    members = graph.call("GET", f"https://graph.microsoft.com/v1.0/groups/{group}/transitiveMembers").json()
    member_paths = ["value[]/@odata.type", "value[]/id"]
    _ok(same_shape(fixture("graph-transitiveMembers.docs.json"), members, member_paths))


def test_keyvault_connections_follow_the_connector_reference() -> None:
    """The Key Vault connector reference's auth ids and its "Shareable" column: only a client-certificate
    connection is shareable; an explicit share is still accepted on the others (no source says it is
    refused), so the app has to find and revoke shares on every Key Vault connection."""
    documented = fixture("keyvault-connector-auth-types.docs.json")
    data = json.loads(SEED.read_text())
    pp, app = data["powerPlatform"], data["servicePrincipals"][0]
    template = pp["connections"][0]
    environment, grantee = template["environment"], data["users"][-1]["id"]
    for auth in ("servicePrincipal", "certificate"):
        pp["connections"].append(
            template | {"name": f"kv-{auth}", "authType": auth, "identity": app["id"], "shares": []}
        )
    with Emulator(load_scenario(data)) as emulator:
        apps = _app(emulator, POWERAPPS_SCOPE)
        connections = f"{APPS}/{environment}/apis/shared_keyvault/connections"
        listed = apps.call("GET", f"{connections}?api-version=2016-11-01").json()["value"]
        by_name = {c["name"]: c["properties"] for c in listed}
        for name, expected in (
            (template["name"], "oauthDefault"),
            ("kv-servicePrincipal", "oauthServicePrincipal"),
            ("kv-certificate", "CertOauth"),
        ):
            properties = by_name[name]
            assert properties["connectionParametersSet"]["name"] == expected
            assert properties["allowSharing"] is documented[expected]["shareable"]
            values = properties["connectionParametersSet"]["values"]
            assert not any("secret" in k.lower() or "certificate" in k.lower() for k in values)
            share = {"properties": {"roleName": "CanView", "principal": {"id": grantee}}}
            base = f"{connections}/{name}"
            body = {"put": [share], "delete": []}
            shared = apps.call("POST", f"{base}/modifyPermissions?api-version=2017-06-01", json=body)
            assert shared.status_code == 200, shared.text
            permissions = apps.call("GET", f"{base}/permissions?api-version=2017-06-01").json()["value"]
            assert grantee in {p["properties"]["principal"]["id"] for p in permissions}


def test_keyvault_vault_patch_answers_the_vault_and_keeps_its_access_policies(
    emu: Emulator, seed: dict[str, Any]
) -> None:
    arm = _app(emu, "https://management.azure.com/.default")
    vault = seed["vaults"][0]
    url = (
        f"https://management.azure.com/subscriptions/{seed['subscriptions'][0]['subscriptionId']}/resourceGroups/"
        f"{vault['resourceGroup']}/providers/Microsoft.KeyVault/vaults/{vault['name']}?api-version=2023-07-01"
    )
    before = arm.call("GET", url).json()["properties"]["accessPolicies"]
    recorded = _body("keyvault-updateVault-2023-07-01.json")
    try:
        response = arm.call("PATCH", url, json={"properties": {"enableRbacAuthorization": True}})
        assert response.status_code == 200, response.text
        paths = ["id", "name", "type", "location", "properties/tenantId", "properties/vaultUri"]
        paths += [f"properties/accessPolicies[]/{k}" for k in ("objectId", "tenantId", "permissions/secrets")]
        _ok(same_shape(recorded, response.json(), paths))
        assert response.json()["properties"]["enableRbacAuthorization"] is True
        assert response.json()["properties"]["accessPolicies"] == before  # only the property sent changed
    finally:
        arm.call("PATCH", url, json={"properties": {"enableRbacAuthorization": False}})


def test_dataverse_teams_with_security_roles(emu: Emulator, seed: dict[str, Any]) -> None:
    """An Entra group team holding a role: the team and role columns as the recorded
    `RetrieveAadUserRoles` answer has them, the expansion as `systemusers` has it (no team recording)."""
    environment = seed["powerPlatform"]["environments"][0]["name"]
    group = "0e0e0e0e-0000-4000-8000-00000000a7e4"
    assignment = RoleAssignment(group, "System Customizer", "Group")
    emu.state.powerplatform.environments[environment].roles.append(assignment)
    try:
        client, base = _dataverse(emu, environment)
        page = client.call(
            "GET",
            f"{base}/api/data/v9.2/teams?$select=teamid,azureactivedirectoryobjectid,teamtype,name"
            "&$expand=teamroles_association($select=roleid,name)",
        ).json()
    finally:
        emu.state.powerplatform.environments[environment].roles.remove(assignment)
    built = team_page(fixture("dataverse-RetrieveAadUserRoles.docs.json"))
    paths = [f"value[]/{c}" for c in ("teamid", "azureactivedirectoryobjectid", "name")]
    paths += ["value[]/teamroles_association[]/roleid", "value[]/teamroles_association[]/name"]
    _ok(same_shape(built, page, paths))
    (team,) = [t for t in page["value"] if t["azureactivedirectoryobjectid"] == group]
    assert [r["name"] for r in team["teamroles_association"]] == ["System Customizer"]


def test_dataverse_role_disassociation_answers_204_without_a_body(
    emu: Emulator, seed: dict[str, Any]
) -> None:
    """The documented collection-valued `.../<navigation>(<id>)/$ref` DELETE: 204, no body; the role is
    gone from the user's row, and a second DELETE of the same association is 404."""
    documented = fixture("dataverse-disassociate.docs.json")  # the URL form: test_adapters_parse_recorded
    environment = seed["powerPlatform"]["environments"][0]
    customizer = next(r["principal"] for r in environment["roles"] if r["role"] == "System Customizer")
    client, base = _dataverse(emu, environment["name"])
    users = client.call(
        "GET", f"{base}/api/data/v9.2/systemusers?$expand=systemuserroles_association($select=roleid,name)"
    ).json()["value"]
    user = next(u for u in users if u["azureactivedirectoryobjectid"] == customizer)
    (role,) = [r for r in user["systemuserroles_association"] if r["name"] == "System Customizer"]
    url = (
        f"{base}/api/data/v9.2/systemusers({user['systemuserid']})"
        f"/systemuserroles_association({role['roleid']})/$ref"
    )
    roles = emu.state.powerplatform.environments[environment["name"]].roles
    held = next(r for r in roles if r.principal_id == customizer and r.role == "System Customizer")
    try:
        removed = client.call("DELETE", url)
        assert removed.status_code == documented["response"]["status"] and not removed.content
        after = client.call("GET", f"{base}/api/data/v9.2/systemusers").json()["value"]
        (row,) = [u for u in after if u["azureactivedirectoryobjectid"] == customizer]
        assert "System Customizer" not in {r["name"] for r in row["systemuserroles_association"]}
        assert client.call("DELETE", url).status_code == 404
    finally:
        if held not in roles:
            roles.append(held)


def test_dataverse_clientdata_patch_restores_secure_outputs_and_rebinds_the_connection(
    emu: Emulator, seed: dict[str, Any]
) -> None:
    """The writes of restore_secure_outputs and move_to_service_connection: `PATCH workflows({id})` with
    only `clientdata`, a JSON string shaped as the documented one; 204 without a body; the row read back
    has the new definition and connection, the other columns as they were; a clientdata that is not the
    documented shape is refused (400) and changes nothing."""
    pp = seed["powerPlatform"]
    flow = pp["flows"][0]
    other = next(
        c["name"]
        for c in pp["connections"]
        if c["name"] != flow["connectionReferences"]["shared_keyvault"]["connectionName"]
    )
    client, base = _dataverse(emu, flow["environment"])
    row_url = f"{base}/api/data/v9.2/workflows({flow['name']})"
    before = client.call("GET", row_url).json()
    data = json.loads(before["clientdata"])
    documented = json.loads(fixture("dataverse-workflow-clientdata.docs.json")["clientdata"])
    shape = ["schemaVersion", "properties/definition/actions", "properties/definition/triggers"]
    shape += [
        f"properties/connectionReferences/*/{p}" for p in ("runtimeSource", "connection/name", "api/name")
    ]
    _ok(same_shape(documented, data, shape))
    changed = json.loads(before["clientdata"])
    action = next(iter(changed["properties"]["definition"]["actions"].values()))
    action["runtimeConfiguration"] = {"secureData": {"properties": ["inputs", "outputs"]}}
    changed["properties"]["connectionReferences"]["shared_keyvault"]["connection"]["name"] = other
    try:
        patched = client.call(
            "PATCH", row_url, json={"clientdata": json.dumps(changed)}, headers={"If-Match": "*"}
        )
        assert patched.status_code == 204 and not patched.content, patched.text
        after = client.call("GET", row_url).json()
        read = json.loads(after["clientdata"])
        kept = next(iter(read["properties"]["definition"]["actions"].values()))
        assert kept["runtimeConfiguration"]["secureData"]["properties"] == ["inputs", "outputs"]
        assert read["properties"]["connectionReferences"]["shared_keyvault"]["connection"]["name"] == other
        assert {k: after[k] for k in ("name", "_ownerid_value", "statecode")} == {
            k: before[k] for k in ("name", "_ownerid_value", "statecode")
        }
        refused = client.call("PATCH", row_url, json={"clientdata": "{}"}, headers={"If-Match": "*"})
        assert refused.status_code == 400
        assert client.call("GET", row_url).json()["clientdata"] == after["clientdata"]
    finally:
        restored = client.call(
            "PATCH", row_url, json={"clientdata": before["clientdata"]}, headers={"If-Match": "*"}
        )
        assert restored.status_code == 204


def test_dataverse_connection_references_page(emu: Emulator, seed: dict[str, Any]) -> None:
    """A solution flow's connection reference row has the columns the adapter selects (no recorded
    response: compared with the row built from the recorded clientdata and the table reference)."""
    flow = seed["powerPlatform"]["flows"][1]
    with emu.state.lock:
        reference = emu.state.powerplatform.flows[flow["name"]].connection_references["shared_keyvault"]
        reference["connectionReferenceLogicalName"] = "vg_contract_probe"
    try:
        client, base = _dataverse(emu, flow["environment"])
        page = client.call(
            "GET",
            f"{base}/api/data/v9.2/connectionreferences"
            "?$select=connectionreferencelogicalname,connectionid,connectorid",
        ).json()
    finally:
        with emu.state.lock:
            reference.pop("connectionReferenceLogicalName")
    built = connection_reference_page(fixture("dataverse-workflow-clientdata.docs.json"))
    columns = ("connectionreferencelogicalname", "connectionid", "connectorid")
    _ok(same_shape(built, page, [f"value[]/{c}" for c in columns]))
    (row,) = [r for r in page["value"] if r["connectionreferencelogicalname"] == "vg_contract_probe"]
    assert row["connectionid"] == reference["connectionName"]


def test_dataverse_connection_reference_patch_rebinds_every_flow_naming_it(
    emu: Emulator, seed: dict[str, Any]
) -> None:
    """The row of one logical name (`$filter`), then `PATCH connectionreferences(<id>)` with only
    `connectionid` (the documented update: 204, no body): both flows naming the row now run on the new
    connection, and a re-read shows it. A body without `connectionid` is 400, an unknown row 404."""
    first, second = seed["powerPlatform"]["flows"][1:3]  # both on the service principal's connection
    analyst_connection = seed["powerPlatform"]["flows"][3]["connectionReferences"]["shared_keyvault"]
    with emu.state.lock:
        references = [
            emu.state.powerplatform.flows[f["name"]].connection_references["shared_keyvault"]
            for f in (first, second)
        ]
        for reference in references:
            reference["connectionReferenceLogicalName"] = "vg_Contract_Probe"
    try:
        client, base = _dataverse(emu, first["environment"])
        query = (
            f"{base}/api/data/v9.2/connectionreferences?$select=connectionreferenceid,connectionid"
            "&$filter=connectionreferencelogicalname eq 'vg_contract_probe'"
        )
        (row,) = client.call("GET", query).json()["value"]
        url = f"{base}/api/data/v9.2/connectionreferences({row['connectionreferenceid']})"
        moved = client.call(
            "PATCH",
            url,
            json={"connectionid": analyst_connection["connectionName"]},
            headers={"If-Match": "*"},
        )
        assert moved.status_code == 204 and not moved.content
        assert [r["connectionName"] for r in references] == [analyst_connection["connectionName"]] * 2
        (again,) = client.call("GET", query).json()["value"]
        assert again["connectionid"] == analyst_connection["connectionName"]
        assert client.call("PATCH", url, json={"name": "x"}, headers={"If-Match": "*"}).status_code == 400
        unknown = client.call(
            "PATCH",
            url.replace(row["connectionreferenceid"], "00000000-0000-0000-0000-000000000000"),
            json={"connectionid": "c"},
            headers={"If-Match": "*"},
        )
        assert unknown.status_code == 404
    finally:  # the module shares one emulator: restore the seed
        with emu.state.lock:
            for reference, flow in zip(references, (first, second), strict=True):
                reference.pop("connectionReferenceLogicalName")
                reference["connectionName"] = flow["connectionReferences"]["shared_keyvault"][
                    "connectionName"
                ]


def test_storage_keys_list_and_regenerate(emu: Emulator, seed: dict[str, Any]) -> None:
    """`listKeys` and `regenerateKey` (the storage-key rotator) answer the recorded `keys[]` shape; a
    regenerated key differs from the one listed before."""
    arm = _app(emu, "https://management.azure.com/.default")
    vault = seed["vaults"][0]
    account = (
        f"https://management.azure.com/subscriptions/{seed['subscriptions'][0]['subscriptionId']}/resourceGroups/"
        f"{vault['resourceGroup']}/providers/Microsoft.Storage/storageAccounts/contractprobe"
    )
    created = arm.call("PUT", f"{account}?api-version=2023-01-01", json={"location": "westeurope"})
    assert created.status_code == 200, created.text
    paths = ["keys[]/keyName", "keys[]/value", "keys[]/permissions"]
    listed = arm.call("POST", f"{account}/listKeys?api-version=2023-01-01")
    assert listed.status_code == 200, listed.text
    _ok(same_shape(_body("storage-StorageAccountListKeys.json"), listed.json(), paths))
    regenerated = arm.call(
        "POST", f"{account}/regenerateKey?api-version=2023-01-01", json={"keyName": "key2"}
    )
    assert regenerated.status_code == 200, regenerated.text
    _ok(same_shape(_body("storage-StorageAccountRegenerateKey.json"), regenerated.json(), paths))
    before, after = ({k["keyName"]: k["value"] for k in r.json()["keys"]} for r in (listed, regenerated))
    assert before["key1"] == after["key1"] and before["key2"] != after["key2"]
