"""report.json: the ReportData itself, as JSON (stable key order)."""

from __future__ import annotations

import json
from collections.abc import Collection

from remediations.report.guard import check_output
from remediations.report.model import ReportData


def render_json(report: ReportData, *, forbidden_values: Collection[str] | None = None) -> str:
    data = report.model_dump(mode="json")
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return check_output(text, forbidden_values, fmt="json")
