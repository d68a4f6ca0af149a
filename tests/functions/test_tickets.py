"""POST/GET /api/remediations in-process against Azurite: validation, idempotency, storage."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.functions.conftest import VAULT, Call, problem, ticket_body


def _count_entities(env: dict[str, str]) -> int:
    from azure.data.tables import TableClient

    table = TableClient.from_connection_string(env["AzureWebJobsStorage"], env["VAULTGUARD_RUNS_TABLE"])
    return len(list(table.list_entities()))


def test_ticket_is_accepted_stored_and_pending_engine(call: Call, app_env: dict[str, str]) -> None:
    body = ticket_body()
    response = call("tickets", "POST", "/api/remediations", body=body)
    assert response.status_code == 202
    assert response.headers["Location"] == f"/api/remediations/{body['ticketId']}"
    assert response.headers["x-correlation-id"]
    result = json.loads(response.get_body())
    assert result["ticketId"] == body["ticketId"]
    assert result["status"] == "pending-engine"
    assert result["plan"] == [] and result["outcomes"] == []
    assert result["dryRun"] is True
    assert result["targets"]["vaults"] == [VAULT]

    fetched = call(
        "ticket", "GET", f"/api/remediations/{body['ticketId']}", route_params={"ticketId": body["ticketId"]}
    )
    assert fetched.status_code == 200
    assert json.loads(fetched.get_body()) == result


def test_same_ticket_twice_returns_the_stored_result_and_writes_nothing(
    call: Call, app_env: dict[str, str]
) -> None:
    body = ticket_body()
    first = call("tickets", "POST", "/api/remediations", body=body)
    assert first.status_code == 202
    entities = _count_entities(app_env)
    # The same meaning in a different key order and with the default spelled out.
    second = call(
        "tickets", "POST", "/api/remediations", body={**dict(reversed(list(body.items()))), "dryRun": True}
    )
    assert second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert json.loads(second.get_body()) == json.loads(first.get_body())
    assert _count_entities(app_env) == entities


def test_same_ticket_id_with_another_body_is_a_409_problem(call: Call, app_env: dict[str, str]) -> None:
    body = ticket_body()
    assert call("tickets", "POST", "/api/remediations", body=body).status_code == 202
    entities = _count_entities(app_env)
    response = call("tickets", "POST", "/api/remediations", body={**body, "dryRun": False})
    assert response.status_code == 409
    assert problem(response)["type"].endswith("idempotency-conflict")
    assert _count_entities(app_env) == entities


def test_list_recent_runs_newest_first(call: Call, app_env: dict[str, str]) -> None:
    ids = []
    for _ in range(3):
        body = ticket_body()
        ids.append(body["ticketId"])
        assert call("tickets", "POST", "/api/remediations", body=body).status_code == 202
    response = call("tickets", "GET", "/api/remediations", params={"limit": "2"})
    assert response.status_code == 200
    runs = json.loads(response.get_body())["runs"]
    assert [r["id"] for r in runs] == [ids[2], ids[1]]
    assert all(r["kind"] == "ticket" and r["status"] == "pending-engine" for r in runs)


def test_list_rejects_a_bad_limit(call: Call, app_env: dict[str, str]) -> None:
    response = call("tickets", "GET", "/api/remediations", params={"limit": "-4"})
    assert response.status_code == 422
    assert problem(response)["errors"][0]["path"] == "query.limit"


def test_unknown_ticket_is_404(call: Call, app_env: dict[str, str]) -> None:
    for ticket_id in ("NOPE-1", "../etc", "a" * 65):
        response = call(
            "ticket", "GET", f"/api/remediations/{ticket_id}", route_params={"ticketId": ticket_id}
        )
        assert response.status_code == 404
        problem(response)


BAD_VAULTS = [
    VAULT + "/../../other",
    VAULT + "?api-version=1",
    VAULT + "#x",
    VAULT.replace("kv-fin-flows", "kv%2Ffin"),
    VAULT.replace("kv-fin-flows", "kv fin"),
    VAULT.replace("kv-fin-flows", "kv"),
    VAULT.replace("kv-fin-flows", "k" * 25),
    VAULT.replace("Microsoft.KeyVault", "Microsoft.Storage"),
    VAULT.replace("5f1c2b3a-8d4e-4f60-9a7b-1c2d3e4f5a6b", "not-a-guid"),
    "https://management.azure.com" + VAULT,
    VAULT + "/",
    VAULT.replace("kv-fin-flows", "kv-fin-flöws"),
]


@pytest.mark.parametrize("vault", BAD_VAULTS)
def test_injected_or_malformed_vault_ids_are_422_with_the_path(
    call: Call, app_env: dict[str, str], vault: str
) -> None:
    response = call("tickets", "POST", "/api/remediations", body=ticket_body(targets={"vaults": [vault]}))
    assert response.status_code == 422
    body = problem(response)
    assert body["errors"][0]["path"] == "$.targets.vaults[0]"
    assert vault not in response.get_body().decode()


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"remediations": ["drop_database"]}, "$.remediations"),
        ({"remediations": []}, "$.remediations"),
        ({"remediations": "remove_list_permission"}, "$.remediations"),
        ({"ticketId": "has space"}, "$.ticketId"),
        ({"ticketId": "x" * 65}, "$.ticketId"),
        ({"ticketId": 42}, "$.ticketId"),
        ({"dryRun": "false"}, "$.dryRun"),
        ({"dryRun": 0}, "$.dryRun"),
        ({"targets": {}}, "$.targets"),
        ({"targets": {"vaults": [], "buckets": ["x"]}}, "$.targets.buckets"),
        ({"targets": {"principals": ["not-a-guid"]}}, "$.targets.principals[0]"),
        ({"targets": {"secrets": ["https://evil.example/secrets/x"]}}, "$.targets.secrets[0]"),
        (
            {"targets": {"flows": ["/providers/Microsoft.ProcessSimple/environments/e1/flows/../x"]}},
            "$.targets.flows[0]",
        ),
        ({"unexpected": True}, "$.unexpected"),
        ({"reason": "line\x00break"}, "$.reason"),
    ],
)
def test_wrong_types_unknown_fields_and_bad_values_are_422(
    call: Call, app_env: dict[str, str], overrides: dict[str, Any], path: str
) -> None:
    response = call("tickets", "POST", "/api/remediations", body=ticket_body(**overrides))
    assert response.status_code == 422, response.get_body()
    body = problem(response)
    assert path in [e["path"] for e in body["errors"]], body


def test_valid_targets_of_every_kind_are_accepted(call: Call, app_env: dict[str, str]) -> None:
    targets = {
        "vaults": [VAULT],
        "secrets": [
            VAULT + "/secrets/sql-password",
            "https://kv-fin-flows.vault.azure.net/secrets/sql-password",
        ],
        "flows": [
            "/providers/Microsoft.ProcessSimple/environments/Default-7c6b5a49-3827-4160-9f8e-d7c6b5a49382"
            "/flows/0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
        ],
        "connections": [
            "/providers/Microsoft.PowerApps/apis/shared_keyvault/connections/5f1e2d3c4b5a69788796a5b4c3d2e1f0"
        ],
        "principals": ["3B9F6C1E-2A4D-4E8B-9C7F-0D1E2F3A4B5C"],
        "environments": ["Default-7c6b5a49-3827-4160-9f8e-d7c6b5a49382"],
    }
    response = call(
        "tickets",
        "POST",
        "/api/remediations",
        body=ticket_body(remediations=["revoke_flow_shares", "rotate_secret"], targets=targets, dryRun=False),
    )
    assert response.status_code == 202, response.get_body()
    result = json.loads(response.get_body())
    assert result["targets"]["principals"] == ["3b9f6c1e-2a4d-4e8b-9c7f-0d1e2f3a4b5c"]
    assert result["dryRun"] is False


@pytest.mark.parametrize(
    ("raw", "headers", "status", "kind"),
    [
        (b"{not json", {}, 400, "malformed-json"),
        (b"", {}, 400, "malformed-json"),
        (b'{"a": NaN}', {}, 400, "malformed-json"),
        (b"\xff\xfe{}", {}, 400, "malformed-json"),
        (b"[" * 100_000, {}, 400, "malformed-json"),
        (b"ticketId=1", {"content-type": "application/x-www-form-urlencoded"}, 415, "unsupported-media-type"),
        (b"{}", {"content-type": "text/plain"}, 415, "unsupported-media-type"),
        (b" " * (256 * 1024 + 1), {}, 413, "payload-too-large"),
        (b"{}", {"content-length": str(10**9)}, 413, "payload-too-large"),
        (b"[]", {}, 422, "validation-error"),
        (b'"text"', {}, 422, "validation-error"),
    ],
)
def test_malformed_bodies_are_4xx_problems(
    call: Call, app_env: dict[str, str], raw: bytes, headers: dict[str, str], status: int, kind: str
) -> None:
    response = call("tickets", "POST", "/api/remediations", raw=raw, headers=headers)
    assert response.status_code == status, response.get_body()[:300]
    assert problem(response)["type"].endswith(kind)


def test_a_failing_engine_is_a_500_problem_without_traceback_and_is_recorded(
    call: Call, app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from remediations.triggers import service

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret-value-that-must-not-leak")

    monkeypatch.setattr(service, "run_ticket", boom)
    body = ticket_body()
    response = call("tickets", "POST", "/api/remediations", body=body)
    assert response.status_code == 500
    details = problem(response)
    assert "secret-value-that-must-not-leak" not in response.get_body().decode()
    assert details["correlationId"] == response.headers["x-correlation-id"]
    stored = call("ticket", "GET", "/x", route_params={"ticketId": body["ticketId"]})
    assert json.loads(stored.get_body())["status"] == "failed"


def test_storage_not_configured_is_503_problem(call: Call, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    monkeypatch.delenv("AzureWebJobsStorage__tableServiceUri", raising=False)
    response = call("tickets", "POST", "/api/remediations", body=ticket_body())
    assert response.status_code == 503
    problem(response)
