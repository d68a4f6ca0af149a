"""move_to_service_connection: a flow on a person's Key Vault connection is rebound to the service
connection the policy names for its vault or environment, only when that one can stand in."""

from __future__ import annotations

import copy
from typing import Any

from remediations.core.detect import detect
from remediations.core.graph import ExposureGraph
from remediations.core.model import ConnectionReferenceChange, FlowConnectionChange, Plan, Scope, Snapshot
from remediations.core.planning import build_plan
from remediations.core.policy import parse_policy
from remediations.core.vault_bound import bound_to_vault
from remediations.fixes.move_to_service_connection import MoveToServiceConnection
from tests.unit.kv_builders import policy_entry
from tests.unit.pp_builders import (
    ADMIN,
    ENV,
    SVC,
    MemoryPowerPlatform,
    PPClients,
    connection,
    flow,
    seed_like,
)

BY_VAULT = {"powerPlatform": {"serviceConnections": {"kv": "c-svc"}}}
BY_ENV = {"powerPlatform": {"serviceConnections": {ENV: "c-svc"}}}


def _with_service_connection(kind: str = "servicePrincipal", vault: str = "kv") -> Snapshot:
    snap = seed_like()
    svc = connection("c-svc", SVC, kind=kind, vault_name=vault)
    vaults = tuple(
        v.model_copy(update={"access_policies": (*v.access_policies, policy_entry(SVC, "Get"))})
        for v in snap.vaults
    )
    return snap.model_copy(update={"connections": (*snap.connections, svc), "vaults": vaults})


def _plan(policy_data: dict[str, object], snap: Snapshot | None = None):  # type: ignore[no-untyped-def]
    snap = snap or _with_service_connection()
    policy = parse_policy(policy_data)
    return snap, build_plan(
        detect(snap, policy), snap, policy, remediation_ids={"move_to_service_connection"}, dry_run=False
    )


def test_plans_the_move_where_the_policy_names_a_connection_by_vault_or_environment() -> None:
    for named in (BY_VAULT, BY_ENV):
        _, plan = _plan(named)
        (action,) = plan.actions
        assert action.changes == (
            FlowConnectionChange(
                environment=ENV, flow_id="f1", from_connection="c-admin", to_connection="c-svc"
            ),
        )
        assert action.before == {"connection": ["c-admin"]} and action.after == {"connection": ["c-svc"]}


def test_not_planned_unless_the_named_connection_can_stand_in() -> None:
    assert _plan({})[1].actions == ()  # the policy names none
    assert _plan({"powerPlatform": {"serviceConnections": {"kv": "missing"}}})[1].actions == ()
    assert _plan(BY_VAULT, _with_service_connection(kind="user"))[1].actions == ()  # another person's
    assert _plan(BY_VAULT, _with_service_connection(vault="other"))[1].actions == ()  # another vault


def test_apply_rebinds_verifies_and_the_person_drops_out_of_the_paths() -> None:
    snap, plan = _plan(BY_VAULT)
    api = MemoryPowerPlatform(snap)
    (action,) = plan.actions
    outcome = MoveToServiceConnection().apply(action, PPClients(api))  # type: ignore[arg-type]
    assert outcome.status == "applied" and outcome.verified
    assert [c[0] for c in api.calls] == [
        "get_flow_client_data",
        "update_flow_client_data",
        "get_flow_client_data",
    ]
    moved = api.flows["f1"]
    assert moved.reference_keys == {"shared_keyvault": "c-svc"}
    assert moved.definition == snap.flows[0].definition  # the definition is unchanged
    again = MoveToServiceConnection().apply(action, PPClients(api))  # type: ignore[arg-type]
    assert again.status == "noop" and again.verified
    # the flow -> person's connection edge is cut: the flow now reads as the service principal
    graph = ExposureGraph.build(snap.model_copy(update={"flows": (moved,)}))
    uses = {e.target for e in graph.edges if e.source == "flow:f1" and e.relation == "uses"}
    assert uses == {"connection:c-svc"}


def test_apply_fails_when_the_update_did_not_stick() -> None:
    snap, plan = _plan(BY_VAULT)
    api = MemoryPowerPlatform(snap)
    api.ignore_updates = True
    outcome = MoveToServiceConnection().apply(plan.actions[0], PPClients(api))  # type: ignore[arg-type]
    assert outcome.status == "failed" and "still uses" in (outcome.error or "")


# -- solution flows: a connection reference row binds every flow naming it --------------------------------


def _solution_snapshot(*flow_ids: str) -> Snapshot:
    """Solution flows naming one connection reference row (`vg_kv`) bound to the admin's connection."""
    snap = _with_service_connection()
    flows = tuple(
        flow(f, ADMIN, "c-admin").model_copy(update={"solution_references": {"shared_keyvault": "vg_kv"}})
        for f in flow_ids
    )
    return snap.model_copy(update={"flows": flows})


def _solution_plan(snap: Snapshot, keep: set[str] | None = None) -> Plan:
    policy = parse_policy(BY_VAULT)
    findings = [
        f
        for f in detect(snap, policy)
        if keep is None or f.evidence.get("flow") is None or f.evidence.get("flow") in keep
    ]
    return build_plan(findings, snap, policy, remediation_ids={"move_to_service_connection"}, dry_run=False)


def test_a_shared_connection_reference_is_rebound_once_naming_every_flow_it_moves() -> None:
    plan = _solution_plan(_solution_snapshot("f1", "f2"))
    (action,) = plan.actions  # one row, not one clientdata edit per flow
    assert action.skip_reason is None
    assert action.target == "/providers/Microsoft.PowerApps/environments/env-1/connectionReferences/vg_kv"
    assert action.changes == (
        ConnectionReferenceChange(
            environment=ENV,
            logical_name="vg_kv",
            from_connection="c-admin",
            to_connection="c-svc",
            flow_ids=("f1", "f2"),
        ),
    )
    assert "'flow f1', 'flow f2'" in action.reason and len(action.finding_ids) == 2
    assert action.before == {"connection": ["c-admin"], "flows": ["f1", "f2"]}
    assert action.after == {"connection": ["c-svc"], "flows": ["f1", "f2"]}


def test_refused_when_the_row_also_binds_a_flow_this_run_does_not_move() -> None:
    plan = _solution_plan(_solution_snapshot("f1", "f2"), keep={"f1"})
    (action,) = plan.actions
    assert action.skip_reason is not None
    assert "also binds flow(s) f2" in action.skip_reason and "would move them too" in action.skip_reason
    assert plan.writes == ()


def test_a_flow_naming_its_connection_itself_keeps_the_clientdata_edit() -> None:
    snap = _solution_snapshot("f1")
    direct = flow("f2", ADMIN, "c-admin")
    plan = _solution_plan(snap.model_copy(update={"flows": (*snap.flows, direct)}))
    kinds = sorted(type(a.changes[0]).__name__ for a in plan.actions)
    assert kinds == ["ConnectionReferenceChange", "FlowConnectionChange"]


def test_apply_rebinds_the_row_verifies_it_and_every_flow_moves() -> None:
    snap = _solution_snapshot("f1", "f2")
    (action,) = _solution_plan(snap).actions
    api = MemoryPowerPlatform(snap)
    outcome = MoveToServiceConnection().apply(action, PPClients(api))  # type: ignore[arg-type]
    assert outcome.status == "applied" and outcome.verified
    assert api.calls == [
        ("get_connection_reference", "vg_kv"),
        ("update_connection_reference", "cr-vg_kv"),
        ("get_connection_reference", "vg_kv"),
    ]
    assert {f.id: f.reference_keys for f in api.flows.values()} == {
        "f1": {"shared_keyvault": "c-svc"},
        "f2": {"shared_keyvault": "c-svc"},
    }
    again = MoveToServiceConnection().apply(action, PPClients(api))  # type: ignore[arg-type]
    assert again.status == "noop" and again.verified  # idempotent: already bound to the service connection


def test_apply_leaves_a_row_changed_since_the_plan_and_fails_an_update_that_did_not_take() -> None:
    snap = _solution_snapshot("f1")
    (action,) = _solution_plan(snap).actions
    api = MemoryPowerPlatform(snap)
    api.references["vg_kv"] = api.references["vg_kv"].model_copy(update={"connection_id": "c-other"})
    drifted = MoveToServiceConnection().apply(action, PPClients(api))  # type: ignore[arg-type]
    assert drifted.status == "failed" and "changed since the plan" in (drifted.error or "")
    assert ("update_connection_reference", "cr-vg_kv") not in api.calls  # never overwritten
    stuck = MemoryPowerPlatform(snap)
    stuck.ignore_updates = True
    outcome = MoveToServiceConnection().apply(action, PPClients(stuck))  # type: ignore[arg-type]
    assert outcome.status == "failed" and "still binds" in (outcome.error or "")


def test_a_row_deleted_before_the_write_is_a_noop_and_after_it_the_write_did_not_take() -> None:
    """The row, looked up by name, is not found. At the first read no flow binds anything through it any
    more: a noop, nothing sent. At the verifying read (deleted right after the PATCH) the rebinding is
    not shown to have taken: failed."""
    snap = _solution_snapshot("f1")
    (action,) = _solution_plan(snap).actions
    api = MemoryPowerPlatform(snap)
    del api.references["vg_kv"]
    deleted = MoveToServiceConnection().apply(action, PPClients(api))  # type: ignore[arg-type]
    assert (deleted.status, deleted.verified) == ("noop", False) and deleted.before == action.before
    assert deleted.error == "no connection reference vg_kv in the environment"
    assert api.calls == [("get_connection_reference", "vg_kv")]

    racing = MemoryPowerPlatform(snap)
    update = racing.update_connection_reference

    def update_then_delete(environment: str, reference_id: str, connection: str) -> None:
        update(environment, reference_id, connection)
        del racing.references["vg_kv"]

    racing.update_connection_reference = update_then_delete  # type: ignore[method-assign]
    outcome = MoveToServiceConnection().apply(action, PPClients(racing))  # type: ignore[arg-type]
    assert (outcome.status, outcome.verified) == ("failed", False) and outcome.before == action.before
    assert outcome.error == "connection reference vg_kv still binds the connection"
    assert [call for call, _ in racing.calls] == [
        "get_connection_reference",
        "update_connection_reference",
        "get_connection_reference",
    ]


def test_a_vault_bound_run_keeps_the_row_of_its_vault() -> None:
    snap = _solution_snapshot("f1", "f2")
    policy = parse_policy(BY_VAULT)
    findings = detect(snap, policy)
    plan = _solution_plan(snap)
    scope = Scope(subscription_id="sub", vault_name="kv")
    _, kept = bound_to_vault(scope, snap, findings, plan, environment_wide=False)
    assert kept.actions == plan.actions
    _, other = bound_to_vault(
        scope.model_copy(update={"vault_name": "other"}), snap, findings, plan, environment_wide=True
    )
    assert other.actions == ()


def test_a_dry_run_picture_moves_the_flows_the_plan_would_move() -> None:
    """report/simulate.py: the 'after' snapshot of a dry run has every flow naming the row (and a flow
    naming the connection itself) on the service connection; the same as the applied result."""
    from remediations.report.simulate import simulate

    snap = _solution_snapshot("f1", "f2")
    direct = flow("f3", ADMIN, "c-admin")
    snap = snap.model_copy(update={"flows": (*snap.flows, direct)})
    plan = _solution_plan(snap)
    after = simulate(snap, plan.writes)
    assert {f.id: f.reference_keys for f in after.flows} == {
        f: {"shared_keyvault": "c-svc"} for f in ("f1", "f2", "f3")
    }
    assert all(f.connection_references == ("c-svc",) for f in after.flows)
    refused = _solution_plan(snap, keep={"f1", "f3"})  # the row also binds f2: skipped, not simulated
    moved = {
        f.id for f in simulate(snap, refused.writes).flows if f.reference_keys["shared_keyvault"] == "c-svc"
    }
    assert moved == {"f3"}


def test_the_clientdata_edit_leaves_a_key_its_connection_reference_row_binds() -> None:
    """A flow with its own key and a solution key (whose clientdata also carries `connection.name`, as
    the recorded clientdata does): the clientdata edit rebinds its own key only; the row's key keeps
    naming its row."""
    snap = _with_service_connection()
    both = flow("f1", ADMIN, "c-admin").model_copy(
        update={
            "reference_keys": {"shared_keyvault": "c-admin", "shared_keyvault_1": "c-admin"},
            "solution_references": {"shared_keyvault_1": "vg_kv"},
        }
    )
    snap = snap.model_copy(update={"flows": (both,)})
    (direct,) = [a for a in _solution_plan(snap).actions if isinstance(a.changes[0], FlowConnectionChange)]
    row = {"name": "c-admin", "connectionReferenceLogicalName": "vg_kv"}
    data = {
        "properties": {
            "connectionReferences": {
                "shared_keyvault": {"connection": {"name": "c-admin"}},
                "shared_keyvault_1": {"connection": row},
            },
            "definition": {},
        }
    }

    class ClientData:
        def __init__(self) -> None:
            self.data = data

        def get_flow_client_data(self, environment: str, flow_id: str) -> dict[str, Any]:
            return copy.deepcopy(self.data)

        def update_flow_client_data(self, environment: str, flow_id: str, sent: dict[str, Any]) -> None:
            self.data = sent

    api = ClientData()
    outcome = MoveToServiceConnection().apply(direct, PPClients(api))  # type: ignore[arg-type]
    assert outcome.status == "applied" and outcome.verified
    references = api.data["properties"]["connectionReferences"]
    assert references["shared_keyvault"]["connection"] == {"name": "c-svc"}
    assert references["shared_keyvault_1"]["connection"] == row  # the row's binding is left to the row
