"""RBAC inventory in the exposure graph, the fromFlows hook, and `oversized_vault` on built snapshots
(with Connection objects standing in for the Power Platform inventory)."""

from __future__ import annotations

from remediations.core import rbac
from remediations.core.detect import detect
from remediations.core.graph import ExposureGraph, secret_node
from remediations.core.model import Connection, Flow, RoleDefinition
from remediations.core.policy import parse_policy
from tests.unit.kv_builders import policy_entry, snapshot, vault
from tests.unit.rbac_builders import FLOW, RG_SCOPE, assignment, rbac_snapshot, rbac_vault, vault_id

KV = vault_id("kv")


def test_graph_has_edges_for_every_scope_level_and_custom_roles() -> None:
    custom = RoleDefinition(
        id="99999999-0000-0000-0000-000000000002",
        role_name="Reader+",
        data_actions=("Microsoft.KeyVault/vaults/secrets/*",),
        not_data_actions=("Microsoft.KeyVault/vaults/secrets/purge/action",),
    )
    snap = rbac_snapshot(
        rbac_vault("kv", "a", "b"),
        assignments=(
            assignment(RG_SCOPE, rbac.KEY_VAULT_SECRETS_USER, principal="rg-reader"),
            assignment(f"{KV}/secrets/a", rbac.KEY_VAULT_SECRETS_USER, principal="one-secret"),
            assignment(KV, custom.guid, principal="custom"),
            assignment(KV, rbac.KEY_VAULT_READER, principal="metadata-only"),
        ),
        definitions=(custom,),
    )
    graph = ExposureGraph.build(snap)
    readers_a = {p[0].source for p in graph.who_can_read(secret_node(KV, "a"))}
    readers_b = {p[0].source for p in graph.who_can_read(secret_node(KV, "b"))}
    assert readers_a == {"principal:rg-reader", "principal:one-secret", "principal:custom"}
    assert readers_b == {"principal:rg-reader", "principal:custom"}
    grants = {g.assignment.principal_id: g for g in rbac.secret_grants(snap)}
    assert grants["custom"].permissions == ("backup", "delete", "get", "list", "recover", "restore", "set")
    assert grants["rg-reader"].level == "resource_group" and grants["metadata-only"].permissions == ("list",)


def _flow_snapshot(secret_name: str) -> object:
    connection = Connection(
        id="conn1",
        environment="env",
        connector_id="/providers/Microsoft.PowerApps/apis/shared_keyvault",
        identity_principal_id=FLOW,
        identity_kind="servicePrincipal",
    )
    definition = {
        "properties": {
            "definition": {
                "actions": {
                    "Scope": {
                        "type": "Scope",
                        "actions": {
                            "Get_secret": {
                                "type": "OpenApiConnection",
                                "inputs": {
                                    "host": {
                                        "apiId": "/providers/Microsoft.PowerApps/apis/shared_keyvault",
                                        "operationId": "GetSecret",
                                        "connectionName": "shared_keyvault",
                                    },
                                    "parameters": {"secretName": secret_name},
                                },
                            }
                        },
                    }
                }
            }
        }
    }
    flow = Flow(id="f1", environment="env", connection_references=("conn1",), definition=definition)
    return rbac_snapshot(
        rbac_vault("kv", "a", "b"),
        assignments=(assignment(KV, rbac.KEY_VAULT_SECRETS_USER),),
        connections=(connection,),
    ).model_copy(update={"flows": (flow,)})


def test_from_flows_hook_reads_get_secret_names_and_refuses_expressions() -> None:
    policy = parse_policy({"allowList": "fromFlows"})
    snap = _flow_snapshot("a")
    assert rbac.needed_secret_names(snap, FLOW, policy) == frozenset({"a"})  # type: ignore[arg-type]
    [finding] = [f for f in detect(snap, policy) if f.detector_id == "wide_secret_role_assignment"]  # type: ignore[arg-type]
    assert finding.evidence["needed"] == ["a"]
    dynamic = _flow_snapshot("@triggerBody()?['name']")
    assert rbac.needed_secret_names(dynamic, FLOW, policy) is None  # type: ignore[arg-type]


def test_oversized_vault_needs_flow_identities_and_suggests_a_split() -> None:
    tags = {"a": {"purpose": "payroll"}, "b": {"purpose": "crm"}, "c": {"Purpose": "crm"}, "d": {}}
    kv = rbac_vault("kv", "a", "b", "c", "d", tags=tags)
    connection = Connection(
        id="c1",
        environment="e",
        connector_id="shared_keyvault",
        identity_principal_id=FLOW,
        identity_kind="servicePrincipal",
    )
    reached = rbac_snapshot(
        kv, assignments=(assignment(KV, rbac.KEY_VAULT_SECRETS_USER),), connections=(connection,)
    )
    [finding] = [f for f in detect(reached, parse_policy({})) if f.detector_id == "oversized_vault"]
    assert finding.evidence["purposes"] == ["crm", "payroll"] and finding.evidence["flowIdentities"] == [
        FLOW.lower()
    ]
    assert finding.evidence["suggestedSplit"] == [
        {"vault": "kv-untagged", "purpose": None, "secrets": ["d"]},
        {"vault": "kv-crm", "purpose": "crm", "secrets": ["b", "c"]},
        {"vault": "kv-payroll", "purpose": "payroll", "secrets": ["a"]},
    ]
    # Within limits: no finding. No connections: none unless the policy says every reader counts.
    assert not [
        f
        for f in detect(reached, parse_policy({"oversizedVault": {"maxPurposes": 2}}))
        if f.detector_id == "oversized_vault"
    ]
    plain = snapshot(vault("kv", policy_entry("reader", "get"), secrets=tuple(f"s{i}" for i in range(5))))
    policy = {"oversizedVault": {"maxSecrets": 3}}
    assert not [f for f in detect(plain, parse_policy(policy)) if f.detector_id == "oversized_vault"]
    policy["oversizedVault"]["includeAllReaders"] = True  # type: ignore[index]
    [big] = [f for f in detect(plain, parse_policy(policy)) if f.detector_id == "oversized_vault"]
    assert big.evidence["secretCount"] == 5 and [
        len(s["secrets"]) for s in big.evidence["suggestedSplit"]
    ] == [3, 2]
