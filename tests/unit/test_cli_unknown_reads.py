"""Unknown is not zero: a vault whose secret list was refused is reported as unknown, by name and status,
in `graph --who-can-read` and in the report, instead of "0 read paths"."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediations.__main__ import main
from remediations.core.model import InventoryError, Snapshot
from remediations.report import build_report
from remediations.report.html import render_html
from remediations.report.markdown import render_markdown
from tests.unit.kv_builders import policy_entry, snapshot, vault

UNKNOWN = "unknown: cannot list secrets in kv-prod (HTTP 403)"


def _refused_snapshot() -> Snapshot:
    kv = vault("kv-prod", policy_entry("u1", "get", "list"))
    snap = snapshot(kv)
    error = InventoryError(
        resource_id=kv.id, operation="list secrets", status=403, message="Forbidden", partial=True
    )
    return snap.model_copy(update={"errors": (error,)})


def test_who_can_read_says_unknown_with_the_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "snapshot.json"
    path.write_text(_refused_snapshot().model_dump_json())
    assert main(["graph", "--snapshot", str(path), "--who-can-read", "kv-prod/db-password"]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == UNKNOWN
    assert main(["graph", "--snapshot", str(path)]) == 1
    assert UNKNOWN in capsys.readouterr().out


def test_report_says_unknown_not_zero() -> None:
    report = build_report(findings=[], snapshot=_refused_snapshot())
    assert report.summary.exposure_unknown == (UNKNOWN,)
    assert UNKNOWN in render_markdown(report) and UNKNOWN in render_html(report)
