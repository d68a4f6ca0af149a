"""What a vault read under its write lease says about each access-policy action and each migration to
RBAC (pure).

Under the vault's lease (shell/write_guard.py) the vault is read once; each action is judged against
that read with the actions written before it in the same lease made (`after_writes`), its entry found
and simulated once for all its judgements (`EntryCheck`), and after the vault's writes one more read
confirms them all (`confirm`). The `accessPolicies/add|remove` PUT answers with the request's
entries echoed, not with what the vault now holds, so only that read verifies. A migration that
switches the vault to RBAC is judged on the vault as first read under the lease and the role
assignments bearing on it (`migration_drift`) before its first create.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

from remediations.core.access_policy import (
    apply_change,
    can_manage,
    entry_of,
    last_manager_reason,
    simulate,
)
from remediations.core.model import (
    AccessPolicy,
    AccessPolicyChange,
    Action,
    Change,
    Outcome,
    RoleAssignment,
    RoleDefinition,
    Scope,
    Snapshot,
    Vault,
    VaultAuthorizationChange,
)
from remediations.core.pinned import drift_reason, switched_since
from remediations.core.rbac_migration import state_now

ALREADY_APPLIED = "already applied: the vault already shows this change (made by another run)"


def policy_changes(action: Action) -> tuple[AccessPolicyChange, ...]:
    """The action's access-policy deltas when it is made of nothing else, else ()."""
    changes = tuple(c for c in action.changes if isinstance(c, AccessPolicyChange))
    return changes if changes and len(changes) == len(action.changes) else ()


def _shows(change: AccessPolicyChange, held: set[str]) -> bool:
    wanted = {p.lower() for p in change.permissions.secrets}
    return not (wanted & held) if change.operation == "remove" else wanted <= held


def _state(entry: AccessPolicy | None) -> dict[str, list[str]]:
    return entry.permissions.as_dict() if entry is not None else {}


@dataclass(frozen=True)
class EntryCheck:
    """An access-policy action against one read of its vault: the entry its deltas are for, found
    once, and that entry as the deltas would leave it, simulated once (only when a judgement asks).
    Made anew for each read: the lease's earlier writes, made in `vault`, are counted."""

    action: Action
    changes: tuple[AccessPolicyChange, ...]  # policy_changes(action), not empty
    vault: Vault
    read_at: datetime

    @cached_property
    def entry(self) -> AccessPolicy | None:
        return entry_of(self.vault.access_policies, self.changes[0])

    @cached_property
    def entry_after(self) -> AccessPolicy | None:
        return simulate(self.entry, self.changes) if self.entry is not None else None

    def settle(self, *, pinned: bool = False) -> Outcome | None:
        """The outcome the vault as it is now calls for without writing (already applied; for a
        `pinned` (reviewed) plan, drifted when the entry no longer shows the action's `before`), or None."""
        held = {p.lower() for p in self.entry.permissions.secrets} if self.entry is not None else set()
        if all(_shows(c, held) for c in self.changes):
            return Outcome(
                action_id=self.action.id,
                status="noop",
                before=self.action.before,
                after=_state(self.entry),
                error=ALREADY_APPLIED,
                verified=True,
            )
        drift = drift_reason(self.action, _state(self.entry)) if pinned else None
        if drift is not None:
            return Outcome(action_id=self.action.id, status="skipped", before=_state(self.entry), error=drift)
        return None

    def takes_management(self) -> bool:
        """Whether the action takes secret management from its entry: only then can the last-manager
        rail stop it, and only then are the role assignments over the vault worth reading."""
        return (
            self.entry is not None
            and can_manage(self.entry)
            and self.entry_after is not None
            and not can_manage(self.entry_after)
        )

    def last_manager_skip(self, assignments: Iterable[RoleAssignment]) -> Outcome | None:
        """Skipped when the action would now remove the vault's last secret manager (judged on the
        vault and the role assignments over it as read under the lease), else None."""
        if self.entry is None or self.entry_after is None:
            return None
        now = Snapshot(
            scope=Scope.parse(self.vault.id), taken_at=self.read_at, role_assignments=tuple(assignments)
        )
        vault = self.vault
        reason = last_manager_reason(vault, list(vault.access_policies), now, self.entry, self.entry_after)
        if reason is None:
            return None
        before = self.entry.permissions.as_dict()
        return Outcome(action_id=self.action.id, status="skipped", before=before, error=reason)


def switches_to_rbac(action: Action) -> bool:
    """A migration that switches its vault to Azure RBAC: the switch takes away every access its role
    assignments do not carry over, so it is judged again under the lease before its first write."""
    return any(
        isinstance(c, VaultAuthorizationChange) and c.enable_rbac_authorization for c in action.changes
    )


def migration_drift(
    action: Action,
    vault: Vault | None,
    assignments: Iterable[RoleAssignment],
    roles: Mapping[str, RoleDefinition],
    *,
    read_at: datetime,
    own: Iterable[Change] = (),
) -> Outcome | None:
    """Skipped as drifted when the vault and the role assignments bearing on it, as read under the
    lease, no longer show what the migration was planned from (its `before`, `state_now`): switched
    since, an access-policy entry or a role assignment added, removed or changed, other than the
    assignments interrupted attempts of it created (`own`, which this attempt adopts). None: go ahead."""
    if vault is None:
        return Outcome(action_id=action.id, status="skipped", before={}, error=drift_reason(action, None))
    assignments = tuple(assignments)
    now = Snapshot(
        scope=Scope.parse(vault.id), taken_at=read_at, vaults=(vault,), role_assignments=assignments
    )
    state = state_now(action.before, vault, assignments, roles, own)
    reason = switched_since(action, now) or drift_reason(action, state)
    if reason is None:
        return None
    return Outcome(action_id=action.id, status="skipped", before=state, error=reason)


def after_writes(vault: Vault, changes: Iterable[AccessPolicyChange]) -> Vault:
    """The vault once an action's deltas are made, as Key Vault makes them."""
    for change in changes:
        vault = apply_change(vault, change)
    return vault


def confirm(changes: tuple[AccessPolicyChange, ...], sent: Outcome, observed: Vault | None) -> Outcome:
    """The fix's outcome judged on the vault read after the lease's writes (`changes`: its action's
    deltas). `applied` (every delta sent): verified when the entry holds each name the action adds and
    none it removes (names compare without case; the last delta naming a permission decides), else
    failed. What the action does not name (a person's concurrent change) is not ours to judge.
    `failed` (some steps may have gone through): stays failed, with what the entry now holds."""
    if observed is None:
        gone = "the vault was gone when its writes were verified"
        return sent.model_copy(update={"status": "failed", "error": sent.error or gone})
    if sent.status != "applied":
        return sent.model_copy(update={"after": _state(entry_of(observed.access_policies, changes[0]))})
    wanted: dict[tuple[str, str], bool] = {}
    for change in changes:
        for category, names in change.permissions.as_dict().items():
            wanted.update({(category, name.lower()): change.operation == "add" for name in names})
    have = _state(entry_of(observed.access_policies, changes[0]))
    held = {(category, name.lower()) for category, names in have.items() for name in names}
    wrong = sorted(name for (category, name), add in wanted.items() if ((category, name) in held) != add)
    if not wrong:
        return sent.model_copy(update={"after": have, "verified": True})
    return sent.model_copy(
        update={
            "status": "failed",
            "after": have,
            "verified": False,
            "error": f"Key Vault answered success but {', '.join(wrong)} did not take effect as asked "
            "(permission names are matched case-sensitively; or the entry changed since)",
        }
    )
