"""Every attack of the demo's table (demo/attacks.py), by every editor of the seed's admin flow, before and
after one apply with the demo policy. Each result is checked against the emulator itself: the Key Vault
reads the request log shows under the connection's identity, the secrets the run recorded, what the
attacker's endpoint received, and the refusals the request log shows for the editor."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from demo.attacks import ATTACKS, Attacker, Outcome, Target, attempt, editors, single_get
from emulator import Emulator
from emulator.powerplatform import token_for
from emulator.powerplatform.activation import DATAVERSE_ACTIVATION_FAILED
from remediations.adapters.clients import AzureClients
from remediations.core.model import Scope
from remediations.core.policy import parse_policy
from remediations.core.request import RunRequest
from remediations.shell.audit import MemoryAuditSink
from remediations.shell.pipeline import run
from tests.emulator.helpers import Raw
from tests.emulator.test_powerplatform_attack import _client, _who

DEMO_POLICY = Path(__file__).resolve().parents[2] / "demo" / "policy.json"
VAULT_HOST = "kv-shared-prod.vault.azure.net"
SECRET = "payroll-db-password"


@pytest.fixture
def emu(seeded_emu: Emulator) -> Emulator:
    return seeded_emu  # the seed scenario, fresh per test (conftest.py)


def _target(seed: dict[str, Any]) -> Target:
    flow = next(f for f in seed["powerPlatform"]["flows"] if f["displayName"] == "Nightly payroll export")
    return Target(flow["environment"], flow["name"], flow["displayName"], flow["creator"], SECRET)


def _sessions(emu: Emulator) -> Callable[[str], requests.Session]:
    return lambda oid: _client(emu, oid)


@dataclass(frozen=True)
class Evidence:
    """What the emulator saw during one attempt."""

    kv_read: frozenset[str]  # secrets Key Vault returned (200) to the admin connection's identity
    recorded: frozenset[str]  # secrets the runs recorded as read
    egress: frozenset[str]  # secrets an HTTP action carried out (request log, by name)
    refusals: tuple[tuple[str, int], ...]  # (route, status) answered to the editor


def _attempt(emu: Emulator, seed: dict[str, Any], key: str, editor: str) -> tuple[Outcome, Evidence]:
    target = _target(seed)
    mark = emu.requests.mark()
    with emu.state.lock:
        reads_before = len(emu.state.powerplatform.secret_reads)
    attacker = Attacker(_client(emu, editor), _client(emu, target.owner), target)
    outcome = attempt(attacker, key, editor, flow_off_first=True)
    entries = emu.requests.since(mark)
    with emu.state.lock:  # kept by the emulator even for the flows the attack created and deleted
        reads = {r.name for r in emu.state.powerplatform.secret_reads[reads_before:]}
    kv = {
        e.path.split("/")[2]
        for e in entries
        if e.host == VAULT_HOST and e.status == 200 and e.path.startswith("/secrets/") and e.method == "GET"
    }
    assert all(e.caller_oid == target.owner for e in entries if e.host == VAULT_HOST)  # never the editor
    egress = [e for e in entries if e.route == "flow.http.egress"]
    assert all(e.body == b"" for e in egress)  # the posted body (a secret value) is never logged
    refusals = tuple(
        (str(e.route), e.status)
        for e in entries
        if (e.caller_oid or "").lower() == editor.lower() and e.status >= 400
    )
    evidence = Evidence(
        kv_read=frozenset(kv),
        recorded=frozenset(reads),
        egress=frozenset(n for e in egress for n in e.carried),
        refusals=refusals,
    )
    return outcome, evidence


def _values(seed: dict[str, Any]) -> set[str]:
    return {str(s["value"]) for v in seed["vaults"] for s in v["secrets"]}


def _assert_read(outcome: Outcome, evidence: Evidence, expected: int) -> None:
    assert not outcome.refused, outcome
    assert len(outcome.secrets) == expected, outcome
    # the editor got exactly what Key Vault served the connection's identity and the run recorded ...
    assert set(outcome.secrets) <= evidence.kv_read and set(outcome.secrets) <= evidence.recorded
    # ... through the run history or, for the HTTP action, what reached the attacker's endpoint
    if outcome.attack == "http-out":
        assert evidence.egress == set(outcome.secrets)


def _assert_refused(outcome: Outcome, evidence: Evidence, code: str, route: str, status: int) -> None:
    assert outcome.refused.startswith(code), outcome
    assert (route, status) in evidence.refusals, evidence.refusals
    assert not evidence.kv_read and not evidence.recorded and not evidence.egress  # nothing was read


def test_before_the_fix_every_editor_reads_unless_the_service_refuses_the_connection(
    emu: Emulator, seed: dict[str, Any]
) -> None:
    customizer, analyst = _who(seed, "customizer@"), _who(seed, "analyst@")
    assert editors(seed, _target(seed).flow) == [analyst, customizer]
    everything = len(next(v for v in seed["vaults"] if v["name"] == "kv-shared-prod")["secrets"])
    for key in ATTACKS:
        # the analyst: co-owner (CanEdit) of the flow and shared on the admin's connection: every attack reads
        outcome, evidence = _attempt(emu, seed, key, analyst)
        _assert_read(outcome, evidence, everything if key == "list-for-each" else 1)
    for key in ("single-get", "list-for-each", "http-out"):  # the System Customizer edits the flow while on
        outcome, evidence = _attempt(emu, seed, key, customizer)
        _assert_read(outcome, evidence, everything if key == "list-for-each" else 1)
    # ... but may not use the admin's connection itself: no new flow on it, no turning the flow on, no
    # turning a copy on (ConnectionAuthorizationFailed, as the Flow service answers)
    refused = {
        "new-flow": ("flow.flows.create", 403),
        "re-enable": ("flow.flows.start", 403),
        "save-as": ("flow.flows.start", 403),
    }
    for key, (route, status) in refused.items():
        outcome, evidence = _attempt(emu, seed, key, customizer)
        _assert_refused(outcome, evidence, "ConnectionAuthorizationFailed", route, status)
    # no value ever reached the request log, and the flow is as the scenario left it
    logged = b"".join(e.body for e in emu.requests)
    assert not any(v.encode() in logged for v in _values(seed))
    with emu.state.lock:
        flow = emu.state.powerplatform.flows[_target(seed).flow]
        assert flow.state == "Started" and len(emu.state.powerplatform.flows) == 4
        assert flow.definition == _target_definition(seed)


def _target_definition(seed: dict[str, Any]) -> dict[str, Any]:
    return next(f for f in seed["powerPlatform"]["flows"] if f["name"] == _target(seed).flow)["definition"]  # type: ignore[no-any-return]


def _apply_demo_policy(seed: dict[str, Any]) -> None:
    policy = parse_policy({**json.loads(DEMO_POLICY.read_text()), "dryRun": False})
    request = RunRequest(
        trigger="cli",
        scope=Scope(subscription_id=seed["subscriptions"][0]["subscriptionId"]),
        power_platform=policy.power_platform.scope(),
        correlation_id="attacks-1",
    )
    with AzureClients() as clients:
        result = run(request, policy, clients, MemoryAuditSink())
    assert result.count("applied") > 0


def test_after_one_apply_the_closed_attacks_are_refused_by_the_service(
    emu: Emulator, seed: dict[str, Any]
) -> None:
    """After one apply with the demo policy every attack of both editors is refused where the emulator
    says: the analyst lost the CanEdit share and the connection share; the System Customizer lost the
    role (remove_flow_editing_role), so the service refuses their edit, turn-on, read and create."""
    customizer, analyst = _who(seed, "customizer@"), _who(seed, "analyst@")
    _apply_demo_policy(seed)
    edit_refused = ("Forbidden", "flow.flows.patch", 403)
    closed: dict[tuple[str, str], tuple[str, str, int]] = {
        (analyst, "single-get"): edit_refused,
        (analyst, "list-for-each"): edit_refused,
        (analyst, "http-out"): edit_refused,
        (analyst, "re-enable"): ("Forbidden", "flow.flows.start", 403),
        (analyst, "new-flow"): ("ConnectionAuthorizationFailed", "flow.flows.create", 403),
        (analyst, "save-as"): ("Forbidden", "flow.flows.get", 403),
        (customizer, "single-get"): edit_refused,
        (customizer, "list-for-each"): edit_refused,
        (customizer, "http-out"): edit_refused,
        (customizer, "re-enable"): ("Forbidden", "flow.flows.start", 403),
        (customizer, "new-flow"): ("Forbidden", "flow.flows.create", 403),
        (customizer, "save-as"): ("Forbidden", "flow.flows.get", 403),
    }
    for (editor, key), (code, route, status) in closed.items():
        outcome, evidence = _attempt(emu, seed, key, editor)
        _assert_refused(outcome, evidence, code, route, status)


def test_after_one_apply_no_attack_reads_a_secret(emu: Emulator, seed: dict[str, Any]) -> None:
    _apply_demo_policy(seed)
    open_ = []
    for editor in editors(seed, _target(seed).flow):
        for key in ATTACKS:
            outcome, evidence = _attempt(emu, seed, key, editor)
            assert set(outcome.secrets) <= evidence.kv_read | evidence.egress
            if outcome.read_any or evidence.kv_read:
                open_.append((key, editor, outcome.text()))
    assert open_ == []


def test_turning_a_flow_on_through_dataverse_needs_the_connection(
    emu: Emulator, seed: dict[str, Any]
) -> None:
    """Dataverse `PATCH workflows({id})` statecode 1 is the same activation as the Flow API's start."""
    target = _target(seed)
    org = f"org{target.environment.replace('-', '')[:12]}".lower()
    url = f"https://{org}.api.crm4.dynamics.com/api/data/v9.2/workflows({target.flow})"
    audience = f"https://{org}.crm4.dynamics.com"
    customizer = Raw(emu, token_for(emu.state, _who(seed, "customizer@"), audience))
    owner = Raw(emu, token_for(emu.state, target.owner, audience))
    assert customizer.call("PATCH", url, json={"statecode": 0, "statuscode": 1}).status_code == 204
    refused = customizer.call("PATCH", url, json={"statecode": 1, "statuscode": 2})
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert (
        error["code"] == DATAVERSE_ACTIVATION_FAILED and "ConnectionAuthorizationFailed" in error["message"]
    )
    with emu.state.lock:
        assert emu.state.powerplatform.flows[target.flow].state == "Stopped"
    assert owner.call("PATCH", url, json={"statecode": 1, "statuscode": 2}).status_code == 204
    with emu.state.lock:
        assert emu.state.powerplatform.flows[target.flow].state == "Started"


def test_creating_a_flow_refuses_bad_input_and_callers_without_a_maker_role(
    emu: Emulator, seed: dict[str, Any]
) -> None:
    target = _target(seed)
    url = target.url.rsplit("/", 1)[0]
    analyst = _client(emu, _who(seed, "analyst@"))  # Environment Maker
    v = {"api-version": "2016-11-01"}
    assert analyst.post(url, params=v, json={}).json()["error"]["code"] == "InvalidRequestContent"
    assert analyst.post(url, params=v, json={"properties": {}}).status_code == 400
    bad_state = {"properties": {"definition": single_get(SECRET), "state": "Paused"}}
    assert analyst.post(url, params=v, json=bad_state).status_code == 400
    # a flow with no connection is created and turned on; its owner is the caller
    created = analyst.post(url, params=v, json={"properties": {"definition": single_get(SECRET)}})
    assert created.status_code == 201 and created.json()["properties"]["state"] == "Started"
    with emu.state.lock:
        flow = emu.state.powerplatform.flows[created.json()["name"]]
        assert flow.creator == _who(seed, "analyst@") and flow.shares[flow.creator].role == "Owner"
    # an identity with no role in the environment (the service principal behind a connection) may not
    outsider = _client(emu, seed["servicePrincipals"][0]["id"])
    refused = outsider.post(url, params=v, json={"properties": {"definition": single_get(SECRET)}})
    assert refused.status_code == 403
