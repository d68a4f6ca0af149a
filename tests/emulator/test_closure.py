"""Verify closure, not the action. One pipeline run with the demo policy applies its plan on
the seed, then re-reads and lists the person -> flow -> secret paths left, each with its reason. With
quarantine alone, the System Customizer's path through the quarantined flow is closed (the emulator
refuses them turning it on, and closure says so), while their paths through the flows still on are not
accepted by the policy, so the run fails; every other attack is in tests/emulator/test_attacks.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from emulator.powerplatform import definitions as defs
from emulator.scenario import load_scenario
from remediations.adapters.clients import AzureClients
from remediations.core.model import Scope
from remediations.core.policy import Policy, parse_policy
from remediations.core.request import RunRequest
from remediations.shell.audit import MemoryAuditSink
from remediations.shell.pipeline import run
from tests.emulator.test_powerplatform_attack import Attack, _client, _who

V = {"api-version": "2016-11-01"}
DEMO_POLICY = Path(__file__).resolve().parents[2] / "demo" / "policy.json"


def _ids(result: Any, remediation: str) -> set[str]:
    return {a.id for a in result.plan.actions if a.remediation_id == remediation}


def _apply(seed: dict[str, Any], policy: Policy, correlation_id: str, *only: str) -> tuple[Any, str | None]:
    """One CLI pipeline run that writes, over the seed's subscription and the policy's environments
    (`only`: these remediations); the result and the app's own object id."""
    request = RunRequest(
        trigger="cli",
        scope=Scope(subscription_id=seed["subscriptions"][0]["subscriptionId"]),
        power_platform=policy.power_platform.scope(),
        remediations=only or None,
        dry_run=False,
        correlation_id=correlation_id,
    )
    with AzureClients() as clients:
        return run(request, policy, clients, MemoryAuditSink()), clients.own_object_id()


@pytest.fixture
def emu(seeded_emu: Emulator) -> Emulator:
    return seeded_emu  # the seed scenario, fresh per test (conftest.py)


def test_apply_lists_paths_left_with_reasons_and_fails_on_unaccepted(
    emu: Emulator, seed: dict[str, Any]
) -> None:
    admin, customizer = _who(seed, "admin@"), _who(seed, "customizer@")
    demo = json.loads(DEMO_POLICY.read_text())
    demo["powerPlatform"]["quarantineFlows"] = True
    demo["powerPlatform"]["removeFlowEditingRoles"] = False  # quarantine alone: containment, not closure
    policy = parse_policy({**demo, "dryRun": False})
    result, _ = _apply(seed, policy, "closure-1")
    assert result.count("applied") > 0
    assert result.paths_left is not None  # verified from a fresh read
    payroll = next(f for f in seed["powerPlatform"]["flows"] if f["displayName"] == "Nightly payroll export")
    left = {(p.person, p.flow, p.secret.rsplit("/", 1)[-1]): p for p in result.paths_left}
    # the owner's own path stays, with its reason
    assert left[(admin, payroll["name"], "*")].reason == "owner"
    # the customizer's path through the quarantined flow is closed: they may not use the admin's
    # connection, so they cannot turn it back on (checked against the emulator below)
    assert (customizer, payroll["name"], "*") not in left
    closed = {(p.person, p.flow): p for p in result.paths_closed or ()}
    assert closed[(customizer, payroll["name"])].why == "flow off; editor cannot use its connection"
    assert closed[(customizer, payroll["name"])].via == "environment_role"
    # ... but their role still edits the flows that are on: not accepted, the run failed
    invoice = next(f for f in seed["powerPlatform"]["flows"] if f["displayName"] == "Invoice sync")
    kept = left[(customizer, invoice["name"], "*")]
    assert kept.reason is None and kept.via == "environment_role"
    assert kept in result.unaccepted_paths
    assert {p.person for p in result.unaccepted_paths} == {customizer}
    assert result.failures >= len(result.unaccepted_paths) > 0
    # ... and listing, not counting: every path names person, flow and secret; no secret value
    values = {s["value"] for v in seed["vaults"] for s in v["secrets"]}
    dumped = json.dumps([p.model_dump() for p in result.paths_left])
    assert not any(v in dumped for v in values)

    # the flow was quarantined (Dataverse PATCH statecode 0, verified by a re-read) ...
    assert any(
        o.status == "applied" for o in result.outcomes if o.action_id in _ids(result, "quarantine_flow")
    )
    patches = [r for r in emu.requests.filter(method="PATCH") if f"workflows({payroll['name']})" in r.path]
    assert patches and emu.state.powerplatform.flows[payroll["name"]].state == "Stopped"
    # ... and the emulator holds the quarantine: List + for-each is refused by the DLP policy the run
    # made (Key Vault never asked), and the customizer, not a co-owner and not allowed to use the admin's
    # connection, cannot turn the flow back on (ConnectionAuthorizationFailed, docs/fidelity.md): the
    # path closure called closed is closed.
    attack = Attack(emu, seed)
    kv_mark = len(emu.requests.filter(host="kv-shared-prod.vault.azure.net"))
    dumped = attack.edit(defs.dump_vault_definition())
    assert dumped.status_code == 403 and dumped.json()["error"]["code"] == "DlpViolation"
    started = attack.attacker.post(f"{attack.base}/start", params=V)
    assert started.status_code == 403 and started.json()["error"]["code"] == "ConnectionAuthorizationFailed"
    assert emu.state.powerplatform.flows[payroll["name"]].state == "Stopped"
    edit = defs.definition({"Get_secret": defs.get_secret("payroll-db-password")})
    assert attack.edit(edit).status_code == 200  # editing is allowed; running a flow that is off is not
    refused = attack.attacker.post(f"{attack.base}/triggers/manual/run", params=V, json={})
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "WorkflowNotEnabled"
    assert len(emu.requests.filter(host="kv-shared-prod.vault.azure.net")) == kv_mark


def test_one_apply_with_the_demo_policy_leaves_no_unaccepted_path(
    emu: Emulator, seed: dict[str, Any]
) -> None:
    """The demo policy as shipped: the System Customizer loses the role (Dataverse disassociate), so
    every path left is the owner's, one the policy accepts, or the app's own; and the customizer's
    edit of the payroll flow is now refused by the emulator, Key Vault never asked."""
    customizer = _who(seed, "customizer@")
    policy = parse_policy({**json.loads(DEMO_POLICY.read_text()), "dryRun": False})
    result, own = _apply(seed, policy, "closure-demo")
    assert result.paths_left is not None and result.unaccepted_paths == []
    reasons = {p.person: p.reason for p in result.paths_left}
    assert customizer not in reasons
    assert own is not None and reasons[own] == "this app"  # the remediator, by its token, not a GUID
    assert {"owner", "accepted by policy", "this app"} == set(reasons.values())
    # the role was taken by one disassociate, verified by a re-read; the emulator no longer holds it
    (removed,) = [o for o in result.outcomes if o.action_id in _ids(result, "remove_flow_editing_role")]
    assert removed.status == "applied" and removed.verified
    deletes = [r for r in emu.requests.filter(method="DELETE") if "systemuserroles_association" in r.path]
    assert len(deletes) == 1 and [r.status for r in deletes] == [204]
    attack = Attack(emu, seed)
    env = emu.state.powerplatform.environments[attack.env]
    assert not any(r.principal_id == customizer for r in env.roles)
    # ... and the attack the path stood for fails: the customizer cannot edit the flow any more
    kv_mark = len(emu.requests.filter(host="kv-shared-prod.vault.azure.net"))
    edit = defs.definition({"Get_secret": defs.get_secret("payroll-db-password")})
    assert attack.edit(edit).status_code == 403
    assert attack.attacker.post(f"{attack.base}/start", params=V).status_code == 403
    assert len(emu.requests.filter(host="kv-shared-prod.vault.azure.net")) == kv_mark


def test_restore_secure_outputs_hides_the_value_from_the_run_history_again(
    emu: Emulator, seed: dict[str, Any]
) -> None:
    """The customizer switches secure outputs off on a single Get secret; one run of
    restore_secure_outputs PATCHes the row's clientdata (verified by a re-read) and the next run's
    history has no value in it."""
    attack = Attack(emu, seed)
    insecure = defs.definition({"Get_secret": defs.get_secret("payroll-db-password")})
    assert attack.edit(insecure).status_code == 200
    leaked = attack.run()["properties"]["actions"]["Get_secret"]
    assert attack.content(leaked)["body"]["value"] == attack.secrets["payroll-db-password"]
    policy = parse_policy({"powerPlatform": {"environments": ["*"], "restoreSecureOutputs": True}})
    result, _ = _apply(seed, policy, "secure-outputs", "restore_secure_outputs")
    payroll = next(f for f in seed["powerPlatform"]["flows"] if f["displayName"] == "Nightly payroll export")
    (mine,) = [a.id for a in result.plan.actions if a.target.endswith(f"/flows/{payroll['name']}")]
    assert {o.status for o in result.outcomes} == {"applied"}
    assert next(o for o in result.outcomes if o.action_id == mine).verified
    patches = [r for r in emu.requests.filter(method="PATCH") if f"workflows({payroll['name']})" in r.path]
    assert [r.status for r in patches] == [204]
    step = emu.state.powerplatform.flows[payroll["name"]].definition["actions"]["Get_secret"]
    assert step["runtimeConfiguration"]["secureData"]["properties"] == ["inputs", "outputs"]
    after = attack.run()
    assert after["properties"]["status"] == "Succeeded"
    assert "outputsLink" not in after["properties"]["actions"]["Get_secret"]
    assert attack.secrets["payroll-db-password"] not in json.dumps(after)


def test_move_to_service_connection_rebinds_the_flow_and_its_runs_read_as_the_service_principal(
    emu: Emulator, seed: dict[str, Any]
) -> None:
    """'Quarterly report (personal)' runs on the analyst's own kv-svc-flows connection; the policy names
    the service principal's connection for that vault, so one run rebinds the flow's clientdata
    (verified by a re-read) and the flow's next run reads Key Vault as the service principal."""
    pp = seed["powerPlatform"]
    report = next(f for f in pp["flows"] if f["displayName"] == "Quarterly report (personal)")
    service = next(c for c in pp["connections"] if c["authType"] == "servicePrincipal")
    personal = report["connectionReferences"]["shared_keyvault"]["connectionName"]
    policy = parse_policy(
        {"powerPlatform": {"environments": ["*"], "serviceConnections": {"kv-svc-flows": service["name"]}}}
    )
    result, _ = _apply(seed, policy, "service-connection", "move_to_service_connection")
    (action,) = result.plan.actions  # only the flow on a person's connection with a named alternative
    assert action.changes[0].model_dump()["from_connection"] == personal
    (outcome,) = result.outcomes
    assert outcome.status == "applied" and outcome.verified
    patches = [r for r in emu.requests.filter(method="PATCH") if f"workflows({report['name']})" in r.path]
    assert [r.status for r in patches] == [204]
    flow = emu.state.powerplatform.flows[report["name"]]
    assert flow.connection_references["shared_keyvault"]["connectionName"] == service["name"]
    assert flow.definition == report["definition"]  # only the connection moved
    # the owner runs it: Key Vault is now asked by the service principal, not the analyst
    owner = _client(emu, report["creator"])
    base = (
        "https://api.flow.microsoft.com/providers/Microsoft.ProcessSimple/environments/"
        f"{report['environment']}/flows/{report['name']}"
    )
    mark = len(emu.requests.filter(host="kv-svc-flows.vault.azure.net"))
    assert owner.post(f"{base}/triggers/manual/run", params=V, json={}).status_code == 202
    asked = emu.requests.filter(host="kv-svc-flows.vault.azure.net")[mark:]
    assert asked and {r.caller_oid for r in asked} == {service["identity"]}


def _solution_seed(seed: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The seed with 'Nightly payroll export' and a copy of it as solution flows naming one connection
    reference row bound to the admin's kv-shared-prod connection, and a service principal's connection to
    that vault whose identity may only get secrets (no list). Returns the scenario and that connection."""
    data = json.loads(json.dumps(seed))
    pp = data["powerPlatform"]
    payroll = next(f for f in pp["flows"] if f["displayName"] == "Nightly payroll export")
    payroll["connectionReferences"]["shared_keyvault"]["connectionReferenceLogicalName"] = (
        "vg_PayrollKeyVault"
    )
    copy = json.loads(json.dumps(payroll)) | {
        "name": "f0000000-0000-4000-8000-0000000000c2",
        "displayName": "Payroll audit (same solution)",
        "shares": [],
    }
    sp = data["servicePrincipals"][0]["id"]
    service = {
        "name": "shared-keyvault-50c0e1a2b3c4d5e6f708192a3b4c5d6e",
        "environment": payroll["environment"],
        "displayName": "kv-shared-prod (service principal)",
        "createdBy": _who(seed, "svc-flows@"),
        "authType": "servicePrincipal",
        "identity": sp,
        "parameters": {"vaultName": "kv-shared-prod"},
    }
    pp["flows"].append(copy)
    pp["connections"].append(service)
    vault = next(v for v in data["vaults"] if v["name"] == "kv-shared-prod")
    vault["accessPolicies"].append({"objectId": sp, "permissions": {"secrets": ["Get"]}})
    return data, service


def test_a_solution_flow_is_moved_by_rebinding_its_connection_reference_and_the_attack_is_refused(
    seed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Solution flows name a connection reference row, not the admin's connection: one action rebinds
    the row (Dataverse PATCH of `connectionid`, verified by a re-read) and names both flows it moves;
    afterwards the System Customizer's List + for-each edit of the flow runs as the service principal,
    and Key Vault refuses the List (403): the dump through the admin's rights is gone."""
    data, service = _solution_seed(seed)
    payroll = next(f for f in data["powerPlatform"]["flows"] if f["displayName"] == "Nightly payroll export")
    with Emulator(load_scenario(data)) as emu:
        for name, value in emu.env.items():
            monkeypatch.setenv(name, value)
        policy = parse_policy(
            {
                "powerPlatform": {
                    "environments": ["*"],
                    "serviceConnections": {"kv-shared-prod": service["name"]},
                }
            }
        )
        # a dry run plans the rebind and writes nothing
        dry = RunRequest(
            trigger="cli",
            scope=Scope(subscription_id=data["subscriptions"][0]["subscriptionId"]),
            power_platform=policy.power_platform.scope(),
            remediations=("move_to_service_connection",),
            dry_run=True,
        )
        with AzureClients() as clients:
            planned = run(dry, policy, clients, MemoryAuditSink())
        assert [o.error for o in planned.outcomes] == ["dry run"]
        assert not [r for r in emu.requests if r.route == "dataverse.connectionreferences.update"]

        result, _ = _apply(data, policy, "solution-reference", "move_to_service_connection")
        (action,) = [a for a in result.plan.actions if "connectionReferences" in a.target]
        assert action.id == planned.plan.actions[0].id  # the plan reviewed is the plan applied
        assert action.target.endswith("/connectionReferences/vg_PayrollKeyVault")
        change = action.changes[0].model_dump()
        assert list(change["flow_ids"]) == sorted([payroll["name"], "f0000000-0000-4000-8000-0000000000c2"])
        assert not [a for a in result.plan.actions if payroll["name"] in a.target]  # no clientdata edit
        (outcome,) = [o for o in result.outcomes if o.action_id == action.id]
        assert outcome.status == "applied" and outcome.verified
        patches = [r for r in emu.requests if r.route == "dataverse.connectionreferences.update"]
        assert [r.status for r in patches] == [204]
        assert [json.loads(r.body) for r in patches] == [{"connectionid": service["name"]}]
        flows = emu.state.powerplatform.flows
        for flow_id in change["flow_ids"]:
            assert (
                flows[flow_id].connection_references["shared_keyvault"]["connectionName"] == service["name"]
            )

        # the customizer's dump through the flow now reads as the service principal: List is refused
        attack = Attack(emu, data)
        assert attack.edit(defs.dump_vault_definition()).status_code == 200
        mark = len(emu.requests.filter(host="kv-shared-prod.vault.azure.net"))
        after = attack.run()
        assert after["properties"]["status"] == "Failed"
        listed = after["properties"]["actions"]["List_secrets"]
        assert listed["status"] == "Failed" and listed["code"] == "Forbidden"
        asked = emu.requests.filter(host="kv-shared-prod.vault.azure.net")[mark:]
        assert asked and {r.caller_oid for r in asked} == {data["servicePrincipals"][0]["id"]}
        values = {s["value"] for v in data["vaults"] for s in v["secrets"]}
        assert not any(v in json.dumps(after) for v in values)
