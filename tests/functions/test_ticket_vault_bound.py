"""A ticket about one vault plans share revocations only on the flows that use that vault.

Through the ticket trigger (POST /api/remediations, in-process) on the seed: 'Nightly payroll export'
uses kv-shared-prod and is shared CanEdit beyond the allowed editors; 'SFTP upload' uses kv-svc-flows and
is shared CanView beyond them. The policy reads every Power Platform environment, so without the vault
bound a ticket for either vault would plan revocations on both flows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from emulator.scenario import load_scenario_file
from tests.emulator.test_powerplatform_attack import SEED
from tests.functions.conftest import Call, ticket_body

DEMO_POLICY = Path(__file__).resolve().parents[2] / "demo" / "policy.json"
SCENARIO = json.loads(SEED.read_text())
SUBSCRIPTION = SCENARIO["subscriptions"][0]["subscriptionId"]
FLOW_OF = {f["displayName"]: f["name"] for f in SCENARIO["powerPlatform"]["flows"]}


def _vault(name: str) -> str:
    group = next(v["resourceGroup"] for v in SCENARIO["vaults"] if v["name"] == name)
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{group}/providers/Microsoft.KeyVault/vaults/{name}"


@pytest.fixture
def seed_env(storage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with Emulator(load_scenario_file(SEED)) as emulator:
        for name, value in emulator.env.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("VAULTGUARD_RUNS_TABLE", f"runs{uuid.uuid4().hex[:10]}")
        monkeypatch.setenv("VAULTGUARD_SUBSCRIPTION_IDS", SUBSCRIPTION)
        monkeypatch.setenv("VAULTGUARD_POLICY_JSON", DEMO_POLICY.read_text())
        monkeypatch.delenv("VAULTGUARD_POLICY_FILE", raising=False)
        monkeypatch.delenv("VAULTGUARD_DRY_RUN", raising=False)  # deployment default: dry run
        yield emulator


def _flows_revoked(call: Call, vault: str) -> set[str]:
    body = ticket_body(remediations=["revoke_flow_shares"], targets={"vaults": [_vault(vault)]})
    response = call("tickets", "POST", "/api/remediations", body=body)
    assert response.status_code == 200, response.get_body()[:500]
    result: dict[str, Any] = json.loads(response.get_body())
    assert result["status"] == "planned"
    planned = [a for a in result["plan"] if a["remediation_id"] == "revoke_flow_shares"]
    return {a["target"].rstrip("/").rsplit("/", 1)[-1] for a in planned}


def test_a_ticket_for_one_vault_revokes_shares_only_on_that_vaults_flows(
    seed_env: Emulator, call: Call
) -> None:
    assert _flows_revoked(call, "kv-svc-flows") == {FLOW_OF["SFTP upload"]}
    assert _flows_revoked(call, "kv-shared-prod") == {FLOW_OF["Nightly payroll export"]}
