"""The Power Platform adapter's Dataverse calls against the emulated Dataverse of the seed tenant: flows
with definitions and owners, security-role holders, turning a flow off (the method a quarantine fix
builds on), and who the emulated Dataverse lets in."""

from __future__ import annotations

import json
from typing import Any

import pytest

from emulator import Emulator
from emulator.powerplatform import token_for
from emulator.powerplatform.dataverse import workflow_json
from remediations.adapters.clients import AzureClients
from tests.emulator.helpers import Raw
from tests.emulator.test_powerplatform_attack import _who


@pytest.fixture
def emu(seeded_emu: Emulator) -> Emulator:
    return seeded_emu  # the seed scenario, fresh per test (conftest.py)


def test_flows_roles_and_turning_a_flow_off(emu: Emulator, seed: dict[str, Any]) -> None:
    flow = next(f for f in seed["powerPlatform"]["flows"] if f["displayName"] == "Nightly payroll export")
    environment = flow["environment"]
    with AzureClients() as clients:
        api = clients.power_platform()
        flows = {f.id: f for f in api.list_flows(environment)}
        listed = flows[flow["name"].lower()]
        assert listed.state == "Started" and listed.creator == flow["creator"].lower()
        assert listed.definition == flow["definition"]
        holders = api.role_holders(environment)
        assert "System Customizer" in holders[_who(seed, "customizer@").lower()]

        api.turn_off_flow(environment, flow["name"])
        assert api.get_flow(environment, flow["name"]).state == "Stopped"
    with emu.state.lock:
        assert emu.state.powerplatform.flows[flow["name"]].state == "Stopped"
    patches = [r for r in emu.requests if r.route == "dataverse.workflows.update"]
    assert [json.loads(r.body) for r in patches] == [{"statecode": 0, "statuscode": 1}]


def test_dataverse_lets_in_only_callers_with_a_security_role(emu: Emulator, seed: dict[str, Any]) -> None:
    environment = emu.state.powerplatform.environments[seed["powerPlatform"]["environments"][0]["name"]]
    org = f"org{environment.name.replace('-', '')[:12]}".lower()
    url = f"https://{org}.api.crm4.dynamics.com/api/data/v9.2/workflows?$filter=category eq 5"
    audience = f"https://{org}.crm4.dynamics.com"
    analyst = Raw(emu, token_for(emu.state, _who(seed, "analyst@"), audience))
    refused = analyst.call("GET", url)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "0x80040220"
    customizer = Raw(emu, token_for(emu.state, _who(seed, "customizer@"), audience))
    assert customizer.call("GET", url).status_code == 200
    wrong_audience = Raw(
        emu, token_for(emu.state, _who(seed, "customizer@"), "https://service.powerapps.com/")
    )
    assert wrong_audience.call("GET", url).status_code == 401
    unknown = Raw(emu, token_for(emu.state, _who(seed, "customizer@"), "https://orgnope.crm4.dynamics.com"))
    assert unknown.call("GET", url.replace(org, "orgnope")).status_code == 404


def test_a_solution_flow_reaches_its_connection_through_its_connection_reference(
    emu: Emulator, seed: dict[str, Any]
) -> None:
    """Solution flows name a connection reference, not a connection: the adapter reads the environment's
    `connectionreferences` (only then) to find the Key Vault connection."""
    flow = next(f for f in seed["powerPlatform"]["flows"] if f["displayName"] == "Nightly payroll export")
    with emu.state.lock:
        references = emu.state.powerplatform.flows[flow["name"]].connection_references
        connection = references["shared_keyvault"]["connectionName"]
        references["shared_keyvault"]["connectionReferenceLogicalName"] = "vg_PayrollKeyVault"
    with AzureClients() as clients:
        listed = {f.id: f for f in clients.power_platform().list_flows(flow["environment"])}
    assert listed[flow["name"].lower()].reference_keys == {"shared_keyvault": connection}
    with emu.state.lock:
        row = workflow_json(emu.state.powerplatform.flows[flow["name"]])
    served = json.loads(row["clientdata"])["properties"]["connectionReferences"]["shared_keyvault"]
    assert served["connection"] == {"connectionReferenceLogicalName": "vg_PayrollKeyVault"}  # no name
    assert [r.status for r in emu.requests if r.route == "dataverse.connectionreferences.list"] == [200]


def test_a_management_app_needs_an_application_user_in_each_environment(
    emu: Emulator, seed: dict[str, Any]
) -> None:
    """The management-app registration opens the admin APIs, not Dataverse: without the application
    user the environment's Dataverse refuses the app (403, which the inventory reports as a failed read);
    as an application user it is listed with its security role."""
    sp = seed["servicePrincipals"][0]
    name = seed["powerPlatform"]["environments"][0]["name"]
    environment = emu.state.powerplatform.environments[name]
    emu.state.powerplatform.management_apps.add(sp["appId"])
    org = f"org{name.replace('-', '')[:12]}".lower()
    url = f"https://{org}.api.crm4.dynamics.com/api/data/v9.2/workflows?$filter=category eq 5"
    audience = f"https://{org}.crm4.dynamics.com"
    app = Raw(emu, token_for(emu.state, sp["id"], audience, appid=sp["appId"], idtyp="app"))
    assert app.call("GET", url).status_code == 403
    environment.application_users.add(sp["appId"].lower())
    assert app.call("GET", url).status_code == 200
    users = app.call("GET", url.replace("workflows?$filter=category eq 5", "systemusers")).json()["value"]
    mine = next(u for u in users if u["azureactivedirectoryobjectid"] == sp["id"])
    assert mine["applicationid"] == sp["appId"].lower()
    assert [r["name"] for r in mine["systemuserroles_association"]] == ["System Administrator"]
