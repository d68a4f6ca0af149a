"""Shared fixtures: Azurite for the session; fresh storage names per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from emulator.azurite import Azurite
from tests.security.leakscan import LeakScan, scan_after_test


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with Azurite() as instance:
        yield instance


@pytest.fixture
def storage_env(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """App settings pointing at Azurite, with names unique to the test."""
    suffix = uuid.uuid4().hex[:10]
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "VAULTGUARD_QUEUE_NAME": f"scopes-{suffix}",
        "VAULTGUARD_AUDIT_TABLE": f"audit{suffix}",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture(scope="session")
def functions() -> dict[str, object]:
    """The indexed functions by name. `get_functions()` may run once per app object, as in the host."""
    import function_app

    return {fn.get_function_name(): fn for fn in function_app.app.get_functions()}


@pytest.fixture
def leak_scan() -> LeakScan:
    """Hand it what a test produced (`leak_scan.add("ticket response", response.text)`,
    `leak_scan.add_path(report_dir)`, `leak_scan.watch(emulator)`); scanned at teardown."""
    return LeakScan()


@pytest.fixture(autouse=True)
def _secrets_stay_secret(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture, leak_scan: LeakScan
) -> Iterator[None]:
    """Every test that used an emulator is scanned for the emulator's secret values in its
    logs, captured output, audit rows, reports and whatever it gave `leak_scan` (tests/security/leakscan.py).
    """
    yield
    scan_after_test(request, leak_scan, caplog)


@pytest.fixture(autouse=True)
def fresh_keyvault_challenges() -> Iterator[None]:
    """Forget the Key Vault SDK's process-wide challenge cache (tenant and scope per vault host).

    Each test module's emulator is a new tenant with a random id, and modules reuse vault host names
    (kv-fin-flows...): to the SDK that is a vault that moved tenant, and it asks the credential for a
    token in the old tenant, which fails before any request ("no response"). One process talks to one
    tenant in production; here the cache is cleared before each test."""
    from azure.keyvault.secrets._shared import http_challenge_cache  # SDK-private module

    http_challenge_cache.clear()
    yield
