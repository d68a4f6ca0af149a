from __future__ import annotations

from remediations.core.graph import ExposureGraph, secret_node
from remediations.core.model import Connection, Flow, Share
from tests.unit.kv_builders import policy_entry, snapshot, vault, vault_id


def test_paths_from_person_through_flow_to_secret() -> None:
    base = snapshot(vault("kv", policy_entry("admin", "get", "list"), policy_entry("writer", "set")))
    snap = base.model_copy(
        update={
            "flows": (Flow(id="f1", environment="env", creator="admin", connection_references=("c1",)),),
            "connections": (
                Connection(
                    id="c1", environment="env", connector_id="shared_keyvault", identity_principal_id="admin"
                ),
            ),
            "shares": (
                Share(resource_kind="flow", resource_id="f1", principal_id="maker", role="CanEdit"),
                Share(resource_kind="flow", resource_id="f1", principal_id="viewer", role="CanView"),
            ),
        }
    )
    graph = ExposureGraph.build(snap)
    paths = graph.who_can_read(secret_node(vault_id("kv"), "db-password"))
    starts = {p[0].source for p in paths}
    # writer has no get; the run-only viewer reaches it by running the flow
    assert starts == {"principal:admin", "principal:maker", "principal:viewer"}
    viewer = next(p for p in paths if p[0].source == "principal:viewer")
    assert viewer[0].relation == "can_run"
    maker = next(p for p in paths if p[0].source == "principal:maker")
    assert [e.relation for e in maker] == [
        "can_edit",
        "uses",
        "authenticates_as",
        "access_policy",
        "contains",
    ]
    assert [p[-1].target for p in graph.what_can_read("maker")] == [
        secret_node(vault_id("kv"), "db-password")
    ]
    assert graph.what_can_read("writer") == []


def test_rbac_vault_ignores_access_policies() -> None:
    graph = ExposureGraph.build(snapshot(vault("kv", policy_entry("u1", "get"), rbac=True)))
    assert graph.who_can_read(secret_node(vault_id("kv"), "db-password")) == []
