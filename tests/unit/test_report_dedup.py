"""A finding reported by two runs (overlapping scopes) is one finding in every report format."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from remediations.report import build_report, write_reports
from tests.unit.report_builders import seed_run

FORMATS = ["json", "sarif", "md", "html"]


def _write(tmp_path: Path, name: str, repeat: int) -> dict[str, str]:
    snap, findings, plan = seed_run()
    report = build_report(
        findings=findings * repeat, snapshot=snap, plan=plan, generated_at=datetime(2026, 3, 1, tzinfo=UTC)
    )
    written = write_reports(tmp_path / name, report, FORMATS)
    return {fmt: path.read_text() for fmt, path in written.items()}


def test_duplicated_findings_are_reported_once_in_every_format(tmp_path: Path) -> None:
    once, twice = _write(tmp_path, "once", 1), _write(tmp_path, "twice", 2)
    assert twice == once
    findings = json.loads(twice["json"])["findings"]
    assert len(findings) == len({f["id"] for f in findings}) > 1
    results = json.loads(twice["sarif"])["runs"][0]["results"]
    fingerprints = [json.dumps(r["partialFingerprints"], sort_keys=True) for r in results]
    assert len(results) == len(set(fingerprints)) == len(findings)
