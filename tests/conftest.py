"""Shared fixtures: Azurite for the session; fresh storage names per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from emulator.azurite import Azurite


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
