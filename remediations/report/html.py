"""report.html: one self-contained page (inline CSS and SVG, no script, no external asset).

A Content-Security-Policy meta tag forbids scripts and remote loads as a second line of defence;
the first is that every string from the model goes through `html.escape`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from html import escape

from remediations.core.model import SEVERITIES, Action
from remediations.report.fmt import (
    MIGRATION_HEADERS,
    PERMISSION_KINDS,
    action_status,
    duration,
    migration_rows,
    permission_diff,
    resource_name,
    when,
)
from remediations.report.graph_view import NODE_KINDS
from remediations.report.guard import check_output
from remediations.report.model import OUTCOME_STATES, PathClosedRow, PathLeftRow, ReportData
from remediations.report.svg import EDGE_STYLE, KIND_COLOURS, layout, render_svg

CSS = """
:root { --ink:#212529; --muted:#6c757d; --line:#dee2e6; --bg:#f8f9fa;
  --critical:#a61e4d; --high:#e03131; --medium:#f08c00; --low:#1971c2; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
  color:var(--ink); background:#fff; }
main { max-width:1400px; margin:0 auto; padding:24px 28px 48px; }
header { border-bottom:3px solid var(--ink); padding-bottom:12px; margin-bottom:20px; }
h1 { font-size:26px; margin:0 0 6px; }
h2 { font-size:19px; margin:32px 0 10px; padding-bottom:4px; border-bottom:1px solid var(--line); }
h3 { font-size:15px; margin:18px 0 6px; }
.meta { color:var(--muted); display:flex; flex-wrap:wrap; gap:4px 22px; }
.meta b { color:var(--ink); font-weight:600; }
.mode { display:inline-block; padding:1px 8px; border-radius:10px; font-weight:600; font-size:12px; }
.mode-dry { background:#fff3bf; color:#5c3c00; } .mode-applied { background:#d3f9d8; color:#1b4d24; }
.cards { display:grid; grid-template-columns:repeat(auto-fit,minmax(220px,1fr)); gap:14px; }
.card { border:1px solid var(--line); border-radius:8px; padding:12px 14px; background:var(--bg); }
.card h3 { margin:0 0 8px; font-size:12px; text-transform:uppercase; letter-spacing:.05em;
  color:var(--muted); }
.big { font-size:30px; font-weight:700; line-height:1.1; }
.chips { display:flex; flex-wrap:wrap; gap:6px; margin-top:6px; }
.sev { display:inline-block; min-width:64px; text-align:center; padding:1px 8px; border-radius:10px;
  color:#fff; font-size:12px; font-weight:700; text-transform:uppercase; }
.sev-critical { background:var(--critical); } .sev-high { background:var(--high); }
.sev-medium { background:var(--medium); } .sev-low { background:var(--low); }
.counts { display:grid; grid-template-columns:auto auto; gap:2px 14px; font-size:13px; }
.counts span:nth-child(odd) { color:var(--muted); }
.bad { color:var(--high); font-weight:700; } .good { color:#2b8a3e; font-weight:700; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th, td { text-align:left; vertical-align:top; padding:6px 8px; border-bottom:1px solid var(--line); }
th { background:var(--bg); font-weight:600; position:sticky; top:0; }
tr:nth-child(even) td { background:#fcfcfd; }
td { overflow-wrap:anywhere; }
td.msg { max-width:520px; }
td.time { white-space:nowrap; font-variant-numeric:tabular-nums; font-size:12px; color:var(--muted); }
code, .id { font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace; font-size:12px; }
.id { color:var(--muted); word-break:break-all; }
.perm { display:inline-block; padding:0 6px; margin:1px 2px 1px 0; border-radius:4px; background:#e9ecef;
  font-family:ui-monospace,"DejaVu Sans Mono",monospace; font-size:12px; }
.perm-removed { background:#ffe3e3; color:#c92a2a; text-decoration:line-through; }
.perm-added { background:#d3f9d8; color:#2b8a3e; }
.status { font-weight:700; font-size:12px; text-transform:uppercase; }
.status-applied, .status-noop { color:#2b8a3e; } .status-failed { color:var(--high); }
.status-planned { color:#1971c2; } .status-skipped, .status-deferred { color:var(--muted); }
.calls { color:var(--muted); font-size:12px; }
.replay { display:grid; grid-template-columns:1fr 1fr; gap:14px; }
.replay .card { background:#fff; }
.replay .before { border-left:5px solid var(--high); } .replay .after { border-left:5px solid #2f9e44; }
.figure { border:1px solid var(--line); border-radius:8px; padding:8px 10px 4px; margin:10px 0 18px;
  overflow-x:auto; background:#fff; }
.figure h3 { margin:4px 0 6px; }
.legend { display:flex; flex-wrap:wrap; gap:6px 18px; font-size:12px; color:var(--muted); margin:6px 0; }
.swatch { display:inline-block; width:12px; height:12px; border-radius:3px; vertical-align:-2px;
  margin-right:4px;
  border:1.5px solid; }
.line { display:inline-block; width:26px; height:0; vertical-align:middle; margin-right:4px;
  border-top:2px solid; }
svg.graph { font-family:system-ui,"DejaVu Sans",sans-serif; }
svg .column { font-size:12px; font-weight:700; fill:#495057; text-transform:uppercase; letter-spacing:.06em; }
svg .node-label { font-size:11px; fill:#212529; }
svg .edge-label { font-size:11px; font-weight:600; paint-order:stroke; stroke:#fff; stroke-width:3px; }
svg .more { font-size:12px; fill:#6c757d; font-style:italic; }
svg .group { font-size:11px; font-weight:700; fill:#2f9e44; }
.note { color:var(--muted); font-style:italic; }
footer { margin-top:36px; color:var(--muted); font-size:12px; border-top:1px solid var(--line);
  padding-top:8px; }
@media print { th { position:static; } .figure { break-inside:avoid; } }
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def e(value: object) -> str:
    return escape("" if value is None else str(value))


def _sev(severity: str) -> str:
    return f'<span class="sev sev-{e(severity)}">{e(severity)}</span>'


def _perms(perms: dict[str, list[str]], removed: Iterable[str] = (), added: Iterable[str] = ()) -> str:
    gone, new = set(removed), set(added)
    chips: list[str] = []
    for kind in sorted(perms, key=lambda k: (k not in PERMISSION_KINDS, k)):
        prefix = "" if kind == "secrets" else f"{kind}:"
        for p in perms[kind]:
            name = f"{prefix}{p}"
            cls = "perm perm-removed" if name in gone else ("perm perm-added" if name in new else "perm")
            chips.append(f'<span class="{cls}">{e(name)}</span>')
    return "".join(chips) or '<span class="note">none</span>'


def _resource(report: ReportData, resource_id: str) -> str:
    """Name first (flow, connection, vault or secret name); the full id on hover."""
    return f'<span title="{e(resource_id)}">{e(resource_name(report, resource_id))}</span>'


def _who(report: ReportData, principal: str | None) -> str:
    """A person or identity by display name, the object id on hover (the id itself when unnamed)."""
    if not principal:
        return "-"
    name = report.name_of(principal)
    if name is None:
        return f'<span class="id">{e(principal)}</span>'
    return f'<span title="{e(principal)}">{e(name)}</span>'


def _table(headers: Iterable[str], rows: list[str], empty: str) -> str:
    if not rows:
        return f'<p class="note">{e(empty)}</p>'
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _summary(report: ReportData) -> str:
    s = report.summary
    chips = "".join(
        f"<span>{_sev(sev)} <b>{s.findings_by_severity.get(sev, 0)}</b></span>" for sev in SEVERITIES
    )
    counts = "".join(
        f"<span>{e(name)}</span><b>{value}</b>"
        for name, value in [("planned", s.actions.planned)]
        + [(state, getattr(s.actions, state)) for state in OUTCOME_STATES]
    )
    cards = [
        f'<div class="card"><h3>Findings</h3><div class="big">{s.total_findings}</div>'
        f'<div class="chips">{chips}</div></div>',
        f'<div class="card"><h3>Actions</h3><div class="counts">{counts}</div></div>',
    ]
    if s.exposure_before is not None:
        after = "-" if s.exposure_after is None else str(s.exposure_after)
        cls = "good" if s.exposure_after is not None and s.exposure_after < s.exposure_before else ""
        cards.append(
            '<div class="card"><h3>People who can read secrets through flows</h3>'
            f'<div class="big"><span class="bad">{s.exposure_before}</span> &rarr; '
            f'<span class="{cls}">{e(after)}</span></div>'
            '<div class="note">(person, secret) pairs, before &rarr; after</div>'
            + "".join(f'<div class="note bad">{e(unknown)}</div>' for unknown in s.exposure_unknown)
            + "</div>"
        )
    run_facts = [("duration", duration(s.duration_seconds)), ("inventory errors", str(s.inventory_errors))]
    run_facts += [(f"{service} calls", str(count)) for service, count in s.api_calls.items()]
    facts = "".join(f"<span>{e(k)}</span><b>{e(v)}</b>" for k, v in run_facts)
    cards.append(f'<div class="card"><h3>Run</h3><div class="counts">{facts}</div></div>')
    return f'<section><h2>Summary</h2><div class="cards">{"".join(cards)}</div></section>'


def _replay(report: ReportData) -> str:
    replay = report.attack_replay
    if replay is None:
        return ""

    def box(cls: str, name: str, secrets: tuple[str, ...]) -> str:
        names = (
            "".join(f'<span class="perm">{e(n)}</span>' for n in secrets) or '<span class="note">none</span>'
        )
        return (
            f'<div class="card {cls}"><h3>{e(name)}</h3><div class="big">{len(secrets)}</div>'
            f'<div>secrets read</div><div class="chips">{names}</div></div>'
        )

    note = f'<p class="note">{e(replay.note)}</p>' if replay.note else ""
    return (
        f"<section><h2>Attack replay</h2><p>Attacker: <b>{e(replay.attacker)}</b> "
        "(secret names only, never values)</p>"
        f'{note}<div class="replay">{box("before", "before the fix", replay.before)}'
        f"{box('after', 'after the fix', replay.after)}</div></section>"
    )


def _findings(report: ReportData) -> str:
    rows = [
        f"<tr><td>{_sev(f.severity)}</td><td><code>{e(f.detector_id)}</code></td>"
        f"<td>{_resource(report, f.resource_id)}</td><td>{_who(report, f.principal)}</td>"
        f'<td class="msg">{e(f.message)}</td></tr>'
        for f in report.findings
    ]
    table = _table(["Severity", "Rule", "Resource", "Principal", "Message"], rows, "No findings.")
    return f"<section><h2>Findings ({len(report.findings)})</h2>{table}</section>"


def _action_row(report: ReportData, action: Action, deferred: bool) -> str:
    outcome = report.outcome_for(action.id)
    before = outcome.before if outcome is not None and outcome.before else action.before
    after = outcome.after if outcome is not None and outcome.after else action.after
    removed, added = permission_diff(before, after)
    status = action_status(report, action, deferred)
    why = e(action.skip_reason or action.reason)
    if outcome is not None and outcome.error and outcome.error != "dry run":
        why += f'<br><span class="bad">{e(outcome.error)}</span>'
    verified = " &#10003; verified" if outcome is not None and outcome.verified else ""
    calls = "<br>".join(e(c.describe()) for c in action.changes)
    return (
        f'<tr><td><span class="status status-{e(status)}">{e(status)}</span>{verified}</td>'
        f"<td><code>{e(action.remediation_id)}</code></td><td>{_resource(report, action.target)}</td>"
        f"<td>{_who(report, action.principal)}</td>"
        f"<td>{_perms(before, removed=removed)}</td><td>{_perms(after, added=added)}</td>"
        f'<td>{why}<div class="calls">{calls}</div></td></tr>'
    )


def _actions(report: ReportData) -> str:
    rows = [_action_row(report, a, False) for a in report.actions]
    rows += [_action_row(report, a, True) for a in report.deferred]
    table = _table(
        ["Status", "Remediation", "Target", "Principal", "Before", "After", "Why / calls"],
        rows,
        "No actions.",
    )
    return f"<section><h2>Actions ({len(rows)})</h2>{table}</section>"


def _migration(report: ReportData) -> str:
    rows = [
        "<tr>"
        + "".join(f'<td class="{"id" if i == 2 else ""}">{e(v)}</td>' for i, v in enumerate(row))
        + "</tr>"
        for row in migration_rows(report)
    ]
    if not rows:
        return ""
    table = _table(MIGRATION_HEADERS, rows, "")
    return f"<section><h2>Access-policy &rarr; RBAC migration</h2>{table}</section>"


def _legend() -> str:
    kinds = "".join(
        f'<span><span class="swatch" style="background:{fill};border-color:{stroke}"></span>{e(kind)}</span>'
        for kind, (stroke, fill) in KIND_COLOURS.items()
    )
    lines = {
        "kept": "edge kept",
        "narrowed": "narrowed (permissions removed)",
        "removed": "removed by the fix",
        "added": "added",
    }
    edges = "".join(
        f'<span><span class="line" style="border-top-color:{EDGE_STYLE[k][0]};'
        f'border-top-style:{"dashed" if EDGE_STYLE[k][2] else "solid"}"></span>{e(text)}</span>'
        for k, text in lines.items()
    )
    return f'<div class="legend">{kinds}</div><div class="legend">{edges}</div>'


def _graphs(report: ReportData, max_rows: int) -> str:
    before, after = report.graph_before, report.graph_after
    if before is None:
        return (
            '<section><h2>Exposure graph</h2><p class="note">No exposure graph: the report was built '
            "without an inventory snapshot.</p></section>"
        )
    union = after if after is not None else before
    grid = layout(union, max_rows=max_rows)
    counts = ", ".join(f"{before.count(k)} {k}" for k in NODE_KINDS)
    parts = [
        "<section><h2>Exposure graph</h2>",
        "<p>Who can reach which secret: person &rarr; flow &rarr; connection &rarr; identity &rarr; vault "
        "&rarr; secret. Edge labels are secret permissions. Hover a box or a line for its full name.</p>",
        _legend(),
        f'<div class="figure" id="graph-before"><h3>Before</h3><p class="note">{e(counts)}</p>',
        render_svg(before, grid, title="Exposure graph before", show_status=False),
        "</div>",
    ]
    if after is not None:
        changed = [x for x in after.edges if x.status != "kept"]
        summary = (
            f"{len(after.edges_with('removed'))} edge(s) removed, "
            f"{len(after.edges_with('narrowed'))} narrowed, "
            f"{len(after.edges_with('added'))} added; from {report.graph_after_source}"
        )
        parts += [
            f'<div class="figure" id="graph-after"><h3>After</h3><p class="note">{e(summary)}</p>',
            render_svg(after, grid, title="Exposure graph after", show_status=True),
            "</div>" if changed else '<p class="note">The fix changes no edge of this graph.</p></div>',
        ]
    parts.append("</section>")
    return "".join(parts)


def _path_row(path: PathLeftRow | PathClosedRow, why_class: str) -> str:
    return (
        f"<tr><td>{e(path.person)}</td><td>{e(path.flow)}</td><td>{e(path.via)}</td><td>{e(path.secret)}</td>"
        f'<td class="{why_class}">{e(path.why)}</td></tr>'
    )


def _paths_left(report: ReportData) -> str:
    if report.paths_left is None:
        return ""
    failed = [p for p in report.paths_left if p.reason is None]
    rows = [_path_row(p, "sev-critical" if p.reason is None else "note") for p in report.paths_left]
    table = _table(
        ["Person", "Flow", "Via", "Secret", "Why it remains"], rows, "None: every path was closed."
    )
    return (
        f"<section><h2>Paths left after the fix ({len(report.paths_left)}, {len(failed)} not accepted)"
        f"</h2><p>Re-read after apply: every person who can still make a flow read a secret.</p>"
        f"{table}</section>"
    )


def _paths_closed(report: ReportData) -> str:
    if not report.paths_closed:
        return ""
    rows = [_path_row(p, "note") for p in report.paths_closed]
    table = _table(["Person", "Flow", "Via", "Secret", "Why it is closed"], rows, "")
    return (
        f'<section id="paths-closed"><h2>Paths closed by the fix ({len(report.paths_closed)})</h2>'
        "<p>Re-read after apply: the person still reaches the flow, but no longer the secret through it."
        f"</p>{table}</section>"
    )


def _audit(report: ReportData) -> str:
    rows = [
        f'<tr><td class="time">{e(when(r.recorded_at))}</td><td><span class="status status-{e(r.state)}">'
        f"{e(r.state)}</span></td><td><code>{e(r.remediation_id)}</code></td>"
        f"<td>{_resource(report, r.target)}</td><td>{_who(report, r.principal)}</td>"
        f"<td>{_perms(r.before)}</td><td>{_perms(r.after)}</td>"
        f"<td>{e(r.error or '')}</td></tr>"
        for r in report.audit
    ]
    shown = (
        f'<p class="note">{len(report.audit)} of {report.audit_total} audit rows shown.</p>'
        if report.audit_total > len(report.audit)
        else ""
    )
    table = _table(
        ["Time", "State", "Remediation", "Target", "Principal", "Before", "After", "Error"],
        rows,
        "No audit rows (a dry run writes none).",
    )
    return f"<section><h2>Audit trail (excerpt)</h2>{table}{shown}</section>"


def _errors(report: ReportData) -> str:
    if not report.inventory_errors:
        return ""
    rows = [
        f"<tr><td>{e(x.operation)}</td><td>{_resource(report, x.resource_id)}</td>"
        f"<td>{e(x.status or '-')}</td>"
        f"<td>{e(x.message + x.remedy_note)}</td></tr>"
        for x in report.inventory_errors
    ]
    return (
        "<section><h2>Inventory errors</h2><p>These reads failed; the findings above may be incomplete.</p>"
        + _table(["Operation", "Resource", "Status", "Message"], rows, "")
        + "</section>"
    )


def render_html(
    report: ReportData, *, forbidden_values: Collection[str] | None = None, max_rows: int = 40
) -> str:
    mode = (
        '<span class="mode mode-dry">dry run: nothing was changed</span>'
        if report.dry_run
        else '<span class="mode mode-applied">applied</span>'
    )
    meta = "".join(
        f"<span>{e(k)} <b>{e(v)}</b></span>"
        for k, v in [
            ("Scope", report.scope),
            ("Generated", when(report.generated_at)),
            ("Run", report.run_id or "-"),
            ("vaultguard", report.tool_version),
        ]
    )
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(report.title)}</title>
<style>{CSS}</style>
</head>
<body>
<main>
<header><h1>{e(report.title)}</h1><div class="meta">{meta}<span>{mode}</span></div></header>
{_summary(report)}
{_replay(report)}
{_findings(report)}
{_actions(report)}
{_migration(report)}
{_graphs(report, max_rows)}
{_paths_left(report)}
{_paths_closed(report)}
{_audit(report)}
{_errors(report)}
<footer>Generated by vaultguard {e(report.tool_version)}. Secret values never appear in this report.</footer>
</main>
</body>
</html>
"""
    return check_output(page, forbidden_values, fmt="html")
