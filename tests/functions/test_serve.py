"""The local runner serves the same functions over real HTTP on a free port."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest

from remediations.serve import make_server, serve_in_thread
from tests.functions.conftest import ticket_body

KEY = "local-test-key-123"


@pytest.fixture
def server(app_env: dict[str, str], functions: dict[str, Any]) -> Iterator[int]:
    srv = make_server("127.0.0.1", 0, function_key=KEY, functions=functions.values())
    serve_in_thread(srv)
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


def _request(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = json.dumps(body).encode() if body is not None else None
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    connection.request(method, path, body=data, headers=all_headers)
    response = connection.getresponse()
    out = response.read()
    result = response.status, {k.lower(): v for k, v in response.getheaders()}, out
    connection.close()
    return result


def test_without_a_key_is_401_problem(server: int) -> None:
    status, headers, body = _request(server, "GET", "/api/health")
    assert status == 401
    assert headers["content-type"].startswith("application/problem+json")
    assert json.loads(body)["status"] == 401
    assert _request(server, "GET", "/api/health", headers={"x-functions-key": "wrong"})[0] == 401


def test_with_a_key_serves_the_function_handlers(server: int) -> None:
    auth = {"x-functions-key": KEY}
    assert _request(server, "GET", "/api/health", headers=auth)[0] == 200
    ticket = ticket_body()
    status, headers, body = _request(server, "POST", "/api/remediations", ticket, auth)
    assert status == 200, body  # a dry run (the deployment default)
    assert json.loads(body)["status"] == "planned"
    assert headers["location"] == f"/api/remediations/{ticket['ticketId']}"
    status, _, fetched = _request(server, "GET", f"/api/remediations/{ticket['ticketId']}?code={KEY}")
    assert status == 200
    assert json.loads(fetched)["ticketId"] == ticket["ticketId"]
    status, _, listed = _request(server, "GET", "/api/remediations?limit=5", headers=auth)
    assert status == 200 and json.loads(listed)["runs"][0]["id"] == ticket["ticketId"]
    status, _, doc = _request(server, "GET", "/api/openapi.json", headers=auth)
    assert status == 200 and json.loads(doc)["openapi"] == "3.1.0"


def test_runner_answers_problems_for_routes_methods_and_size(server: int) -> None:
    auth = {"x-functions-key": KEY}
    assert _request(server, "GET", "/api/nothing-here", headers=auth)[0] == 404
    status, headers, _ = _request(server, "DELETE", "/api/alerts", headers=auth)
    assert status == 405 and headers["allow"] == "POST"
    status, _, body = _request(server, "POST", "/api/alerts", "x" * (300 * 1024), auth)
    assert status == 413 and json.loads(body)["status"] == 413
    status, headers, body = _request(server, "POST", "/api/alerts", {"nope": 1}, auth)
    assert status == 400 and headers["content-type"].startswith("application/problem+json")


def test_main_parses_arguments() -> None:
    from remediations import serve

    with pytest.raises(SystemExit):
        serve.main(["--port", "not-a-number"])


def test_python_m_remediations_serve_answers_real_http(app_env: dict[str, str]) -> None:
    import os
    import subprocess
    import sys
    from pathlib import Path

    from emulator.ports import free_port, wait_for_port

    port = free_port("127.0.0.1")
    env = {
        **os.environ,
        "VAULTGUARD_LOCAL_FUNCTION_KEY": KEY,
        "VAULTGUARD_SUBSCRIPTION_IDS": "00000000-0000-0000-0000-000000000001",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "remediations.serve", "--port", str(port)],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, "127.0.0.1", timeout=30)
        assert _request(port, "GET", "/api/health")[0] == 401
        status, _, body = _request(port, "GET", "/api/health", headers={"x-functions-key": KEY})
        assert status == 200 and json.loads(body)["status"] == "ok"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_cli_serve_subcommand_runs_the_local_runner(app_env: dict[str, str]) -> None:
    """`python -m remediations serve --port 0` in its own process answers /api/health over HTTP."""
    import os
    import re
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "remediations", "serve", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "VAULTGUARD_LOCAL_FUNCTION_KEY": KEY},
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/api/", line)
        assert match, line
        status, _, body = _request(
            int(match.group(1)), "GET", "/api/health", headers={"x-functions-key": KEY}
        )
        assert status in (200, 503) and "version" in json.loads(body)
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_body_shorter_than_its_content_length_does_not_hold_a_thread(
    app_env: dict[str, str], functions: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    import remediations.serve as serve_module

    monkeypatch.setattr(serve_module, "BODY_READ_SECONDS", 0.5)
    srv = make_server("127.0.0.1", 0, function_key=KEY, functions=functions.values())
    serve_in_thread(srv)
    try:
        with socket.create_connection(srv.server_address[:2], timeout=10) as sock:
            sock.sendall(
                b"POST /api/remediations HTTP/1.1\r\nHost: x\r\nx-functions-key: "
                + KEY.encode()
                + b'\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"ticketId"'
            )
            answer = b""
            while chunk := sock.recv(65536):  # the server answers and closes; no 10 s client timeout
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"application/problem+json" in answer
        # The runner still serves other requests.
        assert (
            _request(srv.server_address[1], "GET", "/api/health", headers={"x-functions-key": KEY})[0] == 200
        )
    finally:
        srv.shutdown()
        srv.server_close()
