"""Builders for snapshots and an in-memory Key Vault management API with Azure's remove semantics
(case-sensitive match; 200 with no change on a mismatch; the PUT's answer carries nothing to verify,
a read of the vault shows the result). `apply_actions` applies actions as the shell does."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from remediations.adapters.errors import AzureCallFailed, ResourceGone
from remediations.core.model import (
    AccessPolicy,
    AccessPolicyChange,
    Action,
    Identity,
    Outcome,
    Permissions,
    RoleAssignment,
    RoleAssignmentChange,
    RoleDefinition,
    Scope,
    SecretMeta,
    Snapshot,
    Vault,
)
from remediations.core.planning import assemble_plan
from remediations.core.policy import parse_policy
from remediations.ports import VaultPage
from remediations.shell.apply import RunContext, apply_plan
from remediations.shell.audit import MemoryAuditSink

SUB = "00000000-0000-0000-0000-000000000001"
TENANT = "00000000-0000-0000-0000-0000000000aa"
RG = "rg-app"
OWNER_ROLE = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"


def vault_id(name: str) -> str:
    return f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/{name}"


def policy_entry(object_id: str, *secrets: str, application_id: str | None = None) -> AccessPolicy:
    return AccessPolicy(
        tenant_id=TENANT,
        object_id=object_id,
        application_id=application_id,
        permissions=Permissions(secrets=tuple(secrets)),
    )


def vault(
    name: str,
    *entries: AccessPolicy,
    tags: dict[str, str] | None = None,
    rbac: bool = False,
    secrets: tuple[str, ...] = ("db-password",),
) -> Vault:
    return Vault(
        id=vault_id(name),
        name=name,
        resource_group=RG,
        subscription_id=SUB,
        location="westeurope",
        tenant_id=TENANT,
        vault_uri=f"https://{name}.vault.azure.net/",
        enable_rbac_authorization=rbac,
        tags=tags or {},
        access_policies=entries,
        secrets=tuple(SecretMeta(name=s, id=f"https://{name}.vault.azure.net/secrets/{s}") for s in secrets),
    )


def snapshot(
    *vaults: Vault, role_assignments: tuple[RoleAssignment, ...] = (), identities: tuple[Identity, ...] = ()
) -> Snapshot:
    return Snapshot(
        scope=Scope(subscription_id=SUB),
        taken_at=datetime(2026, 1, 1, tzinfo=UTC),
        vaults=vaults,
        role_assignments=role_assignments,
        identities=identities,
    )


def owner_at(scope: str, principal: str = "admin-group") -> RoleAssignment:
    return RoleAssignment(
        id=f"{scope}/providers/Microsoft.Authorization/roleAssignments/1",
        scope=scope,
        role_definition_id=f"/providers/Microsoft.Authorization/roleDefinitions/{OWNER_ROLE}",
        principal_id=principal,
    )


class MemoryKeyVaultManagement:
    def __init__(self, *vaults: Vault) -> None:
        self.vaults = {v.name: v for v in vaults}
        self.calls: list[tuple[str, str, AccessPolicyChange]] = []
        self.reads: list[str] = []  # per list call: the vault name it asked for, else the scope
        self.fail_with: AzureCallFailed | None = None
        # Per delta: the error to refuse it with, or None to make it (e.g. refuse only the second step).
        self.refuse: Callable[[AccessPolicyChange], AzureCallFailed | None] = lambda change: None
        self.ignore_removes = False  # simulate a server that answers 200 and changes nothing
        self.switches: list[tuple[str, bool]] = []  # (vault name, enableRbacAuthorization) per PATCH
        self.ignore_switches = False  # simulate a PATCH that answers 200 and leaves the vault as it was

    def list_vaults(
        self, scope: Scope, on_page: VaultPage | None = None, on_started: Callable[[], None] | None = None
    ) -> list[Vault]:
        # Says nothing of its start: the inventory then starts the reads beside it after it.
        self.reads.append(scope.vault_name or scope.resource_id)
        return [v.model_copy(update={"secrets": ()}) for v in self.vaults.values()]

    def update_access_policy(self, resource_group: str, vault_name: str, change: AccessPolicyChange) -> None:
        self.calls.append((resource_group, vault_name, change))
        refused = self.fail_with or self.refuse(change)
        if refused is not None:
            raise refused
        if vault_name not in self.vaults:
            raise ResourceGone("update", 404, "ResourceNotFound", "vault not found")
        current = self.vaults[vault_name]
        entries = list(current.access_policies)
        for i, e in enumerate(entries):
            if e.object_id == change.object_id and e.application_id == change.application_id:
                secrets = list(e.permissions.secrets)
                if change.operation == "add":
                    secrets += [p for p in change.permissions.secrets if p not in secrets]
                elif not self.ignore_removes:
                    secrets = [p for p in secrets if p not in change.permissions.secrets]  # case-sensitive
                entries[i] = e.model_copy(update={"permissions": Permissions(secrets=tuple(secrets))})
        self.vaults[vault_name] = current.model_copy(update={"access_policies": tuple(entries)})

    def set_rbac_authorization(self, resource_group: str, vault_name: str, enabled: bool) -> bool:
        self.switches.append((vault_name, enabled))
        if self.fail_with is not None:
            raise self.fail_with
        current = self.vaults[vault_name]
        if not self.ignore_switches:
            self.vaults[vault_name] = current.model_copy(update={"enable_rbac_authorization": enabled})
        return self.vaults[vault_name].enable_rbac_authorization


class MemorySecrets:
    def __init__(self, vault: Vault) -> None:
        self.vault = vault

    def list_secret_metadata(self) -> list[SecretMeta]:
        return list(self.vault.secrets)

    def count_secrets(self) -> int:
        return len(self.vault.secrets)


class MemoryAuthorization:
    """Role assignments with ARM's semantics: PUT of an existing name is a no-op, the same principal +
    role + scope under another name is a conflict (None), DELETE of a missing name is a no-op."""

    def __init__(self, *assignments: RoleAssignment, definitions: tuple[RoleDefinition, ...] = ()) -> None:
        self.assignments = list(assignments)
        self.definitions = list(definitions)
        self.calls: list[tuple[str, str]] = []  # (operation, scope or name)
        self.fail_on: dict[str, AzureCallFailed] = {}  # operation -> error
        self.hide_creates = False  # simulate a create that answers 201 but never shows up in lists

    def _maybe_fail(self, operation: str) -> None:
        if operation in self.fail_on:
            raise self.fail_on[operation]

    def list_role_assignments(self, scope: Scope) -> list[RoleAssignment]:
        self.calls.append(("list", scope.resource_id))
        self._maybe_fail("list")
        return list(self.assignments)

    def list_role_assignments_at(self, scope: str) -> list[RoleAssignment]:
        self.calls.append(("list", scope))
        self._maybe_fail("list")
        low = scope.rstrip("/").lower()
        return [
            a
            for a in self.assignments
            if a.scope.lower() == low
            or a.scope.lower().startswith(low + "/")
            or low.startswith(a.scope.rstrip("/").lower() + "/")
        ]

    def list_role_definitions(self) -> list[RoleDefinition]:
        self.calls.append(("definitions", ""))
        self._maybe_fail("definitions")
        return list(self.definitions)

    def create_role_assignment(self, change: RoleAssignmentChange) -> RoleAssignment | None:
        self.calls.append(("create", change.scope))
        self._maybe_fail("create")
        for a in self.assignments:
            if a.name == change.assignment_name:
                return a
            same = (a.scope.lower(), a.principal_id.lower(), a.role_guid)
            if same == (
                change.scope.lower(),
                change.principal_id.lower(),
                change.role_definition_id.rsplit("/", 1)[-1].lower(),
            ):
                return None
        created = RoleAssignment(
            id=f"{change.scope}/providers/Microsoft.Authorization/roleAssignments/{change.assignment_name}",
            scope=change.scope,
            role_definition_id=change.role_definition_id,
            principal_id=change.principal_id,
            principal_type=change.principal_type,
            created_on=datetime.now(UTC),
        )
        if not self.hide_creates:
            self.assignments.append(created)
        return created

    def delete_role_assignment(self, change: RoleAssignmentChange) -> bool:
        self.calls.append(("delete", change.assignment_name))
        self._maybe_fail("delete")
        before = len(self.assignments)
        self.assignments = [a for a in self.assignments if a.name != change.assignment_name]
        return len(self.assignments) < before


class MemoryDirectory:
    def __init__(self, *missing: str) -> None:
        self.missing = {m.lower() for m in missing}

    def resolve(self, object_ids: list[str]) -> list[Identity]:
        return [Identity(object_id=o, kind="user", exists=o.lower() not in self.missing) for o in object_ids]


class MemoryClients:
    def __init__(self, *vaults: Vault, assignments: tuple[RoleAssignment, ...] = ()) -> None:
        self.mgmt = MemoryKeyVaultManagement(*vaults)
        self._secrets = {v.vault_uri: v for v in vaults}
        self.authz = MemoryAuthorization(*assignments)
        self.dir = MemoryDirectory()

    def keyvault_management(self, subscription_id: str) -> MemoryKeyVaultManagement:
        return self.mgmt

    def keyvault_secrets(self, vault_uri: str) -> MemorySecrets:
        return MemorySecrets(self._secrets[vault_uri])

    def authorization(self, subscription_id: str) -> MemoryAuthorization:
        return self.authz

    def directory(self) -> MemoryDirectory:
        return self.dir

    def own_object_id(self) -> str | None:
        return None


def apply_actions(
    clients: MemoryClients, *actions: Action, pinned: bool = False, audit: MemoryAuditSink | None = None
) -> list[Outcome]:
    """Apply `actions` as a run does (shell/apply.py: the vault's lease, one read under it, the writes,
    one read after them), not by calling a fix's `apply` alone."""
    plan = assemble_plan(actions, parse_policy({}), created_at=datetime.now(UTC), dry_run=False)
    context = RunContext(correlation_id="test", trigger="cli")
    return apply_plan(plan, clients, audit or MemoryAuditSink(), context, pinned=pinned)  # type: ignore[arg-type]
