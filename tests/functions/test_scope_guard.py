"""Scope guard: a ticket, an alert or a Defender record about a vault outside the configured
scope (a subscription not in VAULTGUARD_SUBSCRIPTION_IDS, or a vault the policy excludes) reads and
writes nothing: 403 problem for a ticket, "ignored: out of scope" recorded for an alert."""

from __future__ import annotations

import json

import pytest

from emulator import Emulator
from tests.functions.conftest import FLOW_SP, VAULT, VAULT_NAME, Call, problem, secrets_of, ticket_body
from tests.functions.test_alerts import sample

OTHER_SUBSCRIPTION = "0e9d8c7b-6a5f-4e3d-8c2b-1a0f9e8d7c6b"


def _out_of_scope(how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if how == "subscription":
        monkeypatch.setenv("VAULTGUARD_SUBSCRIPTION_IDS", OTHER_SUBSCRIPTION)
    else:
        policy = {"dryRun": False, "exclusions": {"vaults": [VAULT_NAME]}}
        monkeypatch.setenv("VAULTGUARD_POLICY_JSON", json.dumps(policy))


@pytest.mark.parametrize("how", ["subscription", "excluded"])
@pytest.mark.parametrize(
    "targets",
    [{"vaults": [VAULT]}, {"secrets": [f"{VAULT}/secrets/sql-password"]}],
)
def test_a_ticket_naming_an_out_of_scope_vault_is_403_and_touches_nothing(
    call: Call,
    enforce: dict[str, str],
    cloud: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    targets: dict[str, list[str]],
) -> None:
    _out_of_scope(how, monkeypatch)
    mark = cloud.requests.mark()
    remediations = ["rotate_secret"] if "secrets" in targets else ["remove_list_permission"]
    body = ticket_body(remediations=remediations, targets=targets, dryRun=False)
    response = call("tickets", "POST", "/api/remediations", body=body)
    assert response.status_code == 403, response.get_body()
    found = problem(response)
    assert found["errors"][0]["path"].startswith("$.targets.")
    assert "out of scope" in found["errors"][0]["message"]
    assert cloud.requests.since(mark) == []  # nothing read, nothing written
    assert secrets_of(cloud, FLOW_SP) == ["Get", "List"]
    # Not stored either: the same ticket id is unknown.
    fetched = call(
        "ticket", "GET", f"/api/remediations/{body['ticketId']}", route_params={"ticketId": body["ticketId"]}
    )
    assert fetched.status_code == 404


@pytest.mark.parametrize("how", ["subscription", "excluded"])
@pytest.mark.parametrize(
    "name", ["activity_log_administrative", "activity_log_security", "defender_security_alert_record"]
)
def test_an_alert_about_an_out_of_scope_vault_is_recorded_as_ignored(
    call: Call,
    enforce: dict[str, str],
    cloud: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
    name: str,
) -> None:
    _out_of_scope(how, monkeypatch)
    mark = cloud.requests.mark()
    response = call("alerts", "POST", "/api/alerts", body=sample(name))
    assert response.status_code == 202, response.get_body()
    result = json.loads(response.get_body())
    assert result["status"] == "acknowledged"
    assert result["message"].startswith("ignored: out of scope")
    assert cloud.requests.since(mark) == []
    assert secrets_of(cloud, FLOW_SP) == ["Get", "List"]
    listed = json.loads(call("tickets", "GET", "/api/remediations", params={"kind": "alert"}).get_body())
    assert any(row.get("status") == "acknowledged" for row in listed["runs"])
