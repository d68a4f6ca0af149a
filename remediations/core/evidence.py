"""Typed evidence of findings: one model per kind of finding, so planners read attributes, not dict keys.

`Finding.evidence` stays a plain JSON object (report.json, SARIF properties and finding ids are built from
it). A detector registers its model (`detector(..., evidence=...)` in core/detect.py) and builds its
findings' evidence from it; a reader gets it back with `Model.of(finding)`, which parses it with the
model the finding's detector registered and fails loudly on a key it does not know (`extra="forbid"`),
a field missing, or a reader expecting another detector's model. No reader looks keys up by string.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from remediations.core.model import SECRETS_AS_OF, Finding, ScopeLevel

# Fields are declared in the order the detectors always wrote their keys, so report.json is unchanged.

SecretSource = Literal["finding", "near-expiry", "follow-up", "ticket", "alert"]


class Evidence(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    # Set when the finding was made from a vault's stored deep inventory: when that list was read
    # (Vault.secrets_provenance; not part of the finding's id).
    secrets_as_of: str | None = Field(default=None, alias=SECRETS_AS_OF)

    def as_dict(self) -> dict[str, Any]:
        """The JSON object a finding carries: wire names, only the fields that were given."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)

    @classmethod
    def of(cls, finding: Finding) -> Self:
        """The finding's evidence as the model its detector registered, which must be `cls` or derive from
        it: `AccessPolicyEvidence.of` reads an excess_secret_permissions finding as
        `ExcessPermissionsEvidence`, and `Evidence.of` reads any finding."""
        # core/detect.py imports this module to register each detector with its model: ask it late.
        from remediations.core.detect import evidence_model  # noqa: PLC0415

        model = evidence_model(finding.detector_id)
        if not issubclass(model, cls):
            raise TypeError(f"{finding.detector_id} findings carry {model.__name__}, not {cls.__name__}")
        return model.model_validate(finding.evidence)


class AccessPolicyEvidence(Evidence):
    """An access-policy entry of a vault (secret_list_permission, orphaned_principal)."""

    vault: str
    object_id: str = Field(alias="objectId")
    application_id: str | None = Field(alias="applicationId")
    secret_permissions: tuple[str, ...] = Field(alias="secretPermissions")


class ExcessPermissionsEvidence(AccessPolicyEvidence):
    """An entry holding more than its allow-list (excess_secret_permissions)."""

    allowed: tuple[str, ...]
    excess: tuple[str, ...]
    # The secrets its flows read, when the allow-list comes from flow definitions.
    needed_secret_names: tuple[str, ...] | None = Field(default=None, alias="neededSecretNames")


class OrphanedAssignmentEvidence(Evidence):
    """A role assignment for an identity the directory says is gone (orphaned_role_assignment)."""

    assignment_id: str = Field(alias="assignmentId")
    role_definition_id: str = Field(alias="roleDefinitionId")


class RoleGrantEvidence(Evidence):
    """A secret-reading role assignment wider than one secret (wide_secret_role_assignment)."""

    vault: str
    assignment_id: str = Field(alias="assignmentId")
    scope: str
    level: ScopeLevel
    role: str
    role_definition_id: str = Field(alias="roleDefinitionId")
    inherited: bool  # assigned above the vault
    secrets_only: bool = Field(alias="secretsOnly")  # a role that grants nothing but secret data actions
    needed: tuple[str, ...]  # the secret names its flows read


class VaultWritersEvidence(Evidence):
    """An access-policy vault and who may write it (access_policy_escalation)."""

    vault: str
    identities: int  # access-policy entries with data rights today
    writers: tuple[str, ...]  # "<principal> (<role> at <scope>)"


class FlowUsesKeyVaultEvidence(Evidence):
    """A flow running on Key Vault connections (flow_uses_keyvault)."""

    environment: str
    flow: str
    connections: tuple[str, ...]
    vaults: tuple[str, ...]


class ConnectionUserEvidence(Evidence):
    """A Key Vault connection that authenticates as a person (connection_runs_as_user), per flow using it
    (`flow`) or, when no flow does, on the connection itself."""

    environment: str
    connection: str
    vault: str | None
    identity_kind: str | None = Field(alias="identityKind")
    administrator: bool  # the person is an environment administrator
    flow: str | None = None


class FlowOwnerEvidence(Evidence):
    """A Key Vault flow owned by someone not among the service accounts (flow_owned_by_personal_account)."""

    environment: str
    flow: str
    owner: str
    service_accounts: tuple[str, ...] = Field(alias="serviceAccounts")
    vaults: tuple[str, ...]


class CustomizersEvidence(Evidence):
    """Who can edit every flow of an environment, over the limit (environment_too_many_customizers)."""

    environment: str
    holders: tuple[str, ...]
    limit: int


class OversizedVaultEvidence(Evidence):
    """A vault that flows reach holding several purposes' secrets, and how to split it (oversized_vault)."""

    vault: str
    secret_count: int = Field(alias="secretCount")
    purposes: tuple[str, ...]
    untagged: int
    flow_identities: tuple[str, ...] = Field(alias="flowIdentities")
    suggested_split: tuple[dict[str, object], ...] = Field(alias="suggestedSplit")


class UnresolvedPrincipalEvidence(Evidence):
    """Where a principal the directory could not resolve holds access (unresolved_principal)."""

    granted_at: tuple[str, ...] = Field(alias="grantedAt")


class FlowShareEvidence(Evidence):
    """A Key Vault flow shared with someone not allowed to edit it (flow_shared_beyond_allowed)."""

    environment: str
    flow: str
    role: str
    principal_kind: Literal["user", "group"] = Field(alias="principalKind")
    connections: tuple[str, ...]


class ConnectionShareEvidence(Evidence):
    """A Key Vault connection shared with someone not allowed to use it (connection_shared_beyond_allowed)."""

    environment: str
    connection: str
    api: str
    role: str
    permission_id: str | None = Field(alias="permissionId")
    principal_kind: Literal["user", "group"] = Field(alias="principalKind")


class FileLocation(Evidence):
    """Where a flow definition read from a file says it (`scan-flows` adds it for SARIF)."""

    artifact_uri: str | None = Field(default=None, alias="artifactUri")
    start_line: int | None = Field(default=None, alias="startLine")


class FlowStepEvidence(FileLocation):
    """A place in a flow definition (flow_lists_secrets, flow_insecure_get_secret, flow_secure_get_secret,
    flow_hardcoded_credential); `flow` is the flow's display name (or resource id)."""

    flow: str
    action_path: str
    vault: str | None = None
    secret_names: tuple[str, ...] = ()
    connection_reference: str | None = None
    operation: str | None = None  # a Key Vault step's operation; None for a hard-coded credential
    secure_inputs: bool | None = None
    secure_outputs: bool | None = None
    in_foreach: bool | None = None
    reads_each_listed_secret: tuple[str, ...] | None = None  # paths of Get secrets over a List's output
    iterates_list_output: bool | None = None
    informational: bool | None = None  # good practice seen (a secured Get secret), never an alarm
    # A hard-coded credential: the field holding it, its kind and length (never the value).
    field: str | None = None
    kind: str | None = None
    length: int | None = None


class SecretEvidence(Evidence):
    """A secret to rotate (exposed_secret, secret_near_expiry, rotation_followup_due); the fields after
    `source` are what that source adds."""

    vault_id: str  # the vault's ARM id, or the reference a ticket gave when the vault is not inventoried
    vault_uri: str
    secret_name: str
    source: SecretSource
    exposed_by: tuple[str, ...] | None = Field(default=None, alias="exposedBy")  # ids of leaking findings
    detectors: tuple[str, ...] | None = None
    readers: tuple[str, ...] | None = None
    expires: str | None = None
    pending: tuple[str, ...] | None = None  # the rotation tags whose step is due
    ticket_id: str | None = Field(default=None, alias="ticketId")
    alert_id: str | None = Field(default=None, alias="alertId")
    reason: str | None = None
