"""Policy: our configuration of what each identity may do. Validated strictly (unknown keys fail) and
loaded from `VAULTGUARD_POLICY_FILE` / `VAULTGUARD_POLICY_JSON` or a file given on the command line.

JSON keys are camelCase (`maxActionsPerRun`); Python attributes are snake_case.

Resolution of an identity's allowed secret permissions, first match wins:
`secretPermissions.byIdentity[objectId]`, then the union of `secretPermissions.byVaultTag["k=v"]` for
every tag the vault carries, then `secretPermissions.default`. None of them set means "no rule":
`narrow_access_policy` then leaves the identity alone, and `remove_list_permission` still removes
`list`, because enumeration is never allowed unless a rule grants it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from remediations.core.model import (
    SECRET_PERMISSIONS,
    PowerPlatformScope,
    Vault,
    expand_secret_permissions,
)

_KNOWN_SECRET_PERMISSIONS = frozenset((*SECRET_PERMISSIONS, "all"))


class PolicyError(ValueError):
    """The policy is invalid; the message names the field path."""


class _PolicyModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True)


def _check_permissions(values: tuple[str, ...]) -> tuple[str, ...]:
    lowered = tuple(dict.fromkeys(v.lower() for v in values))
    unknown = [v for v in lowered if v not in _KNOWN_SECRET_PERMISSIONS]
    if unknown:
        raise ValueError(
            f"unknown secret permission(s) {unknown}; known: {sorted(_KNOWN_SECRET_PERMISSIONS)}"
        )
    return lowered


class SecretPermissionRules(_PolicyModel):
    by_identity: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    by_vault_tag: dict[str, tuple[str, ...]] = Field(default_factory=dict)  # "purpose=payroll" -> [get]
    default: tuple[str, ...] | None = None

    @field_validator("by_identity", "by_vault_tag")
    @classmethod
    def _valid_map(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        return {k.lower(): _check_permissions(v) for k, v in value.items()}

    @field_validator("by_vault_tag")
    @classmethod
    def _tag_form(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for key in value:
            if "=" not in key:
                raise ValueError(f"tag rule {key!r} must be written name=value")
        return value

    @field_validator("default")
    @classmethod
    def _valid_default(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else _check_permissions(value)


class Exclusions(_PolicyModel):
    vaults: tuple[str, ...] = ()  # vault resource ids or names
    identities: tuple[str, ...] = ()  # object ids


class RbacRules(_PolicyModel):
    """Role-assignment narrowing (RBAC-mode vaults)."""

    # Also narrow assignments inherited from a resource group or subscription (off: report them only).
    narrow_inherited: bool = False
    # Keep the wide assignment until the new per-secret ones are this old (Azure: up to 10 minutes to
    # propagate). 0 deletes it in the same run, right after the new ones are verified in the list.
    propagation_grace_seconds: int = Field(default=0, ge=0)
    # Azure allows 4,000 role assignments per subscription; keep `headroom` of them free for others.
    assignment_limit: int = Field(default=4000, gt=0)
    headroom: int = Field(default=100, ge=0)


class RbacMigrationRules(_PolicyModel):
    """Access-policy -> RBAC migration (fix `migrate_to_rbac`): opt-in per vault. Off, the migration is
    still planned (for review) with every action skipped."""

    enabled: bool = False  # off: planned for review, never applied
    vaults: tuple[str, ...] = ()  # vault resource ids or names to migrate; none: no vault is switched
    # Let timer sweeps plan the migration too; off, only a request naming `migrate_to_rbac` plans it.
    in_sweeps: bool = False

    def names(self, vault: Vault) -> bool:
        if not self.vaults:
            return False
        wanted = {v.lower() for v in self.vaults}
        return vault.id.lower() in wanted or vault.name.lower() in wanted

    def allows(self, vault: Vault) -> bool:
        return self.enabled and self.names(vault)


class OversizedVaultRules(_PolicyModel):
    """`oversized_vault`: a vault flow identities reach that holds too many secrets or purposes."""

    max_purposes: int = Field(default=1, ge=1)
    max_secrets: int = Field(default=50, ge=1)
    purpose_tag: str = "purpose"  # secret tag naming its purpose
    # Until Power Platform inventory exists: treat every identity with secret read as a flow identity.
    include_all_readers: bool = False


RotatorName = Literal["random", "app-credential", "storage-key", "manual"]


class RotationRules(_PolicyModel):
    """`rotate_secret`: which rotator by default, when, and what an exposure or an alert leads to."""

    default_rotator: RotatorName = "manual"  # a secret without a `rotator` tag is disabled and reported
    near_expiry_days: int = Field(default=30, ge=0)  # rotate when expiry is this close; 0 = never
    expiry_days: int = Field(default=90, gt=0, le=3650)  # expiry of every new version
    app_credential_overlap_hours: int = Field(default=24, ge=0)  # old client secret kept this long
    random_length: int = Field(default=40, ge=16, le=4096)
    on_alert: Literal["rotate", "report"] = "report"  # Defender alert naming a vault
    # Detectors whose findings mean "a path to these secrets existed" (evidence vault_id/secret_names,
    # or a principal / flow whose reachable secrets the exposure graph gives).
    exposing_detectors: tuple[str, ...] = ("flow_insecure_get_secret", "flow_lists_secrets")


class DlpRules(_PolicyModel):
    """`enforce_keyvault_dlp`: the DLP policy vaultguard owns (found again by its display name)."""

    policy_name: str = Field(default="vaultguard: Key Vault without enumeration", min_length=1)
    block_list_secrets: bool = True
    # Environments where the Key Vault connector must not be used at all (a second policy blocks it).
    block_connector_in_environments: tuple[str, ...] = ()


class PowerPlatformRules(_PolicyModel):
    """Who may edit/run flows that use Key Vault connections, and who may use those connections.

    The configured `serviceAccounts` are always allowed in both lists.
    """

    # Environments the triggers (tickets, alerts, sweep workers) read with each vault, so that flow ->
    # connection -> identity paths are seen: names, or "*" for every environment. Empty: Azure only.
    environments: tuple[str, ...] = ()
    allowed_flow_editors: tuple[str, ...] = ()
    allowed_connection_users: tuple[str, ...] = ()
    max_system_customizers: int | None = Field(default=None, ge=0)
    # `quarantine_flow`: turn off running flows on a person's Key Vault connection that someone other
    # than the owner can edit (containment for its co-owners and those who may use its connection: they
    # can turn it on again; closes the path of any other editor, core/closure.py).
    quarantine_flows: bool = False
    # `remove_flow_editing_role`: take System Customizer away from people not in `allowedFlowEditors`
    # in environments with a flow on a person's Key Vault connection (closes their edit path).
    remove_flow_editing_roles: bool = False
    # `restore_secure_outputs`: turn secure inputs/outputs back on for Key Vault Get secret actions.
    restore_secure_outputs: bool = False
    # `move_to_service_connection`: the least-privileged Key Vault connection (a service principal's)
    # a flow on a person's connection moves to, by vault name or environment name (the vault first).
    service_connections: dict[str, str] = Field(default_factory=dict)
    dlp: DlpRules = DlpRules()

    @field_validator("allowed_flow_editors", "allowed_connection_users")
    @classmethod
    def _lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.lower() for v in value)

    def service_connection_for(self, environment: str, vault: str | None) -> str | None:
        """The connection the policy names for flows reading `vault` in `environment`, if any."""
        named = {k.lower(): v for k, v in self.service_connections.items()}
        return named.get((vault or "").lower()) or named.get(environment.lower())

    def scope(self) -> PowerPlatformScope | None:
        """The Power Platform scope of a trigger run (None: Azure only)."""
        if not self.environments:
            return None
        if "*" in self.environments:
            return PowerPlatformScope(all_environments=True)
        return PowerPlatformScope(environments=self.environments)


class Policy(_PolicyModel):
    secret_permissions: SecretPermissionRules = SecretPermissionRules()
    # Secret names an identity needs (per-secret RBAC narrowing and the exposure report use it).
    allowed_secret_names: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    # "fromFlows": derive each Key Vault connection identity's allow-list (permissions per vault and
    # secret names) from the flow definitions that use it (core/flow_allow_list.py).
    allow_list: Literal["fromFlows"] | None = None
    power_platform: PowerPlatformRules = PowerPlatformRules()
    # Filled by `core.flow_allow_list.effective_policy`, never by configuration: "<object id>|<vault name>"
    # (lower case) -> permissions / secret names the flows using that identity need on that vault.
    derived_secret_permissions: dict[str, tuple[str, ...]] = Field(default_factory=dict, exclude=True)
    derived_secret_names: dict[str, tuple[str, ...]] = Field(default_factory=dict, exclude=True)
    break_glass: tuple[str, ...] = ()  # identities never reduced
    exclusions: Exclusions = Exclusions()
    service_accounts: tuple[str, ...] = ()  # may own flows
    max_actions_per_run: int = Field(default=50, gt=0)
    dry_run: bool = True
    rbac: RbacRules = RbacRules()
    rbac_migration: RbacMigrationRules = RbacMigrationRules()
    oversized_vault: OversizedVaultRules = OversizedVaultRules()
    rotation: RotationRules = RotationRules()

    @field_validator("break_glass", "service_accounts")
    @classmethod
    def _lower_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.lower() for v in value)

    def is_break_glass(self, object_id: str) -> bool:
        return object_id.lower() in self.break_glass

    def excludes_identity(self, object_id: str) -> bool:
        if not self.exclusions.identities:  # asked per access-policy entry: skip the set when none
            return False
        return object_id.lower() in {i.lower() for i in self.exclusions.identities}

    def leaves_alone(self, object_id: str) -> bool:
        """A break-glass or excluded identity: its access is never judged."""
        return self.is_break_glass(object_id) or self.excludes_identity(object_id)

    def excludes_vault(self, vault: Vault) -> bool:
        if not self.exclusions.vaults:  # asked per vault by several detectors: skip the set when none
            return False
        wanted = {v.lower() for v in self.exclusions.vaults}
        return vault.id.lower() in wanted or vault.name.lower() in wanted

    def allowed_secret_permissions(self, object_id: str, vault: Vault) -> frozenset[str] | None:
        """Lower-case allowed secret permissions (`all` expanded), or None when no rule applies."""
        rules = self.secret_permissions
        explicit = rules.by_identity.get(object_id.lower())
        if explicit is not None:
            return expand_secret_permissions(explicit)
        # Asked per access-policy entry: no key to build when no flow derived any (`allowList: fromFlows`).
        derived = (
            self.derived_secret_permissions.get(f"{object_id}|{vault.name}".lower())
            if self.derived_secret_permissions
            else None
        )
        if derived is not None:
            return expand_secret_permissions(derived)
        tags = (f"{k}={v}".lower() for k, v in vault.tags.items()) if rules.by_vault_tag else ()
        tagged = [rules.by_vault_tag[tag] for tag in tags if tag in rules.by_vault_tag]
        if tagged:
            return expand_secret_permissions([p for perms in tagged for p in perms])
        if rules.default is not None:
            return expand_secret_permissions(rules.default)
        return None

    def needed_secret_names(self, object_id: str, vault: Vault) -> tuple[str, ...] | None:
        """Secret names this identity needs in this vault: derived from flows (`allowList: fromFlows`),
        else `allowedSecretNames[objectId]`; None when unknown (then nothing is narrowed per secret)."""
        derived = self.derived_secret_names.get(f"{object_id}|{vault.name}".lower())
        if derived is not None:
            return derived
        configured = self.allowed_secret_names.get(object_id) or self.allowed_secret_names.get(
            object_id.lower()
        )
        return configured

    def flow_editor_allowed(self, object_id: str) -> bool:
        oid = object_id.lower()
        return oid in self.service_accounts or oid in self.power_platform.allowed_flow_editors

    def connection_user_allowed(self, object_id: str) -> bool:
        oid = object_id.lower()
        return oid in self.service_accounts or oid in self.power_platform.allowed_connection_users


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(root)"


def parse_policy(data: Any, source: str = "policy") -> Policy:
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{_field_path(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise PolicyError(f"{source} is invalid: {problems}") from exc
