"""Solution connection references as the snapshot's flows name them (pure).

A solution flow names a Dataverse `connectionreferences` row, not a connection; the row's `connectionid`
binds every flow that names it. Rebinding the row therefore moves all of them at once: a fix planning
it must know every flow of the environment that names the row, not only the one it found.
"""

from __future__ import annotations

from dataclasses import dataclass

from remediations.core.model import Snapshot


@dataclass(frozen=True)
class ReferenceBinding:
    """One connection reference row of one environment, as the snapshot's flows resolve it."""

    environment: str
    logical_name: str
    connections: frozenset[str]  # lower-case connection ids its flows resolve it to (one, when consistent)
    flows: tuple[str, ...]  # ids of every flow naming it, sorted


def reference_key(environment: str, logical_name: str) -> tuple[str, str]:
    return environment.lower(), logical_name.lower()


def connection_reference_resource_id(environment: str, logical_name: str) -> str:
    """The id actions, leases and audit rows name a connection reference row by."""
    return f"/providers/Microsoft.PowerApps/environments/{environment}/connectionReferences/{logical_name}"


def reference_bindings(snapshot: Snapshot) -> dict[tuple[str, str], ReferenceBinding]:
    """Every connection reference the snapshot's flows name, by (environment, logical name) in lower case."""
    spelled: dict[tuple[str, str], tuple[str, str]] = {}  # as the first flow naming it spells both
    connections: dict[tuple[str, str], set[str]] = {}
    flows: dict[tuple[str, str], set[str]] = {}
    for flow in snapshot.flows:
        for reference, logical_name in flow.solution_references.items():
            key = reference_key(flow.environment, logical_name)
            spelled.setdefault(key, (flow.environment, logical_name))
            flows.setdefault(key, set()).add(flow.id)
            bound = connections.setdefault(key, set())
            if reference in flow.reference_keys:
                bound.add(flow.reference_keys[reference].lower())
    return {
        key: ReferenceBinding(
            environment=spelled[key][0],
            logical_name=spelled[key][1],
            connections=frozenset(connections[key]),
            flows=tuple(sorted(flows[key])),
        )
        for key in sorted(spelled)
    }
