"""Scenario files (validation, seeding with fixed ids, dump round trip) and the scale generator."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from emulator import Emulator
from emulator.azure.generator import generate
from emulator.scenario import ScenarioError, dump_scenario, load_scenario, load_scenario_file

TENANT = "11111111-1111-4111-8111-111111111111"
SUB = "22222222-2222-4222-8222-222222222222"
ADMIN = {
    "clientId": "33333333-3333-4333-8333-333333333333",
    "clientSecret": "admin-secret-value",
    "objectId": "44444444-4444-4444-8444-444444444444",
}
APP_ID = "55555555-5555-4555-8555-555555555555"
SP_ID = "66666666-6666-4666-8666-666666666666"
ORPHAN = "77777777-7777-4777-8777-777777777777"


def _scenario() -> dict[str, Any]:
    return {
        "tenantId": TENANT,
        "subscriptions": [{"subscriptionId": SUB, "displayName": "Prod"}],
        "admin": ADMIN,
        "users": [
            {"id": "88888888-8888-4888-8888-888888888888", "userPrincipalName": "maker@contoso.example"}
        ],
        "applications": [
            {
                "appId": APP_ID,
                "displayName": "flow-connection",
                "servicePrincipalId": SP_ID,
                "passwords": [{"secretText": "connection-secret"}],
            }
        ],
        "vaults": [
            {
                "name": "kv-seeded",
                "resourceGroup": "rg-seeded",
                "tags": {"purpose": "payroll"},
                "accessPolicies": [
                    {"objectId": SP_ID, "permissions": {"secrets": ["Get", "List"]}},
                    {"objectId": ORPHAN, "permissions": {"secrets": ["Get"]}},
                ],
                "secrets": [
                    {"name": "db-password", "value": "hunter2", "tags": {"owner": "payroll"}},
                    {"name": "api-key", "versions": [{"value": "old", "enabled": False}, {"value": "new"}]},
                ],
            },
            {
                "name": "kv-rbac-seeded",
                "resourceGroup": "rg-seeded",
                "enableRbacAuthorization": True,
                "secrets": [{"name": "only", "value": "x"}],
            },
        ],
        "roleAssignments": [
            {
                "scope": f"/subscriptions/{SUB}/resourceGroups/rg-seeded/providers/Microsoft.KeyVault/vaults/"
                "kv-rbac-seeded/secrets/only",
                "roleName": "Key Vault Secrets User",
                "principalId": SP_ID,
            }
        ],
        "storageAccounts": [{"name": "stseeded", "resourceGroup": "rg-seeded"}],
        "powerPlatform": {},  # the Power Platform loader validates this section
    }


@pytest.mark.filterwarnings("ignore:scenario. 'powerPlatform' ignored")
def test_a_seeded_tenant_works_with_the_sdks(monkeypatch: pytest.MonkeyPatch) -> None:
    with Emulator(load_scenario(_scenario())) as emu:
        for name, value in emu.env.items():
            monkeypatch.setenv(name, value)
        assert emu.env["AZURE_TENANT_ID"] == TENANT and emu.env["AZURE_CLIENT_ID"] == ADMIN["clientId"]
        connection = ClientSecretCredential(TENANT, APP_ID, "connection-secret")
        client = SecretClient("https://kv-seeded.vault.azure.net/", connection)
        assert client.get_secret("db-password").value == "hunter2"
        assert sorted(p.name for p in client.list_properties_of_secrets()) == ["api-key", "db-password"]
        versions = list(client.list_properties_of_secret_versions("api-key"))
        assert sorted(v.enabled for v in versions) == [False, True]
        rbac = SecretClient("https://kv-rbac-seeded.vault.azure.net/", connection)
        assert rbac.get_secret("only").value == "x"
        with pytest.raises(HttpResponseError):
            list(rbac.list_properties_of_secrets())


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (
            lambda s: s["vaults"][0]["accessPolicies"][1].update(objectId="not-a-guid"),
            "vaults.0.accessPolicies.1.objectId",
        ),
        (
            lambda s: s["vaults"][0]["accessPolicies"][0]["permissions"].update(secrets=["get", "readall"]),
            "vaults.0.accessPolicies.0.permissions",
        ),
        (lambda s: s["vaults"][1].update(name="1-bad"), "vaults.1.name"),
        (lambda s: s["roleAssignments"][0].update(roleName="Key Vault Wizard"), "roleAssignments.0"),
        (lambda s: s["vaults"][0]["secrets"][0].pop("value"), "vaults.0.secrets.0"),
        (lambda s: s.update(vault=[]), "vault"),
        (
            lambda s: s["vaults"][0].update(subscriptionId="99999999-9999-4999-8999-999999999999"),
            "vaults.0.subscriptionId",
        ),
    ],
)
def test_validation_errors_name_the_field(mutate: Any, field: str) -> None:
    scenario = _scenario()
    mutate(scenario)
    with pytest.raises(ScenarioError) as error:
        load_scenario(scenario)
    assert f"\n  {field}" in str(error.value), str(error.value)


def test_a_scenario_file_that_is_not_json_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{nope")
    with pytest.raises(ScenarioError, match="not valid JSON"):
        load_scenario_file(path)


@pytest.mark.filterwarnings("ignore:scenario. 'powerPlatform' ignored")
def test_dump_round_trips(tmp_path: Path) -> None:
    original = load_scenario(_scenario())
    emu = Emulator(original)
    path = tmp_path / "dump.json"
    emu.dump(path)
    again = load_scenario_file(path)
    first, second = dump_scenario(original), dump_scenario(again)
    # Secret versions get new ids on load; everything else is identical.
    assert first == second
    assert again.azure.vaults["kv-seeded"].access_policies[1].object_id == ORPHAN


def test_serve_dumps_the_state_on_exit(tmp_path: Path) -> None:
    dump = tmp_path / "state.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve", "--dump", str(dump)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=os.getcwd(),
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "ready":
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    data = json.loads(dump.read_text())
    assert len(data["subscriptions"]) == 1 and data["vaults"] == []
    assert data["roleAssignments"][0]["principalId"] == data["admin"]["objectId"]


def test_generator_builds_large_tenants_deterministically() -> None:
    first = generate(
        vaults=300, secrets_per_vault=30, identities=20, noncompliant_share=0.2, rbac_share=0.1, seed=7
    )
    again = generate(
        vaults=300, secrets_per_vault=30, identities=20, noncompliant_share=0.2, rbac_share=0.1, seed=7
    )
    assert first.secret_count == 9000
    assert first.noncompliant_vaults == again.noncompliant_vaults
    assert 30 < len(first.noncompliant_vaults) < 100
    assert first.rbac_vaults and first.orphaned_object_ids
    vault = first.state.azure.vaults[first.noncompliant_vaults[0]]
    assert vault.enable_rbac_authorization or any(
        "List" in p.permissions.get("secrets", []) for p in vault.access_policies
    )
    assert first.state.azure.tenant_id == again.state.azure.tenant_id


def test_generated_tenant_is_served(monkeypatch: pytest.MonkeyPatch) -> None:
    generated = generate(vaults=3, secrets_per_vault=60, identities=2, noncompliant_share=1.0, seed=1)
    with Emulator(generated.state) as emu:
        for name, value in emu.env.items():
            monkeypatch.setenv(name, value)
        vault = generated.noncompliant_vaults[0]
        policy = emu.state.azure.vaults[vault].access_policies[0]
        identity = next(i for i in generated.identities if i.object_id == policy.object_id)
        client = SecretClient(
            f"https://{vault}.vault.azure.net/",
            ClientSecretCredential(emu.state.azure.tenant_id, identity.app_id, identity.secret),
        )
        mark = emu.requests.mark()
        assert len(list(client.list_properties_of_secrets())) == 60
        pages = [e for e in emu.requests.since(mark) if e.path == "/secrets"]
        assert [e.status for e in pages] == [401, 200, 200, 200]  # the challenge, then 25 + 25 + 10
