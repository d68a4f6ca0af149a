"""The stored deep inventory for `make bench`: JSON-lines files, so the deep-sweep process can hand it
to the quick-sweep process (the app keeps it in its run table, remediations/triggers/secret_table.py).
Each line of the main file is one vault's StoredSecrets; the last line for a vault wins. A second file
holds each vault's count only, as the Table rows' `SecretCount` column does: a quick sweep that keeps
counts reads that one (the app selects those columns, not the compressed lists)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from remediations.shell.secret_inventory import StoredSecrets


class FileSecretInventory:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._counts = path.with_name(path.name + ".counts")
        self._lock = threading.Lock()  # the inventory's reader threads save vaults concurrently

    def put(self, stored: StoredSecrets) -> None:
        line = stored.model_dump_json() + "\n"
        counted = stored.model_copy(update={"secrets": (), "total": stored.count})
        with self._lock:
            with self._path.open("a", encoding="utf-8") as out:
                out.write(line)
            with self._counts.open("a", encoding="utf-8") as out:
                out.write(counted.model_dump_json() + "\n")

    def get_many(self, vault_ids: Iterable[str], *, with_lists: bool = True) -> dict[str, StoredSecrets]:
        return self._read({v.lower() for v in vault_ids}, with_lists)

    def get_all(self, *, with_lists: bool = True) -> dict[str, StoredSecrets]:
        return self._read(None, with_lists)

    def unlink(self) -> None:
        self._path.unlink(missing_ok=True)
        self._counts.unlink(missing_ok=True)

    def _read(self, wanted: set[str] | None, with_lists: bool) -> dict[str, StoredSecrets]:
        found: dict[str, StoredSecrets] = {}
        path = self._path if with_lists else self._counts
        if not path.exists():
            return found
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                stored = StoredSecrets.model_validate_json(line)
                if wanted is None or stored.vault_id.lower() in wanted:
                    found[stored.vault_id.lower()] = stored
        return found
