"""The emulator's transport: a CONNECT proxy terminating TLS with a local CA, keep-alive,
fault injection and the request log, exercised with the `requests` library as the SDKs use it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from emulator import Emulator
from emulator.wire import HttpError, Request, Response


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        emulator.middlewares.clear()  # transport only: no Azure authentication or throttling

        def echo(request: Request) -> Response:
            return Response.json(
                200,
                {
                    "host": request.host,
                    "path": request.path,
                    "query": request.query,
                    "vault": request.params.get("vault"),
                },
            )

        def boom(request: Request) -> Response:
            raise HttpError(409, "Conflict", "already there")

        emulator.router.add(r"(?P<vault>[a-z0-9-]+)\.vault\.azure\.net", "GET", r"/echo", echo)
        emulator.router.add(r"management\.azure\.com", "GET", r"/echo", echo)
        emulator.router.add(r"management\.azure\.com", "PUT", r"/conflict", boom)
        yield emulator


def _session(emulator: Emulator) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # this machine sets REQUESTS_CA_BUNDLE, which would override `verify`
    session.proxies = {"https": emulator.proxy_url}
    session.verify = emulator.ca_bundle
    return session


def test_tls_through_proxy_with_route_params(emu: Emulator) -> None:
    response = _session(emu).get("https://myvault.vault.azure.net/echo?api-version=7.5")
    assert response.status_code == 200
    assert response.json() == {
        "host": "myvault.vault.azure.net",
        "path": "/echo",
        "query": {"api-version": "7.5"},
        "vault": "myvault",
    }


def test_unknown_host_certificate_is_rejected(emu: Emulator) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        _session(emu).get("https://example.com/echo")


def test_errors_use_the_azure_envelope_and_unknown_routes_404(emu: Emulator) -> None:
    session = _session(emu)
    conflict = session.put("https://management.azure.com/conflict", json={})
    assert conflict.status_code == 409
    assert conflict.json() == {"error": {"code": "Conflict", "message": "already there"}}
    assert session.get("https://management.azure.com/nothing").status_code == 404
    assert session.delete("https://management.azure.com/echo").status_code == 405


def test_keep_alive_is_fast(emu: Emulator) -> None:
    session = _session(emu)
    session.get("https://management.azure.com/echo")
    started = time.perf_counter()
    for _ in range(50):
        assert session.get("https://management.azure.com/echo").status_code == 200
    per_request = (time.perf_counter() - started) / 50
    # A tunnel without TCP_NODELAY stalls ~40 ms per request on delayed ACKs.
    assert per_request < 0.03, per_request


def test_injected_429_with_retry_after_is_logged(emu: Emulator) -> None:
    emu.faults.status(429, host=r"management\.azure\.com", path="/echo", count=1, retry_after=2)
    session = _session(emu)
    first = session.get("https://management.azure.com/echo")
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "2"
    assert session.get("https://management.azure.com/echo").status_code == 200
    statuses = [(e.status, e.fault) for e in emu.requests.filter(host="management.azure.com")]
    assert statuses == [(429, "status:429"), (200, None)]


def test_injected_reset_drops_the_connection(emu: Emulator) -> None:
    emu.faults.reset(path="/echo", count=1)
    session = _session(emu)
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get("https://management.azure.com/echo")
    assert session.get("https://management.azure.com/echo").status_code == 200


def test_injected_latency(emu: Emulator) -> None:
    """The delay is added to the matching host only. Absolute times vary on a busy machine, so: the
    delayed request takes at least the delay, and at least 0.2 s more than the fastest of a few
    undelayed ones (connections warmed first: TLS setup through the proxy is not what is measured)."""
    session = _session(emu)
    session.get("https://v1.vault.azure.net/echo")
    session.get("https://management.azure.com/echo")
    emu.faults.latency(400, host=r".*\.vault\.azure\.net")

    def took(url: str) -> float:
        started = time.perf_counter()
        assert session.get(url).status_code == 200
        return time.perf_counter() - started

    delayed = took("https://v1.vault.azure.net/echo")
    undelayed = min(took("https://management.azure.com/echo") for _ in range(3))
    assert delayed >= 0.4
    assert delayed - undelayed >= 0.2, (delayed, undelayed)


def test_latency_is_time_to_answer_the_handlers_own_work_is_part_of_it(emu: Emulator) -> None:
    """A real service's latency includes its own work (docs/fidelity.md, "Latency"): a handler that works
    0.4 s under a modelled 0.6 s answers in about 0.6 s, not 1.0 s; one that works 0.5 s under a modelled
    0.4 s answers when it is done (late by 0.1 s, as an overloaded service is), not after 0.9 s."""

    def slow(seconds: float) -> Callable[[Request], Response]:
        def handler(request: Request) -> Response:
            time.sleep(seconds)  # the service's work: I/O or CPU, it is all time before the answer
            return Response.json(200, {"worked": seconds})

        return handler

    emu.router.add(r"management\.azure\.com", "GET", r"/work-short", slow(0.4))
    emu.router.add(r"management\.azure\.com", "GET", r"/work-long", slow(0.5))
    session = _session(emu)
    session.get("https://management.azure.com/echo")  # the tunnel's TLS setup is not what is measured
    emu.faults.latency(600, path="/work-short")
    emu.faults.latency(400, path="/work-long")

    def took(path: str) -> float:
        started = time.perf_counter()
        assert session.get(f"https://management.azure.com{path}").status_code == 200
        return time.perf_counter() - started

    short, long = took("/work-short"), took("/work-long")
    assert 0.6 <= short < 0.9, short  # the modelled latency, not latency + work (1.0 s)
    assert 0.5 <= long < 0.8, long  # the work, not work + latency (0.9 s)
    logged = [r.latency_ms for r in list(emu.requests)[-2:]]  # the log's latency is the same answer time
    assert logged[0] >= 600 and logged[1] >= 500, logged


def test_plain_http_to_the_proxy_is_refused(emu: Emulator) -> None:
    response = requests.get(emu.proxy_url + "/anything", timeout=5)
    assert response.status_code == 400


def test_serve_prints_exports_then_ready_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator", "serve"], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line.strip())
            if line.strip() == "ready":
                break
        exports = [line.removeprefix("export ") for line in lines if line.startswith("export ")]
        names = {line.split("=", 1)[0] for line in exports}
        assert {
            "HTTPS_PROXY",
            "REQUESTS_CA_BUNDLE",
            "SSL_CERT_FILE",
            "AZURE_TENANT_ID",
            "AZURE_SUBSCRIPTION_ID",
            "AZURE_CLIENT_ID",
            "AZURE_CLIENT_SECRET",
        } <= names
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_shared_session_verifies_every_host_with_one_tls_context(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The app's session builds its verifying context once: new hosts (one per vault) cost a handshake,
    not a re-read of the CA bundle; a server the bundle does not trust is still refused."""
    import ssl

    import trustme

    from remediations.adapters.http import EnvOnceSession

    for name in ("HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, emu.proxy_url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", emu.ca_bundle)
    session = EnvOnceSession()
    loads: list[object] = []
    original = ssl.SSLContext.load_verify_locations

    def counted(self: ssl.SSLContext, *args: object, **kwargs: object) -> None:
        loads.append(args or kwargs)
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    for vault in ("kv-a", "kv-b", "kv-c"):
        response = session.get(f"https://{vault}.vault.azure.net/echo")
        assert response.status_code == 200 and response.json()["vault"] == vault
    assert loads == []

    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other))
    with pytest.raises(requests.exceptions.SSLError):
        EnvOnceSession().get("https://kv-a.vault.azure.net/echo")
