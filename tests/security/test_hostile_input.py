# ruff: noqa: F811 - the emulator and app fixtures of tests/functions are imported, then requested by name
"""Hostile input over real HTTP: schemathesis generates bodies from our OpenAPI document
(valid and invalid against it) for POST /api/remediations and POST /api/alerts and sends them to the
local runner (`remediations.serve`, the same azure.functions handlers) backed by the emulator and
Azurite. Every answer is 2xx or 4xx, never 5xx, and no body carries a traceback. At least 1,000 cases.

Also: oversized bodies are refused with 413 before parsing, and resource ids built to inject into ARM
URLs are refused with 4xx while no request reaches the emulator.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from emulator import Emulator
from remediations.serve import make_server, serve_in_thread
from tests.functions.conftest import app_env, cloud  # noqa: F401 - fixtures reused here
from tests.security.leakscan import LeakScan

ROOT = Path(__file__).resolve().parents[2]
KEY = "hostile-input-key-0123"
CASES_PER_OPERATION = 520
SCHEMA = schemathesis.openapi.from_path(str(ROOT / "remediations" / "triggers" / "openapi.json"))
COUNTS: dict[str, int] = {}
_lock = threading.Lock()


@pytest.fixture
def base_url(app_env: dict[str, str], functions: dict[str, Any]) -> Iterator[str]:
    srv = make_server("127.0.0.1", 0, function_key=KEY, functions=functions.values())
    serve_in_thread(srv)
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/api"
    finally:
        srv.shutdown()
        srv.server_close()


def _check(response: Any, label: str, leak_scan: LeakScan) -> None:
    text = response.text if hasattr(response, "text") else response
    assert response.status_code < 500, f"{label}: {response.status_code} {text[:300]}"
    assert "Traceback" not in text and 'File "' not in text, f"{label}: traceback in the body"
    leak_scan.add(label, text)
    with _lock:
        COUNTS[label] = COUNTS.get(label, 0) + 1


@SCHEMA.include(method="POST", path_regex="^/(remediations|alerts)$").parametrize()
@settings(
    max_examples=CASES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_generated_bodies_never_get_5xx_or_a_traceback(
    case: Any,
    base_url: str,
    cloud: Emulator,
    leak_scan: LeakScan,
) -> None:
    leak_scan.watch(cloud)
    response = case.call(base_url=base_url, headers={"x-functions-key": KEY}, timeout=30)
    _check(response, f"{case.method} {case.path}", leak_scan)


def test_at_least_1000_generated_cases_were_sent() -> None:
    """Runs after the schemathesis test in this module (file order)."""
    posts = {label: n for label, n in COUNTS.items() if label.startswith("POST ")}
    assert set(posts) == {"POST /remediations", "POST /alerts"}, COUNTS
    assert sum(posts.values()) >= 1000, COUNTS  # plus the other methods schemathesis tries on both paths


def _raw(port_url: str, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    host, port = port_url.split("//", 1)[1].split("/", 1)[0].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    out = response.status, response.read()
    connection.close()
    return out


@pytest.mark.parametrize("path", ["/api/remediations", "/api/alerts"])
def test_oversized_bodies_are_refused_before_parsing(base_url: str, path: str, cloud: Emulator) -> None:
    mark = cloud.requests.mark()
    # Not even JSON: a parser would answer 400; the size check answers 413 first.
    status, body = _raw(
        base_url,
        "POST",
        path,
        b"{" * (2 * 1024 * 1024),
        {"x-functions-key": KEY, "Content-Type": "application/json"},
    )
    assert status == 413, body[:200]
    assert json.loads(body)["status"] == 413
    assert cloud.requests.since(mark) == []


SUB = "00000000-0000-0000-0000-000000000001"
INJECTIONS = [
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/../../../roleAssignments",
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/%2e%2e%2fother",
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv?api-version=2015-01-01",
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv#fragment",
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv\u2215..\u2215x",
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv\x00",
    f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv/accessPolicies/replace",
    f"/subscriptions/{SUB}/resourceGroups/r g/providers/Microsoft.KeyVault/vaults/kv",
    f"https://evil.example/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",
    "/subscriptions/..%2f..%2f/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",
]


@pytest.mark.parametrize("vault_id", INJECTIONS)
def test_path_injection_in_resource_ids_is_refused_and_nothing_reaches_azure(
    base_url: str,
    cloud: Emulator,
    vault_id: str,
) -> None:
    mark = cloud.requests.mark()
    ticket = {
        "ticketId": "CHG-INJECT-1",
        "remediations": ["remove_list_permission"],
        "targets": {"vaults": [vault_id]},
        "dryRun": True,
    }
    status, body = _raw(
        base_url,
        "POST",
        "/api/remediations",
        json.dumps(ticket).encode(),
        {"x-functions-key": KEY, "Content-Type": "application/json"},
    )
    assert 400 <= status < 500, (status, body[:300])
    assert b"Traceback" not in body
    arm = [r for r in cloud.requests.since(mark) if r.host == "management.azure.com"]
    assert arm == [], [(r.method, r.path) for r in arm]
