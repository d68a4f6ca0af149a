"""The stored deep inventory for `make bench`: a JSON-lines file, so the deep-sweep process can hand it
to the quick-sweep process (the app keeps it in its run table, remediations/triggers/secret_table.py).
Each line is one vault's StoredSecrets; the last line for a vault wins."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path

from remediations.shell.secret_inventory import StoredSecrets


class FileSecretInventory:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()  # the inventory's reader threads save vaults concurrently

    def put(self, stored: StoredSecrets) -> None:
        line = stored.model_dump_json() + "\n"
        with self._lock, self._path.open("a", encoding="utf-8") as out:
            out.write(line)

    def get_many(self, vault_ids: Iterable[str], *, with_lists: bool = True) -> dict[str, StoredSecrets]:
        return self._read({v.lower() for v in vault_ids}, with_lists)

    def get_all(self, *, with_lists: bool = True) -> dict[str, StoredSecrets]:
        return self._read(None, with_lists)

    def _read(self, wanted: set[str] | None, with_lists: bool) -> dict[str, StoredSecrets]:
        found: dict[str, StoredSecrets] = {}
        if not self._path.exists():
            return found
        with self._path.open(encoding="utf-8") as lines:
            for line in lines:
                stored = StoredSecrets.model_validate_json(line) if with_lists else _counted(line)
                if wanted is None or stored.vault_id.lower() in wanted:
                    found[stored.vault_id.lower()] = stored
        return found


def _counted(line: str) -> StoredSecrets:
    """A line read for its count only (the list is not validated into 40 SecretMeta per vault)."""
    row = json.loads(line)
    return StoredSecrets.model_validate(
        {**row, "secrets": (), "total": row.get("total") or len(row.get("secrets") or ())}
    )
