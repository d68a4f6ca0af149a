"""A crash mid Power Platform write through the real local runner (`python -m remediations serve`, its
own process): the emulator SIGKILLs the runner when the write of a fix arrives (Dataverse `PATCH
workflows({id})` of quarantine_flow, `RevokeAccess` of revoke_flow_shares, the DLP policy create of
enforce_keyvault_dlp), after its `pending` audit row. The re-sent ticket re-reads the target and
closes that row: `applied` when the write took effect
(and nothing is written again), `noop` when it did not (the re-sent ticket makes it, once). No secret
value of the tenant appears in any audit row."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from emulator import Emulator
from emulator.scenario import load_scenario_file
from emulator.wire import Request
from tests.emulator.test_powerplatform_attack import SEED
from tests.functions.conftest import ticket_body
from tests.reliability.test_migration_crash import _rows_of
from tests.security.test_safety_over_http import kill_runner_at, runner, send

DEMO_POLICY = Path(__file__).resolve().parents[2] / "demo" / "policy.json"
SCENARIO = json.loads(SEED.read_text())
SUBSCRIPTION = SCENARIO["subscriptions"][0]["subscriptionId"]
PAYROLL = next(
    f["name"] for f in SCENARIO["powerPlatform"]["flows"] if f["displayName"] == "Nightly payroll export"
)
ANALYST = next(s["principal"] for f in SCENARIO["powerPlatform"]["flows"] for s in f.get("shares", []))
SECRET_VALUES = [s["value"] for v in SCENARIO["vaults"] for s in v.get("secrets", []) if s.get("value")]
VAULT = next(
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{v['resourceGroup']}/providers/Microsoft.KeyVault/vaults/{v['name']}"
    for v in SCENARIO["vaults"]
    if v["name"] == "kv-shared-prod"
)


def _flow_patch(request: Request) -> bool:
    return request.method == "PATCH" and f"/workflows({PAYROLL})" in request.path


def _revoke(request: Request) -> bool:
    return request.method == "POST" and request.path.split("?")[0].endswith("/RevokeAccess")


@pytest.fixture
def seed(storage_env: dict[str, str]) -> Iterator[tuple[Emulator, dict[str, str]]]:
    """The seed tenant and the runner's settings: enforcing, flows quarantined, a run stale after 1 s."""
    policy = {**json.loads(DEMO_POLICY.read_text()), "dryRun": False}
    policy["powerPlatform"] = {**policy["powerPlatform"], "quarantineFlows": True}
    with Emulator(load_scenario_file(SEED)) as emulator:
        yield (
            emulator,
            {
                **storage_env,
                **emulator.env,
                "VAULTGUARD_RUNS_TABLE": f"runs{uuid.uuid4().hex[:10]}",
                "VAULTGUARD_SUBSCRIPTION_IDS": SUBSCRIPTION,
                "VAULTGUARD_POLICY_JSON": json.dumps(policy),
                "VAULTGUARD_DRY_RUN": "false",
                "VAULTGUARD_STALE_RUN_SECONDS": "1",
            },
        )


def _state(emu: Emulator) -> str:
    with emu.state.lock:
        return emu.state.powerplatform.flows[PAYROLL].state


def _shared(emu: Emulator) -> bool:
    with emu.state.lock:
        return ANALYST in emu.state.powerplatform.flows[PAYROLL].shares


def _dlp_write(request: Request) -> bool:
    return request.method in ("POST", "PATCH") and "/PowerPlatform.Governance/v2/policies" in request.path


def _list_secrets_blocked(emu: Emulator) -> bool:
    with emu.state.lock:
        policies = list(emu.state.powerplatform.dlp_policies.values())
    return any("ListSecrets" in json.dumps(p) for p in policies)


def _writes(emu: Emulator, mark: int, hit: Callable[[Request], bool]) -> int:
    return len([r for r in emu.requests.since(mark) if hit(r)])


CASES = {
    "quarantine_flow": (_flow_patch, lambda emu: _state(emu) == "Stopped"),
    "revoke_flow_shares": (_revoke, lambda emu: not _shared(emu)),
    "enforce_keyvault_dlp": (_dlp_write, _list_secrets_blocked),
}


@pytest.mark.parametrize("reaches", [True, False], ids=["write-took-effect", "write-never-arrived"])
@pytest.mark.parametrize("fix", sorted(CASES))
def test_a_runner_killed_at_a_power_platform_write_is_reconciled_by_the_resent_ticket(
    seed: tuple[Emulator, dict[str, str]], fix: str, reaches: bool
) -> None:
    emu, env = seed
    hit, done = CASES[fix]
    body = ticket_body(remediations=[fix], targets={"vaults": [VAULT]}, dryRun=False)
    with runner(env) as (port, _):
        status, planned = send(
            port, "POST", "/api/remediations", {**body, "ticketId": body["ticketId"] + "-dry", "dryRun": True}
        )
    assert status == 200, planned
    [action] = [a for a in planned["plan"] if a["target"].endswith(PAYROLL) or "/v2/policies/" in a["target"]]

    mark = emu.requests.mark()
    kill_runner_at(emu, env, body, hit, reaches=reaches)
    deadline = time.monotonic() + 10
    while reaches and not done(emu) and time.monotonic() < deadline:
        time.sleep(0.05)  # the emulator finishes the write after the kill
    assert done(emu) is reaches
    [(crashed, rows)] = _rows_of(action["id"]).items()
    assert [r.state for r in rows] == ["pending"], "killed after the intent, before the outcome"

    with runner(env) as (port, _):
        status, result = send(port, "POST", "/api/remediations", body)
    assert status == 202, result
    assert done(emu)
    runs = _rows_of(action["id"])
    settled = runs[crashed]
    assert [r.state for r in settled] == ["pending", "applied" if reaches else "noop"]
    outcome = settled[-1]
    assert outcome.reason.startswith("reconciled by run ")
    if reaches:  # in place: recorded applied and not planned, let alone written, again
        assert "the change is in place (re-read)" in outcome.reason and outcome.error is None
        assert set(runs) == {crashed} and _writes(emu, mark, hit) == 1
    else:  # the re-sent ticket makes the change, once
        assert "planned again by this run" in outcome.reason
        assert outcome.error is not None and outcome.error.startswith(
            "interrupted before the change took effect"
        )
        [resent] = [rows for run, rows in runs.items() if run != crashed]
        assert [r.state for r in resent] == ["pending", "applied"]
    for rows in runs.values():
        for row in rows:
            text = row.model_dump_json()
            assert not any(value in text for value in SECRET_VALUES), row
