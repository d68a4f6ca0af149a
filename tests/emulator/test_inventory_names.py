"""The inventory names the Power Platform side's people too: share holders and environment role holders
come back from Graph with their display names, so plans and reports say "Alex Analyst", not a GUID."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from emulator import Emulator
from emulator.scenario import load_scenario_file
from remediations.adapters.clients import AzureClients
from remediations.core.model import PowerPlatformScope, Scope
from remediations.report.graph_view import display_names
from remediations.shell.engine import inventory, inventory_power_platform_only
from tests.emulator.test_powerplatform_attack import SEED, _who


@pytest.fixture
def seed() -> dict[str, Any]:
    return json.loads(SEED.read_text())  # type: ignore[no-any-return]


@pytest.fixture
def emu(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    with Emulator(load_scenario_file(SEED)) as emulator:
        for name, value in emulator.env.items():
            monkeypatch.setenv(name, value)
        yield emulator


def test_share_and_role_holders_are_named(emu: Emulator, seed: dict[str, Any]) -> None:
    users = {u["id"].lower(): u["displayName"] for u in seed["users"]}
    analyst, customizer = _who(seed, "analyst@").lower(), _who(seed, "customizer@").lower()
    scope = Scope(subscription_id=seed["subscriptions"][0]["subscriptionId"])
    with AzureClients() as clients:
        both = inventory(
            scope, clients, pp_scope=PowerPlatformScope(all_environments=True), include_secrets=False
        )
        pp_only = inventory_power_platform_only(PowerPlatformScope(all_environments=True), clients)
    for snapshot in (both, pp_only):
        assert not [e for e in snapshot.errors if "principals" in e.operation]
        names = display_names(snapshot)
        # The analyst holds only shares, the customizer only an environment role: neither is on a vault.
        assert names[analyst] == users[analyst] and names[customizer] == users[customizer]
