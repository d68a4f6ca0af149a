"""On the bench's large tenant (bench/__main__.py SIZES["large"]: 5,000 vaults, 200,000
secrets, built by the bench's own generator, bench/emulator_proc.py `azure_tenant`), the quick sweep
(paged lists + the stored deep inventory) finds and plans exactly what the deep sweep does.

In memory, no emulator and no HTTP: a read-only `Clients` hands the generated tenant to the shell's
`inventory` in the shapes the emulator serves (`Vault.to_arm`, the secret list's items, Graph
`getByIds` items, role assignments), parsed by the adapters' own functions. Then the pipeline's steps
(shell/pipeline.py `_read`): the deep read saves each vault's list (`DeepInventory`, into the bench's
file store), the quick read lists no secret and takes them from the store, page by page (`StoredJoin`),
the per-vault detectors run on each joined page (`PageDetection`), and both go through `detect` and
`build_plan`. As in `make bench`: Azure only, counts kept (`keep_secrets=False`), the bench's policy.
`make bench` keeps the same check through the emulator (`same_plan_as_deep*` in out/bench.json).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from azure.mgmt.authorization.models import RoleAssignment as SdkRoleAssignment
from azure.mgmt.authorization.models import RoleDefinition as SdkRoleDefinition

from bench.__main__ import AZURE_KEYS, SIZES
from bench.emulator_proc import azure_tenant
from bench.secret_file import FileSecretInventory
from emulator.azure.arm_keyvault import apply_policy_update
from emulator.azure.generator import Generated
from emulator.azure.keyvault_data import KeyVaultData
from emulator.azure.state import AccessPolicy as EmulatedAccessPolicy
from remediations.adapters.authorization import role_assignment_from_sdk, role_definition_from_sdk
from remediations.adapters.graph_api import identity_from_graph
from remediations.adapters.keyvault_data import secret_meta_from_item
from remediations.adapters.keyvault_mgmt import vault_from_json
from remediations.core.detect import detect
from remediations.core.model import (
    AccessPolicyChange,
    Finding,
    Identity,
    Plan,
    RoleAssignment,
    RoleDefinition,
    Scope,
    SecretMeta,
    Vault,
)
from remediations.core.planning import build_plan
from remediations.core.policy import parse_policy
from remediations.ports import VaultPage
from remediations.shell.inventory import inventory
from remediations.shell.page_detection import PageDetection
from remediations.shell.secret_inventory import DeepInventory, StoredJoin, stored_for

_STORE_READS = ThreadPoolExecutor(max_workers=1)  # where StoredJoin runs the store's read

LARGE = {**{k: SIZES["large"][k] for k in AZURE_KEYS}, "noncompliant_share": 0.1}


class _Vaults:
    def __init__(self, tenant: Generated) -> None:
        self._tenant = tenant

    def list_vaults(
        self, scope: Scope, on_page: VaultPage | None = None, on_started: Callable[[], None] | None = None
    ) -> list[Vault]:
        if on_started is not None:
            on_started()
        az = self._tenant.state.azure
        vaults = [vault_from_json(v.to_arm(), az.subscription_id) for v in az.vaults.values()]
        if on_page is not None:  # in ARM's pages of 1,000, as the adapter hands them on
            for start in range(0, len(vaults), 1000):
                on_page(vaults[start : start + 1000], start + 1000 < len(vaults))
        return vaults


class _Secrets:
    def __init__(self, tenant: Generated, uri: str, calls: list[str]) -> None:
        name = uri.removeprefix("https://").split(".", 1)[0]
        self._vault = tenant.state.azure.vaults[name]
        self._calls = calls

    def _live(self) -> list[Any]:
        return [s for s in self._vault.secrets.values() if s.deleted_date is None and s.versions]

    def list_secret_metadata(self) -> list[SecretMeta]:
        self._calls.append(self._vault.name)
        items = (KeyVaultData.list_item(self._vault, s, s.latest, False) for s in self._live())
        return [secret_meta_from_item(item) for item in items]

    def count_secrets(self) -> int:
        self._calls.append(self._vault.name)
        return len(self._live())


class _Authorization:
    def __init__(self, tenant: Generated) -> None:
        self._az = tenant.state.azure

    def list_role_assignments(self, scope: Scope) -> list[RoleAssignment]:
        items = (ra.to_arm(self._az.subscription_id) for ra in self._az.role_assignments.values())
        return [role_assignment_from_sdk(SdkRoleAssignment.deserialize(item)) for item in items]

    def list_role_definitions(self) -> list[RoleDefinition]:
        scope = f"/subscriptions/{self._az.subscription_id}"
        items = (d.to_arm(scope) for d in self._az.role_definitions.values())
        return [role_definition_from_sdk(SdkRoleDefinition.deserialize(item)) for item in items]


class _Directory:
    def __init__(self, tenant: Generated) -> None:
        self._principals = tenant.state.azure.principals

    def resolve(self, object_ids: list[str]) -> list[Identity]:
        """As Graph's getByIds: only existing objects come back; the rest do not exist."""
        found = {o: self._principals.get(o.lower()) for o in object_ids}
        return [
            identity_from_graph(p.to_graph()) if p is not None else Identity(object_id=o, exists=False)
            for o, p in found.items()
        ]


class TenantClients:
    """Read-only `Clients` over a generated tenant; `secret_calls` names each data-plane list."""

    def __init__(self, tenant: Generated) -> None:
        self._tenant = tenant
        self.secret_calls: list[str] = []

    def keyvault_management(self, subscription_id: str) -> _Vaults:
        return _Vaults(self._tenant)

    def keyvault_secrets(self, vault_uri: str) -> _Secrets:
        return _Secrets(self._tenant, vault_uri, self.secret_calls)

    def authorization(self, subscription_id: str) -> _Authorization:
        return _Authorization(self._tenant)

    def directory(self) -> _Directory:
        return _Directory(self._tenant)

    def own_object_id(self) -> str | None:
        return None  # the generated tenant holds no entry of the app's own identity


def _planned(plan: Plan) -> list[str]:
    """Each planned change: fix, target, principal, changes and skip reason (not ids or times)."""
    fields = {"remediation_id", "target", "principal", "changes", "skip_reason"}
    return sorted(a.model_dump_json(include=fields) for a in (*plan.actions, *plan.deferred))


def _ids(findings: list[Finding]) -> list[str]:
    return sorted(f.id for f in findings)


def _sweeps(tenant: Generated, store_file: Path) -> tuple[Plan, Plan]:
    """The deep sweep (saving its inventory) and then the quick one, as the bench runs them; asserts
    they find the same, and returns both plans."""
    az = tenant.state.azure
    scope = Scope(subscription_id=az.subscription_id)
    policy = parse_policy(
        {
            "maxActionsPerRun": 1_000_000,
            "dryRun": False,
            "secretPermissions": {"byIdentity": {az.admin_object_id: ["list"]}},
        }
    )
    clients = TenantClients(tenant)
    store_file.unlink(missing_ok=True)
    store = FileSecretInventory(store_file)
    saving = DeepInventory(store)
    deep = inventory(scope, clients, keep_secrets=False, on_listed=saving.listed)  # type: ignore[arg-type]
    saving.refused(deep)
    assert len(clients.secret_calls) == len(az.vaults)
    # As the pipeline joins them: each vault page with the store's answer as the page is mapped, and
    # the per-vault detectors run on the joined page (shell/page_detection.py).
    pages = PageDetection(scope, policy)
    join = StoredJoin(
        lambda: stored_for(scope, store, with_lists=False),
        _STORE_READS,
        keep_secrets=False,
        on_joined=pages.page,
    )
    read = inventory(
        scope,
        clients,  # type: ignore[arg-type]
        include_secrets=False,
        on_vault_page=join.page,
        taken_at=pages.taken_at,
    )
    quick = join.snapshot(read)
    assert len(clients.secret_calls) == len(az.vaults), "the quick sweep made a data-plane call"
    assert [(v.id, v.secret_count) for v in quick.vaults] == [(v.id, v.secret_count) for v in deep.vaults]
    assert all(v.secrets_as_of is not None for v in quick.vaults) and quick.errors == deep.errors == ()
    deep_findings, quick_findings = detect(deep, policy), detect(quick, policy, early=pages.found)
    assert pages.found is not None and pages.found.covers(quick, policy)
    assert quick_findings == detect(quick, policy)  # the pages' findings are the whole snapshot's
    assert _ids(quick_findings) == _ids(deep_findings)
    return build_plan(deep_findings, deep, policy, dry_run=True), build_plan(
        quick_findings, quick, policy, dry_run=True
    )


def _apply_to_tenant(tenant: Generated, plan: Plan) -> None:
    """Make the plan's access-policy deltas in the generated state, as the emulator's PUT does."""
    vaults = tenant.state.azure.vaults
    for action in plan.writes:
        vault = vaults[action.target.rsplit("/", 1)[-1]]
        for change in action.changes:
            assert isinstance(change, AccessPolicyChange)
            entry = EmulatedAccessPolicy(
                change.tenant_id, change.object_id, change.application_id, change.permissions.as_dict()
            )
            apply_policy_update(vault, change.operation, [entry])


def test_quick_with_the_stored_deep_inventory_finds_and_plans_as_the_deep_sweep_on_the_large_tenant(
    tmp_path: Path,
) -> None:
    tenant = azure_tenant(**LARGE)
    assert (len(tenant.state.azure.vaults), tenant.secret_count) == (5000, 200_000)

    deep_plan, quick_plan = _sweeps(tenant, tmp_path / "secret-inventory.jsonl")
    assert _planned(quick_plan) == _planned(deep_plan)
    # Not equal by being empty: every non-compliant vault's `list` and every orphan are planned, as the
    # generator's ground truth says (the README's 768 changes at large).
    writes = deep_plan.writes
    assert {a.target.rsplit("/", 1)[-1] for a in writes} == set(tenant.noncompliant_vaults)
    assert sum(len(a.changes) for a in writes) == len(tenant.noncompliant_vaults) + len(
        tenant.orphaned_object_ids
    )

    # The compliant re-run of the bench: after the fixes, both plan no write, and still agree.
    _apply_to_tenant(tenant, deep_plan)
    deep_plan, quick_plan = _sweeps(tenant, tmp_path / "secret-inventory.jsonl")
    assert _planned(quick_plan) == _planned(deep_plan) and deep_plan.writes == ()
