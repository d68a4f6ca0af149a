# ruff: noqa: F811 - the emulator and app fixtures of tests/functions are imported, then requested by name
"""The approval flow through the real local runner (`python -m remediations serve`, its own process)
with the emulator and Azurite, as README's worked example sends it: a dry run by one caller, the
approval of its planHash by another applies the plan once; forged principal headers without App
Service Authentication approve nothing."""

from __future__ import annotations

from emulator import Emulator
from tests.functions.conftest import (  # noqa: F401 - fixtures reused here
    FLOW_SP,
    app_env,
    cloud,
    policy_writes_since,
    secrets_of,
    ticket_body,
)
from tests.security.test_safety_over_http import ENFORCE, runner, send

ALICE = {
    "x-ms-client-principal-id": "7d1e9a34-6c2b-4f0e-9a51-2b3c4d5e6f70",
    "x-ms-client-principal-name": "alice@contoso.example",
}
BOB = {
    "x-ms-client-principal-id": "5e2a8b61-3c4d-4e7f-8a9b-0c1d2e3f4a5b",
    "x-ms-client-principal-name": "bob@contoso.example",
}


def test_the_worked_example_over_http_applies_the_reviewed_plan_once(
    app_env: dict[str, str], cloud: Emulator
) -> None:
    mark = cloud.requests.mark()
    with runner({**app_env, **ENFORCE, "WEBSITE_AUTH_ENABLED": "true"}) as (port, _):
        status, planned = send(port, "POST", "/api/remediations", ticket_body(requester=None), ALICE)
        assert status == 200 and planned["status"] == "planned", planned
        path = f"/api/remediations/{planned['ticketId']}/approve"
        status, own = send(port, "POST", path, {"planHash": planned["planHash"]}, ALICE)
        assert status == 403, own
        status, result = send(port, "POST", path, {"planHash": planned["planHash"], "reason": "CAB-7"}, BOB)
        assert status == 202 and result["status"] == "applied", result
        assert result["approvedBy"].startswith("bob@contoso.example")
        status, again = send(port, "POST", path, {"planHash": planned["planHash"]}, BOB)
        assert status == 200 and again == result
    assert policy_writes_since(cloud, mark) == 1
    assert secrets_of(cloud, FLOW_SP) == ["Get"]


def test_forged_principal_headers_without_easy_auth_approve_nothing(
    app_env: dict[str, str], cloud: Emulator
) -> None:
    env = {**app_env, **ENFORCE}
    env.pop("WEBSITE_AUTH_ENABLED", None)
    with runner(env) as (port, _):
        status, planned = send(port, "POST", "/api/remediations", ticket_body(), ALICE)
        assert status == 200, planned
        path = f"/api/remediations/{planned['ticketId']}/approve"
        status, problem = send(port, "POST", path, {"planHash": planned["planHash"]}, BOB)
        assert status == 401 and problem["type"].endswith("/authentication-required"), problem
    assert secrets_of(cloud, FLOW_SP) == ["Get", "List"]
