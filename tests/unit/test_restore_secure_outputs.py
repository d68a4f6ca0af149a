"""restore_secure_outputs: secure inputs/outputs back on for Get secret actions that have them off,
by a clientdata update made on a fresh read and verified by another; the plan names paths only."""

from __future__ import annotations

import json

from remediations.core.detect import detect
from remediations.core.flow_secure import unsecured, with_secure_data
from remediations.core.model import FlowSecureDataChange, Snapshot
from remediations.core.planning import build_plan
from remediations.core.policy import parse_policy
from remediations.fixes.restore_secure_outputs import RestoreSecureOutputs
from tests.unit.pp_builders import (
    ADMIN,
    ENV,
    MemoryPowerPlatform,
    PPClients,
    definition,
    flow,
    keyvault_action,
    seed_like,
)

ON = {"powerPlatform": {"restoreSecureOutputs": True}}
HARDCODED = "P@ssw0rd-literal-1234567890"


def _insecure() -> Snapshot:
    """The seed's flow with one insecure Get secret nested in a scope, one secure, and a literal
    credential elsewhere in the definition (it must never reach the plan)."""
    actions = {
        "Scope": {
            "type": "Scope",
            "actions": {"Get_secret": keyvault_action("GetSecret", "db-password", secure=False)},
        },
        "Get_other": keyvault_action("GetSecret", "crm-key"),
        "HTTP": {
            "type": "Http",
            "inputs": {"method": "GET", "uri": "https://x", "headers": {"pwd": HARDCODED}},
        },
    }
    snap = seed_like()
    return snap.model_copy(update={"flows": (flow("f1", ADMIN, "c-admin", actions),)})


def _plan(policy_data: dict[str, object], snap: Snapshot | None = None):  # type: ignore[no-untyped-def]
    snap = snap or _insecure()
    policy = parse_policy(policy_data)
    return snap, build_plan(
        detect(snap, policy), snap, policy, remediation_ids={"restore_secure_outputs"}, dry_run=False
    )


def test_secure_data_is_added_only_at_the_given_paths_and_keeps_what_was_there() -> None:
    d = definition(
        {
            "A": keyvault_action("GetSecret", "a", secure=False),
            "B": keyvault_action(
                "GetSecret",
                "b",
                secure=False,
                runtimeConfiguration={"secureData": {"properties": ["inputs"]}},
            ),
        }
    )
    assert unsecured(d, ["actions.A", "actions.B", "actions.Gone"]) == ("actions.A", "actions.B")
    secured = with_secure_data(d, ["actions.A", "actions.B"])
    assert secured["actions"]["A"]["runtimeConfiguration"] == {
        "secureData": {"properties": ["inputs", "outputs"]}
    }
    assert secured["actions"]["B"]["runtimeConfiguration"]["secureData"]["properties"] == [
        "inputs",
        "outputs",
    ]
    assert unsecured(secured, ["actions.A", "actions.B"]) == ()
    assert "runtimeConfiguration" not in d["actions"]["A"]  # the input is not changed


def test_plans_one_action_per_flow_naming_paths_never_the_definition() -> None:
    _, plan = _plan(ON)
    (action,) = plan.actions
    assert action.changes == (
        FlowSecureDataChange(
            environment=ENV, flow_id="f1", action_paths=("actions.Scope.actions.Get_secret",)
        ),
    )
    assert action.after == {"unsecured": []}
    assert HARDCODED not in json.dumps(action.model_dump())
    assert _plan({})[1].actions == ()  # off unless the policy asks
    secure = seed_like()  # every Get secret already secured: nothing to do
    assert _plan(ON, secure)[1].actions == ()


def test_apply_updates_on_a_fresh_read_verifies_and_is_idempotent() -> None:
    snap, plan = _plan(ON)
    api = MemoryPowerPlatform(snap)
    (action,) = plan.actions
    outcome = RestoreSecureOutputs().apply(action, PPClients(api))  # type: ignore[arg-type]
    assert outcome.status == "applied" and outcome.verified
    assert [c[0] for c in api.calls] == [
        "get_flow_client_data",
        "update_flow_client_data",
        "get_flow_client_data",
    ]
    new = api.flows["f1"].definition
    assert unsecured(new, ["actions.Scope.actions.Get_secret"]) == ()
    assert new["actions"]["HTTP"] == snap.flows[0].definition["actions"]["HTTP"]  # nothing else changed
    again = RestoreSecureOutputs().apply(action, PPClients(api))  # type: ignore[arg-type]
    assert again.status == "noop" and again.verified


def test_apply_fails_when_the_update_did_not_stick_and_is_noop_for_a_gone_flow() -> None:
    snap, plan = _plan(ON)
    api = MemoryPowerPlatform(snap)
    api.ignore_updates = True
    outcome = RestoreSecureOutputs().apply(plan.actions[0], PPClients(api))  # type: ignore[arg-type]
    assert outcome.status == "failed" and "still unsecured" in (outcome.error or "")
    api.flows.clear()
    assert RestoreSecureOutputs().apply(plan.actions[0], PPClients(api)).status == "noop"  # type: ignore[arg-type]
