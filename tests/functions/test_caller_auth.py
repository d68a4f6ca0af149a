"""POST /api/remediations behind App Service Authentication (Easy Auth), in-process against Azurite and
the emulator: the audit trail and the result name the authenticated caller, a body `requester` never
overrides it, and a deployment that requires callers answers 401/403 to tickets that would change things.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING

import pytest

from emulator import Emulator
from tests.functions.conftest import FLOW_SP, Call, policy_writes_since, problem, secrets_of, ticket_body

if TYPE_CHECKING:
    from remediations.shell.audit import AuditRecord

OID = "7d1e9a34-6c2b-4f0e-9a51-2b3c4d5e6f70"
UPN = "alice@contoso.example"
ROLE_TYP = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"


def easy_auth(*roles: str, oid: str = OID, upn: str = UPN) -> dict[str, str]:
    """The headers App Service Authentication injects for an Entra ID (v2) token, in the lower case the
    Python worker hands them over."""
    claims = [
        {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": oid},
        {"typ": "preferred_username", "val": upn},
        *({"typ": "roles", "val": role} for role in roles),
    ]
    document = {"auth_typ": "aad", "claims": claims, "name_typ": "preferred_username", "role_typ": ROLE_TYP}
    return {
        "x-ms-client-principal-id": oid,
        "x-ms-client-principal-name": upn,
        "x-ms-client-principal-idp": "aad",
        "x-ms-client-principal": base64.b64encode(json.dumps(document).encode()).decode(),
    }


@pytest.fixture
def behind_easy_auth(enforce: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An enforcing deployment as infra makes it with enableEntraAuth: callers required, and App
    Service Authentication on (the platform sets WEBSITE_AUTH_ENABLED then)."""
    monkeypatch.setenv("VAULTGUARD_REQUIRE_AUTHENTICATED_CALLER", "true")
    monkeypatch.delenv("VAULTGUARD_ALLOWED_CALLER_ROLES", raising=False)
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    return enforce


def _audit_rows(correlation_id: str) -> list[AuditRecord]:
    from remediations.shell.audit import TableAuditSink
    from remediations.shell.settings import AppSettings

    return TableAuditSink.from_settings(AppSettings.from_env()).records(correlation_id)


def test_an_authenticated_ticket_records_the_principal_in_the_audit_rows_result_and_store(
    call: Call, behind_easy_auth: dict[str, str], cloud: Emulator
) -> None:
    body = ticket_body(dryRun=False, requester=UPN)
    response = call("tickets", "POST", "/api/remediations", body=body, headers=easy_auth("Remediator"))
    assert response.status_code == 202, response.get_body()
    result = json.loads(response.get_body())
    assert result["requester"] == f"{UPN} ({OID})"
    assert result["declaredRequester"] is None  # the body named the same person
    assert result["caller"] == {
        "objectId": OID,
        "name": UPN,
        "identityProvider": "aad",
        "authType": "aad",
        "roles": ["Remediator"],
    }
    assert secrets_of(cloud, FLOW_SP) == ["Get"]
    rows = _audit_rows(result["correlationId"])
    assert [r.state for r in rows] == ["pending", "applied"]
    assert {(r.caller, r.caller_object_id, r.declared_requester, r.ticket_id) for r in rows} == {
        (f"{UPN} ({OID})", OID, None, body["ticketId"])
    }
    stored = call("ticket", "GET", "/x", route_params={"ticketId": body["ticketId"]})
    assert json.loads(stored.get_body()) == result


def test_a_spoofed_body_requester_is_kept_aside_and_never_recorded_as_the_requester(
    call: Call, behind_easy_auth: dict[str, str]
) -> None:
    body = ticket_body(dryRun=False, requester="ciso@contoso.example")
    response = call("tickets", "POST", "/api/remediations", body=body, headers=easy_auth())
    assert response.status_code == 202, response.get_body()
    result = json.loads(response.get_body())
    assert result["requester"] == f"{UPN} ({OID})"
    assert result["declaredRequester"] == "ciso@contoso.example"
    rows = _audit_rows(result["correlationId"])
    assert rows and {(r.caller, r.caller_object_id, r.declared_requester) for r in rows} == {
        (f"{UPN} ({OID})", OID, "ciso@contoso.example")
    }
    assert not any("ciso" in (r.caller or "") for r in rows)


def test_required_caller_without_principal_headers_is_a_401_problem_and_changes_nothing(
    call: Call, behind_easy_auth: dict[str, str], cloud: Emulator
) -> None:
    mark = cloud.requests.mark()
    body = ticket_body(dryRun=False)
    response = call("tickets", "POST", "/api/remediations", body=body)
    assert response.status_code == 401
    details = problem(response)
    assert details["type"].endswith("/authentication-required")
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert cloud.requests.since(mark) == [] and policy_writes_since(cloud, mark) == 0
    stored = call("ticket", "GET", "/x", route_params={"ticketId": body["ticketId"]})
    assert stored.status_code == 404  # refused before anything was reserved


def test_required_caller_still_lets_anyone_with_the_key_ask_for_a_dry_run(
    call: Call, behind_easy_auth: dict[str, str], cloud: Emulator
) -> None:
    mark = cloud.requests.mark()
    response = call("tickets", "POST", "/api/remediations", body=ticket_body())
    assert response.status_code == 200, response.get_body()
    result = json.loads(response.get_body())
    assert result["status"] == "planned" and result["caller"] is None
    assert result["requester"] == "secops@contoso.example"
    assert policy_writes_since(cloud, mark) == 0


def test_a_caller_without_an_allowed_app_role_is_a_403_problem(
    call: Call, behind_easy_auth: dict[str, str], cloud: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULTGUARD_ALLOWED_CALLER_ROLES", "Remediator")
    mark = cloud.requests.mark()
    response = call(
        "tickets", "POST", "/api/remediations", body=ticket_body(dryRun=False), headers=easy_auth("Auditor")
    )
    assert response.status_code == 403
    details = problem(response)
    assert details["type"].endswith("/forbidden") and "Remediator" in details["detail"]
    assert policy_writes_since(cloud, mark) == 0

    allowed = call(
        "tickets",
        "POST",
        "/api/remediations",
        body=ticket_body(dryRun=False),
        headers=easy_auth("Remediator"),
    )
    assert allowed.status_code == 202, allowed.get_body()
    assert policy_writes_since(cloud, mark) == 1


def test_allowed_roles_alone_require_a_caller(
    call: Call, enforce: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULTGUARD_ALLOWED_CALLER_ROLES", "Remediator")
    monkeypatch.delenv("VAULTGUARD_REQUIRE_AUTHENTICATED_CALLER", raising=False)
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    response = call("tickets", "POST", "/api/remediations", body=ticket_body(dryRun=False))
    assert response.status_code == 401
    assert problem(response)["type"].endswith("/authentication-required")


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_malformed_principal_header_is_a_400_problem_not_a_500(
    call: Call, behind_easy_auth: dict[str, str], dry_run: bool
) -> None:
    headers = {**easy_auth(), "x-ms-client-principal": "eyJub3QiOiAianNvbi"}
    response = call("tickets", "POST", "/api/remediations", body=ticket_body(dryRun=dry_run), headers=headers)
    assert response.status_code == 400
    details = problem(response)
    assert details["type"].endswith("/malformed-principal")
    assert "eyJ" not in response.get_body().decode()


def test_without_easy_auth_in_front_principal_headers_are_ignored_not_believed(
    call: Call, app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Default settings (local runner, emulator): nothing strips client-sent headers, so a client could
    claim to be anyone; the ticket is recorded as declared, and says the headers were ignored."""
    monkeypatch.delenv("VAULTGUARD_REQUIRE_AUTHENTICATED_CALLER", raising=False)
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    headers = easy_auth(upn="ceo@contoso.example")
    response = call("tickets", "POST", "/api/remediations", body=ticket_body(), headers=headers)
    assert response.status_code == 200, response.get_body()
    result = json.loads(response.get_body())
    assert result["caller"] is None and result["declaredRequester"] is None
    assert result["requester"] == "secops@contoso.example"
    assert any("X-MS-CLIENT-PRINCIPAL headers were ignored" in n for n in result["notes"])


def test_the_platform_flag_alone_makes_the_headers_count(
    call: Call, app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Easy Auth turned on outside infra (portal): App Service sets WEBSITE_AUTH_ENABLED, so the caller is
    recorded, though callers are not required."""
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    monkeypatch.delenv("VAULTGUARD_REQUIRE_AUTHENTICATED_CALLER", raising=False)
    response = call("tickets", "POST", "/api/remediations", body=ticket_body(), headers=easy_auth())
    assert response.status_code == 200, response.get_body()
    result = json.loads(response.get_body())
    assert result["requester"] == f"{UPN} ({OID})"
    assert result["declaredRequester"] == "secops@contoso.example"
    assert not any("ignored" in n for n in result["notes"])
