"""Group members in the exposure graph: a Key Vault flow shared with a group reaches the
group's members, nested groups included. One directory serves Graph `groups/{id}/transitiveMembers`
and the Power Platform half's authorization of group shares, so the graph and the service agree on who
can edit the flow. A failed member read is reported and the group stays a group node; revoking the
group's share works like a user's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from emulator import Emulator
from emulator.powerplatform.dataverse import dataverse_id
from emulator.scenario import load_scenario
from remediations.adapters import graph_api
from remediations.adapters.clients import AzureClients
from remediations.core.detect import detect
from remediations.core.graph import ExposureGraph
from remediations.core.model import PowerPlatformScope, Scope, ShareChange, Snapshot
from remediations.core.planning import build_plan
from remediations.core.policy import parse_policy
from remediations.shell.apply import RunContext, apply_plan
from remediations.shell.audit import MemoryAuditSink
from remediations.shell.inventory import inventory
from tests.emulator.test_powerplatform_attack import SEED, V, _client, _who

PAYROLL_READERS = "c0000000-0000-4000-8000-0000000000c1"  # shared on the payroll flow
NESTED = "c0000000-0000-4000-8000-0000000000c2"  # a member of PAYROLL_READERS
GINA = "b0000000-0000-4000-8000-0000000000b1"  # direct member
NATE = "b0000000-0000-4000-8000-0000000000b2"  # member through NESTED
OUTSIDER = "b0000000-0000-4000-8000-0000000000b3"  # in no group
APP = "d0000000-0000-4000-8000-0000000000d1"  # vaultguard's identity (the emulator's admin)
APP_CLIENT = "d0000000-0000-4000-8000-0000000000d2"


def _scenario() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SEED.read_text())
    data["users"] += [
        {"id": GINA, "userPrincipalName": "gina@contoso.example", "displayName": "Gina Group"},
        {"id": NATE, "userPrincipalName": "nate@contoso.example", "displayName": "Nate Nested"},
        {"id": OUTSIDER, "userPrincipalName": "olga@contoso.example", "displayName": "Olga Outsider"},
    ]
    data["groups"] = [
        {"id": PAYROLL_READERS, "displayName": "Payroll readers", "members": [GINA, NESTED]},
        {"id": NESTED, "displayName": "Payroll interns", "members": [NATE]},
    ]
    # vaultguard may list secret names (metadata only), so the graph has secret nodes to reach.
    data["admin"] = {
        "clientId": "d0000000-0000-4000-8000-0000000000d2",
        "clientSecret": "s3cret-x",
        "objectId": APP,
    }
    for vault in data["vaults"]:
        vault["accessPolicies"].append({"objectId": APP, "permissions": {"secrets": ["List"]}})
    payroll = next(f for f in data["powerPlatform"]["flows"] if f["displayName"] == "Nightly payroll export")
    payroll["shares"].append({"principal": PAYROLL_READERS, "role": "CanEdit", "type": "Group"})
    return data


@pytest.fixture
def seed() -> dict[str, Any]:
    return _scenario()


@pytest.fixture
def emu(seed: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with Emulator(load_scenario(seed)) as emulator:
        for name, value in emulator.env.items():
            monkeypatch.setenv(name, value)
        yield emulator


def _payroll(seed: dict[str, Any]) -> dict[str, Any]:
    flows: list[dict[str, Any]] = seed["powerPlatform"]["flows"]
    return next(f for f in flows if f["displayName"] == "Nightly payroll export")


def _flow_url(seed: dict[str, Any]) -> str:
    flow = _payroll(seed)
    return (
        "https://api.flow.microsoft.com/providers/Microsoft.ProcessSimple/environments/"
        f"{flow['environment']}/flows/{flow['name']}"
    )


def _snapshot(seed: dict[str, Any]) -> Snapshot:
    with AzureClients() as clients:
        return inventory(
            Scope(subscription_id=seed["subscriptions"][0]["subscriptionId"]),
            clients,
            pp_scope=PowerPlatformScope(all_environments=True),
        )


def test_transitive_members_pages_with_next_link_and_flattens_nesting(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graph_api, "MEMBERS_PAGE", 1)
    mark = emu.requests.mark()
    with AzureClients() as clients:
        members = clients.directory().group_members(PAYROLL_READERS)
    assert sorted(members) == sorted([GINA, NESTED, NATE])  # the nested group is listed too
    pages = [r for r in emu.requests.since(mark) if "/transitiveMembers" in r.path]
    assert len(pages) == 3 and all(r.method == "GET" and r.status == 200 for r in pages)
    assert "$skiptoken" not in pages[0].query and pages[2].query.get("$skiptoken") == "2"
    assert {r.query.get("$select") for r in pages} == {"id"}


def test_a_group_share_reaches_its_members_in_the_graph_and_in_the_service(
    emu: Emulator, seed: dict[str, Any]
) -> None:
    # The service: a member (directly or nested) may open the flow; someone in no group may not.
    for who, status in ((GINA, 200), (NATE, 200), (OUTSIDER, 403)):
        assert _client(emu, who).get(_flow_url(seed), params=V).status_code == status, who

    snapshot = _snapshot(seed)
    assert [e for e in snapshot.errors if e.operation == "list group members"] == []
    assert sorted(snapshot.group_members[PAYROLL_READERS]) == sorted([GINA, NESTED, NATE])
    graph = ExposureGraph.build(snapshot)
    flow_node = f"flow:{_payroll(seed)['name']}"
    for member in (GINA, NATE):
        paths = graph.what_can_read(member)
        assert paths, member
        through = [p for p in paths if p[0].relation == "member_of"]
        assert through and all(p[0].target == f"principal:{PAYROLL_READERS}" for p in through)
        assert all(any(e.target == flow_node and e.relation == "can_edit" for e in p) for p in through)
        assert through[0][-1].target.startswith("secret:")
    assert graph.what_can_read(OUTSIDER) == []


def test_a_refused_member_read_is_reported_and_the_group_stays_a_node(
    emu: Emulator, seed: dict[str, Any]
) -> None:
    emu.faults.status(403, host=r"graph\.microsoft\.com", path="/transitiveMembers")
    snapshot = _snapshot(seed)
    (error,) = [e for e in snapshot.errors if e.operation == "list group members"]
    assert error.resource_id == PAYROLL_READERS and error.status == 403 and error.partial
    assert PAYROLL_READERS not in snapshot.group_members
    graph = ExposureGraph.build(snapshot)
    assert graph.what_can_read(GINA) == []  # the members are unknown...
    paths = graph.what_can_read(PAYROLL_READERS)  # ...but the group still reaches the secrets
    assert paths and paths[0][0].relation == "can_edit"


def test_a_transient_member_read_is_retried(emu: Emulator, seed: dict[str, Any]) -> None:
    rule = emu.faults.status(503, host=r"graph\.microsoft\.com", path="/transitiveMembers", count=1)
    snapshot = _snapshot(seed)
    assert rule.fired == 1
    assert [e for e in snapshot.errors if e.operation == "list group members"] == []
    assert sorted(snapshot.group_members[PAYROLL_READERS]) == sorted([GINA, NESTED, NATE])


def test_revoke_flow_shares_removes_a_group_share_like_a_user_share(
    emu: Emulator, seed: dict[str, Any]
) -> None:
    svc = _who(seed, "svc-flows@")
    policy = parse_policy({"serviceAccounts": [svc], "maxActionsPerRun": 20})
    snapshot = _snapshot(seed)
    findings = [f for f in detect(snapshot, policy) if f.detector_id == "flow_shared_beyond_allowed"]
    assert PAYROLL_READERS in {f.principal for f in findings}
    plan = build_plan(findings, snapshot, policy, remediation_ids={"revoke_flow_shares"}, dry_run=False)
    changes = [c for a in plan.actions for c in a.changes if isinstance(c, ShareChange)]
    group_change = next(c for c in changes if c.principal_id == PAYROLL_READERS)
    assert group_change.principal_kind == "group" and group_change.operation == "delete"

    mark = emu.requests.mark()
    with AzureClients() as clients:
        outcomes = apply_plan(
            plan, clients, MemoryAuditSink(), RunContext(correlation_id="groups", trigger="cli")
        )
    assert {o.status for o in outcomes} == {"applied"}
    # RevokeAccess names the group's Dataverse team (its Entra group), typed as a team.
    writes = [
        json.loads(r.body)["Revokee"] for r in emu.requests.since(mark) if r.path.endswith("/RevokeAccess")
    ]
    environment = _payroll(seed)["environment"]
    assert {
        "@odata.type": "Microsoft.Dynamics.CRM.team",
        "ownerid": dataverse_id(environment, PAYROLL_READERS),
    } in writes
    with emu.state.lock:
        flow = emu.state.powerplatform.flows[_payroll(seed)["name"]]
        assert PAYROLL_READERS not in flow.shares
    # The members lost the flow with the group's share.
    assert _client(emu, NATE).get(_flow_url(seed), params=V).status_code == 403
