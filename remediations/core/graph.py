"""The exposure graph (docs/design.md section 1), built from a Snapshot. Plain data with path queries.

    person --can edit/run--> flow --uses--> connection --authenticates as--> identity
    identity --access policy / role assignment--> vault --contains--> secret

Person -> flow edges: the creator and Owner/CanEdit shares (`can_edit`), run-only users (CanView,
`can_run`), and every System Customizer/Administrator of the flow's environment
(`environment_role`: they can edit any flow). Person -> connection: anyone a connection is shared with
(`can_use`: they can build their own flow on it). Group members -> group (`member_of`) where the
snapshot knows the members.

Node ids are prefixed strings: `principal:<oid>`, `flow:<id>`, `connection:<id>`, `vault:<id>`,
`secret:<id>`. An identity *reads* a secret when some edge into the secret's vault (or the secret
itself) grants `get`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict

from remediations.core.model import Snapshot, expand_secret_permissions
from remediations.core.rbac import secret_grants

# Data-plane roles that read secret values: Key Vault Administrator, Secrets Officer, Secrets User.
SECRET_READER_ROLES = frozenset(
    {
        "00482a5a-887f-4fb3-b363-3b7fe8e74483",
        "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
        "4633458b-17de-408a-b874-0445c86b69e6",
    }
)
_EDIT_ROLES = {"owner", "canedit"}


class Edge(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    target: str
    relation: str  # can_edit, can_run, uses, authenticates_as, access_policy, role_assignment, contains
    permissions: tuple[str, ...] = ()  # lower-case effective secret permissions on access edges

    @property
    def grants_read(self) -> bool:
        return self.relation not in {"access_policy", "role_assignment"} or "get" in self.permissions


Path = tuple[Edge, ...]


def principal_node(object_id: str) -> str:
    return f"principal:{object_id.lower()}"


class ExposureGraph:
    def __init__(self, edges: list[Edge]) -> None:
        self.edges = edges
        self._out: dict[str, list[Edge]] = defaultdict(list)
        self._in: dict[str, list[Edge]] = defaultdict(list)
        for edge in edges:
            self._out[edge.source].append(edge)
            self._in[edge.target].append(edge)

    @classmethod
    def build(cls, snapshot: Snapshot) -> ExposureGraph:
        edges: list[Edge] = []
        customizers = {e.name.lower(): e.editors_of_all_flows() for e in snapshot.environments}
        for flow in snapshot.flows:
            if flow.creator:
                edges.append(
                    Edge(source=principal_node(flow.creator), target=f"flow:{flow.id}", relation="can_edit")
                )
            edges += [
                Edge(source=principal_node(p), target=f"flow:{flow.id}", relation="environment_role")
                for p in customizers.get(flow.environment.lower(), ())
            ]
            edges += [
                Edge(source=f"flow:{flow.id}", target=f"connection:{cid}", relation="uses")
                for cid in flow.connection_references
            ]
        for share in snapshot.shares:
            if share.resource_kind == "connection":
                relation = "can_use"
            else:
                relation = "can_edit" if share.role.lower() in _EDIT_ROLES else "can_run"
            edges.append(
                Edge(
                    source=principal_node(share.principal_id),
                    target=f"{share.resource_kind}:{share.resource_id}",
                    relation=relation,
                )
            )
        for group, members in snapshot.group_members.items():
            edges += [
                Edge(source=principal_node(m), target=principal_node(group), relation="member_of")
                for m in members
            ]
        for connection in snapshot.connections:
            if connection.identity_principal_id:
                edges.append(
                    Edge(
                        source=f"connection:{connection.id}",
                        target=principal_node(connection.identity_principal_id),
                        relation="authenticates_as",
                    )
                )
        for vault in snapshot.vaults:
            vault_node = f"vault:{vault.id.lower()}"
            if not vault.enable_rbac_authorization:  # Azure ignores access policies on RBAC vaults
                for entry in vault.access_policies:
                    perms = tuple(sorted(expand_secret_permissions(entry.permissions.secrets)))
                    if perms:
                        edges.append(
                            Edge(
                                source=principal_node(entry.object_id),
                                target=vault_node,
                                relation="access_policy",
                                permissions=perms,
                            )
                        )
            else:
                # Role assignments at secret, vault, resource group or subscription scope, with the
                # secret rights their role definitions' dataActions grant (custom roles included).
                for grant in secret_grants(snapshot, vault):
                    target = (
                        f"secret:{grant.assignment.scope.rstrip('/').lower()}"
                        if grant.level == "secret"
                        else vault_node
                    )
                    edges.append(
                        Edge(
                            source=principal_node(grant.assignment.principal_id),
                            target=target,
                            relation="role_assignment",
                            permissions=grant.permissions,
                        )
                    )
            for secret in vault.secrets:
                edges.append(
                    Edge(source=vault_node, target=_secret_node(vault.id, secret.name), relation="contains")
                )
        return cls(list(dict.fromkeys(edges)))  # the creator is also listed as an Owner share

    def who_can_read(self, secret_node: str) -> list[Path]:
        """Every path into the secret along which `get` is granted, longest prefix first (people)."""
        return sorted(
            (
                p
                for p in self._paths_into(secret_node, ())
                if p[0].source.startswith("principal:") and all(e.grants_read for e in p)
            ),
            key=lambda p: (-len(p), [e.source for e in p]),
        )

    def what_can_read(self, object_id: str) -> list[Path]:
        """Every path from the principal to a secret it can read."""
        return sorted(
            (
                p
                for p in self._paths_from(principal_node(object_id), ())
                if p[-1].target.startswith("secret:") and all(e.grants_read for e in p)
            ),
            key=lambda p: [e.target for e in p],
        )

    def secrets_reachable_from(self, node: str) -> list[Path]:
        """Every path from any node (e.g. `flow:<id>`) to a secret, with `get` granted all along."""
        return sorted(
            (
                p
                for p in self._paths_from(node, ())
                if p[-1].target.startswith("secret:") and all(e.grants_read for e in p)
            ),
            key=lambda p: [e.target for e in p],
        )

    def vaults_reachable_from(self, node: str) -> list[Path]:
        """Every path from a node to a vault whose secrets it can `get` (for vaults whose secret names
        the snapshot does not hold, e.g. when listing them was refused)."""
        return sorted(
            (
                p
                for p in self._paths_from(node, ())
                if p[-1].target.startswith("vault:")
                and "get" in p[-1].permissions
                and all(e.grants_read for e in p)
            ),
            key=lambda p: [e.target for e in p],
        )

    def _paths_into(self, node: str, suffix: Path) -> Iterator[Path]:
        incoming = [e for e in self._in.get(node, []) if e not in suffix]
        if suffix:
            yield suffix
        for edge in incoming:
            if any(edge.source == e.target for e in suffix):  # no cycles
                continue
            yield from self._paths_into(edge.source, (edge, *suffix))

    def _paths_from(self, node: str, prefix: Path) -> Iterator[Path]:
        if prefix:
            yield prefix
        for edge in self._out.get(node, []):
            if any(edge.target == e.source for e in prefix):
                continue
            yield from self._paths_from(edge.target, (*prefix, edge))


def _secret_node(vault_id: str, name: str) -> str:
    return f"secret:{vault_id.lower()}/secrets/{name.lower()}"


def secret_node(vault_id: str, name: str) -> str:
    return _secret_node(vault_id, name)
