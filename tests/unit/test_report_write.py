"""write_reports: the chosen formats as files, or nothing at all when one would leak."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from remediations.report import ForbiddenValueError, ReportData, parse_formats, write_reports
from tests.unit.report_builders import seed_report


def test_writes_every_format(tmp_path: Path) -> None:
    report = seed_report()
    written = write_reports(tmp_path / "out", report, ["json", "sarif", "md", "html"])
    assert {p.name for p in written.values()} == {"report.json", "report.sarif", "report.md", "report.html"}
    assert ReportData.model_validate_json((tmp_path / "out" / "report.json").read_text()) == report
    assert json.loads((tmp_path / "out" / "report.sarif").read_text())["version"] == "2.1.0"
    assert (tmp_path / "out" / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert (tmp_path / "out" / "report.md").read_text().startswith("# Seed attack")


def test_parse_formats() -> None:
    assert parse_formats("json, SARIF,markdown,html,md") == ["json", "sarif", "md", "html"]
    assert parse_formats("") == []
    with pytest.raises(ValueError, match="unknown report format 'pdf'"):
        parse_formats("json,pdf")


def test_a_leak_in_any_format_writes_nothing(tmp_path: Path) -> None:
    report = seed_report()
    # The finding message appears in every format; render all before writing any.
    with pytest.raises(ForbiddenValueError):
        write_reports(tmp_path / "out", report, ["json", "html"], forbidden_values={"no longer exists"})
    assert not (tmp_path / "out").exists()


def test_json_only_has_no_secret_fields() -> None:
    data = json.loads(seed_report().model_dump_json())
    keys: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            keys.update(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(data)
    assert not {k for k in keys if k.lower() in {"value", "secret_value", "password"}}
