"""Read-only Power Platform inventory: environments (with security-role holders), Key Vault connections
(with the identity each authenticates as, and their shares), flows (with definitions; owners and shares
for the ones that use a Key Vault connection) and DLP policies. Merged into the Azure snapshot by the
pipeline.

Calls (docs/limits.md section 2): per environment the Dataverse users and teams (with their security roles;
BAP role assignments answer 403 for Dataverse environments), the Dataverse `workflows` pages (5,000 a
page, definitions and owners included: no GET per flow) and 1 Key Vault connection list; then one
`RetrieveSharedPrincipalsAndAccess` per Key Vault flow and one permissions GET per Key Vault connection;
the DLP list and one GET per DLP policy (the list has no rules). Every environment is read at once,
`concurrency` calls in flight (default `PP_CONCURRENCY`; Dataverse service protection allows 52
concurrent requests per user). Then every group holding one of those shares is resolved to its
members with Graph `transitiveMembers` (`GROUP_CONCURRENCY` groups at a time), so the exposure graph
reaches the people behind a group share. A failed read becomes an InventoryError; nothing is
dropped silently (an unresolved group stays a group node: its share is still judged and revoked).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from remediations.adapters.clients import Clients, PowerPlatformApi
from remediations.adapters.errors import AzureCallFailed
from remediations.adapters.powerapps_shapes import (
    connection_from_api,
    environment_from_api,
    service_principal_client_id,
)
from remediations.core.dlp_shape import dlp_from_api
from remediations.core.model import (
    Connection,
    DlpPolicy,
    Environment,
    Flow,
    InventoryError,
    PowerPlatformScope,
    Share,
)

# Dataverse-style service protection allows 52 concurrent requests per user (docs/limits.md 1d).
PP_CONCURRENCY = 32
# Graph identity & access: 3,500+ resource units per 10 s per app and tenant (docs/limits.md 1c); a member
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
        self.errors.append(error.as_inventory_error(resource_id, operation, partial=partial))

    def add_shares(self, resource_id: str, operation: str, read: list[Share] | AzureCallFailed) -> None:
        """A flow's or connection's shares, or the failure that leaves them unknown."""
        if isinstance(read, AzureCallFailed):
            self.failed(resource_id, operation, read)
        else:
            self.shares += read


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


def _attempt(read: Callable[..., T], *args: Any) -> T | AzureCallFailed:
    """A read whose failure is a value, so one refused call does not lose its neighbours' results."""
    try:
        return read(*args)
    except AzureCallFailed as error:
        return error


def inventory_powerplatform(
    scope: PowerPlatformScope,
    clients: Clients,
    *,
    progress: Progress = lambda stage, done, total: None,
    concurrency: int = PP_CONCURRENCY,
) -> PowerPlatformInventory:
    """Every environment at once, in two waves over one pool of `concurrency` workers: the lists
    (role holders, Key Vault connections and flows of each environment, DLP policies, then connection
    client ids to object ids), then every connection-permission and flow read of every environment.
    Reading environments one after another would add each one's list round trips to the sweep; this
    way a sweep costs about calls / concurrency round trips. Results keep the order of a sequential
    read (environment by environment, as listed), so a snapshot does not depend on timing."""
    out = PowerPlatformInventory()
    api = clients.power_platform()
    environments = _environments(api, scope, out)
    names = [str(item["name"]) for item in environments]
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        holders = [pool.submit(_attempt, api.role_holders, name) for name in names]
        connection_lists = [pool.submit(_attempt, api.list_connections, name, KEYVAULT_API) for name in names]
        flow_lists = [pool.submit(_attempt, api.list_flows, name) for name in names]
        dlp = pool.submit(_attempt, api.list_dlp_policies)

        listed: list[tuple[str, list[dict[str, Any]], list[Flow]]] = []
        for env_item, name, held, connections_read, flow_list in zip(
            environments, names, holders, connection_lists, flow_lists, strict=True
        ):
            role_holders = held.result()
            principal_names: dict[str, str] = {}
            if isinstance(role_holders, AzureCallFailed):
                out.failed(name, "list environment role assignments", role_holders)
                role_holders = {}
            else:  # read with the role holders: the same user and team rows, no further call
                principal_names = api.principal_names(name)
            out.environments.append(environment_from_api(env_item, role_holders, principal_names))
            connection_items = connections_read.result()
            if isinstance(connection_items, AzureCallFailed):
                out.failed(name, "list Key Vault connections", connection_items)
                connection_items = []
            flow_items = flow_list.result()
            if isinstance(flow_items, AzureCallFailed):
                out.failed(name, "list flows", flow_items)
                flow_items = []
            listed.append((name, connection_items, flow_items))

        object_ids = _app_object_ids(clients, pool, [i for _, items, _ in listed for i in items], out)
        connections = [
            [connection_from_api(item, name, object_ids) for item in items] for name, items, _ in listed
        ]
        shares_read = [
            [
                pool.submit(_attempt, api.connection_permissions, name, c.api_name, c.id)
                for c in env_connections
            ]
            for (name, _, _), env_connections in zip(listed, connections, strict=True)
        ]
        flows_read = [
            [pool.submit(_flow_shares, api, flow, {c.id for c in env_connections}) for flow in flows]
            for (_, _, flows), env_connections in zip(listed, connections, strict=True)
        ]
        total = sum(map(len, shares_read)) + sum(map(len, flows_read))
        done = 0
        for env_connections, env_shares, (_, _, flows), env_flows in zip(
            connections, shares_read, listed, flows_read, strict=True
        ):
            for connection, future in zip(env_connections, env_shares, strict=True):
                out.add_shares(connection.id, "list connection permissions", future.result())
                done += 1
                progress("power platform reads", done, total)
            out.connections += env_connections
            for flow, flow_future in zip(flows, env_flows, strict=True):
                out.add_shares(flow.id, "list flow shares", flow_future.result())
                out.flows.append(flow)
                done += 1
                progress("power platform reads", done, total)
        policies = dlp.result()
        if isinstance(policies, AzureCallFailed):
            out.failed("dlp policies", "list DLP policies", policies)
        else:
            # The list has no connector groups or rules: GET each policy, as the Terraform provider does.
            names = [str((p.get("policyDefinition") or {}).get("name") or "") for p in policies]
            reads = [pool.submit(_attempt, api.get_dlp_policy, name) for name in names if name]
            for name, read in zip([n for n in names if n], reads, strict=True):
                policy = read.result()
                if isinstance(policy, AzureCallFailed):
                    out.failed(name, "get DLP policy", policy)
                else:
                    out.dlp_policies.append(dlp_from_api(policy))
    _group_members(clients, out, progress)
    return out


def _app_object_ids(
    clients: Clients, pool: ThreadPoolExecutor, items: list[dict[str, Any]], out: PowerPlatformInventory
) -> dict[str, str]:
    """Service-principal connections name a client id; access policies name object ids. One Graph
    lookup per distinct client id in the tenant (not per environment), side by side."""
    app_ids = sorted({a.lower() for a in (service_principal_client_id(i) for i in items) if a})
    if not app_ids:
        return {}
    directory = clients.directory()
    found: dict[str, str] = {}
    lookups = [pool.submit(_attempt, directory.object_ids_for_app_ids, [a]) for a in app_ids]
    for app_id, lookup in zip(app_ids, lookups, strict=True):
        result = lookup.result()
        if isinstance(result, AzureCallFailed):
            out.failed(
                f"servicePrincipals(appId={app_id})", "map connection client ids to object ids", result
            )
        else:
            found.update(result)
    return found


def _flow_shares(
    api: PowerPlatformApi, flow: Flow, keyvault_connections: set[str]
) -> list[Share] | AzureCallFailed:
    """Owner and shares only where a Key Vault connection is reachable (saves 2 calls per other flow)."""
    if not set(flow.connection_references) & keyvault_connections:
        return []
    return _attempt(api.flow_permissions, flow.environment, flow.id)


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
