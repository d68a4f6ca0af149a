"""Rendering a scan of exported flows: a text table with a one-line summary, JSON, and report data
for the shared SARIF writer (remediations/report/sarif.py) with the file and line of each action."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from remediations.cli.flow_files import ScanResult
from remediations.core.evidence import FlowStepEvidence
from remediations.core.model import SEVERITIES, Finding, InventoryError
from remediations.report import ReportData, build_report


def _where(finding: Finding) -> str:
    evidence = FlowStepEvidence.of(finding)
    return evidence.action_path + (f" {evidence.field}" if evidence.field else "")


def _secret(finding: Finding) -> str:
    """The secret a finding is about: its name, `(all)` for List secrets, `?` when built at run time."""
    evidence = FlowStepEvidence.of(finding)
    if evidence.secret_names:
        return ", ".join(evidence.secret_names)
    if evidence.operation == "list_secrets":
        return "(all)"
    return "?" if evidence.operation else "-"


def render_text(result: ScanResult) -> str:
    """The findings as a table (flow by name, secret by name, the file last) and a one-line summary.
    Nothing when no input could be read: the errors say it all, a "0 flow(s)" line would only mislead."""
    if result.errors and not result.flows:
        return ""
    files = {flow.ref.resource_id: flow.artifact for flow in result.flows}
    lines = []
    if result.findings:
        rows = [
            (
                f.severity + (" (info)" if FlowStepEvidence.of(f).informational else ""),
                f.detector_id,
                FlowStepEvidence.of(f).flow or f.resource_id,
                _secret(f),
                _where(f),
                files.get(f.resource_id, f.resource_id),
            )
            for f in result.findings
        ]
        headers = ("SEVERITY", "DETECTOR", "FLOW", "SECRET", "WHERE", "FILE")
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        for row in (headers, *rows):
            lines.append(
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            )
    counts = {s: sum(1 for f in result.findings if f.severity == s) for s in SEVERITIES}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no findings"
    unreadable = f", {len(result.errors)} input(s) unreadable" if result.errors else ""
    lines.append(f"{len(result.flows)} flow(s) scanned{unreadable}: {summary}")
    return "\n".join(lines)


def render_json(result: ScanResult) -> dict[str, Any]:
    return {
        "flows": [
            {
                "resource_id": flow.ref.resource_id,
                "display_name": flow.ref.display_name,
                "analysis": flow.analysis.model_dump(mode="json"),
            }
            for flow in result.flows
        ],
        "findings": [f.model_dump(mode="json") for f in result.findings],
        "errors": result.errors,
    }


def _line_of(text: str | None, action_path: str) -> int | None:
    """The line declaring the action (last segment of its JSON path), for code-scanning annotations."""
    if not text or not action_path:
        return None
    name = action_path.rsplit(".", 1)[-1]
    match = re.search(r'"' + re.escape(name) + r'"\s*:', text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _artifact_uri(artifact: str) -> str:
    """SARIF wants URIs: relative ones (resolved against the checkout) when we can, else file:// URIs."""
    path = Path(artifact)
    return path.as_uri() if path.is_absolute() else quote(artifact)


def sarif_report(result: ScanResult, generated_at: datetime | None = None) -> ReportData:
    """The scan as report data for the shared SARIF writer (remediations/report/sarif.py): each finding
    gets its file (`artifactUri`) and the line declaring its action (`startLine`); unreadable inputs are
    the run's execution errors."""
    flows = {flow.ref.resource_id: flow for flow in result.flows}
    located = []
    for finding in result.findings:
        flow = flows[finding.resource_id]
        where: dict[str, Any] = {"artifactUri": _artifact_uri(flow.artifact)}
        line = _line_of(flow.text, FlowStepEvidence.of(finding).action_path)
        if line is not None:
            where["startLine"] = line
        located.append(finding.model_copy(update={"evidence": {**finding.evidence, **where}}))
    errors = []
    for error in result.errors:
        path, _, message = error.partition(": ")
        errors.append(InventoryError(resource_id=path, operation="read", message=message or error))
    return build_report(
        findings=located,
        title="vaultguard scan-flows",
        scope="exported flows",
        generated_at=generated_at,
        inventory_errors=errors,
    )
