"""The Power Platform fixes on emulator/scenarios/seed.json, through the real adapters and the emulator's HTTP
APIs: `plan` lists the share revocation, flags the flow whose connection runs as the admin and the leaking
definition, and narrows the admin identity (remove `list`; the flows need only payroll-db-password).
The attacker's edit dumps the vault before `apply`; after it the edit is refused (DLP), the revoked user
cannot edit the flow, and even with the DLP policy gone Key Vault answers 403 to List secrets."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from emulator import Emulator
from emulator.powerplatform import POWERAPPS_AUDIENCE
from emulator.powerplatform import definitions as defs
from emulator.scenario import load_scenario_file
from remediations.adapters.clients import AzureClients
from remediations.core.detect import detect
from remediations.core.model import PowerPlatformScope, Scope
from remediations.core.planning import build_plan
from remediations.core.policy import parse_policy
from remediations.report.graph_view import display_names
from remediations.shell.apply import RunContext, apply_plan
from remediations.shell.audit import MemoryAuditSink
from remediations.shell.inventory import inventory, inventory_power_platform_only
from tests.emulator.test_powerplatform_attack import SEED, Attack, _client, _who

V = {"api-version": "2016-11-01"}


@pytest.fixture
def seed() -> dict[str, Any]:
    return json.loads(SEED.read_text())  # type: ignore[no-any-return]


@pytest.fixture
def emu(seed: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with Emulator(load_scenario_file(SEED)) as emulator:
        for name, value in emulator.env.items():
            monkeypatch.setenv(name, value)
        yield emulator


def _dump(attack: Attack) -> dict[str, str]:
    """Run the flow and read every repetition's Get secret output (what the attacker sees)."""
    run = attack.run()
    if run["properties"]["status"] != "Succeeded":
        return {}
    reps = attack.attacker.get(f"{attack.base}/runs/{run['name']}/actions/Get_secret/repetitions", params=V)
    bodies = [attack.content(r["properties"])["body"] for r in reps.json()["value"]]
    return {b["name"]: b["value"] for b in bodies}


def test_plan_then_apply_stops_the_seed_attack(emu: Emulator, seed: dict[str, Any]) -> None:
    admin, analyst, customizer = (_who(seed, p) for p in ("admin@", "analyst@", "customizer@"))
    svc = _who(seed, "svc-flows@")
    env = seed["powerPlatform"]["environments"][0]["name"]
    scope = Scope(subscription_id=seed["subscriptions"][0]["subscriptionId"])
    policy = parse_policy({"allowList": "fromFlows", "serviceAccounts": [svc], "maxActionsPerRun": 20})

    # plan on the seed as it is
    with AzureClients() as clients:
        snapshot = inventory(
            scope, clients, pp_scope=PowerPlatformScope(all_environments=True), include_secrets=False
        )
    assert snapshot.errors == ()
    findings = detect(snapshot, policy)
    plan = build_plan(findings, snapshot, policy, dry_run=False)
    revoked = {
        (a.remediation_id, c.principal_id) for a in plan.actions for c in a.changes if c.type == "share"
    }
    assert ("revoke_flow_shares", analyst) in revoked and ("revoke_connection_shares", analyst) in revoked
    payroll_flow = next(
        f for f in seed["powerPlatform"]["flows"] if f["displayName"] == "Nightly payroll export"
    )
    flagged = {(f.detector_id, f.resource_id.rsplit("/", 1)[-1]) for f in findings}
    assert ("connection_runs_as_user", payroll_flow["name"]) in flagged
    leaking = next(
        f for f in seed["powerPlatform"]["flows"] if f["displayName"] == "Quarterly report (personal)"
    )
    assert ("flow_insecure_get_secret", leaking["name"]) in flagged
    narrow = next(a for a in plan.actions if a.remediation_id == "narrow_access_policy")
    assert narrow.principal == admin and narrow.target.endswith("/vaults/kv-shared-prod")
    assert narrow.after["secrets"] == ["Get"] and "read only the secrets payroll-db-password" in narrow.reason
    assert {a.remediation_id for a in plan.actions} >= {
        "revoke_flow_shares",
        "revoke_connection_shares",
        "enforce_keyvault_dlp",
        "narrow_access_policy",
    }
    assert not emu.requests.filter(method="POST", host="api.flow.microsoft.com")  # planning wrote nothing

    # before apply: the System Customizer's edit dumps all 30 secrets
    attack = Attack(emu, seed)
    assert attack.edit(defs.dump_vault_definition()).status_code == 200
    assert _dump(attack) == attack.secrets

    # apply the stored plan
    audit = MemoryAuditSink()
    with AzureClients() as clients:
        outcomes = apply_plan(plan, clients, audit, RunContext(correlation_id="run-1", trigger="cli"))
    assert {o.status for o in outcomes} == {"applied"}, [o.error for o in outcomes if o.status != "applied"]
    assert all(o.verified for o in outcomes)
    states = [r.state for r in audit.records("run-1")]
    assert states.count("pending") == states.count("applied") == len(plan.actions)
    assert attack.secrets["payroll-db-password"] not in json.dumps(
        [r.model_dump(mode="json") for r in audit.records("run-1")]
    )

    # the edit with List secrets is refused (DLP), and the flow carrying it was suspended
    refused = attack.edit(defs.dump_vault_definition())
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "DlpViolation"
    # the revoked analyst can no longer edit the flow; the connection share is gone too
    denied = _client(emu, analyst).patch(
        attack.base, params=V, json={"properties": {"definition": defs.dump_vault_definition()}}
    )
    assert denied.status_code == 403
    apps = _client(emu, admin, POWERAPPS_AUDIENCE)
    conn = payroll_flow["connectionReferences"]["shared_keyvault"]["connectionName"]
    shares = apps.get(
        f"https://api.powerapps.com/providers/Microsoft.PowerApps/scopes/admin/environments/{env}"
        f"/apis/shared_keyvault/connections/{conn}/permissions",
        params={"api-version": "2017-06-01"},
    ).json()["value"]
    assert analyst not in {s["properties"]["principal"]["id"] for s in shares}

    # defence in depth: without the DLP policy, Key Vault itself answers 403 to List secrets
    bap = _client(emu, admin, POWERAPPS_AUDIENCE)
    policies = bap.get("https://api.bap.microsoft.com/providers/PowerPlatform.Governance/v2/policies").json()[
        "value"
    ]
    for p in policies:
        name = p["policyDefinition"]["name"]
        assert bap.delete(
            f"https://api.bap.microsoft.com/providers/PowerPlatform.Governance/v1/policies/{name}"
        ).ok
    # the customizer may not turn the suspended flow back on (not allowed to use the admin's connection);
    # its owner does, and the customizer edits it while it is on
    started = attack.attacker.post(f"{attack.base}/start", params=V)
    assert started.status_code == 403 and started.json()["error"]["code"] == "ConnectionAuthorizationFailed"
    assert _client(emu, admin).post(f"{attack.base}/start", params=V).status_code == 200
    assert attack.edit(defs.dump_vault_definition()).status_code == 200
    kv_before = len(emu.requests.filter(host="kv-shared-prod.vault.azure.net"))
    run = attack.run()
    assert run["properties"]["status"] == "Failed"
    listed = run["properties"]["actions"]["List_secrets"]
    error = attack.content(listed)
    assert error["statusCode"] == 403 and error["body"]["error"]["innererror"]["code"] == "ForbiddenByPolicy"
    assert run["properties"]["actions"]["Apply_to_each"]["status"] == "Skipped"
    assert not any(v in json.dumps(run) for v in attack.secrets.values())
    kv_calls = emu.requests.filter(host="kv-shared-prod.vault.azure.net")[kv_before:]
    assert kv_calls and {r.status for r in kv_calls} == {403}  # read nothing

    # applying the same plan again changes nothing
    with AzureClients() as clients:
        again = apply_plan(
            plan, clients, MemoryAuditSink(), RunContext(correlation_id="run-2", trigger="cli")
        )
    assert {o.status for o in again} <= {"applied", "noop"}
    assert customizer  # the attacker in this test


def test_inventory_reads_flows_from_dataverse_pages_and_maps_connection_identities(
    emu: Emulator, seed: dict[str, Any]
) -> None:
    scope = Scope(subscription_id=seed["subscriptions"][0]["subscriptionId"])
    with AzureClients() as clients:
        snapshot = inventory(
            scope, clients, pp_scope=PowerPlatformScope(all_environments=True), include_secrets=False
        )
    pp = seed["powerPlatform"]
    assert len(snapshot.flows) == len(pp["flows"]) and all(f.definition for f in snapshot.flows)
    sp = seed["servicePrincipals"][0]["id"]
    kinds = {c.display_name: (c.identity_principal_id, c.identity_kind) for c in snapshot.connections}
    assert kinds["kv-svc-flows (service principal)"] == (sp, "servicePrincipal")  # from token:clientId
    assert kinds["kv-shared-prod (admin)"] == (_who(seed, "admin@"), "user")
    # Definitions come with the Dataverse `workflows` pages (clientdata): no GET per flow, and the Flow
    # API (admin GET without definitions) is never called.
    pages = [r for r in emu.requests if r.route == "dataverse.workflows.list"]
    assert len(pages) == len(pp["environments"]) and {r.status for r in pages} == {200}
    assert not [r for r in emu.requests if r.host == "api.flow.microsoft.com"]
    # Owners come with the pages: one shares read per Key Vault flow, no GET of a workflow row.
    assert not [r for r in emu.requests if r.route == "dataverse.workflows.get"]
    shares_reads = [r for r in emu.requests if r.route == "dataverse.RetrieveSharedPrincipalsAndAccess"]
    assert 0 < len(shares_reads) <= len(pp["flows"])
    assert not [r for r in emu.requests if r.host == "api.bap.microsoft.com" and "roleAssignments" in r.path]
    writes = [r for r in emu.requests if r.method != "GET" and r.host != "login.microsoftonline.com"]
    assert {r.route for r in writes} <= {"get_by_ids"}  # inventory is read-only


# The inventory names the Power Platform side's people too: share holders and environment role holders
# come back from Graph with their display names, so plans and reports say "Alex Analyst", not a GUID.
def test_share_and_role_holders_are_named(emu: Emulator, seed: dict[str, Any]) -> None:
    users = {u["id"].lower(): u["displayName"] for u in seed["users"]}
    analyst, customizer = _who(seed, "analyst@").lower(), _who(seed, "customizer@").lower()
    scope = Scope(subscription_id=seed["subscriptions"][0]["subscriptionId"])
    with AzureClients() as clients:
        both = inventory(
            scope, clients, pp_scope=PowerPlatformScope(all_environments=True), include_secrets=False
        )
        pp_only = inventory_power_platform_only(PowerPlatformScope(all_environments=True), clients)
    for snapshot in (both, pp_only):
        assert not [e for e in snapshot.errors if "principals" in e.operation]
        names = display_names(snapshot)
        # The analyst holds only shares, the customizer only an environment role: neither is on a vault.
        assert names[analyst] == users[analyst] and names[customizer] == users[customizer]
