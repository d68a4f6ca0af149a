"""Secrets stay secret: after every test that used an emulator, every secret value in the
emulator's state (all versions of every Key Vault secret, Graph application passwords, storage account
keys, the client secrets of the emulated principals) is searched for in what the test produced:

- log records (caplog) and captured stdout/stderr of the test,
- the rows of the test's audit table in Azurite (when it used `storage_env`),
- files under its `tmp_path` (reports) and under `out/`,
- anything the test handed to the `leak_scan` fixture (HTTP response bodies, CLI output, ...).

A hit fails the test at teardown, naming where the value was found (never the value itself).
Values shorter than MIN_LENGTH are not searched: a one-letter secret would match everywhere.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator

MIN_LENGTH = 6
ROOT = Path(__file__).resolve().parents[2]


def secret_values(emu: Emulator) -> set[str]:
    """Every secret value the emulator holds right now."""
    state = emu.state
    az = state.azure
    found: set[str] = set()
    with state.lock:
        for vault in az.vaults.values():
            for secret in vault.secrets.values():
                found.update(str(v.value) for v in secret.versions if v.value)
        for app in getattr(az, "applications", {}).values():
            for password in getattr(app, "passwords", []) or []:
                text = getattr(password, "secret_text", None) or getattr(password, "secretText", None)
                if text:
                    found.add(str(text))
        for account in getattr(az, "storage_accounts", {}).values():
            for key in getattr(account, "keys", []) or []:
                value = getattr(key, "value", key)
                if isinstance(value, str):
                    found.add(value)
        if az.admin_client_secret:
            found.add(az.admin_client_secret)
    return {v for v in found if len(v) >= MIN_LENGTH}


@dataclass
class LeakScan:
    """Collects texts to scan; `check()` raises on a hit."""

    emulators: list[Emulator] = field(default_factory=list)
    texts: list[tuple[str, str]] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)

    def watch(self, emu: Emulator) -> None:
        if emu not in self.emulators:
            self.emulators.append(emu)

    def add(self, where: str, text: str | bytes | Any) -> None:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        elif not isinstance(text, str):
            text = repr(text)
        self.texts.append((where, text))

    def add_path(self, path: Path) -> None:
        self.paths.append(path)

    def _file_texts(self) -> Iterator[tuple[str, str]]:
        for root in self.paths:
            files: Iterable[Path] = [root] if root.is_file() else (p for p in root.rglob("*") if p.is_file())
            for file in files:
                try:
                    yield str(file), file.read_text("utf-8", "replace")
                except OSError:
                    continue

    def hits(self) -> list[str]:
        secrets: set[str] = set()
        for emu in self.emulators:
            secrets |= secret_values(emu)
        if not secrets:
            return []
        found = []
        for where, text in [*self.texts, *self._file_texts()]:
            if any(secret in text for secret in secrets):
                found.append(where)
        return found

    def check(self) -> None:
        hits = self.hits()
        if hits:
            raise AssertionError(f"a secret value from the emulator's state leaked into: {sorted(set(hits))}")


def _audit_rows(storage_env: dict[str, str]) -> str:
    from azure.core.exceptions import ResourceNotFoundError
    from azure.data.tables import TableClient

    table = TableClient.from_connection_string(
        storage_env["AzureWebJobsStorage"], storage_env["VAULTGUARD_AUDIT_TABLE"]
    )
    try:
        return "\n".join(repr(dict(row)) for row in table.list_entities())
    except ResourceNotFoundError:
        return ""
    finally:
        table.close()


def scan_after_test(request: pytest.FixtureRequest, scan: LeakScan, caplog: pytest.LogCaptureFixture) -> None:
    """What the autouse guard runs at teardown."""
    for value in request.node.funcargs.values():
        if isinstance(value, Emulator):
            scan.watch(value)
    if not scan.emulators:
        return
    for when in ("setup", "call"):
        for record in caplog.get_records(when):  # type: ignore[arg-type]
            scan.add(f"log record ({record.name})", record.getMessage())
    for when, key, content in getattr(request.node, "_report_sections", []):
        scan.add(f"captured {key} ({when})", content)
    storage_env = request.node.funcargs.get("storage_env")
    if isinstance(storage_env, dict) and "VAULTGUARD_AUDIT_TABLE" in storage_env:
        scan.add("audit table rows", _audit_rows(storage_env))
    tmp_path = request.node.funcargs.get("tmp_path")
    if isinstance(tmp_path, Path):
        scan.add_path(tmp_path)
    out = ROOT / "out"
    if out.is_dir() and os.access(out, os.R_OK):
        scan.add_path(out)
    scan.check()
