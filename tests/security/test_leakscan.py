"""The leak scanner itself: it finds every kind of secret the emulator holds, wherever a test put it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from emulator import Emulator
from emulator.azure import scenario as azure_scenario
from tests.reliability.tenants import SmallTenant
from tests.security.leakscan import LeakScan, secret_values


@pytest.fixture(scope="module")
def emu() -> Emulator:
    with Emulator() as emulator:
        yield emulator  # type: ignore[misc]


def test_secret_values_cover_key_vault_graph_passwords_storage_keys_and_the_admin(emu: Emulator) -> None:
    t = SmallTenant()
    scenario = t.scenario()
    scenario["storageAccounts"] = [{"name": "stleak", "resourceGroup": "rg-reliab"}]
    azure_scenario.load(emu.state, scenario)
    values = secret_values(emu)
    assert t.secret_value in values
    assert t.flow["secretText"] in values and t.portal["secretText"] in values
    assert emu.state.azure.admin_client_secret in values
    with emu.state.lock:
        keys = [k for a in emu.state.azure.storage_accounts.values() for k in a.keys]
    assert keys and set(keys) <= values


@pytest.mark.parametrize("where", ["text", "file", "log"])
def test_a_leak_is_found_and_named_without_the_value(emu: Emulator, tmp_path: Path, where: str) -> None:
    t = SmallTenant().load(emu)
    scan = LeakScan()
    scan.watch(emu)
    clean = "vault kv-x: removed list from 1 identity"
    scan.add("clean response", clean)
    assert scan.hits() == []
    leaked = f"value={t.secret_value}"
    if where == "text":
        scan.add("ticket response", leaked.encode())
    elif where == "file":
        (tmp_path / "report.html").write_text(f"<p>{leaked}</p>")
        scan.add_path(tmp_path)
    else:
        record = logging.makeLogRecord({"name": "vaultguard", "msg": "%s", "args": (leaked,)})
        scan.add("log", record.getMessage())  # not emitted: the autouse guard would (rightly) fail us
    hits = scan.hits()
    assert len(hits) == 1
    with pytest.raises(AssertionError) as failure:
        scan.check()
    assert t.secret_value not in str(failure.value)
    for path in tmp_path.iterdir():
        path.unlink()
