# ruff: noqa: F811 - the fixtures of test_report_cli_apply are imported, then requested by name
"""`vaultguard plan --out` then `apply --plan`: the stored plan is applied as it is, with the same
pinned-plan check as an approved ticket (remediations/core/pinned.py): a change planned after the
review is not made, and an action whose target drifted is skipped, not planned again. Real SDKs
against the emulator, the audit table on Azurite."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from emulator import Emulator
from emulator.azure.state import AccessPolicy
from emulator.scenario import load_scenario
from remediations.__main__ import EXIT_NOT_REVIEWED, main
from tests.emulator.test_report_cli_apply import (  # noqa: F401 - its fixtures, reused
    SP_ID,
    SUB,
    _policy,
    _scenario,
    emu,
)

OTHER_SP = "77777777-7777-4777-8777-777777777777"


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


def _apply_after(
    emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str], object_id: str, secrets: list[str]
) -> tuple[int, str]:
    """Store a plan, set `object_id`'s permissions (a change after the review), apply the stored plan:
    the access-policy removes it sent and what it printed."""
    plan = _stored_plan(tmp_path)
    _set_policy(emu, object_id, secrets)
    mark = emu.requests.mark()
    capsys.readouterr()
    assert main(["apply", "--plan", str(plan)]) == 0
    return _removes(emu, mark), capsys.readouterr().out


@pytest.mark.usefixtures("env", "storage_env")
def test_a_stored_plan_is_applied_as_reviewed_nothing_added(
    emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # After the review another identity gains List: a plan made now would narrow it too.
    removes, out = _apply_after(emu, tmp_path, capsys, OTHER_SP, ["Get", "List"])
    assert removes == 1 and out.startswith("applied")
    assert _secrets(emu, SP_ID) == ["Get"]
    assert _secrets(emu, OTHER_SP) == ["Get", "List"]


@pytest.mark.usefixtures("env", "storage_env")
def test_a_stored_plan_whose_target_drifted_is_skipped_not_replanned(
    emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    removes, out = _apply_after(emu, tmp_path, capsys, SP_ID, ["Get", "List", "Set"])
    assert removes == 0
    assert _secrets(emu, SP_ID) == ["Get", "List", "Set"]
    [line] = [x for x in out.splitlines() if x.startswith("skipped")]
    assert "drifted" in line


@pytest.mark.usefixtures("env", "storage_env")
def test_apply_with_the_reviewed_hash_refuses_a_plan_file_changed_since_and_applies_the_same_one(
    emu: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "plan.json"
    capsys.readouterr()
    assert main(["plan", "--scope", f"/subscriptions/{SUB}", "--out", str(plan)]) == 0
    out = capsys.readouterr().out
    [reviewed] = re.findall(r"--plan-hash ([0-9a-f]{64})", out)
    assert f"apply --plan {plan} --plan-hash {reviewed}" in out

    # The file is edited after the review: its action now removes `get` too.
    edited = tmp_path / "edited.json"
    data = json.loads(plan.read_text())
    data["actions"][0]["changes"][0]["permissions"]["secrets"] = ["list", "get"]
    edited.write_text(json.dumps(data))
    mark = emu.requests.mark()
    assert main(["apply", "--plan", str(edited), "--plan-hash", reviewed]) == EXIT_NOT_REVIEWED
    err = capsys.readouterr().err
    assert f"refused: {edited} is not the plan reviewed: its hash is " in err and reviewed in err
    assert err.rstrip().endswith("nothing written")
    assert emu.requests.since(mark) == [] and _secrets(emu, SP_ID) == ["Get", "List"]  # not even a read

    assert main(["apply", "--plan", str(plan), "--plan-hash", reviewed.upper()]) == 0
    assert capsys.readouterr().out.startswith("applied") and _secrets(emu, SP_ID) == ["Get"]


@pytest.mark.usefixtures("env", "storage_env")
def test_plan_hash_without_a_plan_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply", "--scope", f"/subscriptions/{SUB}", "--plan-hash", "0" * 64]) == 2
    assert "give --plan FILE" in capsys.readouterr().err
