"""Power Platform work once per sweep, not once per vault, on emulator/scenarios/seed.json.

The timer tick enqueues one message per vault and one per Power Platform environment. Vault workers plan
only the Key Vault remediations (they still read the flows: `allowList: fromFlows` narrows from them);
the environment worker revokes the shares and writes the DLP policy, exactly once, audited, under the
sweep's budget. A redelivery of every message writes nothing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import azure.functions as func
import pytest
from azure.data.tables import TableClient
from azure.functions.timer import TimerRequest
from azure.storage.queue import QueueClient

from emulator import Emulator
from emulator.powerplatform.dataverse import dataverse_id
from emulator.scenario import load_scenario_file
from remediations.triggers.messages import ScopeMessage
from remediations.triggers.runs import RunStore
from tests.emulator.test_powerplatform_attack import SEED, _who

PP_REMEDIATIONS = {"revoke_flow_shares", "revoke_connection_shares", "enforce_keyvault_dlp"}


@pytest.fixture(scope="module")
def seed() -> dict[str, Any]:
    return json.loads(SEED.read_text())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def cloud() -> Iterator[Emulator]:
    with Emulator(load_scenario_file(SEED)) as emulator:
        yield emulator


@pytest.fixture
def app(
    cloud: Emulator, seed: dict[str, Any], storage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    admin, svc = _who(seed, "admin@"), _who(seed, "svc-flows@")
    policy = {
        "allowList": "fromFlows",
        "serviceAccounts": [svc],
        "powerPlatform": {
            "environments": ["*"],
            "allowedFlowEditors": [admin],
            "allowedConnectionUsers": [admin],
            "dlp": {"blockListSecrets": True},
        },
        "maxActionsPerRun": 100,
        "dryRun": False,
    }
    env = {**storage_env, **cloud.env}
    env.update(
        {
            "VAULTGUARD_RUNS_TABLE": "runs" + storage_env["VAULTGUARD_AUDIT_TABLE"][5:],
            "VAULTGUARD_SUBSCRIPTION_IDS": seed["subscriptions"][0]["subscriptionId"],
            "VAULTGUARD_DRY_RUN": "false",
            "VAULTGUARD_MAX_ACTIONS_PER_RUN": "100",
            "VAULTGUARD_POLICY_JSON": json.dumps(policy),
        }
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _receive_all(env: dict[str, str]) -> list[Any]:
    queue = QueueClient.from_connection_string(env["AzureWebJobsStorage"], env["VAULTGUARD_QUEUE_NAME"])
    messages: list[Any] = []
    while batch := list(queue.receive_messages(max_messages=32, visibility_timeout=300)):
        messages.extend(batch)
    return messages


def _drain(functions: dict[str, Any], bodies: list[bytes], suffix: str) -> None:
    worker = functions["remediate_worker"].get_user_function()
    with ThreadPoolExecutor(max_workers=8) as pool:  # the host runs a batch side by side
        list(
            pool.map(
                lambda i: worker(func.QueueMessage(id=f"m{i}{suffix}", body=bodies[i])), range(len(bodies))
            )
        )


def _pp_writes(emu: Emulator, mark: int) -> list[Any]:
    return [
        r
        for r in emu.requests.since(mark)
        if r.method in {"POST", "PATCH"}
        and (
            r.path.endswith(("/modifyPermissions", "/RevokeAccess"))
            or "PowerPlatform.Governance/v2/policies" in r.path
        )
    ]


def test_the_sweep_fixes_shares_and_dlp_once_per_environment(
    functions: dict[str, Any], app: dict[str, str], cloud: Emulator, seed: dict[str, Any]
) -> None:
    analyst = _who(seed, "analyst@")
    functions["sweep"].get_user_function()(TimerRequest())
    received = _receive_all(app)
    bodies = [base64.b64decode(m.content) for m in received]
    scopes = [ScopeMessage.model_validate_json(b) for b in bodies]
    environments = [e["name"] for e in seed["powerPlatform"]["environments"]]
    assert sorted(s.kind for s in scopes) == ["environment"] * len(environments) + ["vault"] * len(
        seed["vaults"]
    )
    assert sorted(s.id for s in scopes if s.kind == "environment") == sorted(environments)
    assert len({s.sweepId for s in scopes}) == 1

    mark = cloud.requests.mark()
    _drain(functions, bodies, "")
    writes = _pp_writes(cloud, mark)
    flow_writes = [r for r in writes if r.path.endswith("/RevokeAccess")]  # Dataverse: one per share
    connection_writes = [r for r in writes if "/connections/" in r.path]
    dlp_writes = [r for r in writes if "Governance" in r.path]
    # Payroll export (CanEdit) and SFTP upload (CanView) were shared with the analyst; the payroll
    # connection too. One write each, and one DLP policy: not one per vault worker.
    assert len(flow_writes) == 2 and len(connection_writes) == 1 and len(dlp_writes) == 1
    # Each RevokeAccess names the analyst's Dataverse user in the flow's own environment.
    targets = [json.loads(r.body)["Target"]["workflowid"] for r in flow_writes]
    flows_by_id = cloud.state.powerplatform.flows
    assert sorted(json.loads(r.body)["Revokee"]["ownerid"] for r in flow_writes) == sorted(
        dataverse_id(flows_by_id[t].environment, analyst) for t in targets
    )
    assert dlp_writes[0].method == "POST" and dlp_writes[0].status in {200, 201}
    with cloud.state.lock:
        pp = cloud.state.powerplatform
        assert all(analyst not in f.shares for f in pp.flows.values() if f.creator != analyst)
        assert all(
            s.principal_id != analyst
            for c in pp.connections.values()
            if c.created_by != analyst
            for s in c.shares.values()
        )
        ours = [p for p in pp.dlp_policies.values() if "ListSecrets" in json.dumps(p)]
        assert len(ours) == 1

    store = RunStore.from_env()
    records = {s.kind + ":" + s.id: store.get("scope", s.idempotency_key()) for s in scopes}
    planned = {
        key: {a["remediation_id"] for a in (r.body or {}).get("plan", [])}
        for key, r in records.items()
        if r is not None
    }
    assert len(planned) == len(scopes)
    for key, remediations in planned.items():
        if key.startswith("vault:"):
            assert not remediations & PP_REMEDIATIONS, key  # vault workers leave Power Platform alone
        else:
            assert remediations == PP_REMEDIATIONS, key
    assert any(planned[k] for k in planned if k.startswith("vault:"))  # the Key Vault fixes still ran

    # Audited: pending + applied per Power Platform write, trigger timer, the sweep id as ticket id.
    audit = TableClient.from_connection_string(app["AzureWebJobsStorage"], app["VAULTGUARD_AUDIT_TABLE"])
    rows = [r for r in audit.query_entities("trigger eq 'timer'") if r["remediation_id"] in PP_REMEDIATIONS]
    assert sorted(r["state"] for r in rows) == ["applied"] * 4 + ["pending"] * 4
    assert {r["ticket_id"] for r in rows} == {scopes[0].sweepId}

    # Every message delivered again: nothing more is written.
    mark = cloud.requests.mark()
    _drain(functions, bodies, "-again")
    assert _pp_writes(cloud, mark) == []
    assert not [r for r in cloud.requests.since(mark) if r.method == "PUT" and "/accessPolicies/" in r.path]


def test_vault_workers_of_one_sweep_share_one_power_platform_read(
    functions: dict[str, Any], app: dict[str, str], cloud: Emulator, seed: dict[str, Any]
) -> None:
    """Each vault worker needs the flows (fromFlows allow-lists, exposure), but an instance working
    through a sweep reads each environment's flows once for all its vault messages, not once per vault;
    a later sweep reads afresh."""
    from remediations.shell.pipeline import SWEEP_POWER_PLATFORM

    SWEEP_POWER_PLATFORM.clear()
    environments = [e["name"] for e in seed["powerPlatform"]["environments"]]
    vaults = len(seed["vaults"])
    assert vaults > 1

    def flow_lists(mark: int) -> int:
        return sum(
            1
            for r in cloud.requests.since(mark)
            if r.method == "GET" and r.path.endswith("/api/data/v9.2/workflows")  # Dataverse flow list
        )

    for sweep in range(2):
        functions["sweep"].get_user_function()(TimerRequest())
        bodies = [base64.b64decode(m.content) for m in _receive_all(app)]
        assert sum(ScopeMessage.model_validate_json(b).kind == "vault" for b in bodies) == vaults
        mark = cloud.requests.mark()
        _drain(functions, bodies, f"-shared-{sweep}")
        # one list per environment for its own worker, plus one shared by every vault worker
        assert flow_lists(mark) == 2 * len(environments), sweep
