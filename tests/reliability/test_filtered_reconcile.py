"""A ticket whose plan is filtered (it names one remediation and its targets) does not settle an unrelated
Power Platform write an earlier run left pending: it does not plan that action only because of its
filter, so "not in place, not made by this run" would be a wrong `failed`. The row stays pending, and
the run that plans the fix again settles it. Through the real ticket trigger (the function app
in-process) against the seed tenant; the pending row is the one the shell writes before a write, left
as a crashed run leaves it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from emulator import Emulator
from emulator.scenario import load_scenario_file
from remediations.core.model import Action
from remediations.shell.apply import RunContext, _audit
from remediations.shell.audit import TableAuditSink
from remediations.shell.settings import AppSettings
from tests.emulator.test_powerplatform_attack import SEED
from tests.functions.conftest import ticket_body
from tests.reliability.test_flow_crash import ANALYST, DEMO_POLICY, PAYROLL, SUBSCRIPTION, VAULT
from tests.reliability.test_migration_crash import _rows_of


@pytest.fixture
def seed(storage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    policy = {**json.loads(DEMO_POLICY.read_text()), "dryRun": False}
    with Emulator(load_scenario_file(SEED)) as emulator:
        env = {
            **storage_env,
            **emulator.env,
            "VAULTGUARD_RUNS_TABLE": f"runs{uuid.uuid4().hex[:10]}",
            "VAULTGUARD_SUBSCRIPTION_IDS": SUBSCRIPTION,
            "VAULTGUARD_POLICY_JSON": json.dumps(policy),
            "VAULTGUARD_DRY_RUN": "false",
            "VAULTGUARD_STALE_RUN_SECONDS": "1",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield emulator


def _ticket(functions: dict[str, Any], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    import azure.functions as func

    request = func.HttpRequest(
        method="POST",
        url="http://localhost/api/remediations",
        headers={"content-type": "application/json"},
        params={},
        body=json.dumps(body).encode(),
    )
    response = functions["tickets"].get_user_function()(request)
    return response.status_code, json.loads(response.get_body())


def _shared(emu: Emulator) -> bool:
    with emu.state.lock:
        return ANALYST in emu.state.powerplatform.flows[PAYROLL].shares


def test_a_ticket_naming_another_fix_leaves_a_pending_share_revocation_pending(
    functions: dict[str, Any], seed: Emulator
) -> None:
    revoke = ticket_body(remediations=["revoke_flow_shares"], targets={"vaults": [VAULT]}, dryRun=True)
    status, planned = _ticket(functions, revoke)
    assert status == 200, planned
    [raw] = [a for a in planned["plan"] if a["target"].endswith(PAYROLL)]
    action = Action.model_validate(raw)
    # The row a run killed right after recording its intent leaves (the share was never revoked).
    _audit(
        TableAuditSink.from_settings(AppSettings.from_env()),
        RunContext(correlation_id="crashed-run", trigger="ticket", ticket_id="CHG-crashed"),
        action,
        sequence=0,
        state="pending",
    )
    time.sleep(1.2)  # older than VAULTGUARD_STALE_RUN_SECONDS

    other = ticket_body(remediations=["remove_list_permission"], targets={"vaults": [VAULT]}, dryRun=False)
    status, result = _ticket(functions, other)
    assert status == 202, result
    assert _shared(seed)
    assert [r.state for r in _rows_of(action.id)["crashed-run"]] == ["pending"]

    status, result = _ticket(functions, {**revoke, "ticketId": revoke["ticketId"] + "-2", "dryRun": False})
    assert status == 202, result
    assert not _shared(seed)
    runs = _rows_of(action.id)
    settled = runs.pop("crashed-run")
    assert [r.state for r in settled] == ["pending", "noop"]
    assert "planned again by this run" in settled[-1].reason
    [resent] = runs.values()
    assert [r.state for r in resent] == ["pending", "applied"]
