"""Power Platform detectors, flow-derived allow-lists (`allowList: fromFlows`) and the exposure graph."""

from __future__ import annotations

from remediations.core.detect import detect
from remediations.core.flow_allow_list import effective_policy, secrets_needed_by_identity
from remediations.core.graph import ExposureGraph, secret_node
from remediations.core.planning import build_plan
from remediations.core.policy import parse_policy
from tests.unit.kv_builders import vault_id
from tests.unit.pp_builders import (
    ADMIN,
    ANALYST,
    CUSTOMIZER,
    SVC,
    connection,
    flow,
    keyvault_action,
    seed_like,
)


def _ids(findings):  # type: ignore[no-untyped-def]
    return sorted((f.detector_id, f.principal) for f in findings)


def test_seed_like_findings() -> None:
    snap = seed_like()
    policy = parse_policy({"serviceAccounts": [SVC], "powerPlatform": {"maxSystemCustomizers": 1}})
    found = {(f.detector_id, f.principal) for f in detect(snap, policy)}
    assert {
        ("flow_uses_keyvault", None),
        ("connection_runs_as_user", ADMIN),
        ("flow_owned_by_personal_account", ADMIN),
        ("flow_shared_beyond_allowed", ANALYST),
        ("connection_shared_beyond_allowed", ANALYST),
        ("environment_too_many_customizers", None),
        ("flow_secure_get_secret", ADMIN),
    } <= found
    runs_as = next(f for f in detect(snap, policy) if f.detector_id == "connection_runs_as_user")
    assert runs_as.severity == "high" and runs_as.evidence["administrator"] is True
    assert runs_as.resource_id.endswith("/flows/f1")


def test_service_principal_connections_and_service_owned_flows_are_fine() -> None:
    snap = seed_like().model_copy(
        update={
            "flows": (flow("f1", SVC, "c-sp"),),
            "connections": (connection("c-sp", "sp-object", kind="servicePrincipal"),),
            "shares": (),
        }
    )
    found = _ids(detect(snap, parse_policy({"serviceAccounts": [SVC]})))
    assert not [d for d, _ in found if d in {"connection_runs_as_user", "flow_owned_by_personal_account"}]


def test_leaking_definitions_are_reported_with_their_path_never_a_value() -> None:
    password = "S3cr3t-Literal-Value-9f8e7d6c5b4a"
    actions = {
        "List_secrets": keyvault_action("ListSecrets", secure=False),
        "Get_secret": keyvault_action("GetSecret", "db-password", secure=False),
        "HTTP": {
            "type": "Http",
            "runAfter": {},
            "inputs": {
                "method": "GET",
                "uri": "https://x.example",
                "headers": {"Authorization": f"Bearer {password}"},
            },
        },
    }
    snap = seed_like().model_copy(update={"flows": (flow("f1", ADMIN, "c-admin", actions),)})
    findings = detect(snap, parse_policy({}))
    by_id = {f.detector_id: f for f in findings}
    assert by_id["flow_insecure_get_secret"].evidence["action_path"] == "actions.Get_secret"
    assert by_id["flow_lists_secrets"].evidence["action_path"] == "actions.List_secrets"
    assert by_id["flow_hardcoded_credential"].evidence["action_path"] == "actions.HTTP"
    assert password not in repr([f.model_dump() for f in findings])


def test_from_flows_narrows_the_admin_to_get_and_names_the_one_secret() -> None:
    snap = seed_like()
    policy = parse_policy({"allowList": "fromFlows"})
    derived = effective_policy(policy, snap)
    assert derived.derived_secret_permissions == {f"{ADMIN}|kv": ("get",)}
    assert derived.derived_secret_names == {f"{ADMIN}|kv": ("db-password",)}
    assert secrets_needed_by_identity(snap, ADMIN) == frozenset({"db-password"})
    findings = detect(snap, policy)
    excess = next(f for f in findings if f.detector_id == "excess_secret_permissions")
    assert excess.evidence["excess"] == ["list"] and excess.evidence["neededSecretNames"] == ["db-password"]
    assert not [f for f in findings if f.detector_id == "secret_list_permission"]  # one write, not two
    plan = build_plan(findings, snap, policy, remediation_ids={"narrow_access_policy"})
    (action,) = plan.actions
    assert action.after["secrets"] == ["Get"] and "read only the secrets db-password" in action.reason


def test_from_flows_leaves_identities_with_dynamic_reads_unnamed() -> None:
    actions = {"Get_secret": keyvault_action("GetSecret", "@triggerBody()?['name']")}
    snap = seed_like().model_copy(update={"flows": (flow("f1", ADMIN, "c-admin", actions),)})
    derived = effective_policy(parse_policy({"allowList": "fromFlows"}), snap)
    assert derived.derived_secret_permissions == {f"{ADMIN}|kv": ("get",)}
    assert derived.derived_secret_names == {}  # unknown: nothing is narrowed per secret
    assert secrets_needed_by_identity(snap, ADMIN) is None


def test_graph_paths_from_people_through_flows_and_connections() -> None:
    snap = seed_like()
    graph = ExposureGraph.build(snap)
    paths = graph.who_can_read(secret_node(vault_id("kv"), "crm-key"))
    starts = {p[0].source: [e.relation for e in p] for p in paths if len(p) > 2}
    assert starts["principal:customizer"][0] == "environment_role"  # any flow in the environment
    assert starts[f"principal:{ANALYST}"][0] in {"can_edit", "can_use"}
    reach = {p[-1].target for p in graph.what_can_read(CUSTOMIZER)}
    assert reach == {secret_node(vault_id("kv"), n) for n in ("db-password", "crm-key", "sftp")}


def test_a_user_connection_is_reported_once_per_flow_that_uses_it_in_any_case() -> None:
    snap = seed_like().model_copy(
        update={
            "flows": (
                flow("f1", ADMIN, "c-admin"),
                flow("f2", ADMIN, "C-ADMIN"),  # the same connection, referenced in another case
                flow("f3", ADMIN, "c-other"),
            ),
            "connections": (
                connection("c-admin", ADMIN),
                connection("c-other", "sp", kind="servicePrincipal"),
            ),
            "shares": (),
        }
    )
    runs_as = [f for f in detect(snap, parse_policy({})) if f.detector_id == "connection_runs_as_user"]
    assert sorted(f.resource_id.rsplit("/", 1)[-1] for f in runs_as) == ["f1", "f2"]
    assert {f.evidence["connection"] for f in runs_as} == {"c-admin"}


def test_flow_analyses_are_computed_once_per_snapshot_and_the_cache_stays_small() -> None:
    from remediations.core import flow_allow_list

    snap = seed_like()
    first = flow_allow_list.analyze_flows(snap)
    assert flow_allow_list.analyze_flows(snap) is first
    changed = snap.model_copy(update={"flows": (flow("f9", ADMIN, "c-admin", {}),)})
    assert set(flow_allow_list.analyze_flows(changed)) == {"f9"} != set(first)
    for _ in range(10):
        flow_allow_list.analyze_flows(snap.model_copy())
    assert len(flow_allow_list._ANALYSES) <= flow_allow_list._ANALYSES_KEPT
