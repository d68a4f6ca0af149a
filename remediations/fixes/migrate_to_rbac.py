"""migrate_to_rbac: move an access-policy vault to Azure RBAC, least privilege per identity.

The plan per vault (core/rbac_migration.py) is the role assignments to create (Key Vault Secrets User
per named secret or on the vault, Secrets Officer for writers) and the switch of
`enableRbacAuthorization`. It is opt-in: planned for review always, applied only for the vaults the
policy lists (`rbacMigration.enabled` + `rbacMigration.vaults`), and a sweep or an alert plans it only
with `rbacMigration.inSweeps`.

Apply, in order: list the vault's assignments (what exists is never written again nor rolled back),
create each planned assignment not there yet (deterministic names: a re-run creates nothing twice; only
these get a create step; one an interrupted attempt created and this one adopted is not sent again
while the list shows it), re-read the assignments and check each identity's effective secret rights at
each planned scope, then PATCH the switch and re-read the vault. Any failure rolls back what this run
did: switch back first (the access policies are still on the vault, so access returns at once), then
delete the assignments it created. Every step (each create, the verification, the switch, each rollback
step) is audited on its own through the shell's `StepLog`, intent before the call and result after, so
a crash mid-migration leaves rows that say which steps happened; the next run reconciles them
(shell/reconcile.py) and this fix adopts the assignments an interrupted attempt left
(`steps.inherited`), each recorded as an `adopt` step first (killed in turn, its own rows still name
them, so they are handed on again): it rolls them back with its own on a failure. When the shell skips
the migration as drifted (under the vault's lease, or a reviewed plan at the start of the run),
`undo_inherited` rolls back under the vault's lease what such an attempt created the same way, step by
step, unless the vault reads Azure RBAC by then (they may be the access its identities rely on: kept
and named). The steps are also in the outcome (`after["steps"]`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Literal

from remediations.core import rbac
from remediations.core.detect import highest_severity
from remediations.core.model import (
    Action,
    Change,
    Finding,
    Outcome,
    RoleAssignmentChange,
    Scope,
    Snapshot,
    Vault,
    VaultAuthorizationChange,
    VaultRef,
)
from remediations.core.policy import Policy
from remediations.core.rbac_migration import (
    ROLE_ASSIGNMENTS,
    VAULT,
    VaultMigration,
    left_to_roll_back,
    plan_migration,
    rollback_changes,
    state_before,
    switch_step,
    unverified_access,
)
from remediations.core.registry import (
    Remediation,
    RemediationMetadata,
    StepLog,
    Undone,
    UnrecordedSteps,
    register,
)
from remediations.core.role_changes import describe
from remediations.ports import AzureCallFailed, Clients

# The planned roles are built-in; a custom role on another assignment is not counted (conservative).
_ROLES = {d.guid: d for d in rbac.BUILT_IN_DEFINITIONS}
OPT_IN = "review only: set rbacMigration.enabled and list the vault in rbacMigration.vaults to apply"


@register
class MigrateToRbac(Remediation):
    id = "migrate_to_rbac"
    handles = frozenset({"access_policy_escalation"})
    needs_secret_metadata = True  # per-secret scopes name the vault's secrets
    metadata = RemediationMetadata(
        title="Migrate an access-policy vault to Azure RBAC (least-privilege role assignments, then switch)",
        severity=highest_severity(handles),
        risk=(
            "After the switch Key Vault ignores the access policies: an identity whose access is not "
            "carried over gets 403 ForbiddenByRbac, and new role assignments take up to 10 minutes to "
            "reach Key Vault (set rbac.propagationGraceSeconds to switch in a later run). Per-secret "
            "assignments drop the vault-wide list. Vaults with key, certificate or compound-identity "
            "entries are not switched."
        ),
        permissions_required=(
            "Microsoft.Authorization/roleAssignments/read",
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "Microsoft.KeyVault/vaults/read",
            "Microsoft.KeyVault/vaults/write",
        ),
        cli_equivalent=(
            "az role assignment create --role 'Key Vault Secrets User' --assignee-object-id <id> "
            "--scope <vault id>/secrets/<name> (each identity), then "
            "az keyvault update --name <vault> --enable-rbac-authorization true"
        ),
        bicep_hint=(
            "Microsoft.Authorization/roleAssignments@2022-04-01 per identity (name guid(scope, principalId, "
            "roleId)), then Microsoft.KeyVault/vaults properties.enableRbacAuthorization: true"
        ),
    )

    def selected_by_default(self, policy: Policy) -> bool:
        return policy.rbac_migration.enabled and policy.rbac_migration.in_sweeps

    def plan(self, snapshot: Snapshot, findings: list[Finding], policy: Policy) -> list[Action]:
        flagged: dict[str, list[str]] = {}
        for finding in findings:
            flagged.setdefault(finding.resource_id.lower(), []).append(finding.id)
        vaults = {v.id.lower(): v for v in snapshot.vaults}
        return [
            self._plan_vault(snapshot, policy, vaults[m.vault_id.lower()], m, flagged[m.vault_id.lower()])
            for m in plan_migration(snapshot, policy).vaults
            if m.vault_id.lower() in flagged
        ]

    def _plan_vault(
        self,
        snapshot: Snapshot,
        policy: Policy,
        vault: Vault,
        migration: VaultMigration,
        finding_ids: list[str],
    ) -> Action:
        creates = tuple(
            RoleAssignmentChange(
                operation="create",
                scope=a.scope,
                role_definition_id=rbac.role_id(vault.subscription_id, a.role_guid),
                principal_id=a.principal_id,
                assignment_name=a.name,
            )
            for a in migration.assignments
        )
        switch = VaultAuthorizationChange(vault_id=vault.id, enable_rbac_authorization=True)
        note = ""
        seconds = policy.rbac.propagation_grace_seconds
        if seconds and not _propagated(snapshot, migration, timedelta(seconds=seconds)):
            note = f"; the vault is switched in a later run, {seconds}s after every assignment exists"
        # What the plan is reviewed against, and judged against again under the vault's lease: a
        # change to it since is drift (shell/write_guard.py).
        before = state_before(vault, snapshot.role_assignments, rbac.definitions(snapshot))
        after: dict[str, list[str]] = {VAULT: [switch_step(True)] if not note else [switch_step(False)]}
        if ROLE_ASSIGNMENTS in before:  # kept as they are: the migration adds its own, per identity below
            after[ROLE_ASSIGNMENTS] = before[ROLE_ASSIGNMENTS]
        for identity in migration.identities:
            after[identity.object_id] = [f"{a.role_name} at {a.scope}" for a in identity.assignments] + [
                f"not carried over: {d}" for d in identity.dropped
            ]
        skip: str | None = None
        if migration.blocked:
            skip = "not switched: " + "; ".join(migration.blocked)
        elif not policy.rbac_migration.allows(vault):
            skip = OPT_IN
        return Action.create(
            remediation_id=self.id,
            target=vault.id,
            principal=None,
            changes=creates if note else (*creates, switch),
            before=before,
            after=after,
            reason=(
                f"vault {vault.name} on access policies: {len(migration.identities)} identities move to "
                f"{len(creates)} role assignments, then the vault is switched to RBAC{note}"
            ),
            finding_ids=tuple(finding_ids),
            skip_reason=skip,
        )

    def apply(self, action: Action, clients: Clients) -> Outcome:
        return self.apply_in_steps(action, clients, UnrecordedSteps())

    def apply_in_steps(self, action: Action, clients: Clients, steps: StepLog) -> Outcome:
        return _Migration(action, clients, steps).run()

    def undo_inherited(self, action: Action, clients: Clients, steps: StepLog) -> Undone | None:
        return _Migration(action, clients, steps).abandon()


def _named(changes: Iterable[RoleAssignmentChange]) -> str:
    return "; ".join(describe(c) for c in changes)


def _propagated(snapshot: Snapshot, migration: VaultMigration, grace: timedelta) -> bool:
    """Every planned assignment exists already and is older than the grace (Key Vault sees it)."""
    existing = {a.name.lower(): a for a in snapshot.role_assignments}
    for planned in migration.assignments:
        found = existing.get(planned.name.lower())
        if found is None or (found.created_on is not None and found.created_on + grace > snapshot.taken_at):
            return False
    return True


class _Migration:
    """One vault's migration as it is applied: the steps taken, and what to undo on a failure."""

    def __init__(self, action: Action, clients: Clients, log: StepLog) -> None:
        self.action = action
        self.ref = VaultRef.parse(action.target)
        self.roles = clients.authorization(self.ref.subscription_id)
        self.vaults = clients.keyvault_management(self.ref.subscription_id)
        self.log = log
        self.creates = [c for c in action.changes if isinstance(c, RoleAssignmentChange)]
        switches = [c for c in action.changes if isinstance(c, VaultAuthorizationChange)]
        self.switch = switches[0] if switches else None
        self.steps: list[str] = []
        # What an interrupted attempt of this action created is this run's to undo too.
        self.created = [
            c for c in log.inherited if isinstance(c, RoleAssignmentChange) and c.operation == "create"
        ]
        self.switched = False

    def run(self) -> Outcome:
        if len(self.creates) + (self.switch is not None) != len(self.action.changes):
            return self._outcome("failed", "not a migration action")
        try:
            listed = self.roles.list_role_assignments_at(self.action.target)
        except AzureCallFailed as error:
            why = f"read the vault's role assignments: {error}; nothing written"
            if self.created:  # what an interrupted attempt left stays: never silent
                why += f"; left in place by an interrupted attempt: {_named(self.created)}"
            return self._outcome("failed", why)
        adopted = {c.assignment_name.lower() for c in self.created}
        in_place = {a.name.lower() for a in listed}
        existing = in_place - adopted
        self._adopt()
        for change in self.creates:
            name = change.assignment_name.lower()
            if name in existing:  # made before this attempt (an earlier run): no write, no step to undo
                self.steps.append(f"already there: {describe(change)}")
                continue
            if name in adopted and name in in_place:  # its adopt step row names it; no second write
                self.steps.append(f"adopted, in place: {describe(change)}")
                continue
            # A create step row names an assignment this attempt (or one it adopted) makes: what a
            # later run may roll back (reconcile hands it on), never an assignment that was there.
            step = self.log.begin(f"create {describe(change)}", change)
            try:
                made = self.roles.create_role_assignment(change)
            except AzureCallFailed as error:
                self.log.end(step, "failed", str(error))
                if name not in adopted:
                    self.created.append(change)  # the answer may be lost after the write: delete it too
                return self._roll_back(f"create {describe(change)}: {error}")
            self.log.end(step, "applied")
            if made is None:  # the same grant under another name (someone else's): kept, never deleted
                self.steps.append(f"already there under another name: {describe(change)}")
                continue
            if name not in adopted:
                self.created.append(change)
            self.steps.append(f"created {describe(change)}")
        step = self.log.begin(f"verify the effective secret rights of {len(self.creates)} assignment(s)")
        try:
            listed = self.roles.list_role_assignments_at(self.action.target)
        except AzureCallFailed as error:
            self.log.end(step, "failed", str(error))
            return self._roll_back(f"verify the assignments: {error}")
        problems = unverified_access(self.creates, listed, _ROLES)
        if problems:
            self.log.end(step, "failed", "; ".join(problems))
            return self._roll_back("verification failed: " + "; ".join(problems))
        self.log.end(step, "applied")
        self.steps.append(f"verified the effective secret rights of {len(self.creates)} assignment(s)")
        if self.switch is None:
            return self._outcome("applied", None)  # switched by a later run, once these have propagated
        self.switched = True  # from here a failure may leave it switched: switching back is harmless
        step = self.log.begin(f"switch: {switch_step(True)}", self.switch)
        try:
            now = self.vaults.set_rbac_authorization(self.ref.resource_group, self.ref.name, True)
        except AzureCallFailed as error:
            self.log.end(step, "failed", str(error))
            return self._roll_back(f"switch: {error}")
        if not now:
            self.log.end(step, "failed", "the vault still reads enableRbacAuthorization=false")
            return self._roll_back("switch not verified: the vault still reads enableRbacAuthorization=false")
        self.log.end(step, "applied")
        self.steps.append(f"switched and re-read: {switch_step(True)}")
        return self._outcome("applied", None)

    def abandon(self) -> Undone | None:
        """The migration is skipped (drifted), this run holding the vault's lease: roll back the
        assignments interrupted attempts created (`log.inherited`) unless the vault reads Azure RBAC
        now, each delete audited as a step (core/rbac_migration.py `left_to_roll_back` decides)."""
        if not self.created:
            return None
        self._adopt()
        try:
            listed = self.vaults.list_vaults(Scope.parse(self.action.target))
        except AzureCallFailed as error:
            kept = f"kept: the vault could not be read to decide ({error})"
            return Undone(failed=True, summary=f"{kept}: {_named(self.created)}")
        vault = next((v for v in listed if v.id.lower() == self.action.target.lower()), None)
        deletes, kept_because = left_to_roll_back(self.created, vault)
        if kept_because is not None:
            return Undone(failed=False, summary=f"{kept_because}: {_named(self.created)}")
        errors = self._undo(deletes)
        if errors:
            summary = f"rollback of what an interrupted attempt left incomplete: {'; '.join(errors)}"
            return Undone(failed=True, summary=summary, steps=tuple(self.steps))
        summary = f"rolled back what an interrupted attempt left: {_named(self.created)}"
        return Undone(failed=False, summary=summary, steps=tuple(self.steps))

    def _adopt(self) -> None:
        """Make what interrupted attempts created this attempt's own in the trail: a step row naming
        each create (no call is made), so if this attempt is killed in turn (a rollback cut short
        included) its own rows still name them and reconcile hands them on to the next run."""
        for change in self.created:
            step = self.log.begin(f"adopt {describe(change)}: an interrupted attempt created it", change)
            self.log.end(step, "applied")
        if self.created:
            self.steps.append(f"adopted {len(self.created)} assignment(s) an interrupted attempt created")

    def _roll_back(self, reason: str) -> Outcome:
        self.steps.append(f"failed: {reason}")
        errors = self._undo(rollback_changes(self.created, self.switch if self.switched else None))
        undone = f"; rollback incomplete: {'; '.join(errors)}" if errors else "; rolled back"
        return self._outcome("failed", reason + undone)

    def _undo(self, changes: Iterable[Change]) -> list[str]:
        """Make each rollback change in order, each audited as a step; the errors of those that failed."""
        errors: list[str] = []
        for change in changes:
            step = self.log.begin(f"roll back: {change.describe()}", change)
            try:
                if isinstance(change, VaultAuthorizationChange):
                    if self.vaults.set_rbac_authorization(self.ref.resource_group, self.ref.name, False):
                        raise AzureCallFailed("switch back", None, None, "the vault still reads true")
                    self.steps.append(f"rolled back: {switch_step(False)}")
                elif isinstance(change, RoleAssignmentChange):
                    self.roles.delete_role_assignment(change)
                    self.steps.append(f"rolled back: deleted {describe(change)}")
            except AzureCallFailed as error:
                self.log.end(step, "failed", str(error))
                errors.append(f"{change.describe()}: {error}")
            else:
                self.log.end(step, "applied")
        return errors

    def _outcome(self, status: Literal["applied", "failed"], error: str | None) -> Outcome:
        after = dict(self.action.after) if status == "applied" else {}
        return Outcome(
            action_id=self.action.id,
            status=status,
            before=self.action.before,
            after={**after, "steps": self.steps},
            error=error,
            verified=status == "applied",
        )
