"""In-memory state of the emulated Power Platform tenant.

Identities (users, service principals, managed identities, groups) live in the Azure state; every
reference here is an Entra object id. All mutation happens under `State.lock`.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

# Dataverse security roles that matter for the attack: a System Customizer (or Administrator) can edit
# every flow in the environment, whoever owns it. "Environment Maker" can create flows but not edit others'.
SYSTEM_ADMINISTRATOR = "System Administrator"
SYSTEM_CUSTOMIZER = "System Customizer"
ENVIRONMENT_MAKER = "Environment Maker"
ENVIRONMENT_ROLES = (SYSTEM_ADMINISTRATOR, SYSTEM_CUSTOMIZER, ENVIRONMENT_MAKER)
EDIT_ALL_FLOWS_ROLES = frozenset({SYSTEM_ADMINISTRATOR, SYSTEM_CUSTOMIZER})

FLOW_ROLES = ("Owner", "CanEdit", "CanView")
CONNECTION_ROLES = ("Owner", "CanEdit", "CanView", "CanViewWithShare")
PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal", "Tenant")
KEYVAULT_API = "shared_keyvault"
KEYVAULT_API_ID = "/providers/Microsoft.PowerApps/apis/shared_keyvault"


def now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class RoleAssignment:
    principal_id: str
    role: str  # one of ENVIRONMENT_ROLES
    principal_type: str = "User"


@dataclass
class Environment:
    name: str
    display_name: str
    sku: str = "Production"
    is_default: bool = False
    location: str = "europe"
    azure_region: str = "westeurope"
    created_time: str = "2024-01-01T00:00:00Z"
    created_by: str | None = None
    roles: list[RoleAssignment] = field(default_factory=list)
    # Application (client) ids made application users of this environment's Dataverse with the System
    # Administrator role (the one-time grant, docs/permissions.md). The emulator's own admin app is one
    # in every environment; a management-app registration alone does not open Dataverse.
    application_users: set[str] = field(default_factory=set)
    # Principals Dataverse keeps as rows without a role, owned flow or share (object id -> principal type):
    # disassociating a role removes the association, not the systemusers / teams row (Web API docs,
    # "Associate and disassociate table rows").
    synced_principals: dict[str, str] = field(default_factory=dict)

    def roles_of(self, principal_ids: set[str]) -> set[str]:
        return {r.role for r in self.roles if r.principal_id in principal_ids}


@dataclass
class Share:
    """A permission on a flow or connection. `name` is the permission's id segment."""

    name: str
    principal_id: str
    role: str
    principal_type: str = "User"


@dataclass
class ActionRecord:
    """One executed (or skipped) action of a run; `repetitions` for actions inside a Foreach."""

    name: str
    type: str
    status: str  # Succeeded | Failed | Skipped
    start_time: str
    end_time: str
    code: str = "OK"
    inputs: Any = None
    outputs: Any = None
    secure_inputs: bool = False
    secure_outputs: bool = False
    error: dict[str, Any] | None = None
    repetitions: list[ActionRecord] = field(default_factory=list)
    repetition_index: int | None = None
    scope_name: str | None = None


@dataclass(frozen=True)
class SecretRead:
    """A secret value a run read from Key Vault (by name: the value stays in the action's outputs)."""

    flow: str
    run: str
    vault: str
    name: str
    action: str
    secure_outputs: bool


@dataclass(frozen=True)
class Egress:
    """An HTTP action's request to a host outside the emulated services: where it went and which
    secrets' values (by name, never the value) its inputs carried."""

    flow: str
    run: str
    action: str
    method: str
    host: str
    path: str
    secrets: tuple[str, ...]


@dataclass
class Run:
    name: str
    trigger_name: str
    status: str  # Running | Succeeded | Failed | Cancelled
    start_time: str
    end_time: str | None = None
    caller: str | None = None
    flow: str = ""
    error: dict[str, Any] | None = None
    actions: dict[str, ActionRecord] = field(default_factory=dict)
    secret_reads: list[SecretRead] = field(default_factory=list)
    egress: list[Egress] = field(default_factory=list)
    # value -> secret name, for this run only: lets an HTTP action's egress name what it carried
    values_read: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass
class Flow:
    name: str
    environment: str
    display_name: str
    creator: str
    definition: dict[str, Any]
    connection_references: dict[str, Any] = field(default_factory=dict)
    state: str = "Started"  # Started | Stopped | Suspended
    suspension_reason: str = "None"
    created_time: str = "2024-01-01T00:00:00Z"
    last_modified_time: str = "2024-01-01T00:00:00Z"
    shares: dict[str, Share] = field(default_factory=dict)  # by principal id
    runs: list[Run] = field(default_factory=list)  # oldest first
    # Connections "shared with you in the context of this flow": ones a user allowed to use them
    # activated the flow with. Co-owners may turn the flow on with these; anyone else needs a share
    # on the connection itself (ConnectionAuthorizationFailed otherwise, docs/fidelity.md).
    context_connections: set[str] = field(default_factory=set)

    def role_of(self, principal_ids: set[str]) -> str | None:
        """The strongest flow role any of the principals holds (Owner > CanEdit > CanView)."""
        roles = {s.role for s in self.shares.values() if s.principal_id in principal_ids}
        for role in FLOW_ROLES:
            if role in roles:
                return role
        return None


@dataclass
class Connection:
    name: str
    environment: str
    api: str  # connector name, e.g. shared_keyvault
    display_name: str
    created_by: str
    # The object id Key Vault sees when the runner uses this connection (the creator for OAuth
    # connections, else the service principal / managed identity the connection is bound to).
    identity: str
    auth_type: str = "oauth"  # oauth | servicePrincipal | certificate (an app) | managedIdentity
    parameters: dict[str, Any] = field(default_factory=dict)
    created_time: str = "2024-01-01T00:00:00Z"
    shares: dict[str, Share] = field(default_factory=dict)  # by permission name

    def usable_by(self, principal_ids: set[str]) -> bool:
        """The owner and every principal the connection is shared with (any role) may use it."""
        return any(s.principal_id in principal_ids for s in self.shares.values())

    @property
    def vault_name(self) -> str | None:
        value = self.parameters.get("vaultName")
        return str(value) if value else None


@dataclass
class PowerPlatformState:
    environments: dict[str, Environment] = field(default_factory=dict)
    flows: dict[str, Flow] = field(default_factory=dict)
    connections: dict[str, Connection] = field(default_factory=dict)
    # DLP policies in the v2 governance API shape, by policy name.
    dlp_policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Tenant-level Power Platform administrators (object ids) and registered management apps
    # (application/client ids, `New-PowerAppManagementApp`): both may call every `scopes/admin` route.
    admins: set[str] = field(default_factory=set)
    management_apps: set[str] = field(default_factory=set)
    # Directory facts for display (displayName, email/UPN, type) by object id, filled by the scenario.
    directory: dict[str, dict[str, str]] = field(default_factory=dict)
    page_size_flows: int = 250
    page_size_environments: int = 100
    page_size_connections: int = 250
    # Emulator-only records that outlive a deleted flow's run history: every secret a run read (by
    # name) and every HTTP action request that left a run (see Egress).
    secret_reads: list[SecretRead] = field(default_factory=list)
    egress: list[Egress] = field(default_factory=list)
    # Signs the emulated SAS links of run inputs/outputs (outputsLink.uri).
    link_key: str = field(default_factory=lambda: secrets.token_hex(16))

    def flows_in(self, environment: str) -> list[Flow]:
        return [f for f in self.flows.values() if f.environment == environment]

    def connections_in(self, environment: str) -> list[Connection]:
        return [c for c in self.connections.values() if c.environment == environment]


def new_id() -> str:
    return str(uuid.uuid4())
