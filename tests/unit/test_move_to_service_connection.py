"""move_to_service_connection: a flow on a person's Key Vault connection is rebound to the service
connection the policy names for its vault or environment, only when that one can stand in."""

from __future__ import annotations

from remediations.core.detect import detect
from remediations.core.graph import ExposureGraph
from remediations.core.model import FlowConnectionChange, Snapshot
from remediations.core.planning import build_plan
from remediations.core.policy import parse_policy
from remediations.fixes.move_to_service_connection import MoveToServiceConnection
from tests.unit.kv_builders import policy_entry
from tests.unit.pp_builders import ENV, SVC, MemoryPowerPlatform, PPClients, connection, seed_like

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
