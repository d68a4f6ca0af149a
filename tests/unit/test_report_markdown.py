"""report.md: GitHub-flavoured tables that stay tables whatever the names contain."""

from __future__ import annotations

from collections import Counter

import pytest

from remediations.report import SEVERITIES, ForbiddenValueError, render_markdown
from remediations.report.markdown import cell, table
from tests.unit.report_builders import seed_report, seed_run


def _tables(text: str) -> list[list[list[str]]]:
    """Split the markdown into tables of cells (unescaped `|` separates cells)."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("|"):
            cells, buf, escaped = [], "", False
            for ch in line.strip()[1:-1]:
                if ch == "|" and not escaped:
                    cells.append(buf.strip())
                    buf = ""
                else:
                    buf += ch
                escaped = ch == "\\" and not escaped
            cells.append(buf.strip())
            current.append(cells)
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def test_cell_escapes_pipes_newlines_and_html() -> None:
    assert cell("a|b\nc") == "a\\|b c"
    assert cell("<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"
    assert cell(None) == "-" and cell("") == "-"
    lines = table(["h1", "h2"], [["x|y", 2]])
    assert lines == ["| h1 | h2 |", "|---|---|", "| x\\|y | 2 |"]


def test_sections_and_tables_are_well_formed() -> None:
    text = render_markdown(seed_report())
    for heading in (
        "# Seed attack: before and after",
        "## Summary",
        "## Attack replay",
        "## Findings",
        "## Actions",
        "## Exposure graph",
        "## Audit trail (excerpt)",
    ):
        assert heading in text.splitlines()
    for rows in _tables(text):
        assert len({len(r) for r in rows}) == 1, rows  # every row has the header's column count
    tables = _tables(text)
    _, findings, plan = seed_run()
    by_severity = Counter(f.severity for f in findings)
    severity = tables[0]
    assert severity[0] == ["Critical", "High", "Medium", "Low", "Total findings"]
    assert severity[2] == [*(str(by_severity[s]) for s in SEVERITIES), str(len(findings))]
    finding_rows = next(t for t in tables if t[0][:2] == ["Severity", "Rule"])
    shown = [r[0] for r in finding_rows[2:]]
    assert sorted(shown) == sorted(f.severity.upper() for f in findings)
    assert shown == sorted(shown, key=lambda s: SEVERITIES.index(s.lower()))  # most severe first
    actions = next(t for t in tables if t[0][0] == "Status")
    assert [r[1] for r in actions[2:]] == [a.remediation_id for a in plan.actions]
    assert {r[0] for r in actions[2:]} == {"applied"}
    changes = {(r[1], r[2], r[6]) for r in actions[2:]}
    # Case kept as Azure stores it (`List` on kv-hr, `list` on kv-payroll): remove is case-sensitive.
    assert {
        ("remove_list_permission", "kv-hr", "-List"),
        ("remove_list_permission", "kv-payroll", "-list"),
    } <= changes
    assert ("remove_orphaned_principal", "kv-payroll", "-get") in changes
    assert ("revoke_flow_shares", "Payroll sync", "-shares:maker:CanEdit -shares:viewer:CanView") in changes
    assert "secrets: get, list, set" in {r[4] for r in actions[2:]}
    audit = next(t for t in tables if t[0][:2] == ["Time", "State"])
    assert [r[1] for r in audit[2:]] == ["pending", "applied"] * len(plan.writes)
    changed = next(t for t in tables if t[0][0] == "change")
    assert sorted((r[0], r[2]) for r in changed[2:]) == [
        ("narrowed", "access_policy"),
        ("narrowed", "access_policy"),
        ("removed", "access_policy"),
        ("removed", "can_edit"),
        ("removed", "can_run"),
    ]


def test_hostile_names_cannot_break_a_table() -> None:
    report = seed_report(maker_name="evil | name\n# heading <script>", flow_name="x`y`*z*")
    text = render_markdown(report)
    assert "<script>" not in text and "\n# heading" not in text
    for rows in _tables(text):
        assert len({len(r) for r in rows}) == 1


def test_dry_run_report_says_so_and_has_no_audit() -> None:
    text = render_markdown(seed_report(applied=False))
    assert "- Mode: dry run (nothing was changed)" in text
    assert "_No audit rows (a dry run writes none)._" in text
    actions = next(t for t in _tables(text) if t[0][0] == "Status")
    assert {r[0] for r in actions[2:]} == {"planned"}


def test_forbidden_values_guard() -> None:
    with pytest.raises(ForbiddenValueError):
        render_markdown(seed_report(), forbidden_values={"kv-payroll"})


def test_tables_name_people_and_flows_first_and_keep_the_id() -> None:
    md = render_markdown(seed_report())
    actions = md.split("## Actions", 1)[1].split("## Exposure graph", 1)[0]
    # The flow by its name, the person by display name with the object id beside it.
    assert "| Payroll sync |" in actions and "| f1 |" not in actions
    assert "Ada Admin (admin)" in actions
    findings = md.split("## Findings", 1)[1].split("## Actions", 1)[0]
    assert "| ghost |" in findings  # no name known: the id itself, never an empty cell
