"""Power Platform: environments with their security-role holders, flows, connections, shares and DLP
policies."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from remediations.core.model.base import Frozen
from remediations.core.model.keyvault import PrincipalKind

# Dataverse security roles that can edit every flow of an environment, whoever owns it.
EDIT_ALL_FLOWS_ROLES: frozenset[str] = frozenset({"System Administrator", "System Customizer"})
KEYVAULT_CONNECTOR_ID = "/providers/Microsoft.PowerApps/apis/shared_keyvault"


class PowerPlatformScope(Frozen):
    """Which Power Platform environments to look at: names, or every environment when `all_environments`."""

    environments: tuple[str, ...] = ()
    all_environments: bool = False

    @property
    def empty(self) -> bool:
        return not self.environments and not self.all_environments


class Environment(Frozen):
    id: str
    name: str
    display_name: str = ""
    role_holders: dict[str, tuple[str, ...]] = Field(default_factory=dict)  # principal id -> roles
    # principal id -> UPN or full name, as the environment's user and team rows give them (for reports)
    principal_names: dict[str, str] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        """What people call it: its display name, else its name."""
        return self.display_name or self.name

    def editors_of_all_flows(self) -> tuple[str, ...]:
        """System Customizers and Administrators: they can edit every flow in the environment."""
        return tuple(sorted(p for p, roles in self.role_holders.items() if set(roles) & EDIT_ALL_FLOWS_ROLES))


class Flow(Frozen):
    id: str
    environment: str
    display_name: str = ""
    creator: str | None = None  # principal object id of the owner/creator
    connection_references: tuple[str, ...] = ()  # connection ids
    definition: dict[str, Any] = Field(default_factory=dict)
    state: str = "Started"
    # connectionReferences as the definition names them: reference key (e.g. "shared_keyvault") ->
    # connection id, so an action's `inputs.host.connectionName` can be followed to its connection.
    reference_keys: dict[str, str] = Field(default_factory=dict)
    # Solution flows: reference key -> the logical name of the Dataverse `connectionreferences` row that
    # binds it (its connection, in `reference_keys`, is that row's `connectionid`, shared by every flow
    # naming the row). Keys not here name their connection in the flow's own clientdata.
    solution_references: dict[str, str] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        """What people call it: its display name, else its id."""
        return self.display_name or self.id


class ConnectionReference(Frozen):
    """A Dataverse `connectionreferences` row: a solution's named binding to one connection."""

    id: str  # connectionreferenceid
    logical_name: str  # connectionreferencelogicalname, what a solution flow's clientdata names
    connection_id: str | None = None  # connectionid: the connection name it binds (None: unbound)
    connector_id: str = ""


class Connection(Frozen):
    id: str
    environment: str
    connector_id: str  # e.g. /providers/Microsoft.PowerApps/apis/shared_keyvault
    identity_principal_id: str | None = None
    identity_kind: Literal["user", "servicePrincipal", "managedIdentity"] = "user"
    parameters: dict[str, str] = Field(default_factory=dict)  # e.g. {"vaultName": "kv-payroll"}
    display_name: str = ""
    created_by: str | None = None  # principal object id of the connection's creator (its owner)

    @property
    def label(self) -> str:
        """What people call it: its display name, else its id."""
        return self.display_name or self.id

    @property
    def is_keyvault(self) -> bool:
        return self.connector_id.rstrip("/").lower().endswith("/apis/shared_keyvault") or (
            self.connector_id.lower() == "shared_keyvault"
        )

    @property
    def api_name(self) -> str:
        return self.connector_id.rstrip("/").rsplit("/", 1)[-1]


class Share(Frozen):
    resource_kind: Literal["flow", "connection"]
    resource_id: str
    principal_id: str
    principal_kind: PrincipalKind = "user"
    role: str  # Owner, CanEdit, CanView, RunOnly
    environment: str = ""
    permission_id: str | None = None  # the permission's id as the API lists it (connection deletes use it)


class DlpPolicy(Frozen):
    id: str
    display_name: str = ""
    environments: tuple[str, ...] = ()
    blocked_actions: dict[str, tuple[str, ...]] = Field(default_factory=dict)  # connector id -> action ids
    # AllEnvironments | OnlyEnvironments | ExceptEnvironments (how `environments` is read)
    environment_type: str = "OnlyEnvironments"
    blocked_connectors: tuple[str, ...] = ()

    def covers(self, environment: str) -> bool:
        names = {e.lower() for e in self.environments}
        if self.environment_type == "AllEnvironments":
            return True
        if self.environment_type == "ExceptEnvironments":
            return environment.lower() not in names
        return environment.lower() in names
