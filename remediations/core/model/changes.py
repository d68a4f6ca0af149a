"""The changes an action makes, one model per kind of write, joined in the `Change` union (told apart
by `type`). Each says what it does in one line (`describe`); none can hold a secret value."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from remediations.core.model.base import Frozen
from remediations.core.model.keyvault import Permissions, PrincipalKind, RoleAssignment


class AccessPolicyChange(Frozen):
    """One `PUT .../accessPolicies/{operation}` call: a server-side delta for one identity."""

    type: Literal["accessPolicy"] = "accessPolicy"
    operation: Literal["add", "remove"]
    tenant_id: str
    object_id: str
    application_id: str | None = None
    permissions: Permissions

    def describe(self) -> str:
        return f"PUT accessPolicies/{self.operation} secrets={','.join(self.permissions.secrets) or 'none'}"


class RoleAssignmentChange(Frozen):
    """Create or delete one Azure role assignment (RBAC-mode vaults)."""

    type: Literal["roleAssignment"] = "roleAssignment"
    operation: Literal["create", "delete"]
    scope: str  # ARM scope: subscription, resource group, vault or `/vaults/{v}/secrets/{s}`
    role_definition_id: str
    principal_id: str
    principal_type: str | None = None
    assignment_name: str  # GUID; derived from (scope, principal, role) for create so a retry is a no-op

    @classmethod
    def deleting(cls, assignment: RoleAssignment) -> RoleAssignmentChange:
        """The change that removes `assignment`, by its own name (what ARM deletes)."""
        return cls(
            operation="delete",
            scope=assignment.scope,
            role_definition_id=assignment.role_definition_id,
            principal_id=assignment.principal_id,
            principal_type=assignment.principal_type,
            assignment_name=assignment.name,
        )

    def describe(self) -> str:
        role = self.role_definition_id.rsplit("/", 1)[-1]
        return f"{self.operation} role assignment role={role} principal={self.principal_id} at {self.scope}"


class ShareChange(Frozen):
    """Revoke (or grant) one person's permission on a flow or a connection."""

    type: Literal["share"] = "share"
    operation: Literal["delete", "put"]
    resource_kind: Literal["flow", "connection"]
    environment: str
    resource_id: str
    principal_id: str
    principal_kind: PrincipalKind = "user"
    role: str
    api: str | None = None  # connector name for connections, e.g. shared_keyvault
    permission_id: str | None = None  # the permission id to delete (connections); flows use the object id

    def describe(self) -> str:
        who = f"{self.role} of {self.principal_id}"
        return f"modifyPermissions {self.operation} {who} on {self.resource_kind} {self.resource_id}"


class DlpPolicyChange(Frozen):
    """Create or update a DLP policy so that blocked connector actions (e.g. Key Vault ListSecrets)
    and blocked connectors hold in the listed environments."""

    type: Literal["dlpPolicy"] = "dlpPolicy"
    operation: Literal["create", "update"]
    policy_id: str | None = None  # None for create
    display_name: str
    environments: tuple[str, ...] = ()
    blocked_actions: dict[str, tuple[str, ...]] = Field(default_factory=dict)  # connector id -> actions
    blocked_connectors: tuple[str, ...] = ()

    def describe(self) -> str:
        blocked = "; ".join(f"{k}: {', '.join(v)}" for k, v in self.blocked_actions.items())
        what = f"actions {blocked}" if blocked else f"connectors {', '.join(self.blocked_connectors)}"
        return (
            f"{self.operation} DLP policy '{self.display_name}' blocking {what} "
            f"in environments {', '.join(self.environments)}"
        )


class SecretRotationChange(Frozen):
    """Put a new version of a secret, verify it, then disable the exposed version. Never a value."""

    type: Literal["secretRotation"] = "secretRotation"
    vault_uri: str
    secret_name: str
    rotator: str  # random | app-credential | storage-key | manual
    exposed_version: str | None = None
    reason: str = ""
    # "rotate": new version, verify, disable the old; "follow-up": finish a pending step of an earlier
    # rotation (remove the old client secret after the overlap, regenerate the old storage key).
    phase: Literal["rotate", "follow-up"] = "rotate"
    ticket_id: str | None = None
    # Taken from the policy at plan time, so that applying a stored plan needs no policy.
    expiry_days: int = 90
    overlap_hours: int = 0
    value_length: int | None = None
    charset: str | None = None
    compromised: bool = False  # the exposed version is tagged `compromised` when it is disabled

    def describe(self) -> str:
        if self.phase == "follow-up":
            return f"finish the pending step of the last rotation of {self.secret_name} ({self.rotator})"
        version = self.exposed_version or "current"
        return f"rotate {self.secret_name} ({self.rotator}); disable version {version}"


class FlowStateChange(Frozen):
    """Turn a flow off (Dataverse `statecode` 0, Draft): it stops triggering; definition, owner and
    shares stay, and an owner turns it on again after fixing it."""

    type: Literal["flowState"] = "flowState"
    environment: str
    flow_id: str
    state: Literal["Stopped"] = "Stopped"

    def describe(self) -> str:
        return f"turn off flow {self.flow_id} in {self.environment}"


class VaultAuthorizationChange(Frozen):
    """Switch a vault's permission model: ARM PATCH `properties.enableRbacAuthorization`. With true, Key
    Vault ignores the access policies and authorizes data-plane calls by Azure RBAC only."""

    type: Literal["vaultAuthorization"] = "vaultAuthorization"
    vault_id: str
    enable_rbac_authorization: bool

    def describe(self) -> str:
        return f"PATCH properties.enableRbacAuthorization = {str(self.enable_rbac_authorization).lower()}"


class SecurityRoleChange(Frozen):
    """Take a Dataverse security role (System Customizer) away from a user or Entra group team in an
    environment: they no longer edit every flow there, whoever owns it."""

    type: Literal["securityRole"] = "securityRole"
    environment: str
    principal_id: str  # Entra object id
    role: str  # role name, e.g. "System Customizer"

    def describe(self) -> str:
        return f"remove security role {self.role!r} from {self.principal_id} in {self.environment}"


class FlowSecureDataChange(Frozen):
    """Turn on secure inputs and outputs of a flow's Key Vault actions (named by JSON path) in its
    definition (Dataverse `workflows.clientdata`): their values leave the run history."""

    type: Literal["flowSecureData"] = "flowSecureData"
    environment: str
    flow_id: str
    action_paths: tuple[str, ...]

    def describe(self) -> str:
        return f"secure inputs/outputs of {', '.join(self.action_paths)} in flow {self.flow_id}"


class FlowConnectionChange(Frozen):
    """Rebind a flow's connection references from one Key Vault connection (a person's) to another (a
    least-privileged service principal's), in its `workflows.clientdata`."""

    type: Literal["flowConnection"] = "flowConnection"
    environment: str
    flow_id: str
    from_connection: str
    to_connection: str

    def describe(self) -> str:
        return f"move flow {self.flow_id} from connection {self.from_connection} to {self.to_connection}"


class ConnectionReferenceChange(Frozen):
    """Rebind a solution's connection reference (Dataverse `connectionreferences` row, `connectionid`)
    from one Key Vault connection (a person's) to another: every flow naming the row moves with it."""

    type: Literal["connectionReference"] = "connectionReference"
    environment: str
    logical_name: str
    from_connection: str
    to_connection: str
    flow_ids: tuple[str, ...]  # the flows bound through the row when planned (all of them move)

    def describe(self) -> str:
        return (
            f"rebind connection reference {self.logical_name} (flows {', '.join(self.flow_ids)}) from "
            f"connection {self.from_connection} to {self.to_connection}"
        )


Change = Annotated[
    AccessPolicyChange
    | RoleAssignmentChange
    | VaultAuthorizationChange
    | ShareChange
    | DlpPolicyChange
    | SecretRotationChange
    | FlowStateChange
    | SecurityRoleChange
    | FlowSecureDataChange
    | FlowConnectionChange
    | ConnectionReferenceChange,
    Field(discriminator="type"),
]
