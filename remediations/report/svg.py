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

# 6 columns fit the report's 1400 px page; the 106 px between columns holds a label like "get,set  -list".
COLUMN_WIDTH = 234
NODE_WIDTH = 128
NODE_HEIGHT = 28
ROW_HEIGHT = 40
TOP = 48
LEFT = 12
MAX_LABEL = 18
GROUP_BASELINE = 22  # a vault's header row in the secret column: text baseline within the row
EDGE_CHAR_WIDTH = 7.0  # 11 px semi-bold: a generous average, so estimated label boxes never undershoot
EDGE_LABEL_HEIGHT = 14
# Where along an edge its label may sit (fraction of the curve), tried in order until one is free.
LABEL_SPOTS = (0.5, 0.38, 0.62, 0.28, 0.72, 0.18, 0.82)

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
    # Secret column headers, one per vault: (vault name, x, y of the text baseline).
    groups: tuple[tuple[str, float, float], ...] = ()


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
    # Secrets stay together under their vault (in the vault column's order), so a reader can tell
    # which vault each secret is in.
    vault_of = {n.id: _vault_of(n.id) for n in view.nodes if n.kind == "secret"}
    columns["secret"].sort(key=lambda n: (rank.get(vault_of[n], float("inf")), vault_of[n], labels[n], n))
    vault_names = {n.id: n.label for n in view.nodes if n.kind == "vault"}

    # Over the row cap: keep nodes touching a changed edge first, then the layout order.
    changed = {n for e in view.edges if e.status != "kept" for n in (e.source, e.target)}
    positions: dict[str, tuple[float, float]] = {}
    hidden: dict[NodeKind, int] = {}
    groups: list[tuple[str, float, float]] = []
    tallest = 0
    for col, kind in enumerate(NODE_KINDS):
        ids = columns[kind]
        if len(ids) > max_rows:
            keep = set(sorted(ids, key=lambda n: (n not in changed, ids.index(n)))[:max_rows])
            hidden[kind] = len(ids) - max_rows
            ids = [n for n in ids if n in keep]
        row = 0
        current_vault: str | None = None
        for node_id in ids:
            x = LEFT + col * COLUMN_WIDTH
            if kind == "secret" and vault_of[node_id] != current_vault:
                current_vault = vault_of[node_id]
                name = vault_names.get(current_vault) or current_vault.rsplit("/", 1)[-1]
                groups.append((name, x + 2, TOP + row * ROW_HEIGHT + GROUP_BASELINE))
                row += 1
            positions[node_id] = (x, TOP + row * ROW_HEIGHT)
            row += 1
        tallest = max(tallest, row + (1 if kind in hidden else 0))
    width = LEFT * 2 + (len(NODE_KINDS) - 1) * COLUMN_WIDTH + NODE_WIDTH
    height = TOP + max(tallest, 1) * ROW_HEIGHT + 8
    return Layout(positions=positions, hidden=hidden, width=width, height=height, groups=tuple(groups))


def _vault_of(secret_node_id: str) -> str:
    """`secret:<vault id>/secrets/<name>` -> `vault:<vault id>` (the vault node's id)."""
    return "vault:" + secret_node_id.partition(":")[2].rpartition("/secrets/")[0]


def _short(label: str) -> str:
    """Cut at the end, keeping an id tail (` #1a2b`) that tells two same-named boxes apart."""
    if len(label) <= MAX_LABEL:
        return label
    base, sep, tail = label.rpartition(" #")
    if sep and len(tail) <= 4:
        return base[: MAX_LABEL - 1 - len(sep + tail)] + "\u2026" + sep + tail
    return label[: MAX_LABEL - 1] + "\u2026"


def _display(node: GraphNode) -> str:
    # A secret's vault is the box it hangs from; the name alone fits the column (tooltip has both).
    return node.label.rsplit("/", 1)[-1] if node.kind == "secret" else node.label


Box = tuple[float, float, float, float]  # x, y, width, height


def _curve(edge: GraphEdge, grid: Layout) -> tuple[tuple[float, float], ...]:
    """The four control points of the edge's cubic curve, from the source box's right side to the
    target box's left side."""
    sx, sy = grid.positions[edge.source]
    tx, ty = grid.positions[edge.target]
    x1, y1 = sx + NODE_WIDTH, sy + NODE_HEIGHT / 2
    x2, y2 = tx, ty + NODE_HEIGHT / 2
    bend = max(40.0, (x2 - x1) / 2)
    return ((x1, y1), (x1 + bend, y1), (x2 - bend, y2), (x2, y2))


def _point(curve: tuple[tuple[float, float], ...], t: float) -> tuple[float, float]:
    (ax, ay), (bx, by), (cx, cy), (dx, dy) = curve
    u = 1 - t
    return (
        u**3 * ax + 3 * u * u * t * bx + 3 * u * t * t * cx + t**3 * dx,
        u**3 * ay + 3 * u * u * t * by + 3 * u * t * t * cy + t**3 * dy,
    )


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _distinct_permissions(edges: list[GraphEdge]) -> list[str]:
    """One mention per permission across parallel edges (access policy + role), whatever its case."""
    seen: dict[str, str] = {}
    for edge in edges:
        for permission in edge.permissions:
            seen.setdefault(permission.lower(), permission.lower())
    return list(seen.values())


def _edge_text(edges: list[GraphEdge], *, show_status: bool) -> str:
    """The label of the edges between one pair of boxes: the permissions, what the fix removed."""
    text = ",".join(_distinct_permissions(edges))
    if not show_status:
        return text
    statuses = {e.status for e in edges}
    if statuses == {"removed"}:
        return f"\u2715 {text or edges[0].label}"
    lost = sorted({p.lower() for e in edges if e.status == "narrowed" for p in e.removed_permissions})
    if lost:
        kept = [p for p in text.split(",") if p and p not in lost]
        return f"{','.join(kept)}  \u2212{','.join(lost)}"
    return text


def _edge_svg(edge: GraphEdge, grid: Layout, *, show_status: bool) -> str:
    curve = _curve(edge, grid)
    (x1, y1), (bx, by), (cx, cy), (x2, y2) = curve
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
    return (
        f'<g class="edge edge-{status}" data-status="{status}"><title>{escape(title)}</title>'
        f'<path d="M{x1:.0f},{y1:.0f} C{bx:.0f},{by:.0f} {cx:.0f},{cy:.0f} {x2:.0f},{y2:.0f}" '
        f'fill="none" stroke="{colour}" stroke-width="{width}"{dash_attr} '
        f'marker-end="url(#arrow-{status})"/></g>'
    )


def _edge_labels(edges: list[GraphEdge], grid: Layout, *, show_status: bool) -> list[str]:
    """One label per pair of connected boxes, placed at the first spot along its curve that overlaps
    no box and no label already placed; a label with no free spot is left to the edge's tooltip."""
    pairs: dict[tuple[str, str], list[GraphEdge]] = {}
    for edge in edges:
        pairs.setdefault((edge.source, edge.target), []).append(edge)
    taken: list[Box] = [(x, y, NODE_WIDTH, NODE_HEIGHT) for x, y in grid.positions.values()]
    taken += [(x, y - 12, len(name) * EDGE_CHAR_WIDTH, 16) for name, x, y in grid.groups]
    out: list[str] = []
    for group in pairs.values():
        text = _edge_text(group, show_status=show_status)
        if not text:
            continue
        status = max((e.status for e in group), key=_STATUS_ORDER.__getitem__) if show_status else "kept"
        width = len(text) * EDGE_CHAR_WIDTH + 4
        curve = _curve(group[0], grid)
        for t in LABEL_SPOTS:
            mx, my = _point(curve, t)
            box = (mx - width / 2, my - EDGE_LABEL_HEIGHT + 3, width, EDGE_LABEL_HEIGHT)
            if not any(_overlaps(box, other) for other in taken):
                taken.append(box)
                out.append(
                    f'<text x="{mx:.0f}" y="{my:.0f}" class="edge-label" fill="{EDGE_STYLE[status][0]}" '
                    f'text-anchor="middle">{escape(text)}</text>'
                )
                break
    return out


# Drawing order: removed edges first so the live ones draw on top of them.
_STATUS_ORDER: dict[str, int] = {"removed": 0, "kept": 1, "added": 2, "narrowed": 3}


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
    drawn = [e for e in view.edges if e.source in grid.positions and e.target in grid.positions]
    drawn.sort(key=lambda e: _STATUS_ORDER[e.status] if show_status else 1)
    out += [_edge_svg(edge, grid, show_status=show_status) for edge in drawn]
    for name, x, y in grid.groups:
        out.append(f'<text x="{x:.0f}" y="{y:.0f}" class="group">{escape(name)}</text>')
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
    out += _edge_labels(drawn, grid, show_status=show_status)  # last: labels sit on top of boxes' edges
    for kind, count in grid.hidden.items():
        col = NODE_KINDS.index(kind)
        rows = sum(1 for n in view.nodes if n.kind == kind and n.id in grid.positions)
        x, y = LEFT + col * COLUMN_WIDTH + 8, TOP + rows * ROW_HEIGHT + 16
        out.append(f'<text x="{x}" y="{y}" class="more">+{count} more not drawn</text>')
    out.append("</svg>")
    return "".join(out)
