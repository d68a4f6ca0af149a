"""report.md: the same content as the HTML report as GitHub-flavoured markdown tables.

Every cell is escaped: `|` and newlines would break the table, and `<`/`>` would let a display name
inject HTML where markdown is rendered.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from remediations.core.model import SEVERITIES
from remediations.report.fmt import (
    MIGRATION_HEADERS,
    action_status,
    duration,
    migration_rows,
    permission_diff,
    permission_sets,
    principal_name,
    resource_name,
    when,
)
from remediations.report.graph_view import NODE_KINDS, GraphView
from remediations.report.guard import check_output
from remediations.report.model import OUTCOME_STATES, PathClosedRow, PathLeftRow, ReportData

_ESCAPES = {
    "\\": "\\\\",
    "|": "\\|",
    "<": "&lt;",
    ">": "&gt;",
    "`": "\\`",
    "*": "\\*",
    "[": "\\[",
    "]": "\\]",
}


def cell(value: object) -> str:
    text = "" if value is None else str(value)
    text = "".join(_ESCAPES.get(ch, ch) for ch in text)
    return " ".join(text.split()) or "-"  # newlines (and runs of spaces) would end the row


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def _path_table(why: str, paths: Sequence[PathLeftRow | PathClosedRow]) -> list[str]:
    """Person -> flow -> secret chains, names first, with why each is left or closed."""
    return table(
        ["Person", "Flow", "Via", "Secret", why], [[p.person, p.flow, p.via, p.secret, p.why] for p in paths]
    )


def _graph_section(report: ReportData) -> list[str]:
    before, after = report.graph_before, report.graph_after
    if before is None:
        return ["_No exposure graph: the report was built without an inventory snapshot._", ""]
    lines = [
        "Nodes by kind (the picture is in report.html):",
        "",
        *table(
            ["graph", *NODE_KINDS, "edges"],
            [_node_row("before", before)] + ([_node_row("after", after)] if after is not None else []),
        ),
        "",
    ]
    if after is None:
        return lines
    labels = {n.id: n.label for n in after.nodes}
    changed = [e for e in after.edges if e.status != "kept"]
    lines.append(f"Edges the fix changes ({report.graph_after_source}):")
    lines.append("")
    if not changed:
        lines += ["_None: the fix changes no edge of the exposure graph._", ""]
        return lines
    rows = [
        [
            e.status,
            labels.get(e.source, e.source),
            e.relation,
            labels.get(e.target, e.target),
            ",".join(e.permissions) or "-",
            ",".join(e.removed_permissions) or "-",
        ]
        for e in changed
    ]
    return [*lines, *table(["change", "from", "relation", "to", "permissions now", "removed"], rows), ""]


def _node_row(name: str, view: GraphView) -> list[object]:
    live = [e for e in view.edges if e.status != "removed"]
    return [name, *(view.count(kind) for kind in NODE_KINDS), len(live)]


def render_markdown(report: ReportData, *, forbidden_values: Collection[str] | None = None) -> str:
    s = report.summary
    mode = "dry run (nothing was changed)" if report.dry_run else "applied"
    out = [
        f"# {cell(report.title)}",
        "",
        f"- Scope: {cell(report.scope)}",
        f"- Generated: {cell(when(report.generated_at))}",
        f"- Run: {cell(report.run_id)}",
        f"- Mode: {mode}",
        f"- vaultguard {cell(report.tool_version)}",
        "",
        "## Summary",
        "",
        *table(
            [*(sev.capitalize() for sev in SEVERITIES), "Total findings"],
            [[*(s.findings_by_severity.get(sev, 0) for sev in SEVERITIES), s.total_findings]],
        ),
        "",
        *table(
            ["Planned", *(state.capitalize() for state in OUTCOME_STATES)],
            [[s.actions.planned, *(getattr(s.actions, state) for state in OUTCOME_STATES)]],
        ),
        "",
    ]
    facts = [("Duration", duration(s.duration_seconds)), ("Inventory errors", s.inventory_errors)]
    if s.exposure_before is not None:
        exposed_after = "-" if s.exposure_after is None else str(s.exposure_after)
        facts.append(
            (
                "Person-to-secret read paths through flows (before -> after)",
                f"{s.exposure_before} -> {exposed_after}",
            )
        )
        facts += [("Person-to-secret read paths", unknown) for unknown in s.exposure_unknown]
    facts += [(f"API calls: {service}", count) for service, count in s.api_calls.items()]
    out += [*table(["Measure", "Value"], facts), ""]

    if report.attack_replay is not None:
        replay = report.attack_replay
        out += [
            "## Attack replay",
            "",
            f"Attacker: {cell(replay.attacker)}. {cell(replay.note) if replay.note else ''}".rstrip(),
            "",
            *table(
                ["", "Secrets read (names only)", "Count"],
                [
                    ["before the fix", ", ".join(replay.before) or "none", len(replay.before)],
                    ["after the fix", ", ".join(replay.after) or "none", len(replay.after)],
                ],
            ),
            "",
        ]

    out += ["## Findings", ""]
    if report.findings:
        out += table(
            ["Severity", "Rule", "Resource", "Principal", "Message"],
            [
                [
                    f.severity.upper(),
                    f.detector_id,
                    resource_name(report, f.resource_id),
                    principal_name(report, f.principal),
                    f.message,
                ]
                for f in report.findings
            ],
        )
    else:
        out.append("_No findings._")
    out.append("")

    out += ["## Actions", ""]
    rows = []
    for action, deferred in [(a, False) for a in report.actions] + [(a, True) for a in report.deferred]:
        outcome = report.outcome_for(action.id)
        before = outcome.before if outcome is not None and outcome.before else action.before
        after = outcome.after if outcome is not None and outcome.after else action.after
        removed, added = permission_diff(before, after)
        change = " ".join([*(f"-{p}" for p in removed), *(f"+{p}" for p in added)]) or "no change"
        why = action.skip_reason or action.reason
        if outcome is not None and outcome.error and outcome.error != "dry run":
            why = f"{why} (error: {outcome.error})"
        rows.append(
            [
                action_status(report, action, deferred),
                action.remediation_id,
                resource_name(report, action.target),
                principal_name(report, action.principal),
                permission_sets(before),
                permission_sets(after),
                change,
                "; ".join(c.describe() for c in action.changes),
                why,
            ]
        )
    if rows:
        out += table(
            ["Status", "Remediation", "Target", "Principal", "Before", "After", "Change", "Calls", "Why"],
            rows,
        )
    else:
        out.append("_No actions._")
    migration = migration_rows(report)
    if migration:
        out += ["", "## Access-policy -> RBAC migration", "", *table(MIGRATION_HEADERS, migration)]
    out += ["", "## Exposure graph", "", *_graph_section(report)]
    if report.paths_left is not None:
        failed = sum(1 for p in report.paths_left if p.reason is None)
        out += [f"## Paths left after the fix ({len(report.paths_left)}, {failed} not accepted)", ""]
        out += (
            _path_table("Why it remains", report.paths_left)
            if report.paths_left
            else ["_None: every path was closed._"]
        )
        out.append("")
    if report.paths_closed:
        out += [f"## Paths closed by the fix ({len(report.paths_closed)})", ""]
        out += _path_table("Why it is closed", report.paths_closed)
        out.append("")

    out += ["## Audit trail (excerpt)", ""]
    if report.audit:
        out += table(
            ["Time", "State", "Remediation", "Target", "Principal", "Before", "After", "Error"],
            [
                [
                    when(r.recorded_at),
                    r.state,
                    r.remediation_id,
                    resource_name(report, r.target),
                    principal_name(report, r.principal),
                    permission_sets(r.before),
                    permission_sets(r.after),
                    r.error,
                ]
                for r in report.audit
            ],
        )
        if report.audit_total > len(report.audit):
            out += ["", f"_{len(report.audit)} of {report.audit_total} audit rows shown._"]
    else:
        out.append("_No audit rows (a dry run writes none)._")
    out.append("")

    if report.inventory_errors:
        out += [
            "## Inventory errors",
            "",
            *table(
                ["Operation", "Resource", "Status", "Message"],
                [
                    [e.operation, e.resource_id, e.status, e.message + e.remedy_note]
                    for e in report.inventory_errors
                ],
            ),
            "",
        ]
    return check_output("\n".join(out), forbidden_values, fmt="markdown")
