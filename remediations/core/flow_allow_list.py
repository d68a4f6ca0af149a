"""Usage-based least privilege (`allowList: fromFlows`): from the flow definitions, what each Key Vault
connection identity actually needs, per vault: the secret permissions (`get` when flows read secrets)
and the static secret names they read.

Rules (pure, no I/O):
- Only identities that some flow uses through a Key Vault connection get a derived allow-list, and only
  on the vault that connection names (`vaultName`); other vaults keep the configured rules.
- Reads (Get secret, Get secret version, metadata) need `get`. `list` is never derived: List secrets is
  the enumeration step of the seed attack and is reported by `flow_lists_secrets`; an identity that
  really needs it must be granted it explicitly (`secretPermissions.byIdentity`), which wins.
- Secret names are known only when every read is a static name outside a List-secrets loop; one dynamic
  read (a variable, a trigger input) or a read of listed items makes the names unknown (None), and then
  nothing is narrowed per secret.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from remediations.core.flow_analysis import DefinitionAnalysis, analyze_definition
from remediations.core.model import Connection, Flow, Snapshot
from remediations.core.policy import Policy

_GET_OPERATIONS = frozenset(
    {"get_secret", "get_secret_version", "get_secret_metadata", "get_secret_version_metadata"}
)


def references_of(flow: Flow, connections: dict[str, Connection]) -> dict[str, Any]:
    """The flow's connectionReferences in the API's shape, enough for the analysis (connector, vault)."""
    rendered: dict[str, Any] = {}
    for key, name in flow.reference_keys.items():
        connection = connections.get(name.lower())
        reference: dict[str, Any] = {"connectionName": name}
        if connection is not None:
            reference["id"] = connection.connector_id
            if connection.parameters.get("vaultName"):
                reference["vaultName"] = connection.parameters["vaultName"]
        rendered[key] = reference
    return rendered


# The analyses of the last few snapshots. Six definition detectors, the fromFlows allow-lists and the
# exposure detectors each ask for the same snapshot's analyses (12,000 definition walks for 2,000 flows
# otherwise). Keyed by identity, holding the snapshot so its id cannot be reused while cached; a
# Snapshot is frozen, so its analyses cannot go stale. A few entries: one sweep's snapshot and its
# derived copies, never the tenant's history.
_ANALYSES: OrderedDict[int, tuple[Snapshot, dict[str, DefinitionAnalysis]]] = OrderedDict()
_ANALYSES_KEPT = 4
_ANALYSES_LOCK = threading.Lock()


def analyze_flows(snapshot: Snapshot) -> dict[str, DefinitionAnalysis]:
    """{flow id: analysis} for every flow with a definition. Callers must not mutate the result."""
    with _ANALYSES_LOCK:
        cached = _ANALYSES.get(id(snapshot))
        if cached is not None and cached[0] is snapshot:
            _ANALYSES.move_to_end(id(snapshot))
            return cached[1]
    connections = {c.id.lower(): c for c in snapshot.connections}
    analyses = {
        flow.id: analyze_definition(flow.definition, connection_references=references_of(flow, connections))
        for flow in snapshot.flows
        if flow.definition
    }
    with _ANALYSES_LOCK:
        _ANALYSES[id(snapshot)] = (snapshot, analyses)
        while len(_ANALYSES) > _ANALYSES_KEPT:
            _ANALYSES.popitem(last=False)
    return analyses


@dataclass
class Needs:
    """What flows need from one identity on one vault."""

    permissions: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    names_known: bool = True
    permissions_known: bool = True  # False when a step does something we do not map (e.g. set secret)
    flows: set[str] = field(default_factory=set)


def needs_by_identity(
    snapshot: Snapshot, analyses: dict[str, DefinitionAnalysis] | None = None
) -> dict[tuple[str, str], Needs]:
    """{(identity object id, vault name), lower case: Needs} over every flow's Key Vault steps."""
    analyses = analyze_flows(snapshot) if analyses is None else analyses
    connections = {c.id.lower(): c for c in snapshot.connections if c.is_keyvault}
    needs: dict[tuple[str, str], Needs] = {}
    for flow in snapshot.flows:
        analysis = analyses.get(flow.id)
        if analysis is None:
            continue
        for action in analysis.keyvault_actions:
            name = flow.reference_keys.get(action.connection_reference or "", "")
            connection = connections.get(name.lower())
            if connection is None or not connection.identity_principal_id:
                continue
            vault = connection.parameters.get("vaultName")
            if not vault:
                continue
            need = needs.setdefault((connection.identity_principal_id.lower(), vault.lower()), Needs())
            need.flows.add(flow.id)
            if action.operation in _GET_OPERATIONS:
                need.permissions.add("get")
                if action.secret_name and not action.iterates_list_output and not action.dynamic_secret_name:
                    need.names.add(action.secret_name)
                else:
                    need.names_known = False
            elif action.operation == "other":
                need.names_known = need.permissions_known = False
    return needs


def effective_policy(policy: Policy, snapshot: Snapshot) -> Policy:
    """The policy with the flow-derived allow-lists filled in when it says `allowList: fromFlows`."""
    if policy.allow_list != "fromFlows" or not snapshot.flows:
        return policy
    permissions: dict[str, tuple[str, ...]] = {}
    names: dict[str, tuple[str, ...]] = {}
    for (identity, vault), need in needs_by_identity(snapshot).items():
        key = f"{identity}|{vault}"
        if not need.permissions_known or not need.permissions:
            continue  # no evidence of what it needs: keep the configured rules
        permissions[key] = tuple(sorted(need.permissions))
        if need.names_known:
            names[key] = tuple(sorted(need.names))
    if permissions == policy.derived_secret_permissions and names == policy.derived_secret_names:
        return policy
    return policy.model_copy(
        update={"derived_secret_permissions": permissions, "derived_secret_names": names}
    )


def secrets_needed_by_identity(snapshot: Snapshot, identity: str) -> frozenset[str] | None:
    """Every secret name `identity` needs across vaults (lower case); None when some read is dynamic or
    no flow uses it. Shaped for narrow_role_assignment's `needed_secret_names` resolver."""
    mine = [n for (oid, _), n in needs_by_identity(snapshot).items() if oid == identity.lower()]
    if not mine or not all(n.names_known for n in mine):
        return None
    return frozenset(name.lower() for n in mine for name in n.names)
