"""POST /api/remediations/{ticketId}/approve in-process against Azurite and the emulator: a dry-run
ticket pins its plan (planId, planHash); an approval by someone else applies exactly that plan, skips
an action whose target drifted since, refuses a wrong hash, the requester and a caller without the
approver role, and replays instead of writing twice. Plans awaiting approval are posted as an
adaptive card to a local webhook receiver.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from emulator import Emulator
from emulator.azure.state import AccessPolicy
from tests.functions.conftest import (
    ADMIN_USER,
    FLOW_SP,
    VAULT_NAME,
    Call,
    policy_writes_since,
    problem,
    secrets_of,
    ticket_body,
)
from tests.functions.test_caller_auth import easy_auth

REQUESTER = easy_auth(oid="7d1e9a34-6c2b-4f0e-9a51-2b3c4d5e6f70", upn="alice@contoso.example")
APPROVER_OID = "5e2a8b61-3c4d-4e7f-8a9b-0c1d2e3f4a5b"
APPROVER = easy_auth(oid=APPROVER_OID, upn="bob@contoso.example")
OTHER_SP = "6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d9e"  # a second flow identity that may List


@pytest.fixture
def approvals(enforce: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An enforcing deployment behind App Service Authentication."""
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "true")
    for name in ("VAULTGUARD_APPROVER_ROLES", "VAULTGUARD_APPROVAL_WEBHOOK_URL", "WEBSITE_HOSTNAME"):
        monkeypatch.delenv(name, raising=False)
    return enforce


def _dry_run(call: Call, **overrides: Any) -> dict[str, Any]:
    body = ticket_body(requester=None, **overrides)
    response = call("tickets", "POST", "/api/remediations", body=body, headers=REQUESTER)
    assert response.status_code == 200, response.get_body()
    result: dict[str, Any] = json.loads(response.get_body())
    assert result["status"] == "planned"
    return result


def _approve(call: Call, ticket_id: str, body: object, headers: dict[str, str] | None = None) -> Any:
    return call(
        "approve",
        "POST",
        f"/api/remediations/{ticket_id}/approve",
        body=body,
        headers=APPROVER if headers is None else headers,
        route_params={"ticketId": ticket_id},
    )


def _set_policy(cloud: Emulator, object_id: str, secrets: list[str]) -> None:
    with cloud.state.lock:
        vault = cloud.state.azure.vaults[VAULT_NAME]
        entries = [e for e in vault.access_policies if e.object_id != object_id]
        entries.append(AccessPolicy(cloud.state.azure.tenant_id, object_id, permissions={"secrets": secrets}))
        vault.access_policies = entries


def test_approval_applies_exactly_the_reviewed_plan_once_and_records_the_approver(
    call: Call, approvals: dict[str, str], cloud: Emulator
) -> None:
    from remediations.shell.audit import TableAuditSink
    from remediations.shell.settings import AppSettings

    mark = cloud.requests.mark()
    planned = _dry_run(call)
    assert planned["planId"].startswith("plan-") and len(planned["planHash"]) == 64
    assert policy_writes_since(cloud, mark) == 0
    # After the review another identity gains List: a fresh plan would narrow it too; the approved
    # plan does not name it, so it is left alone.
    _set_policy(cloud, OTHER_SP, ["Get", "List"])

    response = _approve(call, planned["ticketId"], {"planHash": planned["planHash"], "reason": "CAB-7"})
    assert response.status_code == 202, response.get_body()
    result = json.loads(response.get_body())
    assert result["status"] == "applied" and result["dryRun"] is False
    assert (result["planId"], result["planHash"]) == (planned["planId"], planned["planHash"])
    assert result["approvedBy"] == f"bob@contoso.example ({APPROVER_OID})"
    assert result["approvalReason"] == "CAB-7"
    assert [a["id"] for a in result["plan"]] == [a["id"] for a in planned["plan"]]
    assert [o["status"] for o in result["outcomes"]] == ["applied"]
    assert secrets_of(cloud, FLOW_SP) == ["Get"]
    assert secrets_of(cloud, OTHER_SP) == ["Get", "List"]
    assert secrets_of(cloud, ADMIN_USER) == ["Get", "Set", "Delete"]
    assert policy_writes_since(cloud, mark) == 1
    rows = TableAuditSink.from_settings(AppSettings.from_env()).records(result["correlationId"])
    assert [r.state for r in rows] == ["pending", "applied"]
    assert {(r.caller, r.ticket_id) for r in rows} == {(result["approvedBy"], planned["ticketId"])}
    assert rows[1].before["secrets"] == ["Get", "List"] and rows[1].after["secrets"] == ["Get"]

    # Approved again: the stored result, no call to Azure, no second write.
    mark = cloud.requests.mark()
    again = _approve(call, planned["ticketId"], {"planHash": planned["planHash"]})
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert json.loads(again.get_body()) == result
    assert cloud.requests.since(mark) == []
    stored = call(
        "approve",
        "GET",
        f"/api/remediations/{planned['ticketId']}/approve",
        route_params={"ticketId": planned["ticketId"]},
    )
    assert stored.status_code == 200 and json.loads(stored.get_body()) == result


def test_an_action_whose_target_drifted_since_the_dry_run_is_skipped_not_replanned(
    call: Call, approvals: dict[str, str], cloud: Emulator
) -> None:
    from remediations.shell.audit import TableAuditSink
    from remediations.shell.settings import AppSettings

    planned = _dry_run(call)
    _set_policy(cloud, FLOW_SP, ["Get", "List", "Set"])  # changed after the review
    mark = cloud.requests.mark()
    response = _approve(call, planned["ticketId"], {"planHash": planned["planHash"]})
    assert response.status_code == 202, response.get_body()
    result = json.loads(response.get_body())
    [outcome] = result["outcomes"]
    assert outcome["status"] == "skipped" and outcome["error"].startswith("drifted")
    assert "get, list, set" in outcome["error"]
    assert policy_writes_since(cloud, mark) == 0
    assert secrets_of(cloud, FLOW_SP) == ["Get", "List", "Set"]
    rows = TableAuditSink.from_settings(AppSettings.from_env()).records(result["correlationId"])
    assert [(r.state, (r.reason or "")[:7]) for r in rows] == [("skipped", "drifted")]


def test_a_wrong_or_missing_hash_is_refused_and_writes_nothing(
    call: Call, approvals: dict[str, str], cloud: Emulator
) -> None:
    planned = _dry_run(call)
    mark = cloud.requests.mark()
    wrong = _approve(call, planned["ticketId"], {"planHash": "0" * 64})
    assert wrong.status_code == 409 and problem(wrong)["type"].endswith("/plan-mismatch")
    missing = _approve(call, planned["ticketId"], {"reason": "no hash"})
    assert missing.status_code == 422
    assert problem(missing)["errors"][0]["path"] == "$.planHash"
    assert _approve(call, planned["ticketId"], {"planHash": "not-a-hash"}).status_code == 422
    unknown = _approve(call, "CHG-none", {"planHash": planned["planHash"]})
    assert unknown.status_code == 404
    assert cloud.requests.since(mark) == []
    assert secrets_of(cloud, FLOW_SP) == ["Get", "List"]


def test_an_applied_ticket_has_no_plan_awaiting_approval(
    call: Call, approvals: dict[str, str], cloud: Emulator
) -> None:
    applied = call("tickets", "POST", "/api/remediations", body=ticket_body(dryRun=False), headers=REQUESTER)
    result = json.loads(applied.get_body())
    response = _approve(call, result["ticketId"], {"planHash": result["planHash"]})
    assert response.status_code == 409 and "not a dry run" in problem(response)["detail"]


def test_the_requester_cannot_approve_their_own_plan(
    call: Call, approvals: dict[str, str], cloud: Emulator
) -> None:
    planned = _dry_run(call)
    response = _approve(call, planned["ticketId"], {"planHash": planned["planHash"]}, headers=REQUESTER)
    assert response.status_code == 403 and "other than the ticket's requester" in problem(response)["detail"]
    assert secrets_of(cloud, FLOW_SP) == ["Get", "List"]


def test_an_approval_needs_an_authenticated_approver(
    call: Call, approvals: dict[str, str], cloud: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned = _dry_run(call)
    response = _approve(call, planned["ticketId"], {"planHash": planned["planHash"]}, headers={})
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    # Without App Service Authentication in front, principal headers prove nothing: still 401.
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED")
    forged = _approve(call, planned["ticketId"], {"planHash": planned["planHash"]})
    assert forged.status_code == 401
    assert secrets_of(cloud, FLOW_SP) == ["Get", "List"]


def test_the_approver_role_is_enforced(
    call: Call, approvals: dict[str, str], cloud: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULTGUARD_APPROVER_ROLES", "Vaultguard.Approver")
    planned = _dry_run(call)
    refused = _approve(call, planned["ticketId"], {"planHash": planned["planHash"]})
    assert refused.status_code == 403 and "Vaultguard.Approver" in problem(refused)["detail"]
    assert secrets_of(cloud, FLOW_SP) == ["Get", "List"]
    holder = easy_auth("Vaultguard.Approver", oid=APPROVER_OID, upn="bob@contoso.example")
    response = _approve(call, planned["ticketId"], {"planHash": planned["planHash"]}, headers=holder)
    assert response.status_code == 202, response.get_body()
    assert secrets_of(cloud, FLOW_SP) == ["Get"]


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        self.received.append({"path": self.path, "body": json.loads(self.rfile.read(length))})
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Handler", (_Receiver,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_a_plan_awaiting_approval_is_posted_as_an_adaptive_card_without_secret_values(
    call: Call,
    approvals: dict[str, str],
    cloud: Emulator,
    receiver: tuple[str, list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, received = receiver
    monkeypatch.setenv("VAULTGUARD_APPROVAL_WEBHOOK_URL", url)
    monkeypatch.setenv("WEBSITE_HOSTNAME", "vaultguard.azurewebsites.net")
    planned = _dry_run(call)
    [message] = received
    assert message["path"] == "/hook"
    [attachment] = message["body"]["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    text = json.dumps(card, ensure_ascii=False)
    assert card["type"] == "AdaptiveCard" and planned["planHash"] in text and planned["ticketId"] in text
    assert f"remove_list_permission** on `{planned['plan'][0]['target']}` for `{FLOW_SP}`" in text
    assert "secrets: Get, List → secrets: Get" in text
    link = f"https://vaultguard.azurewebsites.net/api/remediations/{planned['ticketId']}/approve"
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Approve", "url": link}]
    assert "emulated-secret-value" not in text

    # Nothing to approve, nothing posted.
    _set_policy(cloud, FLOW_SP, ["Get"])
    _dry_run(call)
    assert len(received) == 1


def test_a_deployment_in_dry_run_refuses_approvals_instead_of_recording_them(
    call: Call, approvals: dict[str, str], cloud: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned = _dry_run(call)
    monkeypatch.setenv("VAULTGUARD_DRY_RUN", "true")
    refused = _approve(call, planned["ticketId"], {"planHash": planned["planHash"]})
    assert refused.status_code == 409 and problem(refused)["type"].endswith("/dry-run-deployment")
    # Once the deployment applies changes the same approval goes through.
    monkeypatch.setenv("VAULTGUARD_DRY_RUN", "false")
    response = _approve(call, planned["ticketId"], {"planHash": planned["planHash"]})
    assert response.status_code == 202, response.get_body()
    assert secrets_of(cloud, FLOW_SP) == ["Get"]
