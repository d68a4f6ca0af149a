"""Verify closure, not the action. One pipeline run with the demo policy applies its plan on
the seed, then re-reads and lists the person -> flow -> secret paths left, each with its reason. The
System Customizer's path through the admin's connection is not accepted by the policy, so the run
fails. The emulator holds the quarantine (the customizer may not turn the flow back on) while closure
conservatively keeps listing the path; every other attack is in tests/emulator/test_attacks.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from emulator.powerplatform import definitions as defs
from remediations.adapters.clients import AzureClients
from remediations.core.model import Scope
from remediations.core.policy import parse_policy
from remediations.core.request import RunRequest
from remediations.shell.audit import MemoryAuditSink
from remediations.shell.pipeline import run
from tests.emulator.test_powerplatform_attack import Attack, _who

V = {"api-version": "2016-11-01"}
DEMO_POLICY = Path(__file__).resolve().parents[2] / "demo" / "policy.json"


def _ids(result: Any, remediation: str) -> set[str]:
    return {a.id for a in result.plan.actions if a.remediation_id == remediation}


@pytest.fixture
def emu(seeded_emu: Emulator) -> Emulator:
    return seeded_emu  # the seed scenario, fresh per test (conftest.py)


def test_apply_lists_paths_left_with_reasons_and_fails_on_unaccepted(
    emu: Emulator, seed: dict[str, Any]
) -> None:
    admin, customizer = _who(seed, "admin@"), _who(seed, "customizer@")
    demo = json.loads(DEMO_POLICY.read_text())
    demo["powerPlatform"]["quarantineFlows"] = True
    policy = parse_policy({**demo, "dryRun": False})
    request = RunRequest(
        trigger="cli",
        scope=Scope(subscription_id=seed["subscriptions"][0]["subscriptionId"]),
        power_platform=policy.power_platform.scope(),
        correlation_id="closure-1",
    )
    with AzureClients() as clients:
        result = run(request, policy, clients, MemoryAuditSink())
    assert result.count("applied") > 0
    assert result.paths_left is not None  # verified from a fresh read
    payroll = next(f for f in seed["powerPlatform"]["flows"] if f["displayName"] == "Nightly payroll export")
    left = {(p.person, p.flow, p.secret.rsplit("/", 1)[-1]): p for p in result.paths_left}
    # the owner's own path stays, with its reason
    assert left[(admin, payroll["name"], "*")].reason == "owner"
    # the customizer's path through the admin's connection is not accepted: the run failed
    kept = left[(customizer, payroll["name"], "*")]
    assert kept.reason is None and kept.via == "environment_role"
    assert kept in result.unaccepted_paths
    assert result.failures >= len(result.unaccepted_paths) > 0
    # ... and listing, not counting: every path names person, flow and secret; no secret value
    values = {s["value"] for v in seed["vaults"] for s in v["secrets"]}
    dumped = json.dumps([p.model_dump() for p in result.paths_left])
    assert not any(v in dumped for v in values)

    # the flow was quarantined (Dataverse PATCH statecode 0, verified by a re-read) ...
    assert any(
        o.status == "applied" for o in result.outcomes if o.action_id in _ids(result, "quarantine_flow")
    )
    patches = [r for r in emu.requests.filter(method="PATCH") if f"workflows({payroll['name']})" in r.path]
    assert patches and emu.state.powerplatform.flows[payroll["name"]].state == "Stopped"
    # ... and the emulator holds the quarantine: List + for-each is refused by the DLP policy the run
    # made (Key Vault never asked), and the customizer, not a co-owner and not allowed to use the admin's
    # connection, cannot turn the flow back on (ConnectionAuthorizationFailed, docs/fidelity.md). Closure
    # still lists the path: it counts every editor of a turned-off flow (it cannot see who may turn it on).
    attack = Attack(emu, seed)
    kv_mark = len(emu.requests.filter(host="kv-shared-prod.vault.azure.net"))
    dumped = attack.edit(defs.dump_vault_definition())
    assert dumped.status_code == 403 and dumped.json()["error"]["code"] == "DlpViolation"
    started = attack.attacker.post(f"{attack.base}/start", params=V)
    assert started.status_code == 403 and started.json()["error"]["code"] == "ConnectionAuthorizationFailed"
    assert emu.state.powerplatform.flows[payroll["name"]].state == "Stopped"
    edit = defs.definition({"Get_secret": defs.get_secret("payroll-db-password")})
    assert attack.edit(edit).status_code == 200  # editing is allowed; running a flow that is off is not
    refused = attack.attacker.post(f"{attack.base}/triggers/manual/run", params=V, json={})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "WorkflowNotEnabled"
    assert len(emu.requests.filter(host="kv-shared-prod.vault.azure.net")) == kv_mark
