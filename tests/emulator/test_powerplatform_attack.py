"""The seed attack end to end over HTTP, both halves of the emulator, from emulator/scenarios/seed.json:
a System Customizer edits the admin's flow to leak the secret and then to dump the vault; after the
admin identity's `list` is removed through ARM the same flow gets 403 from Key Vault; a DLP rule blocking
ListSecrets stops the edit from being saved; revoked shares are gone from the next permissions list."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from emulator import Emulator
from emulator.powerplatform import FLOW_AUDIENCE, POWERAPPS_AUDIENCE, token_for
from emulator.powerplatform import definitions as defs
from emulator.scenario import load_scenario_file
from tests.emulator.helpers import Raw, admin_token

SEED = Path(__file__).resolve().parents[2] / "emulator" / "scenarios" / "seed.json"
V = {"api-version": "2016-11-01"}


@pytest.fixture
def seed() -> dict[str, Any]:
    return json.loads(SEED.read_text())  # type: ignore[no-any-return]


@pytest.fixture
def emu(seed: dict[str, Any]) -> Iterator[Emulator]:
    with Emulator(load_scenario_file(SEED)) as emulator:
        yield emulator


def _who(seed: dict[str, Any], upn_prefix: str) -> str:
    return next(u["id"] for u in seed["users"] if u["userPrincipalName"].startswith(upn_prefix))


def _client(emu: Emulator, oid: str, audience: str = FLOW_AUDIENCE) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # this machine sets REQUESTS_CA_BUNDLE, which would override `verify`
    session.proxies = {"https": emu.proxy_url}
    session.verify = emu.ca_bundle
    session.headers["Authorization"] = f"Bearer {token_for(emu.state, oid, audience)}"
    return session


class Attack:
    def __init__(self, emu: Emulator, seed: dict[str, Any]) -> None:
        self.emu = emu
        pp = seed["powerPlatform"]
        flow = next(f for f in pp["flows"] if f["displayName"] == "Nightly payroll export")
        self.base = (
            f"https://api.flow.microsoft.com/providers/Microsoft.ProcessSimple/environments/"
            f"{flow['environment']}/flows/{flow['name']}"
        )
        self.env = flow["environment"]
        self.attacker = _client(emu, _who(seed, "customizer@"))
        self.secrets = {s["name"]: s["value"] for s in seed["vaults"][0]["secrets"]}

    def edit(self, definition: dict[str, Any]) -> requests.Response:
        return self.attacker.patch(self.base, params=V, json={"properties": {"definition": definition}})

    def run(self) -> dict[str, Any]:
        started = self.attacker.post(f"{self.base}/triggers/manual/run", params=V, json={})
        assert started.status_code == 202, started.text
        run_id = started.headers["x-ms-workflow-run-id"]
        return self.attacker.get(
            f"{self.base}/runs/{run_id}",
            params={  # type: ignore[no-any-return]
                **V,
                "$expand": "properties/actions",
            },
        ).json()

    def content(self, props: dict[str, Any]) -> Any:
        return self.attacker.get(props["outputsLink"]["uri"], headers={"Authorization": ""}).json()


def test_seed_attack_then_remediation(emu: Emulator, seed: dict[str, Any]) -> None:
    attack = Attack(emu, seed)
    payroll = attack.secrets["payroll-db-password"]

    # as seeded: secure outputs on, the value is not in the run history
    run = attack.run()
    assert run["properties"]["status"] == "Succeeded"
    assert "outputsLink" not in run["properties"]["actions"]["Get_secret"]
    assert payroll not in json.dumps(run)

    # 1. the System Customizer turns secure outputs off: the secret shows in run history
    assert (
        attack.edit(defs.definition({"Get_secret": defs.get_secret("payroll-db-password")})).status_code
        == 200
    )
    run = attack.run()
    assert attack.content(run["properties"]["actions"]["Get_secret"])["body"]["value"] == payroll

    # 2. List secrets + for-each Get secret: every secret in the vault is read, as the admin
    assert attack.edit(defs.dump_vault_definition()).status_code == 200
    run = attack.run()
    assert run["properties"]["status"] == "Succeeded"
    reps = attack.attacker.get(
        f"{attack.base}/runs/{run['name']}/actions/Get_secret/repetitions", params=V
    ).json()["value"]
    dumped = {body["name"]: body["value"] for body in (attack.content(r["properties"])["body"] for r in reps)}
    assert dumped == attack.secrets and len(dumped) == 30
    admin = _who(seed, "admin@")
    kv_callers = {r.caller_oid for r in emu.requests.filter(host="kv-shared-prod.vault.azure.net")}
    assert kv_callers == {admin}  # Key Vault saw the connection's identity, never the attacker

    # 3. remediation through ARM: remove `list` from the admin's access policy (a delta, not a replace)
    az = {"tenantId": seed["tenantId"], "subscriptionId": seed["subscriptions"][0]["subscriptionId"]}
    vault_url = (
        f"https://management.azure.com/subscriptions/{az['subscriptionId']}/resourceGroups/"
        f"rg-secrets-prod/providers/Microsoft.KeyVault/vaults/kv-shared-prod"
    )
    arm = Raw(emu, admin_token(emu))
    current = arm.call("GET", f"{vault_url}?api-version=2023-07-01").json()["properties"]["accessPolicies"]
    # remove compares case-sensitively: send the casing stored (the portal wrote `List`)
    stored = next(p for p in current if p["objectId"] == admin)["permissions"]["secrets"]
    entry = {
        "tenantId": az["tenantId"],
        "objectId": admin,
        "permissions": {"secrets": [p for p in stored if p.lower() == "list"]},
    }
    removed = arm.call(
        "PUT",
        f"{vault_url}/accessPolicies/remove?api-version=2023-07-01",
        json={"properties": {"accessPolicies": [entry]}},
    )
    assert removed.status_code == 200, removed.text
    # The PUT echoes the request entry (azure-rest-api-specs examples); the vault holds the result.
    assert removed.json()["properties"]["accessPolicies"] == [entry]
    after = arm.call("GET", f"{vault_url}?api-version=2023-07-01").json()["properties"]["accessPolicies"]
    policy = next(p for p in after if p["objectId"] == admin)
    assert [p.lower() for p in policy["permissions"]["secrets"]] == ["get"]

    # 4. the same edited flow now fails with Key Vault's 403
    run = attack.run()
    assert run["properties"]["status"] == "Failed"
    listed = run["properties"]["actions"]["List_secrets"]
    assert listed["status"] == "Failed" and listed["code"] == "Forbidden"
    error = attack.content(listed)
    assert error["statusCode"] == 403 and error["body"]["error"]["innererror"]["code"] == "ForbiddenByPolicy"
    assert run["properties"]["actions"]["Apply_to_each"]["status"] == "Skipped"


def test_dlp_block_list_secrets_stops_the_edit(emu: Emulator, seed: dict[str, Any]) -> None:
    attack = Attack(emu, seed)
    bap = _client(emu, _who(seed, "admin@"), POWERAPPS_AUDIENCE)
    created = bap.post(
        "https://api.bap.microsoft.com/providers/PowerPlatform.Governance/v2/policies",
        json={
            "policyDefinition": {
                "displayName": "Key Vault without enumeration",
                "environmentType": "AllEnvironments",
                "defaultConnectorsClassification": "General",
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
        },
    )
    assert created.status_code == 201
    refused = attack.edit(defs.dump_vault_definition())
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "DlpViolation"
    assert attack.run()["properties"]["status"] == "Succeeded"  # the seeded Get-secret flow still runs


def test_revoked_shares_are_gone_and_lose_their_rights(emu: Emulator, seed: dict[str, Any]) -> None:
    attack = Attack(emu, seed)
    admin = _client(emu, _who(seed, "admin@"))
    analyst_id = _who(seed, "analyst@")
    admin_flow = attack.base.replace("/environments/", "/scopes/admin/environments/")
    assert (
        admin.post(
            f"{admin_flow}/modifyPermissions", params=V, json={"delete": [{"id": analyst_id}]}
        ).status_code
        == 200
    )
    roles = {
        p["name"]: p["properties"]["roleName"]
        for p in admin.get(f"{admin_flow}/permissions", params=V).json()["value"]
    }
    assert analyst_id not in roles and roles[_who(seed, "admin@")] == "Owner"
    analyst = _client(emu, analyst_id)
    denied = analyst.patch(
        attack.base, params=V, json={"properties": {"definition": defs.dump_vault_definition()}}
    )
    assert denied.status_code == 403
    # the connection share too (Power Apps admin API)
    apps = _client(emu, _who(seed, "admin@"), POWERAPPS_AUDIENCE)
    conn = seed["powerPlatform"]["connections"][0]["name"]
    url = (
        f"https://api.powerapps.com/providers/Microsoft.PowerApps/scopes/admin/environments/{attack.env}"
        f"/apis/shared_keyvault/connections/{conn}"
    )
    v2 = {"api-version": "2017-06-01"}
    shares = apps.get(f"{url}/permissions", params=v2).json()["value"]
    share = next(s for s in shares if s["properties"]["principal"]["id"] == analyst_id)
    assert share["properties"]["principal"]["email"] == "analyst@contoso.example"
    assert (
        apps.post(f"{url}/modifyPermissions", params=v2, json={"delete": [{"id": share["id"]}]}).status_code
        == 200
    )
    assert analyst_id not in {
        s["properties"]["principal"]["id"] for s in apps.get(f"{url}/permissions", params=v2).json()["value"]
    }
