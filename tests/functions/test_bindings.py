"""Each function's bindings, as the Functions host indexes them."""

from __future__ import annotations

import json
from typing import Any

Functions = dict[str, Any]


def _trigger(functions: Functions, name: str) -> dict[str, Any]:
    bindings = json.loads(functions[name].get_function_json())["bindings"]
    return next(b for b in bindings if b["direction"] == "IN" and b["type"].endswith("Trigger"))


def test_http_routes_methods_and_auth_level(functions: Functions) -> None:
    expected = {
        "health": ("health", ["GET"]),
        "tickets": ("remediations", ["GET", "POST"]),
        "ticket": ("remediations/{ticketId}", ["GET"]),
        "alerts": ("alerts", ["POST"]),
        "openapi": ("openapi.json", ["GET"]),
    }
    for name, (route, methods) in expected.items():
        trigger = _trigger(functions, name)
        assert trigger["type"] == "httpTrigger"
        assert trigger["route"] == route, name
        assert sorted(trigger["methods"]) == sorted(methods), name
        assert trigger["authLevel"] == "FUNCTION", name


def test_sweep_timer_binding(functions: Functions) -> None:
    trigger = _trigger(functions, "sweep")
    assert trigger["type"] == "timerTrigger"
    assert trigger["schedule"] == "%VAULTGUARD_SWEEP_SCHEDULE%"
    assert trigger["runOnStartup"] is False
    assert trigger["useMonitor"] is True


def test_deep_sweep_timer_binding(functions: Functions) -> None:
    trigger = _trigger(functions, "deep_sweep")
    assert trigger["type"] == "timerTrigger"
    assert trigger["schedule"] == "%VAULTGUARD_DEEP_SWEEP_SCHEDULE%"
    assert trigger["runOnStartup"] is False


def test_worker_queue_binding(functions: Functions) -> None:
    trigger = _trigger(functions, "remediate_worker")
    assert trigger["type"] == "queueTrigger"
    assert trigger["queueName"] == "%VAULTGUARD_QUEUE_NAME%"
    assert trigger["connection"] == "AzureWebJobsStorage"


def test_local_settings_example_sets_every_binding_expression() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    values = json.loads((root / "local.settings.example.json").read_text())["Values"]
    assert values["VAULTGUARD_SWEEP_SCHEDULE"].strip()
    assert values["VAULTGUARD_DEEP_SWEEP_SCHEDULE"].strip()
    assert values["VAULTGUARD_QUEUE_NAME"].strip()
