"""`make demo` end to end: the same command as a subprocess (emulator, Azurite and the local function
runner as its children). It must exit 0, narrate every step, write the report with both graphs, and
never show a secret value (old or new) in its output or in any report file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "emulator" / "scenarios" / "seed.json"


def _values(scenario: dict[str, Any]) -> set[str]:
    return {
        str(version["value"])
        for vault in scenario["vaults"]
        for secret in vault["secrets"]
        for version in (secret.get("versions") or [secret])
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("demo")
    out, state = tmp / "out", tmp / "state.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTGUARD_")}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "demo", "--plain", "--out", str(out), "--state-out", str(state)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    return {
        "proc": proc,
        "out": out,
        "state": json.loads(state.read_text()) if state.exists() else None,
        "seconds": time.monotonic() - started,
    }


def test_demo_exits_0_and_tells_the_whole_story(demo: dict[str, Any]) -> None:
    proc = demo["proc"]
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout
    for marker in (
        "a. The attack, before vaultguard",
        "b. The exposure graph",
        "c. The fix, through the app's triggers",
        "POST /admin/functions/sweep",
        "POST /api/remediations (dryRun: true)",
        "[ok] the dry-run ticket pinned its plan and changed nothing",
        "[ok] the requester's own approval was refused (403)",
        "[ok] ciso@contoso.example's approval applied exactly the reviewed plan",
        "POST /api/alerts",
        "d. The attack, after vaultguard",
        "e. Summary",
        "[ok] before: the attacker read every secret in kv-shared-prod (30 of 30)",
        "[ok] the dry-run sweep planned the fix for every vault and changed nothing",
        "[ok] the app recognised its own change and did nothing",
        "[ok] the ticket applied and left no path the policy does not accept",
        "[ok] after: the same edit is refused (403)",
        "[ok] after: the attacker reads 0 secrets",
        "[ok] after: the revoked user cannot edit the flow (403)",
        "every old version disabled",
        "The story holds: exit 0",
    ):
        assert marker in text, marker
    # Narration a terminal shows whole: no line over 120 columns, the environment by name, and the
    # rotated/read difference explained.
    assert max(len(line) for line in text.splitlines()) <= 120
    assert "Contoso Finance (Production)" in text and "e0000000-0000-4000-8000-0000000000e1" not in text
    assert re.search(r"\d+ rotated vs 30 read: the attacker read 30 in kv-shared-prod", text)
    assert re.search(r"secrets the attacker read before\s+30\b", text)
    assert re.search(r"secrets the attacker read after\s+0\b", text)
    # the approval: the plan id and hash shown, the approve endpoint called by the requester, then another
    assert re.search(r"plan plan-[0-9a-f]{16}: \d+ action\(s\) to review", text)
    assert re.search(r"plan hash [0-9a-f]{64}", text)
    assert len(re.findall(r"POST /api/remediations/DEMO-[0-9A-F]{8}/approve", text)) == 2
    # closure: every path left is listed with its reason, none open; the customizer's role is gone
    assert re.search(r"after the fix: \d+ person -> flow -> secret path\(s\) left, 0 open", text)
    table = text.split("after the fix:", 1)[1].split("[ok] the ticket applied", 1)[0]
    assert "Casey Customizer" not in table and "this app" in table and "owner" in table
    assert all(len(line) <= 120 for line in table.splitlines())
    assert re.search(r"payroll-db-password = \*\*\*\*\(\d+ chars\)", text)  # masked, length only
    assert demo["seconds"] < 120


def test_report_files_have_both_graphs_and_the_replay(demo: dict[str, Any]) -> None:
    out: Path = demo["out"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count("<svg") >= 2
    assert {p.name for p in out.iterdir()} >= {"report.html", "report.md", "report.json", "report.sarif"}
    report = json.loads((out / "report.json").read_text())
    text = json.dumps(report)
    assert "payroll-db-password" in text and "Casey Customizer" in text  # attack replay: names only
    sarif = json.loads((out / "report.sarif").read_text())
    assert sarif["version"] == "2.1.0" and sarif["runs"][0]["results"]


def test_no_secret_value_anywhere(demo: dict[str, Any]) -> None:
    state = demo["state"]
    assert state is not None, "the demo did not hand over the emulator's final state"
    seed_values = _values(json.loads(SEED.read_text()))
    values = _values(state) | seed_values
    assert len(values) > len(seed_values)  # the rotated versions are in the final state
    texts = [demo["proc"].stdout, demo["proc"].stderr]
    texts += [p.read_text(encoding="utf-8") for p in demo["out"].iterdir()]
    leaked = [v for v in values for t in texts if v in t]
    assert not leaked, f"{len(leaked)} secret value(s) printed or written"


def test_rotated_secrets_old_versions_disabled_in_the_emulator(demo: dict[str, Any]) -> None:
    vault = next(v for v in demo["state"]["vaults"] if v["name"] == "kv-shared-prod")
    for secret in vault["secrets"]:
        *old, new = secret["versions"]
        assert old and not any(v["enabled"] for v in old) and new["enabled"], secret["name"]
    policies = {p["objectId"]: p["permissions"]["secrets"] for p in vault["accessPolicies"]}
    assert [p.lower() for p in policies["a0000000-0000-4000-8000-000000000001"]] == ["get"]
