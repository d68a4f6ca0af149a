"""A serialisable view of the exposure graph for reports, and the "after" picture of a plan.

The core graph (core/graph.py) has one `principal:` node kind; a report draws the design's columns

    person -> flow -> connection -> identity -> vault -> secret

so a principal becomes a `person:` node where it edits/runs flows (owner, co-owner, run-only user,
environment System Customizer/Administrator) or may use a connection, and an `identity:` node where a
connection authenticates as it or it holds vault access. A principal that is both (the admin who built
the flow and whose identity the connection uses) appears in both columns: that is exactly the seed
attack's shape. A group member sits in every column its group does (`member_of` stays in a column).

`compare(before, after)` marks removed and narrowed edges for the "after" picture (the snapshot a plan
would leave is report/simulate.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from remediations.core.graph import ExposureGraph
from remediations.core.model import Snapshot

NodeKind = Literal["person", "flow", "connection", "identity", "vault", "secret"]
NODE_KINDS: tuple[NodeKind, ...] = ("person", "flow", "connection", "identity", "vault", "secret")
EdgeStatus = Literal["kept", "removed", "narrowed", "added"]

# Every core relation whose source is a person acting through Power Platform (core/graph.py).
_PERSON_RELATIONS = {"can_edit", "can_run", "environment_role", "can_use"}
_ACCESS_RELATIONS = {"access_policy", "role_assignment"}
_MEMBER_OF = "member_of"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GraphNode(_Frozen):
    id: str  # `<kind>:<core node id without its prefix>`
    kind: NodeKind
    label: str  # display name where known (may be attacker-controlled: renderers escape it)
    detail: str = ""  # the full id, for tooltips


class GraphEdge(_Frozen):
    source: str
    target: str
    # can_edit, can_run, environment_role, can_use, member_of, uses, authenticates_as, access_policy,
    # role_assignment, contains
    relation: str
    permissions: tuple[str, ...] = ()
    status: EdgeStatus = "kept"
    removed_permissions: tuple[str, ...] = ()  # for `narrowed`: what the fix took away

    @property
    def label(self) -> str:
        if self.relation in _ACCESS_RELATIONS:
            return ",".join(self.permissions) or self.relation
        return self.relation.replace("_", " ")

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.source, self.target, self.relation)


class GraphView(_Frozen):
    nodes: tuple[GraphNode, ...] = ()
    edges: tuple[GraphEdge, ...] = ()

    def count(self, kind: NodeKind) -> int:
        return sum(1 for n in self.nodes if n.kind == kind)

    def edges_with(self, status: EdgeStatus) -> tuple[GraphEdge, ...]:
        return tuple(e for e in self.edges if e.status == status)


def _labels(snapshot: Snapshot) -> dict[str, str]:
    labels: dict[str, str] = {}
    people: dict[str, str] = {}
    for identity in snapshot.identities:
        if identity.display_name:
            people[identity.object_id.lower()] = identity.display_name
            labels[f"principal:{identity.object_id.lower()}"] = identity.display_name
    for flow in snapshot.flows:
        labels[f"flow:{flow.id}"] = flow.label
    connection_labels: dict[str, str] = {}
    owners: dict[str, str] = {}
    for connection in snapshot.connections:
        connector = connection.connector_id.rstrip("/").rsplit("/", 1)[-1].removeprefix("shared_")
        vault_name = connection.parameters.get("vaultName")
        # The column says "connection"; a Key Vault connection is best known by its vault.
        default = vault_name if connector == "keyvault" and vault_name else f"{connector} {vault_name or ''}"
        connection_labels[connection.id] = connection.display_name or default.strip() or connection.id
        owners[connection.id] = people.get((connection.identity_principal_id or "").lower(), "")
    # Same label twice: say whose connection each is where that differs; else the id's tail does.
    shared = _repeated(connection_labels)
    if len({owners[cid] for cid in shared}) > 1:
        connection_labels = {
            cid: f"{label} ({owners[cid]})" if cid in shared and owners[cid] else label
            for cid, label in connection_labels.items()
        }
        shared = _repeated(connection_labels)
    labels.update(
        {
            f"connection:{cid}": f"{label} #{_tail(cid)}" if cid in shared else label
            for cid, label in connection_labels.items()
        }
    )
    for vault in snapshot.vaults:
        labels[f"vault:{vault.id.lower()}"] = vault.name
        for secret in vault.secrets:
            labels[f"secret:{vault.id.lower()}/secrets/{secret.name.lower()}"] = f"{vault.name}/{secret.name}"
    return labels


def label_of(snapshot: Snapshot | None, core_id: str) -> str:
    """The display label the graph gives a core node id (principal:, flow:, secret:, ...)."""
    labels = _labels(snapshot) if snapshot is not None else {}
    return labels.get(core_id) or _fallback_label(core_id)


def _tail(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1][-4:]


def _repeated(labels: dict[str, str]) -> set[str]:
    """The keys whose label (case aside) another key has too."""
    seen = Counter(label.lower() for label in labels.values())
    return {key for key, label in labels.items() if seen[label.lower()] > 1}


def name_in(names: Mapping[str, str], raw_id: str | None) -> str | None:
    """The name `display_names` gave an id (or a resource id's last segment); None when unnamed."""
    if not raw_id:
        return None
    return names.get(raw_id.lower()) or names.get(raw_id.rstrip("/").rsplit("/", 1)[-1].lower())


def display_names(snapshot: Snapshot) -> dict[str, str]:
    """Raw id (lower case: object id, flow, connection, environment, vault) -> the name a reader knows.
    Tables show the name and keep the id for hover; ids with no known name are left out."""
    names = {
        core_id.partition(":")[2].lower(): label
        for core_id, label in _labels(snapshot).items()
        if not core_id.startswith("secret:")
    }
    for environment in snapshot.environments:
        names[environment.id.lower()] = environment.label
        names[environment.name.lower()] = environment.label
    return names


def _fallback_label(core_id: str) -> str:
    kind, _, rest = core_id.partition(":")
    if kind == "secret" and "/secrets/" in rest:
        vault_part, _, name = rest.rpartition("/secrets/")
        return f"{vault_part.rsplit('/', 1)[-1]}/{name}"
    return rest.rstrip("/").rsplit("/", 1)[-1] or rest


def _view_id(core_id: str, role: NodeKind | None = None) -> str:
    kind, _, rest = core_id.partition(":")
    if kind == "principal":
        assert role is not None
        return f"{role}:{rest}"
    return core_id


def graph_view(
    snapshot: Snapshot, graph: ExposureGraph | None = None, *, remediators: Collection[str] = ()
) -> GraphView:
    """The exposure graph of `snapshot` as nodes (with display labels) and edges, in a stable order.
    `remediators`: object ids of vaultguard's own identity; its vault access is how it fixes things, not
    a path anyone reaches a secret by, so it is not drawn."""
    graph = graph or ExposureGraph.build(snapshot)
    left_out = {f"principal:{oid.lower()}" for oid in remediators}
    labels = _labels(snapshot)
    nodes: dict[str, GraphNode] = {}
    edges: dict[tuple[str, str, str], GraphEdge] = {}

    def node(core_id: str, role: NodeKind | None = None) -> str:
        view_id = _view_id(core_id, role)
        if view_id not in nodes:
            kind: NodeKind = role if role is not None else _kind(core_id)
            nodes[view_id] = GraphNode(
                id=view_id,
                kind=kind,
                label=labels.get(core_id) or _fallback_label(core_id),
                detail=core_id.partition(":")[2],
            )
        return view_id

    roles = _principal_roles(graph)
    for edge in graph.edges:
        if edge.source in left_out or edge.target in left_out:
            continue
        if edge.relation == _MEMBER_OF:
            # member -> group inside each column the group is drawn in (a person column if none).
            for role in roles.get(edge.target) or ("person",):
                view_edge = GraphEdge(
                    source=node(edge.source, role), target=node(edge.target, role), relation=edge.relation
                )
                edges.setdefault(view_edge.key, view_edge)
            continue
        source_role: NodeKind | None = None
        target_role: NodeKind | None = None
        if edge.relation in _PERSON_RELATIONS:
            source_role = "person"
        elif edge.relation == "authenticates_as":
            target_role = "identity"
        elif edge.relation in _ACCESS_RELATIONS:
            source_role = "identity"
        view_edge = GraphEdge(
            source=node(edge.source, source_role),
            target=node(edge.target, target_role),
            relation=edge.relation,
            permissions=edge.permissions,
        )
        edges.setdefault(view_edge.key, view_edge)
    ordered_nodes = sorted(nodes.values(), key=lambda n: (NODE_KINDS.index(n.kind), n.label.lower(), n.id))
    return GraphView(nodes=tuple(ordered_nodes), edges=tuple(sorted(edges.values(), key=lambda e: e.key)))


def _principal_roles(graph: ExposureGraph) -> dict[str, tuple[NodeKind, ...]]:
    """Core principal node -> the columns it is drawn in, from its non-membership edges."""
    roles: dict[str, set[NodeKind]] = {}
    for edge in graph.edges:
        if edge.relation in _PERSON_RELATIONS:
            roles.setdefault(edge.source, set()).add("person")
        elif edge.relation in _ACCESS_RELATIONS:
            roles.setdefault(edge.source, set()).add("identity")
        elif edge.relation == "authenticates_as":
            roles.setdefault(edge.target, set()).add("identity")
    return {k: tuple(sorted(v, key=NODE_KINDS.index)) for k, v in roles.items()}


def _kind(core_id: str) -> NodeKind:
    prefix = core_id.partition(":")[0]
    for kind in NODE_KINDS:
        if kind == prefix:
            return kind
    raise ValueError(f"unexpected graph node {core_id!r}")


def compare(before: GraphView, after: GraphView) -> GraphView:
    """The "after" picture: every node of both; edges kept, narrowed (fewer permissions), removed, added."""
    after_edges = {e.key: e for e in after.edges}
    before_edges = {e.key: e for e in before.edges}
    edges: list[GraphEdge] = []
    for key, old in before_edges.items():
        new = after_edges.get(key)
        if new is None:
            edges.append(old.model_copy(update={"status": "removed"}))
        elif set(new.permissions) < set(old.permissions):
            lost = tuple(sorted(set(old.permissions) - set(new.permissions)))
            edges.append(new.model_copy(update={"status": "narrowed", "removed_permissions": lost}))
        else:
            edges.append(new.model_copy(update={"status": "kept"}))
    edges += [
        e.model_copy(update={"status": "added"}) for k, e in after_edges.items() if k not in before_edges
    ]
    nodes = {n.id: n for n in before.nodes}
    for n in after.nodes:
        nodes.setdefault(n.id, n)
    ordered_nodes = sorted(nodes.values(), key=lambda n: (NODE_KINDS.index(n.kind), n.label.lower(), n.id))
    return GraphView(nodes=tuple(ordered_nodes), edges=tuple(sorted(edges, key=lambda e: e.key)))


def readable_pairs(snapshot: Snapshot) -> set[tuple[str, str]]:
    """(person object id, secret node) pairs where a person reaches a secret through a flow or a
    shared connection, directly or as a member of a group that can."""
    graph = ExposureGraph.build(snapshot)
    people = {e.source for e in graph.edges if e.relation in _PERSON_RELATIONS or e.relation == _MEMBER_OF}
    pairs: set[tuple[str, str]] = set()
    for person in sorted(people):
        oid = person.partition(":")[2]
        for path in graph.what_can_read(oid):
            first = next((e for e in path if e.relation != _MEMBER_OF), None)
            if first is not None and first.relation in _PERSON_RELATIONS:
                pairs.add((oid, path[-1].target))
    return pairs


__all__ = [
    "NODE_KINDS",
    "GraphEdge",
    "GraphNode",
    "GraphView",
    "NodeKind",
    "compare",
    "display_names",
    "graph_view",
    "name_in",
    "readable_pairs",
]
