"""`vaultguard plan --out` then `apply --plan`: the stored plan is applied as it is, with the same
pinned-plan check as an approved ticket (remediations/core/pinned.py): a change planned after the
review is not made, and an action whose target drifted is skipped, not planned again. Real SDKs
against the emulator, the audit table on Azurite."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulator import Emulator
from emulator.azure.state import AccessPolicy
from emulator.scenario import load_scenario
from remediations.__main__ import main
from tests.emulator.test_report_cli_apply import ADMIN, SP_ID, SUB, _scenario

OTHER_SP = "77777777-7777-4777-8777-777777777777"


@pytest.fixture(autouse=True)
def _policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTGUARD_POLICY_JSON", json.dumps({"breakGlass": [ADMIN["objectId"]]}))


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(load_scenario(_scenario())) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _fresh_vault(emu: Emulator) -> None:
    fresh = load_scenario(copy.deepcopy(_scenario())).azure.vaults["kv-report"]
    with emu.state.lock:
        emu.state.azure.vaults["kv-report"].access_policies = fresh.access_policies


def _set_policy(emu: Emulator, object_id: str, secrets: list[str]) -> None:
    with emu.state.lock:
        vault = emu.state.azure.vaults["kv-report"]
        kept = [e for e in vault.access_policies if e.object_id != object_id]
        kept.append(AccessPolicy(emu.state.azure.tenant_id, object_id, permissions={"secrets": secrets}))
        vault.access_policies = kept


def _secrets(emu: Emulator, object_id: str) -> list[str]:
    with emu.state.lock:
        vault = emu.state.azure.vaults["kv-report"]
        return [
            p for e in vault.access_policies if e.object_id == object_id for p in e.permissions["secrets"]
        ]


def _removes(emu: Emulator, mark: int) -> int:
    return len(
        [
            r
            for r in emu.requests.since(mark)
            if r.method == "PUT" and r.path.endswith("/accessPolicies/remove")
        ]
    )


def _stored_plan(tmp_path: Path) -> Path:
    path = tmp_path / "plan.json"
    assert main(["plan", "--scope", f"/subscriptions/{SUB}", "--out", str(path)]) == 0
    [action] = json.loads(path.read_text())["actions"]
    assert (action["principal"], action["before"]["secrets"]) == (SP_ID, ["Get", "List"])
    return path


def test_a_stored_plan_is_applied_as_reviewed_nothing_added(
    emu: Emulator,
    env: dict[str, str],
    storage_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = _stored_plan(tmp_path)
    _set_policy(emu, OTHER_SP, ["Get", "List"])  # after the review: a plan made now would narrow it too
    mark = emu.requests.mark()
    capsys.readouterr()
    assert main(["apply", "--plan", str(plan)]) == 0
    assert _removes(emu, mark) == 1
    assert _secrets(emu, SP_ID) == ["Get"]
    assert _secrets(emu, OTHER_SP) == ["Get", "List"]
    assert capsys.readouterr().out.startswith("applied")


def test_a_stored_plan_whose_target_drifted_is_skipped_not_replanned(
    emu: Emulator,
    env: dict[str, str],
    storage_env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plan = _stored_plan(tmp_path)
    _set_policy(emu, SP_ID, ["Get", "List", "Set"])
    mark = emu.requests.mark()
    capsys.readouterr()
    assert main(["apply", "--plan", str(plan)]) == 0
    assert _removes(emu, mark) == 0
    assert _secrets(emu, SP_ID) == ["Get", "List", "Set"]
    [line] = [x for x in capsys.readouterr().out.splitlines() if x.startswith("skipped")]
    assert "drifted" in line
