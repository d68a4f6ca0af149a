"""The function app indexes as the Functions host would see it, and the health function runs."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
import pytest

import function_app

Functions = dict[str, Any]


def _bindings(functions: Functions, name: str) -> list[dict[str, Any]]:
    return list(json.loads(functions[name].get_function_json())["bindings"])


def test_app_indexes_and_registers_health(functions: Functions) -> None:
    assert "health" in functions
    assert function_app.app.auth_level == func.AuthLevel.FUNCTION


def test_every_http_function_requires_a_function_key(functions: Functions) -> None:
    for name in functions:
        for binding in _bindings(functions, name):
            if binding["type"] == "httpTrigger":
                assert binding["authLevel"] == "FUNCTION", name


def test_health_binding_is_get_on_api_health(functions: Functions) -> None:
    trigger = next(b for b in _bindings(functions, "health") if b["type"] == "httpTrigger")
    assert trigger["route"] == "health"
    assert trigger["methods"] == ["GET"]


def _call_health(functions: Functions) -> func.HttpResponse:
    handler = functions["health"].get_user_function()
    request = func.HttpRequest(method="GET", url="/api/health", headers={}, body=b"")
    response = handler(request)
    assert isinstance(response, func.HttpResponse)
    return response


def test_health_ok_with_storage_configured(
    functions: Functions, storage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULTGUARD_SUBSCRIPTION_IDS", "00000000-0000-0000-0000-000000000001")
    response = _call_health(functions)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = json.loads(response.get_body())
    assert body["status"] == "ok"
    assert body["version"]
    assert body["problems"] == []


def test_health_without_subscriptions_says_what_to_set(
    functions: Functions, storage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULTGUARD_SUBSCRIPTION_IDS", raising=False)
    response = _call_health(functions)
    assert response.status_code == 503
    body = json.loads(response.get_body())
    assert body["status"] == "degraded"
    assert body["problems"] == [
        "VAULTGUARD_SUBSCRIPTION_IDS is not set: sweeps scan nothing and every ticket, alert and event "
        "is out of scope"
    ]


def test_health_names_bad_settings_without_leaking_values(
    functions: Functions, monkeypatch: pytest.MonkeyPatch
) -> None:
    leaky = "not-a-guid-SENSITIVE-VALUE"
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    monkeypatch.setenv("VAULTGUARD_SUBSCRIPTION_IDS", leaky)
    monkeypatch.setenv("VAULTGUARD_DRY_RUN", "perhaps")
    response = _call_health(functions)
    assert response.status_code == 503
    text = response.get_body().decode()
    body = json.loads(text)
    assert body["status"] == "degraded"
    assert any("VAULTGUARD_SUBSCRIPTION_IDS" in p for p in body["problems"])
    assert any("VAULTGUARD_DRY_RUN" in p for p in body["problems"])
    assert any("AzureWebJobsStorage" in p for p in body["problems"])
    assert leaky not in text and "perhaps" not in text


def test_function_app_import_does_not_load_the_engine() -> None:
    import subprocess
    import sys

    code = (
        "import sys, function_app; "
        "prefixes = ('azure.mgmt', 'azure.keyvault', 'azure.identity'); "
        "heavy = [m for m in sys.modules if m.startswith(prefixes)]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_funcignore_keeps_test_and_emulator_code_out_of_the_deployment() -> None:
    from pathlib import Path

    ignored = {line.strip() for line in Path(".funcignore").read_text().splitlines() if line.strip()}
    never = ("tests/", "emulator/", "demo/", "bench/", "infra/", ".venv", "local.settings.json")
    for never_deployed in never:
        assert never_deployed in ignored, never_deployed
    # what Azure must get stays deployable
    for deployed in ("function_app.py", "host.json", "requirements.txt", "remediations/"):
        assert deployed not in ignored, deployed
