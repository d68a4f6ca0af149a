"""Closure: the person -> flow -> secret paths a snapshot still has, each with why it remains.

A fix is judged by what is left, not by the action it made: after apply the pipeline re-reads and
recomputes the exposure graph (core/graph.py), and every path from a person through a flow to a secret
is listed with its reason. A path no reason accepts fails the run.

A turned-off flow (quarantine_flow) counts for whoever can turn it back on: turning a flow on needs,
besides the right to edit it, the right to use its connections (the Flow service's
ConnectionAuthorizationFailed; docs/fidelity.md "Turning a flow on"). So an editor of a flow that is off
is a path left only when they may use a connection that leads to the secret (`ConnectionUse`); any
other is a path closed, with why (`PathClosed`), as is a run-only user (they cannot turn it on).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Literal

from pydantic import BaseModel, ConfigDict

from remediations.core.graph import Edge, ExposureGraph
from remediations.core.model import Snapshot
from remediations.core.policy import Policy

# "this app": vaultguard's own identity (its application user edits flows to fix them); it is the
# remediator, so its paths are accepted by what it is, not by a GUID written into the policy.
Reason = Literal["owner", "accepted by policy", "break-glass", "this app"]


# Why a person -> flow -> secret edge chain no longer reaches the secret: the flow is off and they
# cannot turn it on (docs/fidelity.md "Turning a flow on").
Closed = Literal["flow off; editor cannot use its connection", "flow off; a run-only user cannot turn it on"]
OFF_STATES = frozenset({"stopped", "suspended"})  # Dataverse statecode 0 / 2; turning on is an activation


class FlowPath(BaseModel):
    """One person -> flow -> secret chain of the exposure graph."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    person: str  # object id of the person (or group) who can edit or run the flow
    flow: str  # flow id
    flow_name: str
    secret: str  # secret node id: secret:<vault id>/secrets/<name>, or /secrets/* when not listed
    via: str  # the person -> flow relation: can_edit, can_run, environment_role
    person_name: str = ""  # display name / UPN when the inventory read one

    @property
    def vault_and_secret(self) -> tuple[str, str]:
        """(vault name, secret name) from the secret node id; the secret is `*` when none were listed."""
        vault_id, _, name = self.secret.removeprefix("secret:").rpartition("/secrets/")
        return vault_id.rsplit("/", 1)[-1], name

    def _describe(self, what: str, why: str) -> str:
        """By name, ids in brackets: who -> which flow -> which vault/secret: why."""
        who = f"{self.person_name} [{self.person}]" if self.person_name else self.person
        flow = f"{self.flow_name!r} [{self.flow}]" if self.flow_name else self.flow
        vault, secret = self.vault_and_secret
        return f"{what}: {who} -> flow {flow} ({self.via}) -> {vault}/{secret}: {why}"


class PathLeft(FlowPath):
    reason: Reason | None  # None: nothing accepts this path, the run failed to close it

    @property
    def accepted(self) -> bool:
        return self.reason is not None

    def describe(self) -> str:
        return self._describe("path left", self.reason or "not accepted by the policy (a failure)")


class PathClosed(FlowPath):
    """A chain the graph still has that no longer leads to the secret: why it is closed."""

    why: Closed

    def describe(self) -> str:
        return self._describe("path closed", self.why)


class Closure(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    left: tuple[PathLeft, ...] = ()
    closed: tuple[PathClosed, ...] = ()


def _reason(person: str, flow_creator: str | None, policy: Policy, remediator: str | None) -> Reason | None:
    if flow_creator and person == flow_creator.lower():
        return "owner"
    if remediator and person == remediator.lower():
        return "this app"
    if policy.is_break_glass(person):
        return "break-glass"
    if policy.flow_editor_allowed(person):
        return "accepted by policy"
    return None


def _secrets_reachable(graph: ExposureGraph, node: str, listed: set[str]) -> dict[str, set[str]]:
    """Secret node -> the connections it is read through, from `node`; a vault whose secrets were not
    listed counts as all of them (`secret:<vault id>/secrets/*`): an unread list must not hide a path."""
    found: dict[str, set[str]] = defaultdict(set)
    for path in graph.secrets_reachable_from(node):
        found[path[-1].target].update(_connections_on(path))
    for path in graph.vaults_reachable_from(node):
        if path[-1].target not in listed:
            secret = f"secret:{path[-1].target.removeprefix('vault:')}/secrets/*"
            found[secret].update(_connections_on(path))
    return dict(found)


def _connections_on(path: tuple[Edge, ...]) -> set[str]:
    return {e.target.removeprefix("connection:") for e in path if e.relation == "uses"}


class ConnectionUse:
    """Who may use a connection, as the Flow service decides when a flow is turned on: its owner and
    every principal it is shared with (any role; a group's members; the tenant: everyone). Where the
    snapshot cannot tell (shares or group members not read, a principal that may be a group whose
    members were not read), it answers yes: an unread list must not close a path."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._connections = {c.id: c for c in snapshot.connections}
        self._unread = {
            e.resource_id for e in snapshot.errors if e.operation == "list connection permissions"
        }
        self._allowed: dict[str, set[str]] = defaultdict(set)
        self._group_shares: dict[str, set[str]] = defaultdict(set)
        for share in snapshot.shares:
            if share.resource_kind == "connection":
                self._allowed[share.resource_id].add(share.principal_id.lower())
                if share.principal_kind == "group":
                    self._group_shares[share.resource_id].add(share.principal_id.lower())
        # A tenant-wide share names the tenant id (adapters/powerapps_shapes.py).
        self._tenants = {v.tenant_id.lower() for v in snapshot.vaults if v.tenant_id} | {
            a.tenant_id.lower() for v in snapshot.vaults for a in v.access_policies if a.tenant_id
        }
        self._members = {g.lower(): {m.lower() for m in ms} for g, ms in snapshot.group_members.items()}

    def may_use(self, principal: str, connection_id: str) -> bool:
        connection = self._connections.get(connection_id)
        if connection is None or connection_id in self._unread:
            return True
        allowed = set(self._allowed[connection_id])
        if connection.created_by:
            allowed.add(connection.created_by.lower())
        if allowed & self._tenants or any(g not in self._members for g in self._group_shares[connection_id]):
            return True
        principal = principal.lower()
        if self._member_may_use(principal, allowed):
            return True
        if principal in self._members:  # a group: any member who may use it can turn the flow on
            return any(self._member_may_use(m, allowed) for m in self._members[principal])
        return self._may_be_unread_group(principal)

    def _member_may_use(self, principal: str, allowed: set[str]) -> bool:
        return principal in allowed or any(principal in self._members.get(g, ()) for g in allowed)

    def _may_be_unread_group(self, principal: str) -> bool:
        """A principal the directory did not say is a user, app or identity may be a group (a Dataverse
        group team holding System Customizer) whose members were not read."""
        identity = self._snapshot.identity(principal)
        return identity is None or identity.kind in ("group", "unknown")


def _why_closed(
    via: str, flow_off: bool, person: str, connections: set[str], use: ConnectionUse
) -> Closed | None:
    """Why the chain is closed, or None when the person can still have the flow read the secret. An
    editor of a flow that is off can turn it on only with a connection they may use; a co-owner (the
    creator, an Owner/CanEdit share) also with the connections the flow was activated with ("shared
    with you in the context of this flow"), which the snapshot cannot see, so a co-owner's path stays."""
    if not flow_off or via == "can_edit":
        return None
    if via == "can_run":
        return "flow off; a run-only user cannot turn it on"
    if any(use.may_use(person, c) for c in connections):
        return None
    return "flow off; editor cannot use its connection"


def _names(snapshot: Snapshot) -> dict[str, str]:
    """Entra object id -> display name, from the directory and the environments' user rows."""
    names = {i.object_id.lower(): i.display_name for i in snapshot.identities if i.display_name}
    for environment in snapshot.environments:
        names.update({k.lower(): v for k, v in environment.principal_names.items() if v})
    return names


def closure(snapshot: Snapshot, policy: Policy, remediator: str | None = None) -> Closure:
    """Every distinct (person, flow, secret) chain the snapshot's exposure graph has: left, with its
    reason, or closed, with why. `remediator`: the object id of the app's own identity ("this app")."""
    graph = ExposureGraph.build(snapshot)
    names = _names(snapshot)
    use = ConnectionUse(snapshot)
    listed = {f"vault:{v.id.lower()}" for v in snapshot.vaults if v.secrets}
    flows = {f.id: f for f in snapshot.flows}
    reachable: dict[str, dict[str, set[str]]] = {}
    left: dict[tuple[str, str, str], PathLeft] = {}
    closed: dict[tuple[str, str, str], PathClosed] = {}
    for edge in graph.edges:
        if not edge.target.startswith("flow:") or not edge.source.startswith("principal:"):
            continue
        person = edge.source.removeprefix("principal:")
        flow_id = edge.target.removeprefix("flow:")
        flow = flows.get(flow_id)
        if flow is None:
            continue
        if edge.target not in reachable:
            reachable[edge.target] = _secrets_reachable(graph, edge.target, listed)
        flow_off = flow.state.lower() in OFF_STATES
        for secret, connections in reachable[edge.target].items():
            key = (person, flow_id, secret)
            if key in left:  # left along one relation (e.g. a co-owner who also holds a role): left
                continue
            chain = {
                "person": person,
                "flow": flow_id,
                "flow_name": flow.display_name,
                "secret": secret,
                "via": edge.relation,
                "person_name": names.get(person, ""),
            }
            why = _why_closed(edge.relation, flow_off, person, connections, use)
            if why is None:
                closed.pop(key, None)
                left[key] = PathLeft(**chain, reason=_reason(person, flow.creator, policy, remediator))
            elif key not in closed:
                closed[key] = PathClosed(**chain, why=why)
    return Closure(
        left=tuple(
            sorted(left.values(), key=lambda p: (p.reason is not None, p.person, p.flow_name, p.secret))
        ),
        closed=tuple(sorted(closed.values(), key=lambda p: (p.person, p.flow_name, p.secret))),
    )


def paths_left(snapshot: Snapshot, policy: Policy, remediator: str | None = None) -> list[PathLeft]:
    """The chains `closure` leaves open, each with its reason (unaccepted ones first)."""
    return list(closure(snapshot, policy, remediator).left)


def unaccepted(paths: list[PathLeft]) -> list[PathLeft]:
    return [p for p in paths if not p.accepted]
