"""The DLP policy is tenant-wide while a sweep's environment messages run side by side, each through the
real queue worker (`remediate_worker`) against the emulator, with the app's Table storage leases. Each
worker plans its own environment into the one policy: whoever writes second re-reads it under the
policy's lease (keyed by its display name) and adds its environment to the policy the other made, so
there is exactly one policy and no environment is lost, and every write is audited."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import pytest
from azure.data.tables import TableClient

from emulator import Emulator
from emulator.powerplatform import dlp
from emulator.scenario import load_scenario
from emulator.wire import Request, Response
from remediations.triggers.messages import ScopeMessage
from tests.emulator.test_powerplatform_attack import SEED

NAME = "vaultguard: Key Vault without enumeration"
POLICIES = "/providers/PowerPlatform.Governance/v2/policies"
# Environment names differ in their first 12 characters: the emulator names Dataverse hosts from them.
TWINS = ("e2000000-0000-4000-8000-0000000000e2", "e3000000-0000-4000-8000-0000000000e3")


def _tenant() -> dict[str, Any]:
    """The seed tenant, its environment, Key Vault connections and flows copied into two more."""
    seed: dict[str, Any] = json.loads(SEED.read_text())
    pp = seed["powerPlatform"]
    first = pp["environments"][0]
    for n, name in enumerate(TWINS, start=2):
        pp["environments"].append({**copy.deepcopy(first), "name": name, "displayName": f"Copy {n}"})
        for item in [c for c in pp["connections"] if c["environment"] == first["name"]]:
            pp["connections"].append(
                {**copy.deepcopy(item), "environment": name, "name": f"{item['name']}-{n}"}
            )
        for item in [f for f in pp["flows"] if f["environment"] == first["name"]]:
            twin = {**copy.deepcopy(item), "environment": name, "name": f"f{n}{item['name'][2:]}"}
            for reference in twin["connectionReferences"].values():
                reference["connectionName"] += f"-{n}"
            pp["flows"].append(twin)
    return seed


@pytest.fixture
def cloud(
    functions: dict[str, Any], storage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Emulator, list[str]]]:
    seed = _tenant()
    policy = {"powerPlatform": {"environments": ["*"], "dlp": {"blockListSecrets": True}}, "dryRun": False}
    with Emulator(load_scenario(seed)) as emulator:
        env = {
            **storage_env,
            **emulator.env,
            "VAULTGUARD_RUNS_TABLE": "runs" + storage_env["VAULTGUARD_AUDIT_TABLE"][5:],
            "VAULTGUARD_SUBSCRIPTION_IDS": seed["subscriptions"][0]["subscriptionId"],
            "VAULTGUARD_DRY_RUN": "false",
            "VAULTGUARD_POLICY_JSON": json.dumps(policy),
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield emulator, [e["name"] for e in seed["powerPlatform"]["environments"]]


def _work(functions: dict[str, Any], environment: str, start: threading.Barrier | None = None) -> None:
    message = ScopeMessage(
        kind="environment", id=environment, sweepId="sweep-1", dryRun=False, enqueuedAt=datetime.now(UTC)
    )
    if start is not None:
        start.wait()
    functions["remediate_worker"].get_user_function()(
        func.QueueMessage(id=f"m-{environment}", body=message.model_dump_json().encode())
    )


def _ours(emu: Emulator) -> list[dict[str, Any]]:
    with emu.state.lock:
        policies = copy.deepcopy(list(emu.state.powerplatform.dlp_policies.values()))
    return [p for p in policies if p["policyDefinition"]["displayName"] == NAME]


def _covered(policy: dict[str, Any]) -> set[str]:
    return {e["name"] for e in policy["policyDefinition"]["environments"]}


def _dlp_rows() -> list[dict[str, Any]]:
    from os import environ

    table = TableClient.from_connection_string(
        environ["AzureWebJobsStorage"], environ["VAULTGUARD_AUDIT_TABLE"]
    )
    return [r for r in table.list_entities() if r["remediation_id"] == "enforce_keyvault_dlp"]


def _together(functions: dict[str, Any], environments: list[str]) -> None:
    start = threading.Barrier(len(environments))
    threads = [threading.Thread(target=_work, args=(functions, e, start)) for e in environments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)


def test_two_environment_workers_that_both_find_no_policy_make_one(
    functions: dict[str, Any], cloud: tuple[Emulator, list[str]]
) -> None:
    emu, environments = cloud
    pair = environments[:2]
    mark = emu.requests.mark()
    _together(functions, pair)
    [policy] = _ours(emu)
    assert _covered(policy) == set(pair)
    assert "ListSecrets" in json.dumps(policy["connectorConfigurationsDefinition"])
    writes = [
        r.method for r in emu.requests.since(mark) if r.method in ("POST", "PATCH") and POLICIES in r.path
    ]
    assert writes == ["POST", "PATCH"]  # the second re-read the policy under the lease and updated it
    rows = _dlp_rows()
    assert sorted(r["state"] for r in rows) == ["applied", "applied", "pending", "pending"]
    assert len({r["PartitionKey"] for r in rows}) == 2  # one action per worker, each audited in its run


def test_a_create_and_an_update_planned_from_different_reads_lose_no_environment(
    functions: dict[str, Any], cloud: tuple[Emulator, list[str]]
) -> None:
    """Worker C read no policy and plans to create it; before it writes, another writer makes the policy
    (for the first environment) and worker B, reading it then, plans an update by the policy's id. C
    reaches its PATCH with the policy as it read it; were the update on another lease than the create,
    B's PATCH would land in between and C's would drop B's environment."""
    emu, (first, b_env, c_env) = cloud
    lists = 0
    b_started = threading.Event()

    def made_meanwhile(request: Request) -> Response | None:
        nonlocal lists
        if request.method == "GET" and request.path == POLICIES:
            lists += 1
            if lists == 2:  # C's re-read under its lease: the policy appears, and B starts
                body = {
                    "policyDefinition": {
                        "displayName": NAME,
                        "environmentType": "OnlyEnvironments",
                        "environments": [{"name": first}],
                    },
                    "connectorConfigurationsDefinition": {
                        "connectorActionConfigurations": [
                            {
                                "connectorId": "/providers/Microsoft.PowerApps/apis/shared_keyvault",
                                "defaultConnectorActionRuleBehavior": "Allow",
                                "actionRules": [{"actionId": "ListSecrets", "behavior": "Block"}],
                            }
                        ]
                    },
                }
                with emu.state.lock:
                    emu.state.powerplatform.dlp_policies["p-first"] = dlp.normalise(
                        emu.state, body, "p-first", None, "someone"
                    )
                b_started.set()
        if (
            request.method == "PATCH"
            and c_env in (request.body or b"").decode()
            and b_env not in request.body.decode()
        ):
            deadline = time.monotonic() + 3  # C's stale write waits for B's, if B can write meanwhile
            while time.monotonic() < deadline and not any(b_env in _covered(p) for p in _ours(emu)):
                time.sleep(0.05)
        return None

    emu.middlewares.append(made_meanwhile)
    try:
        c = threading.Thread(target=_work, args=(functions, c_env))
        c.start()
        assert b_started.wait(timeout=60)
        _work(functions, b_env)
        c.join(timeout=120)
    finally:
        emu.middlewares.remove(made_meanwhile)
    [policy] = _ours(emu)
    assert _covered(policy) == {first, b_env, c_env}
    rows = _dlp_rows()
    assert sorted(r["state"] for r in rows) == ["applied", "applied", "pending", "pending"]
