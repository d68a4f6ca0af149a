"""The CLI on a stored snapshot (no Azure needed): plan shows the diff; bad policy exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from remediations.__main__ import main
from remediations.core.model import Plan
from tests.unit.kv_builders import policy_entry, snapshot, vault
from tests.unit.report_builders import seed_snapshot


@pytest.fixture
def snapshot_file(tmp_path: Path) -> Path:
    path = tmp_path / "snapshot.json"
    path.write_text(snapshot(vault("kv", policy_entry("u1", "get", "List", "set"))).model_dump_json())
    return path


def test_plan_json_from_snapshot(
    snapshot_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"secretPermissions": {"default": ["get", "set"]}}))
    out = tmp_path / "plan.json"
    code = main(
        ["plan", "--snapshot", str(snapshot_file), "--policy", str(policy), "--json", "--out", str(out)]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    [action] = printed["plan"]["actions"]
    assert action["changes"][0]["permissions"]["secrets"] == ["List"]
    assert action["after"]["secrets"] == ["get", "set"] and printed["plan"]["dry_run"] is True
    assert Plan.model_validate_json(out.read_text()).actions[0].id == action["id"]


def test_plan_text_shows_the_diff(snapshot_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--snapshot", str(snapshot_file)]) == 0
    text = capsys.readouterr().out
    assert "secrets: get, List, set -> get, set" in text and "PUT accessPolicies/remove secrets=List" in text
    # No Python reprs, no `principal=None`: a reader sees names and plain lists.
    assert "[" not in text and "None" not in text
    assert "CHANGE   remove_list_permission on kv for u1 (u1)" in text


def test_plan_text_names_people_and_flows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    snap_file = tmp_path / "seed.json"
    snap_file.write_text(seed_snapshot().model_dump_json())
    assert main(["plan", "--snapshot", str(snap_file)]) == 0
    text = capsys.readouterr().out
    assert "revoke_flow_shares on Payroll sync" in text
    assert "for Ada Admin (admin)" in text
    assert "principal=None" not in text and "['" not in text


def test_graph_and_list_remediations(snapshot_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", "--snapshot", str(snapshot_file)]) == 0
    assert "principal:u1 -[access_policy:get,list,set]->" in capsys.readouterr().out
    assert main(["list-remediations", "--json"]) == 0
    assert {r["id"] for r in json.loads(capsys.readouterr().out)} >= {"remove_list_permission"}


def test_invalid_policy_exits_2_naming_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "bad.json"
    policy.write_text(json.dumps({"maxActionsPerRun": -1}))
    assert main(["list-remediations", "--policy", str(policy)]) == 2
    assert "maxActionsPerRun" in capsys.readouterr().err


def test_graph_who_can_read_and_what_can_read_on_a_power_platform_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.unit.pp_builders import CUSTOMIZER, seed_like

    path = tmp_path / "pp.json"
    path.write_text(seed_like().model_dump_json())
    assert main(["graph", "--snapshot", str(path), "--who-can-read", "kv/crm-key"]) == 0
    lines = capsys.readouterr().out.splitlines()
    customizer = [line for line in lines if line.startswith(f"principal:{CUSTOMIZER} ")]
    assert customizer and "-[environment_role]-> flow:f1" in customizer[0]
    assert customizer[0].endswith("/secrets/crm-key")
    assert main(["graph", "--snapshot", str(path), "--what-can-read", CUSTOMIZER, "--json"]) == 0
    paths = json.loads(capsys.readouterr().out)
    assert {p[-1]["target"].rsplit("/", 1)[-1] for p in paths} == {"db-password", "crm-key", "sftp"}
    assert main(["graph", "--snapshot", str(path), "--who-can-read", "nope/x"]) == 2
