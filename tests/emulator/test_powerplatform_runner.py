"""The flow runner through HTTP: trigger a run, read the run history and the action outputs behind
outputsLink, with a stand-in Key Vault data plane that authorizes by the token's `oid` (the Azure half's
real one is exercised by test_powerplatform_attack.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from emulator import Emulator
from emulator.powerplatform import FLOW_AUDIENCE, token_for
from emulator.powerplatform import definitions as defs
from emulator.powerplatform.expressions import Context, ExpressionError, evaluate
from emulator.powerplatform.scenario import load
from emulator.state import State
from emulator.tokens import bearer_claims
from emulator.wire import HttpError, Request, Response

OWNER, CUSTOMIZER, ANALYST, OUTSIDER = (f"00000000-0000-0000-0000-00000000010{i}" for i in range(4))
ENV, FLOW, CONN = "env-1", "flow-1", "conn-1"
SECRETS = {f"secret-{i:02d}": f"value-{i:02d}-Zq8" for i in range(7)}
BASE = f"https://api.flow.microsoft.com/providers/Microsoft.ProcessSimple/environments/{ENV}/flows/{FLOW}"
V = {"api-version": "2016-11-01"}


@pytest.fixture
def emu() -> Iterator[Emulator]:
    state = State()
    load(
        state,
        {
            "directory": {
                oid: {"displayName": oid[-4:], "type": "User"} for oid in (OWNER, CUSTOMIZER, ANALYST)
            },
            "environments": [
                {
                    "name": ENV,
                    "displayName": "Finance",
                    "roles": [{"principal": CUSTOMIZER, "role": "System Customizer"}],
                }
            ],
            "connections": [
                {"name": CONN, "environment": ENV, "createdBy": OWNER, "parameters": {"vaultName": "kv-test"}}
            ],
            "flows": [
                {
                    "name": FLOW,
                    "environment": ENV,
                    "displayName": "Nightly payroll export",
                    "creator": OWNER,
                    "definition": defs.definition({"Get_secret": defs.get_secret("secret-03", secure=True)}),
                    "connectionReferences": {"shared_keyvault": defs.connection_reference(CONN)},
                    "shares": [{"principal": ANALYST, "role": "CanView"}],
                }
            ],
        },
    )
    with Emulator(state) as emulator:
        emulator.kv_allowed = {OWNER: {"get", "list"}}  # type: ignore[attr-defined]
        _fake_vault(emulator)
        yield emulator


def _fake_vault(emu: Emulator) -> None:
    def authorize(request: Request, permission: str) -> None:
        claims = bearer_claims(request.headers.get("authorization"))
        assert claims is not None and claims["aud"] == "https://vault.azure.net"
        if permission not in emu.kv_allowed.get(claims["oid"], set()):  # type: ignore[attr-defined]
            raise HttpError(
                403,
                "Forbidden",
                f"The user, group or application 'oid={claims['oid']}' does not "
                f"have secrets {permission} permission on key vault 'kv-test'.",
                inner={"code": "ForbiddenByPolicy"},
            )

    def list_secrets(request: Request) -> Response:
        authorize(request, "list")
        return Response.json(
            200,
            {
                "value": [
                    {
                        "id": f"https://kv-test.vault.azure.net/secrets/{n}",
                        "attributes": {"enabled": True, "created": 1700000000},
                    }
                    for n in SECRETS
                ],
                "nextLink": None,
            },
        )

    def get_secret(request: Request) -> Response:
        authorize(request, "get")
        name = request.params["name"]
        if name not in SECRETS:
            raise HttpError(
                404, "SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault."
            )
        return Response.json(
            200,
            {
                "value": SECRETS[name],
                "id": f"https://kv-test.vault.azure.net/secrets/{name}/abc",
                "attributes": {"enabled": True, "created": 1700000000, "updated": 1700000000},
            },
        )

    emu.router.add(r"kv-test\.vault\.azure\.net", "GET", r"/secrets", list_secrets)
    emu.router.add(r"kv-test\.vault\.azure\.net", "GET", r"/secrets/(?P<name>[^/]+)", get_secret)
    # ahead of the Azure half's Key Vault routes, which would answer 404 for this unknown vault
    emu.router.routes[:0] = [emu.router.routes.pop(), emu.router.routes.pop()]


def _client(emu: Emulator, oid: str | None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # this machine sets REQUESTS_CA_BUNDLE, which would override `verify`
    session.proxies = {"https": emu.proxy_url}
    session.verify = emu.ca_bundle
    if oid is not None:
        session.headers["Authorization"] = f"Bearer {token_for(emu.state, oid, FLOW_AUDIENCE)}"
    return session


def _run(session: requests.Session) -> dict[str, Any]:
    started = session.post(f"{BASE}/triggers/manual/run", params=V, json={})
    assert started.status_code == 202, started.text
    run = session.get(
        f"{BASE}/runs/{started.headers['x-ms-workflow-run-id']}",
        params={**V, "$expand": "properties/actions"},
    )
    assert run.status_code == 200
    return run.json()  # type: ignore[no-any-return]


def _outputs(emu: Emulator, action: dict[str, Any]) -> Any:
    """Follows outputsLink without a bearer token, as the portal does with the SAS link."""
    return _client(emu, None).get(action["outputsLink"]["uri"]).json()


def _edit(session: requests.Session, definition: dict[str, Any]) -> None:
    response = session.patch(BASE, params=V, json={"properties": {"definition": definition}})
    assert response.status_code == 200, response.text


def test_secure_outputs_hide_the_value_and_turning_them_off_leaks_it(emu: Emulator) -> None:
    run = _run(_client(emu, OWNER))
    assert run["properties"]["status"] == "Succeeded"
    action = run["properties"]["actions"]["Get_secret"]
    assert action["status"] == "Succeeded" and "outputsLink" not in action and "inputsLink" not in action
    calls = emu.requests.filter(host="kv-test.vault.azure.net")
    assert [(r.caller_oid, r.status) for r in calls] == [(OWNER, 200)]  # as the connection's identity
    # the System Customizer (no share on the flow) turns secure outputs off
    _edit(_client(emu, CUSTOMIZER), defs.definition({"Get_secret": defs.get_secret("secret-03")}))
    run = _run(_client(emu, CUSTOMIZER))
    action = _client(emu, ANALYST).get(f"{BASE}/runs/{run['name']}/actions/Get_secret", params=V).json()
    assert _outputs(emu, action["properties"])["body"]["value"] == SECRETS["secret-03"]
    assert _client(emu, OUTSIDER).get(f"{BASE}/runs", params=V).status_code == 403
    listed = _client(emu, ANALYST).get(f"{BASE}/runs", params=V).json()["value"]
    assert listed[0]["name"] == run["name"] and len(listed) == 2


def test_list_and_foreach_dump_every_secret(emu: Emulator) -> None:
    _edit(_client(emu, CUSTOMIZER), defs.dump_vault_definition())
    run = _run(_client(emu, CUSTOMIZER))
    assert run["properties"]["status"] == "Succeeded"
    actions = run["properties"]["actions"]
    assert actions["Get_secret"]["repetitionCount"] == len(SECRETS)
    reps = (
        _client(emu, CUSTOMIZER)
        .get(f"{BASE}/runs/{run['name']}/actions/Get_secret/repetitions", params=V)
        .json()["value"]
    )
    dumped = {}
    for rep in reps:
        body = _outputs(emu, rep["properties"])["body"]
        dumped[body["name"]] = body["value"]
    assert dumped == SECRETS


def test_keyvault_403_fails_the_action_with_the_error(emu: Emulator) -> None:
    emu.kv_allowed = {OWNER: {"get"}}  # type: ignore[attr-defined]
    _edit(_client(emu, CUSTOMIZER), defs.dump_vault_definition())
    run = _run(_client(emu, CUSTOMIZER))
    assert run["properties"]["status"] == "Failed"
    listed = run["properties"]["actions"]["List_secrets"]
    assert listed["status"] == "Failed" and listed["code"] == "Forbidden"
    outputs = _outputs(emu, listed)
    assert (
        outputs["statusCode"] == 403 and outputs["body"]["error"]["innererror"]["code"] == "ForbiddenByPolicy"
    )
    assert run["properties"]["actions"]["Apply_to_each"]["status"] == "Skipped"
    assert not any(v in json.dumps(run) for v in SECRETS.values())


def test_run_errors(emu: Emulator) -> None:
    assert _client(emu, OUTSIDER).post(f"{BASE}/triggers/manual/run", params=V, json={}).status_code == 403
    assert _client(emu, None).post(f"{BASE}/triggers/manual/run", params=V, json={}).status_code == 401
    missing = _client(emu, OWNER).post(f"{BASE}/triggers/nope/run", params=V, json={})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "WorkflowTriggerNotFound"
    run = _client(emu, OWNER).get(f"{BASE}/runs/08584000", params=V)
    assert run.status_code == 404 and run.json()["error"]["code"] == "WorkflowRunNotFound"
    bad = _client(emu, None).get(
        f"https://api.flow.microsoft.com/workflows/{FLOW}/runs/x/actions/y/contents/ActionOutputs",
        params={"sig": "forged"},
    )
    assert bad.status_code == 403


def test_expressions() -> None:
    ctx = Context(outputs={"List_secrets": {"body": {"value": [{"name": "a"}, {"name": "b"}]}}})
    assert evaluate("@body('List_secrets')?['value']", ctx) == [{"name": "a"}, {"name": "b"}]
    assert evaluate("@outputs('List_secrets')?['body/value']?[1]?['name']", ctx) == "b"
    inner = ctx.child("Apply_to_each", {"name": "a"})
    assert evaluate("@items('Apply_to_each')?['name']", inner) == "a"
    assert evaluate("@{items('Apply_to_each')?['name']}-x", inner) == "a-x"
    assert evaluate({"k": "@concat('p-', item()?['name'])"}, inner) == {"k": "p-a"}
    assert evaluate("@@literal", ctx) == "@literal"
    assert evaluate("@equals(toLower('A'), 'a')", ctx) is True
    with pytest.raises(ExpressionError):
        evaluate("@variables('x')", ctx)
    with pytest.raises(ExpressionError):
        evaluate("@body('Missing')", ctx)
