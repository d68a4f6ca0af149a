"""report.html: self-contained, escaped, both SVG graphs present with the expected nodes."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from remediations.report import ForbiddenValueError, render_html
from tests.unit.report_builders import seed_report, seed_run


class _Page(HTMLParser):
    """Collects what a reader (or an attacker) would care about: scripts, remote refs, SVG graphs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.remote: list[str] = []
        self.svgs: list[dict[str, object]] = []
        self._svg: dict[str, object] | None = None
        self._figure: str | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        for name in ("src", "href", "xlink:href"):
            value = a.get(name) or ""
            if value.startswith(("http:", "https:", "//")):
                self.remote.append(value)
        if tag == "div" and a.get("class") == "figure":
            self._figure = a.get("id")
        if tag == "svg":
            self._svg = {"figure": self._figure, "kinds": [], "edges": []}
            self.svgs.append(self._svg)
        elif self._svg is not None and tag == "g" and a.get("data-kind"):
            self._svg["kinds"].append(a["data-kind"])  # type: ignore[union-attr]
        elif self._svg is not None and tag == "g" and a.get("data-status"):
            self._svg["edges"].append(a["data-status"])  # type: ignore[union-attr]

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def test_both_graphs_are_inline_svg_with_the_expected_nodes() -> None:
    report = seed_report()
    page = parse(render_html(report))
    assert [s["figure"] for s in page.svgs] == ["graph-before", "graph-after"]
    before, after = page.svgs
    # admin, maker, viewer (run-only) | the flow | its connection | admin, app-reader, ghost | 2 vaults |
    # 4 secrets; the after picture keeps every node (removed edges are drawn, not their ends dropped).
    expected = {"person": 3, "flow": 1, "connection": 1, "identity": 3, "vault": 2, "secret": 4}
    for svg in (before, after):
        kinds = svg["kinds"]
        assert isinstance(kinds, list)
        assert {k: kinds.count(k) for k in expected} == expected and len(kinds) == 14
    # 3 person->flow, uses, authenticates_as, 4 access policies, 4 contains.
    assert before["edges"] == ["kept"] * 13
    after_edges = after["edges"]
    assert isinstance(after_edges, list)
    # Applied: admin's list narrowed on both vaults; maker's and viewer's shares and ghost's policy removed.
    assert sorted(after_edges) == ["kept"] * 8 + ["narrowed"] * 2 + ["removed"] * 3


def _edge_groups(svg: str, status: str) -> list[str]:
    groups, start = [], 0
    while (start := svg.find(f'data-status="{status}"', start)) != -1:
        groups.append(svg[start : svg.index("</g>", start)])
        start += 1
    return groups


def test_removed_edge_is_dashed_red_in_the_after_picture() -> None:
    from remediations.core.model import Outcome
    from remediations.report import build_report
    from tests.unit.report_builders import GENERATED

    snap, findings, plan = seed_run(dry_run=False)
    outcomes = [Outcome(action_id=a.id, status="applied") for a in plan.actions]
    page = render_html(
        build_report(findings=findings, snapshot=snap, plan=plan, outcomes=outcomes, generated_at=GENERATED)
    )
    after_svg = page[page.index('id="graph-after"') :]
    removed = _edge_groups(after_svg, "removed")
    assert len(removed) == 3
    for group in removed:
        assert 'stroke="#e03131"' in group and "stroke-dasharray" in group
    # Each tooltip names the relation the fix cut: the two shares and the orphan's access policy.
    titles = sorted(g[g.index("<title>") + 7 : g.index("</title>")] for g in removed)
    assert titles == ["access_policy get (removed)", "can_edit (removed)", "can_run (removed)"]
    assert 'data-status="removed"' not in page[: page.index('id="graph-after"')]  # not in "before"


def test_self_contained_no_script_no_remote_assets() -> None:
    page_text = render_html(seed_report())
    page = parse(page_text)
    assert "script" not in page.tags and page.remote == []
    assert "Content-Security-Policy" in page_text and "default-src 'none'" in page_text
    assert "<link" not in page_text and "@import" not in page_text and "url(http" not in page_text


def test_every_string_is_escaped() -> None:
    evil = '<script>alert("x")</script>'
    report = seed_report(maker_name=evil, flow_name='"><img src=x onerror=alert(1)>')
    page_text = render_html(report)
    page = parse(page_text)
    assert "<script>" not in page_text and "script" not in page.tags and "img" not in page.tags
    assert "&lt;script&gt;" in page_text  # shown as text, escaped
    assert any("<script>alert" in t for t in page.text)  # a reader sees the literal name
    # The attribute-breaking flow name cannot close an attribute or open a tag.
    assert '"><img' not in page_text and "&quot;&gt;&lt;img src=x" in page_text


def test_severity_badges_in_order_and_summary_counts() -> None:
    page_text = render_html(seed_report())
    findings = page_text[page_text.index("<h2>Findings") : page_text.index("<h2>Actions")]
    badges = [chunk.split('"', 1)[0] for chunk in findings.split('class="sev sev-')[1:]]
    report = seed_report()
    ranks = ["critical", "high", "medium", "low"]
    assert sorted(badges) == sorted(f.severity for f in seed_run()[1])  # one badge per finding
    assert badges == sorted(badges, key=ranks.index) and len(set(badges)) == 3  # most severe first
    text = " ".join(parse(page_text).text)
    assert f"Findings ({len(report.findings)})" in text and f"Actions ({len(report.actions)})" in text
    assert "applied" in text


def test_forbidden_values_guard() -> None:
    report = seed_report()
    render_html(report, forbidden_values={"s3cr3t-value-never-shown", ""})  # absent: fine
    with pytest.raises(ForbiddenValueError) as raised:
        render_html(report, forbidden_values={"Payroll sync"})  # present (a label): refused
    assert "Payroll sync" not in str(raised.value)
    with pytest.raises(ForbiddenValueError):
        # Escaping must not hide a leak: `<` appears as `&lt;` in the page.
        render_html(seed_report(maker_name="pw<1>"), forbidden_values={"pw<1>"})


def test_paths_left_are_listed_with_labels_and_why_they_remain() -> None:
    """The closure check's person -> flow -> secret paths (core/closure.py over the same snapshot) are
    listed by name with their reason; an unaccepted one says so, in HTML and Markdown."""
    from remediations.core.closure import paths_left
    from remediations.core.policy import Policy
    from remediations.report import build_report, render_markdown
    from tests.unit.report_builders import applied_outcomes, seed_snapshot

    snap, findings, plan = seed_run()
    left = paths_left(seed_snapshot(), Policy())
    assert {p.reason for p in left} >= {None, "owner"}  # the co-owner's path is not accepted
    report = build_report(
        findings=findings, snapshot=snap, plan=plan, outcomes=applied_outcomes(plan), paths_left=left
    )
    assert report.paths_left is not None
    rows = {(r.person, r.flow, r.reason) for r in report.paths_left}
    assert ("Mallory Maker", "Payroll sync", None) in rows and ("Ada Admin", "Payroll sync", "owner") in rows
    assert report.paths_left[0].reason is None  # failures first
    page = render_html(report)
    assert "Paths left after the fix" in page and "not accepted by the policy" in page
    assert "<td>kv-payroll/db-password</td>" in page  # secrets by vault/name, never a value
    markdown = render_markdown(report)
    assert "## Paths left after the fix" in markdown and "| Mallory Maker | Payroll sync |" in markdown
    # a report without closure verification has no such section
    assert "Paths left" not in render_html(seed_report())


def test_paths_closed_are_listed_by_name_with_why_after_the_paths_left() -> None:
    """A run's closed chains (core/closure.py: the flow is off and a run-only user cannot turn it on)
    get their own section after the paths left, by name with why, in HTML and Markdown."""
    from remediations.core.closure import closure
    from remediations.core.model import Identity
    from remediations.core.policy import Policy
    from remediations.report import build_report, render_markdown
    from tests.unit.report_builders import applied_outcomes, seed_snapshot

    snap, findings, plan = seed_run()
    after = seed_snapshot()
    viewer = Identity(object_id="viewer", kind="user", display_name="Vic Viewer", exists=True)
    after = after.model_copy(
        update={
            "flows": tuple(f.model_copy(update={"state": "Stopped"}) for f in after.flows),
            "identities": (*after.identities, viewer),
        }
    )
    judged = closure(after, Policy())
    report = build_report(
        findings=findings,
        snapshot=snap,
        snapshot_after=after,
        plan=plan,
        outcomes=applied_outcomes(plan),
        paths_left=judged.left,
        paths_closed=judged.closed,
    )
    assert report.paths_closed is not None
    rows = {(r.person, r.flow, r.why) for r in report.paths_closed}
    assert rows == {("Vic Viewer", "Payroll sync", "flow off; a run-only user cannot turn it on")}
    assert len(report.paths_closed) == len({p.secret for p in judged.closed})  # one row per secret
    page = render_html(report)
    assert page.index("Paths left after the fix") < page.index("Paths closed by the fix (")
    assert "<td>Vic Viewer</td><td>Payroll sync</td>" in page and "a run-only user cannot turn it on" in page
    markdown = render_markdown(report)
    assert "## Paths closed by the fix" in markdown
    assert "| Vic Viewer | Payroll sync | can_run |" in markdown
    # no closed chain, no section
    assert "Paths closed" not in render_html(build_report(findings=findings, snapshot=snap, paths_closed=()))
