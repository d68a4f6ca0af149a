"""Closure: the person -> flow -> secret paths a snapshot still has, each with why it remains.

A fix is judged by what is left, not by the action it made: after apply the pipeline re-reads and
recomputes the exposure graph (core/graph.py), and every path from a person through a flow to a secret
is listed with its reason. A path no reason accepts fails the run.

A turned-off flow still counts: anyone who can edit it can turn it back on (Power Automate lets
co-owners start and stop a flow; docs/fidelity.md "Re-enabling a turned-off flow").
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from remediations.core.graph import ExposureGraph
from remediations.core.model import Snapshot
from remediations.core.policy import Policy

# "this app": vaultguard's own identity (its application user edits flows to fix them); it is the
# remediator, so its paths are accepted by what it is, not by a GUID written into the policy.
Reason = Literal["owner", "accepted by policy", "break-glass", "this app"]


class PathLeft(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    person: str  # object id of the person (or group) who can edit or run the flow
    flow: str  # flow id
    flow_name: str
    secret: str  # secret node id: secret:<vault id>/secrets/<name>, or /secrets/* when not listed
    via: str  # the person -> flow relation: can_edit, can_run, environment_role
    reason: Reason | None  # None: nothing accepts this path, the run failed to close it
    person_name: str = ""  # display name / UPN when the inventory read one

    @property
    def accepted(self) -> bool:
        return self.reason is not None

    @property
    def vault_and_secret(self) -> tuple[str, str]:
        """(vault name, secret name) from the secret node id; the secret is `*` when none were listed."""
        vault_id, _, name = self.secret.removeprefix("secret:").rpartition("/secrets/")
        return vault_id.rsplit("/", 1)[-1], name

    def describe(self) -> str:
        """By name, ids in brackets: who -> which flow -> which vault/secret: why it is left."""
        why = self.reason or "not accepted by the policy (a failure)"
        who = f"{self.person_name} [{self.person}]" if self.person_name else self.person
        flow = f"{self.flow_name!r} [{self.flow}]" if self.flow_name else self.flow
        vault, secret = self.vault_and_secret
        return f"path left: {who} -> flow {flow} ({self.via}) -> {vault}/{secret}: {why}"


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


def _secrets_reachable(graph: ExposureGraph, node: str, listed: set[str]) -> list[str]:
    """Secret nodes readable from `node`; a vault whose secrets were not listed counts as all of them
    (`secret:<vault id>/secrets/*`): an unread list must not hide a path."""
    secrets = [p[-1].target for p in graph.secrets_reachable_from(node)]
    unlisted = [p[-1].target for p in graph.vaults_reachable_from(node) if p[-1].target not in listed]
    return list(
        dict.fromkeys([*secrets, *(f"secret:{v.removeprefix('vault:')}/secrets/*" for v in unlisted)])
    )


def _names(snapshot: Snapshot) -> dict[str, str]:
    """Entra object id -> display name, from the directory and the environments' user rows."""
    names = {i.object_id.lower(): i.display_name for i in snapshot.identities if i.display_name}
    for environment in snapshot.environments:
        names.update({k.lower(): v for k, v in environment.principal_names.items() if v})
    return names


def paths_left(snapshot: Snapshot, policy: Policy, remediator: str | None = None) -> list[PathLeft]:
    """Every distinct (person, flow, secret) path the snapshot's exposure graph has, with its reason.
    `remediator`: the object id of the app's own identity (reason "this app")."""
    graph = ExposureGraph.build(snapshot)
    names = _names(snapshot)
    listed = {f"vault:{v.id.lower()}" for v in snapshot.vaults if v.secrets}
    flows = {f.id: f for f in snapshot.flows}
    found: dict[tuple[str, str, str], PathLeft] = {}
    for edge in graph.edges:
        if not edge.target.startswith("flow:") or not edge.source.startswith("principal:"):
            continue
        person = edge.source.removeprefix("principal:")
        flow_id = edge.target.removeprefix("flow:")
        flow = flows.get(flow_id)
        if flow is None:
            continue
        for secret in _secrets_reachable(graph, edge.target, listed):
            key = (person, flow_id, secret)
            if key in found:
                continue
            found[key] = PathLeft(
                person=person,
                flow=flow_id,
                flow_name=flow.display_name,
                secret=secret,
                via=edge.relation,
                reason=_reason(person, flow.creator, policy, remediator),
                person_name=names.get(person, ""),
            )
    return sorted(found.values(), key=lambda p: (p.reason is not None, p.person, p.flow_name, p.secret))


def unaccepted(paths: list[PathLeft]) -> list[PathLeft]:
    return [p for p in paths if not p.accepted]
