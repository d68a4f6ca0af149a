"""The stored deep inventory in Table storage (Azurite): a quick sweep over a subscription reads the
whole partition in pages, not one GET per vault, and gets the same rows a point read gives."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.data.tables import TableClient, TableServiceClient

from emulator.azurite import Azurite
from remediations.core.model import InventoryError, SecretMeta
from remediations.shell.secret_inventory import StoredSecrets
from remediations.triggers.secret_table import POINT_READS, TableSecretInventory

SUB = "00000000-0000-0000-0000-000000000001"
TAKEN = datetime(2026, 12, 5, 9, 0, 0, 123456, tzinfo=UTC)


def _vault_id(number: int) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/RG/providers/Microsoft.KeyVault/vaults/kv-{number:03d}"


class CountingTable:
    """The real table client, with its reads counted."""

    def __init__(self, table: TableClient) -> None:
        self._table = table
        self.point_reads = 0
        self.queries: list[dict[str, Any]] = []

    def get_entity(self, *args: Any, **kwargs: Any) -> Any:
        self.point_reads += 1
        return self._table.get_entity(*args, **kwargs)

    def query_entities(self, *args: Any, **kwargs: Any) -> Any:
        self.queries.append(kwargs)
        return self._table.query_entities(*args, **kwargs)

    def upsert_entity(self, *args: Any, **kwargs: Any) -> Any:
        return self._table.upsert_entity(*args, **kwargs)


def _store(azurite: Azurite, vaults: int) -> tuple[TableSecretInventory, CountingTable]:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    table = CountingTable(service.create_table_if_not_exists(f"runs{uuid.uuid4().hex[:8]}"))
    store = TableSecretInventory(table)  # type: ignore[arg-type]
    for number in range(vaults):
        vault_id = _vault_id(number)
        secrets = tuple(
            SecretMeta(name=f"s{i}", id=f"https://kv-{number:03d}.vault.azure.net/secrets/s{i}")
            for i in range(number % 3)
        )
        store.put(
            StoredSecrets(vault_id=vault_id, taken_at=TAKEN + timedelta(minutes=number), secrets=secrets)
        )
    refusal = InventoryError(
        resource_id=_vault_id(vaults), operation="list secrets", status=403, message="Forbidden", partial=True
    )
    store.put(StoredSecrets(vault_id=_vault_id(vaults), taken_at=TAKEN, refused=refusal))
    # Another partition of the same run table (a run record) is not part of the answer.
    table.upsert_entity({"PartitionKey": "run-ticket-x", "RowKey": "head", "VaultId": "not-a-vault"})
    return store, table


def test_a_subscription_quick_sweep_reads_the_partition_in_one_query_with_the_point_reads_answer(
    azurite: Azurite,
) -> None:
    store, table = _store(azurite, vaults=POINT_READS + 4)
    wanted = [_vault_id(n) for n in range(POINT_READS + 5)] + [_vault_id(999)]  # the last one never stored

    by_query = store.get_many(wanted)
    assert table.point_reads == 0 and len(table.queries) == 1
    by_key = {v: store.get_many([v])[v.lower()] for v in wanted[:3]}
    assert table.point_reads == 3

    assert set(by_query) == {v.lower() for v in wanted[:-1]}
    assert all(by_query[v.lower()] == stored for v, stored in by_key.items())
    assert [s.name for s in by_query[_vault_id(2).lower()].secrets] == ["s0", "s1"]
    assert by_query[_vault_id(2).lower()].taken_at == TAKEN + timedelta(minutes=2)
    refused = by_query[_vault_id(POINT_READS + 4).lower()].refused
    assert refused is not None and refused.status == 403
    assert store.get_all() == {k: v for k, v in by_query.items()}


def test_counts_only_select_no_list_and_give_each_vaults_count(azurite: Azurite) -> None:
    store, table = _store(azurite, vaults=5)

    counted = store.get_all(with_lists=False)

    assert table.queries[-1]["select"] == ["VaultId", "TakenAt", "SecretCount", "Refused"]
    assert {k: (v.count, v.secrets) for k, v in counted.items() if v.refused is None} == {
        _vault_id(n).lower(): (n % 3, ()) for n in range(5)
    }
    assert counted[_vault_id(5).lower()].refused == store.get_all()[_vault_id(5).lower()].refused
    # Read without type annotations, the times are the typed read's, to the microsecond.
    assert {k: v.taken_at for k, v in counted.items()} == {k: v.taken_at for k, v in store.get_all().items()}
    assert counted[_vault_id(3).lower()].taken_at == TAKEN + timedelta(minutes=3)
