"""The stored deep secret inventory: what a deep read saves, and how a quick snapshot is
filled from it (pure over the store's answer)."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from remediations.core.model import InventoryError, Scope, SecretMeta, Snapshot, Vault
from remediations.shell.secret_inventory import (
    NO_DEEP_INVENTORY,
    DeepInventory,
    MemorySecretInventory,
    StoredJoin,
    StoredSecrets,
    inventory_ages,
    stored_for,
    with_stored_secrets,
)

_STORE_READS = ThreadPoolExecutor(max_workers=1)  # where StoredJoin runs the store's read

SUB = "00000000-0000-0000-0000-000000000001"
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def _vault(name: str) -> Vault:
    return Vault(
        id=f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/{name}",
        name=name,
        resource_group="rg",
        subscription_id=SUB,
        vault_uri=f"https://{name}.vault.azure.net/",
    )


def _secret(vault: Vault, name: str) -> SecretMeta:
    return SecretMeta(name=name, id=f"{vault.vault_uri}secrets/{name}", expires=NOW + timedelta(days=3))


def test_a_quick_snapshot_takes_stored_secrets_and_skips_vaults_without_with_a_reason() -> None:
    stored_vault, refused_vault, new_vault = _vault("kv-a"), _vault("kv-b"), _vault("kv-c")
    store = MemorySecretInventory()
    secrets = (_secret(stored_vault, "db"), _secret(stored_vault, "api"))
    refusal = InventoryError(
        resource_id=refused_vault.id, operation="list secrets", status=403, message="Forbidden", partial=True
    )
    store.put(
        StoredSecrets(vault_id=stored_vault.id.upper(), taken_at=NOW - timedelta(hours=3), secrets=secrets)
    )
    store.put(StoredSecrets(vault_id=refused_vault.id, taken_at=NOW, refused=refusal))
    quick = Snapshot(
        scope=Scope(subscription_id=SUB),
        taken_at=NOW,
        vaults=(stored_vault, refused_vault, new_vault),
        secrets_listed=False,
    )

    filled = with_stored_secrets(quick, store.get_all())

    assert filled.secrets_listed
    a, b, c = filled.vaults
    assert a.secrets == secrets and a.secret_count == 2 and a.secrets_as_of == NOW - timedelta(hours=3)
    assert b.secrets == () and filled.secret_list_error(b.id) == refusal
    missing = filled.secret_list_error(c.id)
    assert missing is not None and missing.partial and missing.label == NO_DEEP_INVENTORY
    assert filled.secret_list_error(a.id) is None
    assert inventory_ages(filled, NOW) == [
        "secret metadata of vault kv-a is from the deep inventory of 2026-12-05T09:00:00+00:00 (3h 00m old)"
    ]


def test_a_deep_read_saves_listed_vaults_and_refusals_but_not_transient_failures() -> None:
    listed, refused, flaky = _vault("kv-a"), _vault("kv-b"), _vault("kv-c")
    store = MemorySecretInventory()
    deep = DeepInventory(store)
    deep.listed(listed, (_secret(listed, "db"),))
    errors = (
        InventoryError(
            resource_id=refused.id, operation="list secrets", status=403, message="no", partial=True
        ),
        InventoryError(resource_id=flaky.id, operation="list secrets", status=503, message="busy"),
    )
    deep.refused(
        Snapshot(
            scope=Scope(subscription_id=SUB), taken_at=NOW, vaults=(listed, refused, flaky), errors=errors
        )
    )

    saved = store.get_many([listed.id, refused.id, flaky.id])
    assert set(saved) == {listed.id.lower(), refused.id.lower()}
    assert [s.name for s in saved[listed.id.lower()].secrets] == ["db"]
    assert saved[refused.id.lower()].refused == errors[0]


def test_keep_secrets_false_fills_counts_only_as_a_deep_read_with_that_option_keeps_them() -> None:
    vault = _vault("kv-a")
    store = MemorySecretInventory()
    store.put(
        StoredSecrets(vault_id=vault.id, taken_at=NOW, secrets=(_secret(vault, "db"), _secret(vault, "api")))
    )
    quick = Snapshot(scope=Scope(subscription_id=SUB), taken_at=NOW, vaults=(vault,), secrets_listed=False)

    (filled,) = with_stored_secrets(quick, store.get_all(with_lists=False), keep_secrets=False).vaults

    assert filled.secrets == () and filled.secret_count == 2 and filled.secrets_as_of == NOW
    counted = StoredSecrets(vault_id=vault.id, taken_at=NOW, total=7)
    assert counted.count == 7 and counted.secrets == ()


class _CountingStore(MemorySecretInventory):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[object] = []

    def get_many(self, vault_ids: Iterable[str], *, with_lists: bool = True) -> dict[str, StoredSecrets]:
        ids = list(vault_ids)
        self.asked.append(ids)
        return super().get_many(ids, with_lists=with_lists)

    def get_all(self, *, with_lists: bool = True) -> dict[str, StoredSecrets]:
        self.asked.append("all")
        return super().get_all(with_lists=with_lists)


def test_a_vault_run_reads_its_row_and_a_subscription_run_the_whole_store_before_listing() -> None:
    a, b = _vault("kv-a"), _vault("kv-b")
    store = _CountingStore()
    for vault in (a, b):
        store.put(StoredSecrets(vault_id=vault.id, taken_at=NOW, secrets=(_secret(vault, "db"),)))

    one = stored_for(Scope.parse(a.id.upper()), store)
    every = stored_for(Scope(subscription_id=SUB), store)

    assert store.asked == [[Scope.parse(a.id.upper()).resource_id], "all"]
    assert set(one) == {a.id.lower()} and set(every) == {a.id.lower(), b.id.lower()}


def test_pages_joined_as_they_arrive_give_the_snapshot_a_whole_join_gives_asking_the_store_once() -> None:
    """The quick run joins each vault page while the next is read (StoredJoin); the snapshot after the
    last page keeps those joins, and joins again only a vault held in another object than its page's."""
    first, second, copied = _vault("kv-a"), _vault("kv-b"), _vault("kv-c")
    store = MemorySecretInventory()
    for vault in (first, copied):
        store.put(StoredSecrets(vault_id=vault.id, taken_at=NOW, secrets=(_secret(vault, "db"),)))
    asked: list[int] = []

    def stored() -> dict[str, StoredSecrets]:
        asked.append(1)
        return store.get_all()

    join = StoredJoin(stored, _STORE_READS, keep_secrets=False)
    join.page([first, second], True)
    join.page([copied], False)
    early = join.snapshot(
        Snapshot(scope=Scope(subscription_id=SUB), taken_at=NOW, vaults=(first, second), secrets_listed=False)
    )
    joined_first = early.vaults[0]
    # The inventory handed on another object for kv-c than the page it joined: that one is joined again.
    listed = (first, second, copied.model_copy(update={"tags": {"env": "prod"}}))
    snapshot = Snapshot(scope=Scope(subscription_id=SUB), taken_at=NOW, vaults=listed, secrets_listed=False)

    filled = join.snapshot(snapshot)

    assert asked == [1]
    assert filled == with_stored_secrets(snapshot, store.get_all(), keep_secrets=False)
    assert filled.vaults[0] is joined_first and filled.vaults[0].secret_count == 1
    assert filled.vaults[2].tags == {"env": "prod"} and filled.vaults[2].secret_count == 1
    assert [e.resource_id for e in filled.errors] == [second.id]
