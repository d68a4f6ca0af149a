"""Reports over one run: markdown, HTML (with the exposure graph before and after as SVG), JSON and
SARIF 2.1.0. Rendering is pure (`render_*`); `write_reports` is the only function that does I/O.

    data = build_report(findings=..., snapshot=..., plan=..., outcomes=..., audit=...)
    write_reports(Path("out"), data, ["html", "md", "json", "sarif"], forbidden_values={known_secret})
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from pathlib import Path

from remediations.core.model import SEVERITIES
from remediations.report.graph_view import GraphEdge, GraphNode, GraphView, compare, graph_view
from remediations.report.guard import ForbiddenValueError, check_output
from remediations.report.html import render_html
from remediations.report.json_report import render_json
from remediations.report.markdown import render_markdown
from remediations.report.model import (
    ActionCounts,
    AttackReplay,
    ReportData,
    RuleInfo,
    Summary,
    at_least,
    build_report,
)
from remediations.report.sarif import render_sarif, sarif_document
from remediations.report.simulate import simulate

Renderer = Callable[..., str]
# format name -> (file name, renderer); `md`/`markdown` are one format.
FORMATS: dict[str, tuple[str, Renderer]] = {
    "json": ("report.json", render_json),
    "sarif": ("report.sarif", render_sarif),
    "md": ("report.md", render_markdown),
    "html": ("report.html", render_html),
}
_ALIASES = {"markdown": "md", "htm": "html"}


def parse_formats(text: str | Iterable[str]) -> list[str]:
    """`"json,sarif,md,html"` (or a list) -> known format names in a stable order; ValueError otherwise."""
    items = text.split(",") if isinstance(text, str) else list(text)
    chosen: list[str] = []
    for raw in items:
        name = _ALIASES.get(raw.strip().lower(), raw.strip().lower())
        if not name:
            continue
        if name not in FORMATS:
            raise ValueError(f"unknown report format {raw.strip()!r}; choose from {', '.join(FORMATS)}")
        if name not in chosen:
            chosen.append(name)
    return chosen


def write_reports(
    out_dir: Path | str,
    report_data: ReportData,
    formats: Iterable[str] = ("json", "sarif", "md", "html"),
    *,
    forbidden_values: Collection[str] | None = None,
) -> dict[str, Path]:
    """Render every format first (each checked against `forbidden_values`), then write them all.

    Nothing is written if any render fails, so a leak can never leave half a report behind.
    """
    rendered: dict[str, str] = {}
    for name in parse_formats(formats):
        rendered[name] = FORMATS[name][1](report_data, forbidden_values=forbidden_values)
    directory = Path(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, text in rendered.items():
        path = directory / FORMATS[name][0]
        path.write_text(text, encoding="utf-8")
        written[name] = path
    return written


__all__ = [
    "FORMATS",
    "SEVERITIES",
    "ActionCounts",
    "AttackReplay",
    "ForbiddenValueError",
    "GraphEdge",
    "GraphNode",
    "GraphView",
    "ReportData",
    "RuleInfo",
    "Summary",
    "at_least",
    "build_report",
    "check_output",
    "compare",
    "graph_view",
    "parse_formats",
    "render_html",
    "render_json",
    "render_markdown",
    "render_sarif",
    "sarif_document",
    "simulate",
    "write_reports",
]
