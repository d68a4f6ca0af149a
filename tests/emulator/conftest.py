"""Emulator fixtures: one emulator per test module (fast), the client environment per test.

This machine sets REQUESTS_CA_BUNDLE/SSL_CERT_FILE globally, so every item of `emu.env` is set
with monkeypatch before any SDK client is built."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator import Emulator
from tests.emulator.helpers import Raw, admin_token


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def env(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in emu.env.items():
        monkeypatch.setenv(name, value)
    return emu.env


@pytest.fixture
def arm(emu: Emulator) -> Raw:
    """Raw ARM calls as the admin service principal."""
    return Raw(emu, admin_token(emu))
