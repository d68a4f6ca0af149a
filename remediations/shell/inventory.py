"""Inventory: read what a run needs (vaults, role assignments, identities, secrets, Power Platform).

Reads only, through `Clients`; a failed read becomes an `InventoryError` on the snapshot, not an exception.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from remediations.adapters.clients import Clients
from remediations.adapters.errors import AzureCallFailed
from remediations.core.list_grants import secret_list_remedy
from remediations.core.model import (
    Identity,
    InventoryError,
    PowerPlatformScope,
    RoleAssignment,
    RoleDefinition,
    Scope,
    SecretMeta,
    Snapshot,
    Vault,
)
from remediations.core.rbac import known_definitions, level
from remediations.core.request import SECRET_LIST_CONCURRENCY
from remediations.ports import VaultPage
from remediations.shell.pp_inventory import PowerPlatformInventory, inventory_powerplatform

Progress = Callable[[str, int, int], None]  # (stage, done, total)


# Handed each vault's secret metadata as the inventory lists it (the deep sweep stores it).
Listed = Callable[[Vault, tuple[SecretMeta, ...]], None]


def no_progress(stage: str, done: int, total: int) -> None:
    return None


def _error(
    resource_id: str, operation: str, error: AzureCallFailed, *, partial: bool = False
) -> InventoryError:
    return error.as_inventory_error(resource_id, operation, partial=partial)


def inventory(
    scope: Scope,
    clients: Clients,
    *,
    progress: Progress = no_progress,
    include_secrets: bool = True,
    pp_scope: PowerPlatformScope | None = None,
    concurrency: int = SECRET_LIST_CONCURRENCY,
    keep_secrets: bool = True,
    power_platform: Callable[[], PowerPlatformInventory] | None = None,
    on_listed: Listed | None = None,
    on_vault_page: VaultPage | None = None,
    taken_at: datetime | None = None,
    beside: Callable[[], None] | None = None,
) -> Snapshot:
    """Read-only: vaults (with access policies), role assignments, secret metadata, identities, and,
    when `pp_scope` names environments, their flows, Key Vault connections, shares and DLP policies.

    `concurrency` vault hosts (and as many Power Platform calls) are read at a time.
    `keep_secrets=False` reads the same lists but keeps only each vault's secret count, so memory is
    bounded by one page per worker, not by the tenant (200,000 SecretMeta objects take about
    450 MiB; detectors and plans do not use them, the exposure graph does). A failed read becomes an
    InventoryError in the
    snapshot; nothing is silently dropped. `power_platform`, when given, supplies the Power Platform
    half instead of reading it (a sweep's vault workers share one read, shell/read_once.py).
    `on_listed` is handed each vault's secret metadata as it is listed (the deep sweep stores it), so
    it is kept even when `keep_secrets` is False. `on_vault_page` is handed each page of the vault
    list as it is mapped (a quick run joins the stored inventory meanwhile, shell/secret_inventory.py).
    `taken_at`: the snapshot's time when the caller chose it first (a quick run's page detection judges
    expiry against it); else the time the read starts. `beside` starts a read the caller runs beside
    the vault list (a quick run's stored inventory): called once the list's first page is asked for.
    """

    def azure() -> Snapshot:
        return _inventory_azure(
            scope,
            clients,
            progress=progress,
            include_secrets=include_secrets,
            concurrency=concurrency,
            keep_secrets=keep_secrets,
            on_listed=on_listed,
            on_vault_page=on_vault_page,
            taken_at=taken_at,
            beside=beside,
        )

    if pp_scope is None or pp_scope.empty:
        return azure()
    # The two halves share no data and draw on separate budgets (ARM/Key Vault vs the PP admin APIs),
    # so they are read side by side: the sweep takes the longer of the two, not their sum.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pp_future = (
            pool.submit(power_platform)
            if power_platform is not None
            else pool.submit(
                inventory_powerplatform, pp_scope, clients, progress=progress, concurrency=concurrency
            )
        )
        snapshot = azure()
        pp = pp_future.result()
    return _with_people_named(_with_power_platform(snapshot, pp, pp_scope), clients)


# The Azure scope of a snapshot that holds only Power Platform (an environment worker's): no vault,
# role assignment or subscription is read for it.
NO_AZURE_SCOPE = Scope(subscription_id="none")


def inventory_power_platform_only(
    pp_scope: PowerPlatformScope, clients: Clients, *, progress: Progress = no_progress
) -> Snapshot:
    """Read-only, Power Platform only (an environment's run): the environments' flows, Key Vault
    connections, shares (group members resolved), role holders, and the tenant's DLP policies. No
    Azure read."""
    empty = Snapshot(scope=NO_AZURE_SCOPE, taken_at=datetime.now(UTC), secrets_listed=False)
    pp = inventory_powerplatform(pp_scope, clients, progress=progress)
    return _with_people_named(_with_power_platform(empty, pp, pp_scope), clients)


def _with_people_named(snapshot: Snapshot, clients: Clients) -> Snapshot:
    """Resolve the Power Platform side's people too (share holders, role holders, flow creators,
    connection identities), in one more directory call: reports and plans name them instead of
    printing GUIDs. A failed lookup is recorded and leaves them unnamed; nothing else changes."""
    known = {i.object_id.lower() for i in snapshot.identities}
    people = {s.principal_id for s in snapshot.shares}
    people |= {p for e in snapshot.environments for p in e.role_holders}
    people |= {f.creator for f in snapshot.flows if f.creator}
    people |= {c.identity_principal_id for c in snapshot.connections if c.identity_principal_id}
    missing = sorted({p.lower() for p in people if _is_object_id(p)} - known)
    if not missing:
        return snapshot
    try:
        found = [i for i in clients.directory().resolve(missing) if i.exists]
    except AzureCallFailed as error:
        error_row = _error("directoryObjects/getByIds", "resolve Power Platform principals", error)
        return snapshot.model_copy(update={"errors": (*snapshot.errors, error_row)})
    return snapshot.model_copy(update={"identities": (*snapshot.identities, *found)})


def _is_object_id(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _with_power_platform(
    snapshot: Snapshot, pp: PowerPlatformInventory, pp_scope: PowerPlatformScope
) -> Snapshot:
    return snapshot.model_copy(
        update={
            "environments": tuple(pp.environments),
            "flows": tuple(pp.flows),
            "connections": tuple(pp.connections),
            "shares": tuple(pp.shares),
            "dlp_policies": tuple(pp.dlp_policies),
            "group_members": {**snapshot.group_members, **pp.group_members},
            "errors": snapshot.errors + tuple(pp.errors),
            "power_platform_scope": pp_scope,
        }
    )


def _inventory_azure(
    scope: Scope,
    clients: Clients,
    *,
    progress: Progress = no_progress,
    include_secrets: bool = True,
    concurrency: int = SECRET_LIST_CONCURRENCY,
    keep_secrets: bool = True,
    on_listed: Listed | None = None,
    on_vault_page: VaultPage | None = None,
    taken_at: datetime | None = None,
    beside: Callable[[], None] | None = None,
) -> Snapshot:
    taken_at = taken_at or datetime.now(UTC)
    errors: list[InventoryError] = []
    # Subscription-wide: one paged list gives every assignment at, above and below any vault in it,
    # and the count the 4,000-per-subscription budget of RBAC narrowing needs. It does not depend on
    # the vault list, so both lists are read side by side.
    subscription = Scope(subscription_id=scope.subscription_id)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="inventory-lists") as pool:
        started: list[Future[list[RoleAssignment]]] = []

        def start_beside() -> None:
            # The vault list binds the run (a chain of pages): the reads beside it start once its first
            # page is asked for, not ahead of it.
            started.append(
                pool.submit(
                    lambda: clients.authorization(scope.subscription_id).list_role_assignments(subscription)
                )
            )
            if beside is not None:
                beside()

        directory = _EarlyLookup(clients, pool)

        def on_page(page: list[Vault], more: bool) -> None:
            directory.page(page, more)
            if on_vault_page is not None:
                on_vault_page(page, more)

        try:
            vaults = clients.keyvault_management(scope.subscription_id).list_vaults(
                scope, on_page=on_page, on_started=start_beside
            )
        except AzureCallFailed as error:
            for read in started:
                read.cancel()
            return Snapshot(
                scope=scope, taken_at=taken_at, errors=(_error(scope.resource_id, "list vaults", error),)
            )
        if not started:  # a list that did not say when it started
            start_beside()
        try:
            role_assignments = started[0].result()
        except AzureCallFailed as error:
            role_assignments = []
            errors.append(_error(subscription.resource_id, "list role assignments", error))
        role_definitions = _role_definitions(vaults, role_assignments, clients, scope, errors)

        if include_secrets:
            vaults = _with_secrets(vaults, clients, errors, progress, concurrency, keep_secrets, on_listed)

        object_ids = sorted(
            {p.object_id.lower() for v in vaults for p in v.access_policies}
            | {ra.principal_id.lower() for ra in role_assignments}
        )
        identities: list[Identity] = []
        if object_ids:
            try:
                identities = directory.resolve(object_ids)
            except AzureCallFailed as error:
                identities = [Identity(object_id=oid, exists=None) for oid in object_ids]
                errors.append(_error("directoryObjects/getByIds", "resolve identities", error))

    return Snapshot(
        scope=scope,
        taken_at=taken_at,
        vaults=tuple(vaults),
        role_assignments=tuple(role_assignments),
        role_definitions=tuple(role_definitions),
        identities=tuple(identities),
        errors=tuple(errors),
        secrets_listed=include_secrets,
        app_object_id=clients.own_object_id(),
    )


class _EarlyLookup:
    """Looks up in the directory the object ids of each vault page that has a next one, while that one
    is in flight: the lookup after the lists then asks only for the ids the last page and the role
    assignments name first (a single-page list makes the one lookup it always made)."""

    def __init__(self, clients: Clients, pool: ThreadPoolExecutor) -> None:
        self._clients, self._pool = clients, pool
        self._asked: set[str] = set()
        self._pending: list[Future[list[Identity]]] = []

    def page(self, vaults: list[Vault], more: bool) -> None:
        if not more:
            return
        ids = sorted({p.object_id.lower() for v in vaults for p in v.access_policies} - self._asked)
        if ids:
            self._asked.update(ids)
            self._pending.append(self._pool.submit(self._clients.directory().resolve, ids))

    def resolve(self, object_ids: list[str]) -> list[Identity]:
        """One Identity per id, in order, as `DirectoryApi.resolve` answers (its failure raised)."""
        found: dict[str, Identity] = {}
        for pending in self._pending:
            found.update((i.object_id.lower(), i) for i in pending.result())
        rest = [i for i in object_ids if i not in found]
        if rest:
            found.update((i.object_id.lower(), i) for i in self._clients.directory().resolve(rest))
        return [found[i] for i in object_ids]


def _role_definitions(
    vaults: list[Vault],
    assignments: list[RoleAssignment],
    clients: Clients,
    scope: Scope,
    errors: list[InventoryError],
) -> list[RoleDefinition]:
    """Once per subscription (no GET per assignment), only when needed: an RBAC vault (its data roles),
    or a role the built-in table does not know bearing on an access-policy vault (a custom role: whether
    it may write the vault, and its name in a migration's plan)."""
    known = known_definitions()
    unknown = [a for a in assignments if a.role_guid not in known]  # few: built-in roles are the rule
    custom = any(level(a.scope, v) is not None for a in unknown for v in vaults)
    if not custom and not any(v.enable_rbac_authorization for v in vaults):
        return []
    try:
        return clients.authorization(scope.subscription_id).list_role_definitions()
    except AzureCallFailed as error:
        errors.append(_error(f"/subscriptions/{scope.subscription_id}", "list role definitions", error))
        return []


def _with_secrets(
    vaults: list[Vault],
    clients: Clients,
    errors: list[InventoryError],
    progress: Progress,
    concurrency: int = SECRET_LIST_CONCURRENCY,
    keep_secrets: bool = True,
    on_listed: Listed | None = None,
) -> list[Vault]:
    def read(vault: Vault) -> Vault | InventoryError:
        if not vault.vault_uri:
            return InventoryError(
                resource_id=vault.id, operation="list secrets", message="vault has no vaultUri"
            )
        try:
            api = clients.keyvault_secrets(vault.vault_uri)
            secrets: list[SecretMeta] | int = (
                api.list_secret_metadata() if keep_secrets or on_listed else api.count_secrets()
            )
            if on_listed is not None and isinstance(secrets, list):
                on_listed(vault, tuple(secrets))
                secrets = secrets if keep_secrets else len(secrets)
        except AzureCallFailed as error:
            # A refusal (403: an access-policy vault with no `list` entry for the app, an RBAC vault
            # outside infra's Key Vault Reader, or the vault's firewall / private link) does not stop the
            # vault's other fixes: it is reported with what would let it through (the grant it lacks, or
            # network access), and the remediations that need secret metadata skip this vault.
            # A transient failure (5xx, no response) fails the run so it is retried; 429 is counted as
            # throttling by the callers either way.
            failed = _error(vault.id, "list secrets", error, partial=not error.transient)
            if error.status == 403:
                remedy = secret_list_remedy(vault, clients.own_object_id(), error.inner_code)
                failed = failed.model_copy(update={"remedy": remedy})
            return failed
        if isinstance(secrets, int):
            return vault.model_copy(update={"secrets": (), "secret_count": secrets})
        return vault.model_copy(update={"secrets": tuple(secrets), "secret_count": len(secrets)})

    result: list[Vault] = []
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for done, (vault, read_result) in enumerate(
            zip(vaults, pool.map(read, vaults), strict=True), start=1
        ):
            if isinstance(read_result, InventoryError):
                errors.append(read_result)
                result.append(vault)
            else:
                result.append(read_result)
            progress("secrets", done, len(vaults))
    return result
