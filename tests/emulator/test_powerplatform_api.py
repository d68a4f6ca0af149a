"""The emulated Power Platform admin APIs through HTTP, as a client would call them: environments and
role holders (BAP), flows and their permissions (Flow), connections (Power Apps), DLP (governance)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from emulator import Emulator
from emulator.powerplatform import FLOW_AUDIENCE, POWERAPPS_AUDIENCE, token_for
from emulator.powerplatform import definitions as defs
from emulator.powerplatform.generator import generate
from emulator.powerplatform.scenario import PowerPlatformScenarioError, load
from emulator.state import State

ADMIN, CUSTOMIZER, ANALYST, OUTSIDER, OWNER = (f"00000000-0000-0000-0000-00000000000{i}" for i in range(1, 6))
ENV = "11111111-2222-3333-4444-555555555555"
FLOW = "aaaaaaaa-0000-0000-0000-000000000001"
CONN = "shared-keyvault-0001"
FLOWS = "https://api.flow.microsoft.com/providers/Microsoft.ProcessSimple"
APPS = "https://api.powerapps.com/providers/Microsoft.PowerApps"
BAP = "https://api.bap.microsoft.com/providers/Microsoft.BusinessAppPlatform"
DLP = "https://api.bap.microsoft.com/providers/PowerPlatform.Governance"
V = {"api-version": "2016-11-01"}


def _section() -> dict[str, Any]:
    return {
        "admins": [ADMIN],
        "directory": {
            oid: {"displayName": name, "email": f"{name}@contoso.example", "type": "User"}
            for oid, name in (
                (ADMIN, "admin"),
                (CUSTOMIZER, "customizer"),
                (ANALYST, "analyst"),
                (OUTSIDER, "outsider"),
                (OWNER, "owner"),
            )
        },
        "environments": [
            {
                "name": ENV,
                "displayName": "Finance",
                "roles": [
                    {"principal": CUSTOMIZER, "role": "System Customizer"},
                    {"principal": ADMIN, "role": "System Administrator"},
                ],
            }
        ],
        "connections": [
            {
                "name": CONN,
                "environment": ENV,
                "createdBy": OWNER,
                "parameters": {"vaultName": "kv-shared-prod"},
                "shares": [{"principal": ANALYST, "role": "CanView"}],
            }
        ],
        "flows": [
            {
                "name": FLOW,
                "environment": ENV,
                "displayName": "Nightly payroll export",
                "creator": OWNER,
                "definition": defs.definition(
                    {"Get_secret": defs.get_secret("payroll-db-password", secure=True)}
                ),
                "connectionReferences": {"shared_keyvault": defs.connection_reference(CONN)},
                "shares": [{"principal": ANALYST, "role": "CanEdit"}],
            }
        ],
    }


@pytest.fixture
def emu() -> Iterator[Emulator]:
    state = State()
    load(state, _section())
    with Emulator(state) as emulator:
        yield emulator


def _client(emu: Emulator, oid: str | None, audience: str = FLOW_AUDIENCE) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # this machine sets REQUESTS_CA_BUNDLE, which would override `verify`
    session.proxies = {"https": emu.proxy_url}
    session.verify = emu.ca_bundle
    if oid is not None:
        session.headers["Authorization"] = f"Bearer {token_for(emu.state, oid, audience)}"
    return session


def test_environments_admin_list_pages_and_roles(emu: Emulator) -> None:
    generate(emu.state, environments=4, flows_per_environment=1, seed=1)
    emu.state.powerplatform.page_size_environments = 2
    bap = _client(emu, ADMIN, POWERAPPS_AUDIENCE)
    url: str | None = f"{BAP}/scopes/admin/environments?api-version=2020-10-01"
    names: list[str] = []
    while url:
        body = bap.get(url).json()
        names += [e["name"] for e in body["value"]]
        assert all(e["type"] == "Microsoft.BusinessAppPlatform/scopes/environments" for e in body["value"])
        url = body.get("nextLink")
    assert len(names) == 5 and ENV in names
    env = bap.get(f"{BAP}/scopes/admin/environments/{ENV}", params={"api-version": "2020-10-01"}).json()
    assert env["properties"]["displayName"] == "Finance"
    # Dataverse environments: BAP role assignments answer 403; their roles are Dataverse security roles.
    roles = bap.get(f"{BAP}/scopes/admin/environments/{ENV}/roleAssignments", params=V)
    assert roles.status_code == 403
    assert roles.json()["error"]["code"] == "LinkedEnvironmentForbiddenOperation"
    missing = bap.get(f"{BAP}/scopes/admin/environments/nope", params=V)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "EnvironmentNotFound"
    assert (
        _client(emu, OUTSIDER, POWERAPPS_AUDIENCE)
        .get(f"{BAP}/scopes/admin/environments", params=V)
        .status_code
        == 403
    )
    assert _client(emu, None).get(f"{BAP}/scopes/admin/environments", params=V).status_code == 401
    assert (
        _client(emu, ADMIN, FLOW_AUDIENCE).get(f"{BAP}/scopes/admin/environments", params=V).status_code
        == 401
    )


def test_admin_flow_list_pages_by_250(emu: Emulator) -> None:
    env = next(iter(emu.state.powerplatform.environments.values()))
    generate(emu.state, environments=0, seed=2)  # directory only
    for i in range(520):
        name = f"bbbbbbbb-0000-0000-0000-{i:012d}"
        emu.state.powerplatform.flows[name] = type(emu.state.powerplatform.flows[FLOW])(
            name=name,
            environment=env.name,
            display_name=f"f{i}",
            creator=OWNER,
            definition=defs.definition({}),
        )
    admin = _client(emu, ADMIN)
    url: str | None = f"{FLOWS}/scopes/admin/environments/{ENV}/v2/flows?api-version=2016-11-01"
    pages = []
    while url:
        body = admin.get(url).json()
        pages.append(len(body["value"]))
        url = body.get("nextLink")
    assert pages == [250, 250, 21]
    first = admin.get(f"{FLOWS}/scopes/admin/environments/{ENV}/v2/flows", params=V).json()["value"][0]
    assert "definition" not in first["properties"] and first["properties"]["creator"]["objectId"]
    assert first["properties"]["workflowEntityId"] == first["name"]  # the Dataverse workflows row


def test_flow_get_definition_and_errors(emu: Emulator) -> None:
    admin = _client(emu, ADMIN)
    # The admin GET has no definition (pnp/cli-microsoft365#6624); a caller with a role on the flow gets it.
    as_admin = admin.get(f"{FLOWS}/scopes/admin/environments/{ENV}/flows/{FLOW}", params=V).json()
    assert "definition" not in as_admin["properties"]
    assert as_admin["properties"]["connectionReferences"]["shared_keyvault"]["connectionName"] == CONN
    flow = _client(emu, OWNER).get(f"{FLOWS}/environments/{ENV}/flows/{FLOW}", params=V).json()
    step = flow["properties"]["definition"]["actions"]["Get_secret"]
    assert step["inputs"]["host"]["operationId"] == "GetSecret"
    assert step["runtimeConfiguration"]["secureData"]["properties"] == ["inputs", "outputs"]
    assert flow["properties"]["connectionReferences"]["shared_keyvault"]["connectionName"] == CONN
    missing = admin.get(f"{FLOWS}/scopes/admin/environments/{ENV}/flows/nope", params=V)
    assert missing.status_code == 404
    assert missing.json() == {"error": {"code": "FlowNotFound", "message": "Could not find flow 'nope'."}}
    assert (
        admin.get(f"{FLOWS}/environments/nope/flows/{FLOW}", params=V).json()["error"]["code"]
        == "EnvironmentAccessDenied"
    )
    assert _client(emu, OUTSIDER).get(f"{FLOWS}/environments/{ENV}/flows/{FLOW}", params=V).status_code == 403
    assert _client(emu, None).get(f"{FLOWS}/environments/{ENV}/flows/{FLOW}", params=V).status_code == 401
    mine = _client(emu, ANALYST).get(f"{FLOWS}/environments/{ENV}/flows", params=V).json()["value"]
    assert [f["name"] for f in mine] == [FLOW]
    assert (
        _client(emu, CUSTOMIZER).get(f"{FLOWS}/environments/{ENV}/flows/{FLOW}", params=V).status_code == 200
    )


def test_flow_api_takes_app_only_tokens_on_admin_routes_only(emu: Emulator) -> None:
    """The Flow API with an app-only token (idtyp=app), as public sources describe it (docs/fidelity.md,
    "The Flow API and app-only tokens"): a maker route is refused with the message recorded in
    microsoft/coe-starter-kit#10172; a `scopes/admin` read works for a registered management app, but
    its admin GET has no definition (so an app that went back to the Flow API would see no flow
    definitions: the app reads flows from Dataverse); the admin permission routes (user details) are
    refused; an app that is not a management app gets the admin routes' 403."""
    az = emu.state.azure
    app = requests.Session()
    app.trust_env, app.proxies, app.verify = False, {"https": emu.proxy_url}, emu.ca_bundle
    token = token_for(emu.state, az.admin_object_id, FLOW_AUDIENCE, appid=az.admin_client_id, idtyp="app")
    app.headers["Authorization"] = f"Bearer {token}"
    admin = f"{FLOWS}/scopes/admin/environments/{ENV}"
    maker = app.get(f"{FLOWS}/environments/{ENV}/flows/{FLOW}", params=V)
    assert maker.status_code == 403
    assert (
        maker.json()["error"]["message"]
        == "Principal Service authentication is supported for administrative actions only."
    )
    listed = app.get(f"{admin}/v2/flows", params=V)
    assert listed.status_code == 200 and FLOW in {f["name"] for f in listed.json()["value"]}
    got = app.get(f"{admin}/flows/{FLOW}", params=V)
    assert got.status_code == 200 and "definition" not in got.json()["properties"]
    owners = app.get(f"{admin}/flows/{FLOW}/permissions", params=V)
    assert owners.status_code == 403 and "user details" in owners.json()["error"]["message"]
    stranger = token_for(
        emu.state, OUTSIDER, FLOW_AUDIENCE, appid="c0ffee00-0000-4000-8000-000000000000", idtyp="app"
    )
    refused = app.get(f"{admin}/v2/flows", params=V, headers={"Authorization": f"Bearer {stranger}"})
    assert refused.status_code == 403


def test_flow_edit_rights(emu: Emulator) -> None:
    body = {"properties": {"definition": defs.dump_vault_definition()}}
    url = f"{FLOWS}/environments/{ENV}/flows/{FLOW}"
    assert _client(emu, OUTSIDER).patch(url, params=V, json=body).status_code == 403
    emu.state.powerplatform.flows[FLOW].shares[OUTSIDER] = type(
        emu.state.powerplatform.flows[FLOW].shares[OWNER]
    )(OUTSIDER, OUTSIDER, "CanView")
    assert _client(emu, OUTSIDER).patch(url, params=V, json=body).status_code == 403  # run-only user
    assert _client(emu, ANALYST).patch(url, params=V, json=body).status_code == 200  # co-owner
    edited = _client(emu, CUSTOMIZER).patch(url, params=V, json=body)  # System Customizer
    assert edited.status_code == 200
    assert "Apply_to_each" in edited.json()["properties"]["definition"]["actions"]


def test_flow_modify_permissions_visible_in_next_list(emu: Emulator) -> None:
    admin = _client(emu, ADMIN)
    base = f"{FLOWS}/scopes/admin/environments/{ENV}/flows/{FLOW}"
    before = admin.get(f"{base}/permissions", params=V).json()["value"]
    assert {(p["name"], p["properties"]["roleName"]) for p in before} == {
        (OWNER, "Owner"),
        (ANALYST, "CanEdit"),
    }
    assert before[0]["type"] == "/providers/Microsoft.ProcessSimple/environments/flows/permissions"
    put = {"put": [{"properties": {"principal": {"id": OUTSIDER, "type": "User"}, "roleName": "CanView"}}]}
    assert admin.post(f"{base}/modifyPermissions", params=V, json=put).status_code == 200
    delete = {
        "delete": [
            {
                "id": f"/providers/Microsoft.ProcessSimple/environments/{ENV}/flows/{FLOW}"
                f"/permissions/{ANALYST}"
            }
        ]
    }
    assert admin.post(f"{base}/modifyPermissions", params=V, json=delete).status_code == 200
    after = admin.get(f"{base}/permissions", params=V).json()["value"]
    assert {(p["name"], p["properties"]["roleName"]) for p in after} == {
        (OWNER, "Owner"),
        (OUTSIDER, "CanView"),
    }
    # the analyst lost edit rights with the share
    edit = _client(emu, ANALYST).patch(
        f"{FLOWS}/environments/{ENV}/flows/{FLOW}",
        params=V,
        json={"properties": {"definition": defs.dump_vault_definition()}},
    )
    assert edit.status_code == 403
    assert _client(emu, OUTSIDER).post(f"{base}/modifyPermissions", params=V, json=put).status_code == 403


def test_connections_admin_list_get_permissions(emu: Emulator) -> None:
    apps = _client(emu, ADMIN, POWERAPPS_AUDIENCE)
    listed = apps.get(
        f"{APPS}/scopes/admin/environments/{ENV}/apis/shared_keyvault/connections", params=V
    ).json()
    (conn,) = listed["value"]
    assert (
        conn["name"] == CONN and conn["properties"]["connectionParameters"]["vaultName"] == "kv-shared-prod"
    )
    assert conn["properties"]["createdBy"]["id"] == OWNER
    assert conn["type"] == "Microsoft.PowerApps/scopes/apis/connections"
    assert (
        apps.get(f"{APPS}/scopes/admin/environments/{ENV}/connections", params=V).json()["value"][0]["name"]
        == CONN
    )
    base = f"{APPS}/scopes/admin/environments/{ENV}/apis/shared_keyvault/connections/{CONN}"
    v2 = {"api-version": "2017-06-01"}
    perms = apps.get(f"{base}/permissions", params=v2).json()["value"]
    assert {(p["properties"]["principal"]["id"], p["properties"]["roleName"]) for p in perms} == {
        (OWNER, "Owner"),
        (ANALYST, "CanView"),
    }
    analyst_share = next(p for p in perms if p["properties"]["principal"]["id"] == ANALYST)
    body = {
        "put": [{"properties": {"roleName": "CanEdit", "principal": {"id": OUTSIDER}}}],
        "delete": [{"id": analyst_share["id"]}],
    }
    assert apps.post(f"{base}/modifyPermissions", params=v2, json=body).status_code == 200
    perms = apps.get(f"{base}/permissions", params=v2).json()["value"]
    assert {(p["properties"]["principal"]["id"], p["properties"]["roleName"]) for p in perms} == {
        (OWNER, "Owner"),
        (OUTSIDER, "CanEdit"),
    }
    missing = apps.get(
        f"{APPS}/scopes/admin/environments/{ENV}/apis/shared_keyvault/connections/nope", params=V
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ConnectionNotFound"
    assert _client(emu, ANALYST, POWERAPPS_AUDIENCE).get(base, params=V).status_code == 403
    user = (
        _client(emu, OUTSIDER, POWERAPPS_AUDIENCE)
        .get(f"{APPS}/apis/shared_keyvault/connections", params={**V, "$filter": f"environment eq '{ENV}'"})
        .json()
    )
    assert [c["name"] for c in user["value"]] == [CONN]


def _block_list_secrets(admin: requests.Session) -> dict[str, Any]:
    policy = {
        "policyDefinition": {
            "displayName": "Key Vault: no enumeration",
            "defaultConnectorsClassification": "General",
            "environmentType": "OnlyEnvironments",
            "environments": [{"name": ENV}],
            "connectorGroups": [
                {"classification": "Confidential", "connectors": [{"id": defs.KEYVAULT_API_ID}]}
            ],
        },
        "connectorConfigurationsDefinition": {
            "connectorActionConfigurations": [
                {
                    "connectorId": defs.KEYVAULT_API_ID,
                    "defaultConnectorActionRuleBehavior": "Allow",
                    "actionRules": [{"actionId": "ListSecrets", "behavior": "Block"}],
                }
            ]
        },
    }
    created = admin.post(f"{DLP}/v2/policies", json=policy)
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


def test_dlp_crud_and_blocked_action_stops_the_edit(emu: Emulator) -> None:
    bap = _client(emu, ADMIN, POWERAPPS_AUDIENCE)
    created = _block_list_secrets(bap)
    name = created["policyDefinition"]["name"]
    listed = bap.get(f"{DLP}/v2/policies").json()["value"]
    assert [p["policyDefinition"]["name"] for p in listed] == [name]
    # The list carries the definition only (the Terraform provider's recorded list); rules need the GET.
    assert list(listed[0]) == ["policyDefinition"] and "connectorGroups" not in listed[0]["policyDefinition"]
    assert "connectorConfigurationsDefinition" in bap.get(f"{DLP}/v2/policies/{name}").json()
    assert (
        bap.get(f"{DLP}/v2/policies/{name}").json()["policyDefinition"]["displayName"]
        == "Key Vault: no enumeration"
    )
    edit = _client(emu, CUSTOMIZER).patch(
        f"{FLOWS}/environments/{ENV}/flows/{FLOW}",
        params=V,
        json={"properties": {"definition": defs.dump_vault_definition()}},
    )
    assert edit.status_code == 403
    assert edit.json()["error"]["extendedData"]["violation"]["parameters"][1] == "ListSecrets"
    assert "Apply_to_each" not in emu.state.powerplatform.flows[FLOW].definition["actions"]
    # a Get-secret-only edit is still allowed
    ok = _client(emu, CUSTOMIZER).patch(
        f"{FLOWS}/environments/{ENV}/flows/{FLOW}",
        params=V,
        json={
            "properties": {
                "definition": defs.definition({"Get_secret": defs.get_secret("payroll-db-password")})
            }
        },
    )
    assert ok.status_code == 200
    # blocking the whole connector suspends the started flow that uses it
    update = dict(created)
    update["policyDefinition"] = {
        **created["policyDefinition"],
        "connectorGroups": [{"classification": "Blocked", "connectors": [{"id": defs.KEYVAULT_API_ID}]}],
    }
    assert bap.patch(f"{DLP}/v2/policies/{name}", json=update).status_code == 200
    flow = _client(emu, ADMIN).get(f"{FLOWS}/scopes/admin/environments/{ENV}/flows/{FLOW}", params=V).json()
    assert flow["properties"]["state"] == "Suspended"
    run = _client(emu, OWNER).post(
        f"{FLOWS}/environments/{ENV}/flows/{FLOW}/triggers/manual/run", params=V, json={}
    )
    assert run.status_code == 403 and run.json()["error"]["code"] == "DlpViolation"
    assert bap.delete(f"{DLP}/v1/policies/{name}").status_code == 200
    assert bap.get(f"{DLP}/v2/policies/{name}").status_code == 404
    assert _client(emu, OUTSIDER, POWERAPPS_AUDIENCE).get(f"{DLP}/v2/policies").status_code == 403
    bad = bap.post(
        f"{DLP}/v2/policies",
        json={"policyDefinition": {"displayName": "x", "connectorGroups": [{"classification": "Secret"}]}},
    )
    assert bad.status_code == 400 and "connectorGroups[0].classification" in bad.json()["error"]["message"]


def test_scenario_errors_name_the_field() -> None:
    section = _section()
    section["flows"][0]["environment"] = "missing"
    with pytest.raises(PowerPlatformScenarioError, match=r"powerPlatform\.flows\[0\]\.environment"):
        load(State(), section)
    section = _section()
    section["environments"][0]["roles"][0]["role"] = "Basic User"
    with pytest.raises(PowerPlatformScenarioError, match=r"environments\[0\]\.roles\[0\]\.role"):
        load(State(), section)
    section = _section()
    section["flows"][0]["shares"][0]["principal"] = "not-an-identity"
    with pytest.raises(PowerPlatformScenarioError, match=r"flows\[0\]\.shares\[0\]\.principal"):
        load(State(), section)


def test_generator_is_deterministic() -> None:
    a, b = State(), State()
    counts = generate(a, environments=3, flows_per_environment=50, seed=9)
    generate(b, environments=3, flows_per_environment=50, seed=9)
    assert counts.flows == 150 and counts.environments == 3
    assert list(a.powerplatform.flows) == list(b.powerplatform.flows)
