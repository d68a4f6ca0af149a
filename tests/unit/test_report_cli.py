"""`plan --output-dir/--output-formats/--severity` on a stored snapshot (no Azure needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from remediations.__main__ import main
from tests.unit.report_builders import seed_snapshot


@pytest.fixture
def snapshot_file(tmp_path: Path) -> Path:
    path = tmp_path / "snapshot.json"
    path.write_text(seed_snapshot().model_dump_json())
    return path


def test_plan_writes_the_chosen_reports(
    snapshot_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports"
    code = main(
        ["plan", "--snapshot", str(snapshot_file), "--output-dir", str(out), "--output-formats", "sarif,html"]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.sarif"]
    sarif = json.loads((out / "report.sarif").read_text())
    assert sorted(r["ruleId"] for r in sarif["runs"][0]["results"]) == [
        "connection_runs_as_user",
        "flow_shared_beyond_allowed",
        "flow_shared_beyond_allowed",
        "flow_uses_keyvault",
        "orphaned_principal",
        "secret_list_permission",
        "secret_list_permission",
    ]
    html = (out / "report.html").read_text()
    assert "dry run: nothing was changed" in html and html.count("<svg") == 2
    captured = capsys.readouterr()
    assert "report written:" in captured.err and "CHANGE" in captured.out  # terminal output unchanged


def test_severity_filters_findings_and_the_plan(
    snapshot_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports"
    code = main(
        ["plan", "--snapshot", str(snapshot_file), "--severity", "high", "--json", "--output-dir", str(out)]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert {f["severity"] for f in printed["findings"]} == {"high"}
    high_ids = {f["id"] for f in printed["findings"]}
    actions = printed["plan"]["actions"]
    # The plan covers the high findings and nothing else: every one is handled, no other is touched.
    assert {i for a in actions for i in a["finding_ids"]} == high_ids
    assert sorted(a["remediation_id"] for a in actions) == [
        "remove_list_permission",
        "remove_list_permission",
        "revoke_flow_shares",
    ]
    # The viewer's CanView share is a medium finding: filtered out, so it is not revoked.
    [revoke] = [a for a in actions if a["remediation_id"] == "revoke_flow_shares"]
    assert revoke["after"] == {"shares": ["admin:Owner", "viewer:CanView"]}
    assert sorted(p.name for p in out.iterdir()) == [
        "report.html",
        "report.json",
        "report.md",
        "report.sarif",
    ]
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["findings_by_severity"] == {
        "critical": 0,
        "high": len(high_ids),
        "medium": 0,
        "low": 0,
    }
    main(["plan", "--snapshot", str(snapshot_file), "--severity", "critical", "--json"])
    assert json.loads(capsys.readouterr().out)["plan"]["actions"] == []


def test_no_flags_writes_nothing_and_bad_format_fails_before_work(
    snapshot_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "--snapshot", str(snapshot_file)]) == 0
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as exited:
        main(["plan", "--snapshot", str(snapshot_file), "--output-formats", "json,pdf"])
    assert exited.value.code == 2 and "unknown report format 'pdf'" in capsys.readouterr().err
    assert main(["plan", "--snapshot", str(snapshot_file), "--output-formats", "md"]) == 0
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["report.md"]
