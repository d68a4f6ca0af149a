"""Issue 24: per-vault detectors run on each vault page as it arrives (core/detect.py `detect_vaults`,
shell/page_detection.py), and `detect` reuses what they found only where it is exactly what it would
find itself on the whole snapshot: same findings, same order."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import reduce

from remediations.core.detect import VaultFindings, detect, detect_vaults, detector_ids, registered
from remediations.core.model import Identity, Scope, SecretMeta, Snapshot, Vault
from remediations.core.policy import Policy, parse_policy
from remediations.core.rotation import TAG_PENDING_REGENERATE
from remediations.shell.page_detection import PageDetection
from remediations.shell.secret_inventory import MemorySecretInventory, StoredJoin, StoredSecrets
from tests.unit.kv_builders import SUB, policy_entry, snapshot, vault

_STORE_READS = ThreadPoolExecutor(max_workers=1)  # where StoredJoin runs the store's read

TAKEN_AT = datetime(2026, 1, 1, tzinfo=UTC)
PER_VAULT = {d for d in detector_ids() if registered(d).info.per_vault}


def _secret(
    vault_name: str, name: str, *, days: int | None = None, tags: dict[str, str] | None = None
) -> SecretMeta:
    return SecretMeta(
        name=name,
        id=f"https://{vault_name}.vault.azure.net/secrets/{name}",
        expires=None if days is None else TAKEN_AT + timedelta(days=days),
        tags=tags or {},
    )


def _secrets(name: str) -> tuple[SecretMeta, ...]:
    """Per vault: a secret expiring soon, one later, one with a rotation step due (by the vault's number)."""
    n = int(name.rsplit("-", 1)[-1])
    due = {TAG_PENDING_REGENERATE: "key1"} if n % 3 == 0 else {}
    return (
        _secret(name, "soon", days=n % 40),
        _secret(name, "later", days=400),
        _secret(name, "rot", tags=due),
    )


def _vaults() -> list[Vault]:
    """Eight vaults: list grants, excess over an allow-list, a break-glass and a gone identity, an RBAC
    vault and an excluded one, each with secrets near expiry and rotation follow-ups."""
    made = []
    for n in range(8):
        name = f"kv-{n}"
        entries = [policy_entry("app-ok", "get"), policy_entry("reader", "get", "list")]
        entries += [policy_entry("allowed", "get", "set", "delete"), policy_entry("breakglass", "all")]
        if n % 2:
            entries.append(policy_entry("gone", "list"))
        made.append(vault(name, *entries, rbac=n == 5).model_copy(update={"secrets": _secrets(name)}))
    return made


def _policy() -> Policy:
    return parse_policy(
        {
            "secretPermissions": {"byIdentity": {"allowed": ["get"]}},
            "breakGlass": ["breakglass"],
            "exclusions": {"vaults": ["kv-6"]},
        }
    )


def _whole(vaults: list[Vault]) -> Snapshot:
    return snapshot(
        *vaults,
        identities=(Identity(object_id="gone", exists=False),),
    )


def _by_pages(vaults: list[Vault], policy: Policy, size: int) -> VaultFindings:
    pages = [vaults[i : i + size] for i in range(0, len(vaults), size)]
    found = (
        detect_vaults(Snapshot(scope=Scope(subscription_id=SUB), taken_at=TAKEN_AT, vaults=tuple(p)), policy)
        for p in pages
    )
    return reduce(VaultFindings.then, found)


def test_the_per_vault_detectors_are_the_access_policy_and_secret_list_ones() -> None:
    assert {
        "secret_list_permission",
        "excess_secret_permissions",
        "secret_near_expiry",
        "rotation_followup_due",
    } == PER_VAULT


def test_findings_made_page_by_page_are_those_of_the_whole_snapshot_in_the_same_order() -> None:
    vaults, policy = _vaults(), _policy()
    whole = _whole(vaults)
    expected = detect(whole, policy)
    # Every per-vault detector and some cross-vault ones find something here, so equality says something.
    assert {f.detector_id for f in expected} >= PER_VAULT
    assert "orphaned_principal" in {f.detector_id for f in expected}  # a cross-vault one: identities
    for size in (1, 3, 8):
        found = _by_pages(vaults, policy, size)
        assert found.covers(whole, policy)
        assert detect(whole, policy, early=found) == expected


def test_detect_uses_the_page_findings_and_only_where_they_cover_its_snapshot() -> None:
    vaults, policy = _vaults(), _policy()
    whole = _whole(vaults)
    found = _by_pages(vaults, policy, 3)
    # Emptied, they show whether detect took them instead of running the detectors again.
    emptied = VaultFindings(
        vaults=found.vaults, policy=policy, by_detector={d: () for d in found.by_detector}
    )
    kept = detect(whole, policy, early=emptied)
    assert {f.detector_id for f in kept} & PER_VAULT == set()
    assert kept == [f for f in detect(whole, policy) if f.detector_id not in PER_VAULT]
    # Other vault objects (an equal copy) or another policy object: the detectors run again.
    copied = whole.model_copy(update={"vaults": tuple(v.model_copy() for v in whole.vaults)})
    assert detect(copied, policy, early=emptied) == detect(whole, policy)
    assert detect(whole, policy.model_copy(), early=emptied) == detect(whole, policy)


def test_the_stored_join_hands_each_joined_page_to_the_page_detection() -> None:
    """As a quick run reads: vault pages without secrets, each joined with the stored deep inventory and
    detected on as it arrives; the joined snapshot's detection reuses them and equals a fresh one."""
    vaults, policy = _vaults(), _policy()
    store = MemorySecretInventory()
    for v in vaults:
        store.put(StoredSecrets(vault_id=v.id, taken_at=TAKEN_AT - timedelta(hours=3), secrets=v.secrets))
    listed = [v.model_copy(update={"secrets": ()}) for v in vaults]
    pages = PageDetection(Scope(subscription_id=SUB), policy)
    join = StoredJoin(store.get_all, _STORE_READS, keep_secrets=True, on_joined=pages.page)
    for start in range(0, len(listed), 3):
        join.page(listed[start : start + 3], start + 3 < len(listed))
    read = _whole(listed).model_copy(update={"taken_at": pages.taken_at})
    quick = join.snapshot(read)
    assert pages.found is not None and pages.found.covers(quick, policy)
    expected = detect(quick, policy)
    assert {f.detector_id for f in expected} >= PER_VAULT
    assert detect(quick, policy, early=pages.found) == expected
