"""The exposure graph as inline SVG: a deterministic layered layout, one column per node kind.

    person | flow | connection | identity | vault | secret

Rows inside a column follow the barycentre of each node's neighbours (a few sweeps, ties by label),
which keeps most edges short and uncrossed. Before and after use the same layout, so a reader can
compare the two pictures position by position. Every string is escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from remediations.report.graph_view import NODE_KINDS, GraphEdge, GraphNode, GraphView, NodeKind

COLUMN_WIDTH = 228
NODE_WIDTH = 146
NODE_HEIGHT = 28
ROW_HEIGHT = 40
TOP = 48
LEFT = 12
MAX_LABEL = 20

KIND_COLOURS: dict[NodeKind, tuple[str, str]] = {  # (stroke, fill)
    "person": ("#6741d9", "#f3f0ff"),
    "flow": ("#0c8599", "#e3fafc"),
    "connection": ("#1971c2", "#e7f5ff"),
    "identity": ("#e8590c", "#fff4e6"),
    "vault": ("#2f9e44", "#ebfbee"),
    "secret": ("#495057", "#f1f3f5"),
}
EDGE_STYLE = {  # status -> (colour, width, dash)
    "kept": ("#868e96", 1.4, ""),
    "narrowed": ("#f08c00", 2.4, ""),
    "removed": ("#e03131", 2.2, "7 5"),
    "added": ("#2f9e44", 2.2, ""),
}


@dataclass(frozen=True)
class Layout:
    positions: dict[str, tuple[float, float]]  # node id -> (x, y) of the box's top-left corner
    hidden: dict[NodeKind, int]  # nodes not drawn per column (over `max_rows`)
    width: int
    height: int


def layout(view: GraphView, *, max_rows: int = 40) -> Layout:
    """Place every node of `view` (use the union "after" view for both pictures)."""
    columns: dict[NodeKind, list[str]] = {kind: [] for kind in NODE_KINDS}
    labels = {n.id: n.label.lower() for n in view.nodes}
    for node in view.nodes:
        columns[node.kind].append(node.id)
    neighbours: dict[str, set[str]] = {n.id: set() for n in view.nodes}
    for edge in view.edges:
        if edge.source in neighbours and edge.target in neighbours:
            neighbours[edge.source].add(edge.target)
            neighbours[edge.target].add(edge.source)
    rank = {node_id: float(i) for ids in columns.values() for i, node_id in enumerate(sorted(ids))}

    def sweep(kinds: tuple[NodeKind, ...]) -> None:
        for kind in kinds:

            def key(node_id: str) -> tuple[float, str, str]:
                near = [rank[n] for n in neighbours[node_id]]
                centre = sum(near) / len(near) if near else float("inf")
                return (centre, labels[node_id], node_id)

            columns[kind].sort(key=key)
            for i, node_id in enumerate(columns[kind]):
                rank[node_id] = float(i)

    sweep(NODE_KINDS)
    sweep(tuple(reversed(NODE_KINDS)))
    sweep(NODE_KINDS)

    # Over the row cap: keep nodes touching a changed edge first, then the layout order.
    changed = {n for e in view.edges if e.status != "kept" for n in (e.source, e.target)}
    positions: dict[str, tuple[float, float]] = {}
    hidden: dict[NodeKind, int] = {}
    tallest = 0
    for col, kind in enumerate(NODE_KINDS):
        ids = columns[kind]
        if len(ids) > max_rows:
            keep = set(sorted(ids, key=lambda n: (n not in changed, ids.index(n)))[:max_rows])
            hidden[kind] = len(ids) - max_rows
            ids = [n for n in ids if n in keep]
        for row, node_id in enumerate(ids):
            positions[node_id] = (LEFT + col * COLUMN_WIDTH, TOP + row * ROW_HEIGHT)
        tallest = max(tallest, len(ids) + (1 if kind in hidden else 0))
    width = LEFT * 2 + (len(NODE_KINDS) - 1) * COLUMN_WIDTH + NODE_WIDTH
    height = TOP + max(tallest, 1) * ROW_HEIGHT + 8
    return Layout(positions=positions, hidden=hidden, width=width, height=height)


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "\u2026"


def _display(node: GraphNode) -> str:
    # A secret's vault is the box it hangs from; the name alone fits the column (tooltip has both).
    return node.label.rsplit("/", 1)[-1] if node.kind == "secret" else node.label


def _edge_svg(edge: GraphEdge, grid: Layout, *, show_status: bool) -> str:
    if edge.source not in grid.positions or edge.target not in grid.positions:
        return ""
    sx, sy = grid.positions[edge.source]
    tx, ty = grid.positions[edge.target]
    x1, y1 = sx + NODE_WIDTH, sy + NODE_HEIGHT / 2
    x2, y2 = tx, ty + NODE_HEIGHT / 2
    bend = max(40.0, (x2 - x1) / 2)
    status = edge.status if show_status else "kept"
    colour, width, dash = EDGE_STYLE[status]
    dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
    title = f"{edge.relation} {','.join(edge.permissions)}".strip()
    if show_status and edge.status != "kept":
        title += (
            f" ({edge.status}"
            + (f": -{','.join(edge.removed_permissions)}" if edge.removed_permissions else "")
            + ")"
        )
    parts = [
        f'<g class="edge edge-{status}" data-status="{status}">',
        f"<title>{escape(title)}</title>",
        f'<path d="M{x1:.0f},{y1:.0f} C{x1 + bend:.0f},{y1:.0f} {x2 - bend:.0f},{y2:.0f} {x2:.0f},{y2:.0f}" '
        f'fill="none" stroke="{colour}" stroke-width="{width}"{dash_attr} '
        f'marker-end="url(#arrow-{status})"/>',
    ]
    text = ""
    if edge.permissions:
        text = ",".join(edge.permissions)
    if show_status and edge.status == "narrowed":
        text = f"{text}  \u2212{','.join(edge.removed_permissions)}"
    elif show_status and edge.status == "removed":
        text = f"\u2715 {text or edge.label}"
    if text:
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2 - 4
        parts.append(
            f'<text x="{mx:.0f}" y="{my:.0f}" class="edge-label" fill="{colour}" text-anchor="middle">'
            f"{escape(text)}</text>"
        )
    parts.append("</g>")
    return "".join(parts)


def render_svg(view: GraphView, grid: Layout, *, title: str, show_status: bool) -> str:
    """One picture. `show_status=False` draws every edge of `view` plainly (the "before" picture)."""
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="graph" role="img" width="{grid.width}" '
        f'height="{grid.height}" viewBox="0 0 {grid.width} {grid.height}" data-title="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        "<defs>",
    ]
    for status, (colour, _, _) in EDGE_STYLE.items():
        out.append(
            f'<marker id="arrow-{status}" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" '
            f'markerWidth="9" '
            f'markerHeight="7" orient="auto-start-reverse">'
            f'<path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        )
    out.append("</defs>")
    for col, kind in enumerate(NODE_KINDS):
        x = LEFT + col * COLUMN_WIDTH + NODE_WIDTH / 2
        out.append(f'<text x="{x:.0f}" y="24" class="column" text-anchor="middle">{escape(kind)}</text>')
    # Removed edges first so the live ones draw on top of them.
    order = {"removed": 0, "kept": 1, "added": 2, "narrowed": 3}
    for edge in sorted(view.edges, key=lambda e: order[e.status] if show_status else 1):
        out.append(_edge_svg(edge, grid, show_status=show_status))
    for node in view.nodes:
        if node.id not in grid.positions:
            continue
        x, y = grid.positions[node.id]
        stroke, fill = KIND_COLOURS[node.kind]
        tip = f"{node.kind}: {node.label}" + (
            f" ({node.detail})" if node.detail and node.detail != node.label else ""
        )
        out.append(
            f'<g class="node node-{node.kind}" data-kind="{node.kind}"><title>{escape(tip)}</title>'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"/>'
            f'<text x="{x + 9:.0f}" y="{y + NODE_HEIGHT / 2 + 4:.0f}" class="node-label">'
            f"{escape(_short(_display(node)))}</text>"
            "</g>"
        )
    for kind, count in grid.hidden.items():
        col = NODE_KINDS.index(kind)
        rows = sum(1 for n in view.nodes if n.kind == kind and n.id in grid.positions)
        x, y = LEFT + col * COLUMN_WIDTH + 8, TOP + rows * ROW_HEIGHT + 16
        out.append(f'<text x="{x}" y="{y}" class="more">+{count} more not drawn</text>')
    out.append("</svg>")
    return "".join(out)
