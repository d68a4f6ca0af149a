"""Fixtures for the trigger tests: app settings on Azurite and in-process calls of the functions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import azure.functions as func
import pytest

SUBSCRIPTIONS = ("11111111-2222-4333-8444-555555555555", "66666666-7777-4888-9999-000000000000")
VAULT = (
    "/subscriptions/5f1c2b3a-8d4e-4f60-9a7b-1c2d3e4f5a6b/resourceGroups/rg-finance-automation"
    "/providers/Microsoft.KeyVault/vaults/kv-fin-flows"
)


@pytest.fixture
def app_env(storage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """storage_env plus a run table of its own and two subscriptions to sweep."""
    env = dict(storage_env)
    env["VAULTGUARD_RUNS_TABLE"] = f"runs{uuid.uuid4().hex[:10]}"
    env["VAULTGUARD_SUBSCRIPTION_IDS"] = ",".join(SUBSCRIPTIONS)
    env["VAULTGUARD_SWEEP_SCHEDULE"] = "0 0 */6 * * *"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("APPLICATIONINSIGHTS_CONNECTION_STRING", raising=False)
    return env


Call = Callable[..., func.HttpResponse]


@pytest.fixture
def call(functions: dict[str, Any]) -> Call:
    """call("tickets", "POST", "/api/remediations", body={...}) -> HttpResponse, in-process."""

    def _call(
        name: str,
        method: str,
        url: str,
        *,
        body: object = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        route_params: dict[str, str] | None = None,
    ) -> func.HttpResponse:
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        all_headers = {"content-type": "application/json"}
        all_headers.update(headers or {})
        request = func.HttpRequest(
            method=method,
            url=f"http://localhost{url}",
            headers=all_headers,
            params=params or {},
            route_params=route_params or {},
            body=data,
        )
        response = functions[name].get_user_function()(request)
        assert isinstance(response, func.HttpResponse)
        return response

    return _call


def ticket_body(ticket_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ticketId": ticket_id or f"CHG-{uuid.uuid4().hex[:12]}",
        "remediations": ["remove_list_permission"],
        "targets": {"vaults": [VAULT]},
        "requester": "secops@contoso.example",
        "reason": "flow edit exposed secrets",
    }
    body.update(overrides)
    return body


def problem(response: func.HttpResponse) -> dict[str, Any]:
    assert response.mimetype == "application/problem+json", response.get_body()[:300]
    body: dict[str, Any] = json.loads(response.get_body())
    assert body["status"] == response.status_code
    assert {"type", "title", "status", "detail"} <= set(body)
    text = response.get_body().decode()
    assert "Traceback" not in text and 'File "' not in text
    return body
