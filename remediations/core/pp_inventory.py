"""Read-only Power Platform inventory: environments (with role holders), Key Vault connections (with
the identity each authenticates as, and their shares), flows (with definitions; permissions for the
ones that use a Key Vault connection) and DLP policies. Merged into the Azure snapshot by the engine.

Calls (LIMITS.md section 2): per environment 1 role list + flow list pages + 1 Key Vault connection
list; then one GET per flow (the admin list has no definition) and one permissions GET per Key Vault
flow and per Key Vault connection, `PP_CONCURRENCY` at a time (Dataverse-style service protection
allows 52 concurrent requests per user). Then every group holding one of those shares is resolved to
its members with Graph `transitiveMembers` (`GROUP_CONCURRENCY` groups at a time), so the exposure
graph reaches the people behind a group share. A failed read becomes an InventoryError; nothing is
dropped silently (an unresolved group stays a group node: its share is still judged and revoked).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from remediations.adapters.clients import Clients, PowerPlatformApi
from remediations.adapters.errors import AzureCallFailed
from remediations.adapters.powerplatform import (
    connection_from_api,
    dlp_from_api,
    environment_from_api,
    service_principal_client_id,
)
from remediations.core.model import (
    Connection,
    DlpPolicy,
    Environment,
    Flow,
    InventoryError,
    PowerPlatformScope,
    Share,
)

PP_CONCURRENCY = 16
# Graph identity & access: 3,500+ resource units per 10 s per app and tenant (LIMITS.md 1c); a member
# page costs about 1 RU with `$select`, so a few groups at a time stay far inside it.
GROUP_CONCURRENCY = 8
KEYVAULT_API = "shared_keyvault"
T = TypeVar("T")
Progress = Callable[[str, int, int], None]


class PowerPlatformInventory:
    """What one pass read: the Power Platform half of a Snapshot."""

    def __init__(self) -> None:
        self.environments: list[Environment] = []
        self.flows: list[Flow] = []
        self.connections: list[Connection] = []
        self.shares: list[Share] = []
        self.dlp_policies: list[DlpPolicy] = []
        self.group_members: dict[str, tuple[str, ...]] = {}  # group object id -> member object ids
        self.errors: list[InventoryError] = []

    def failed(
        self, resource_id: str, operation: str, error: AzureCallFailed, *, partial: bool = False
    ) -> None:
        self.errors.append(
            InventoryError(
                resource_id=resource_id,
                operation=operation,
                status=error.status,
                message=str(error),
                retry_after=error.retry_after,
                partial=partial,
            )
        )


def _environments(
    api: PowerPlatformApi, scope: PowerPlatformScope, out: PowerPlatformInventory
) -> list[dict[str, Any]]:
    if scope.all_environments:
        try:
            return api.list_environments()
        except AzureCallFailed as error:
            out.failed("environments", "list environments", error)
            return []
    found = []
    for name in scope.environments:
        try:
            found.append(api.get_environment(name))
        except AzureCallFailed as error:
            out.failed(name, "get environment", error)
    return found


def _pooled(items: list[T], read: Callable[[T], Any], progress: Progress, stage: str) -> list[Any]:
    results: list[Any] = []
    with ThreadPoolExecutor(max_workers=PP_CONCURRENCY) as pool:
        for done, result in enumerate(pool.map(read, items), start=1):
            results.append(result)
            progress(stage, done, len(items))
    return results


def inventory_powerplatform(
    scope: PowerPlatformScope,
    clients: Clients,
    *,
    progress: Progress = lambda stage, done, total: None,
) -> PowerPlatformInventory:
    out = PowerPlatformInventory()
    api = clients.power_platform()
    for env_item in _environments(api, scope, out):
        name = str(env_item["name"])
        try:
            holders = api.role_holders(name)
        except AzureCallFailed as error:
            holders = {}
            out.failed(name, "list environment role assignments", error)
        out.environments.append(environment_from_api(env_item, holders))
        keyvault_connections = _connections(api, clients, name, out, progress)
        _flows(api, name, {c.id for c in keyvault_connections}, out, progress)
    try:
        out.dlp_policies = [dlp_from_api(p) for p in api.list_dlp_policies()]
    except AzureCallFailed as error:
        out.failed("dlp policies", "list DLP policies", error)
    _group_members(clients, out, progress)
    return out


def _group_members(clients: Clients, out: PowerPlatformInventory, progress: Progress) -> None:
    """Members of every group that holds a share read above (only Key Vault flows' and connections'
    shares are read). A refused read (403: no GroupMember.Read.All) is reported as partial: shares are
    still judged and revoked by the group's id, only the exposure graph stops at the group. A transient
    failure fails the run, so the sweep retries it."""
    groups = sorted({s.principal_id.lower() for s in out.shares if s.principal_kind == "group"})
    if not groups:
        return
    directory = clients.directory()

    def members(group: str) -> list[str] | AzureCallFailed:
        try:
            return directory.group_members(group)
        except AzureCallFailed as error:
            return error

    with ThreadPoolExecutor(max_workers=min(GROUP_CONCURRENCY, len(groups))) as pool:
        for done, (group, result) in enumerate(zip(groups, pool.map(members, groups), strict=True), 1):
            if isinstance(result, AzureCallFailed):
                out.failed(group, "list group members", result, partial=not result.transient)
            else:
                out.group_members[group] = tuple(result)
            progress("group members", done, len(groups))


def _connections(
    api: PowerPlatformApi, clients: Clients, environment: str, out: PowerPlatformInventory, progress: Progress
) -> list[Connection]:
    try:
        items = api.list_connections(environment, KEYVAULT_API)
    except AzureCallFailed as error:
        out.failed(environment, "list Key Vault connections", error)
        return []
    app_ids = sorted({a for a in (service_principal_client_id(i) for i in items) if a})
    object_ids: dict[str, str] = {}
    if app_ids:
        try:
            object_ids = clients.directory().object_ids_for_app_ids(app_ids)
        except AzureCallFailed as error:
            out.failed("servicePrincipals", "map connection client ids to object ids", error)
    connections = [connection_from_api(i, environment, object_ids) for i in items]

    def shares(connection: Connection) -> list[Share] | AzureCallFailed:
        try:
            return api.connection_permissions(environment, connection.api_name, connection.id)
        except AzureCallFailed as error:
            return error

    for connection, result in zip(
        connections, _pooled(connections, shares, progress, "connection permissions"), strict=True
    ):
        if isinstance(result, AzureCallFailed):
            out.failed(connection.id, "list connection permissions", result)
        else:
            out.shares += result
    out.connections += connections
    return connections


def _flows(
    api: PowerPlatformApi,
    environment: str,
    keyvault_connections: set[str],
    out: PowerPlatformInventory,
    progress: Progress,
) -> None:
    try:
        listed = api.list_flows(environment)
    except AzureCallFailed as error:
        out.failed(environment, "list flows", error)
        return
    names = [str(item["name"]) for item in listed]

    def read(flow_name: str) -> tuple[Flow | None, list[Share], list[tuple[str, AzureCallFailed]]]:
        errors: list[tuple[str, AzureCallFailed]] = []
        try:
            flow = api.get_flow(environment, flow_name)
        except AzureCallFailed as error:
            return None, [], [("get flow", error)]
        shares: list[Share] = []
        # Permissions matter only where a Key Vault connection is reachable (saves F calls).
        if set(flow.connection_references) & keyvault_connections:
            try:
                shares = api.flow_permissions(environment, flow_name)
            except AzureCallFailed as error:
                errors.append(("list flow permissions", error))
        return flow, shares, errors

    for name, (flow, shares, errors) in zip(names, _pooled(names, read, progress, "flows"), strict=True):
        for operation, failure in errors:
            out.failed(name, operation, failure)
        if flow is not None:
            out.flows.append(flow)
            out.shares += shares
