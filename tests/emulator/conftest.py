"""Emulator fixtures: one emulator per test module (fast), the client environment per test.

This machine sets REQUESTS_CA_BUNDLE/SSL_CERT_FILE globally, so every item of `emu.env` is set
with monkeypatch before any SDK client is built."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from emulator.scenario import load_scenario_file
from tests.emulator.helpers import Raw, admin_token

SEED = Path(__file__).resolve().parents[2] / "emulator" / "scenarios" / "seed.json"


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


@pytest.fixture
def seed() -> dict[str, Any]:
    """emulator/scenarios/seed.json as data (who is who, the flows, the secrets)."""
    return json.loads(SEED.read_text())  # type: ignore[no-any-return]


@pytest.fixture
def seeded_emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """A fresh emulator of the seed scenario per test, its client environment set."""
    with Emulator(load_scenario_file(SEED)) as emulator:
        for name, value in emulator.env.items():
            monkeypatch.setenv(name, value)
        yield emulator
