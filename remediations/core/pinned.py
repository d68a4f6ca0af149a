"""A pinned plan: the plan a person reviewed, applied as it is, never planned again silently.

The content hash covers each action's target, principal, changes and `before` state (never a secret
value: actions carry permission names and resource ids only), so an approval names exactly what was
reviewed. Before the writes, the state the plan was made from is compared with a fresh read: an
action whose target no longer shows its `before` is skipped as drifted, not replaced by what a new
plan would do. The shell re-reads (shell/pipeline.py for the whole scope, shell/write_guard.py for
an access-policy entry under the vault's lease); the comparisons here are pure. A migration to RBAC
(VaultAuthorizationChange) has drifted when the vault was switched since, or when the role assignments
bearing on the vault (part of the migration's `before`) changed, other than those an interrupted
attempt of the same migration created (read from its step rows before the check: it resumes).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict

from remediations.core.model import (
    Action,
    Change,
    ConnectionReferenceChange,
    DlpPolicyChange,
    FlowConnectionChange,
    FlowSecureDataChange,
    FlowStateChange,
    Plan,
    Scope,
    SecurityRoleChange,
    ShareChange,
    Snapshot,
    VaultAuthorizationChange,
    arm_name,
)
from remediations.core.rbac import definitions
from remediations.core.rbac_migration import is_migration, state_now

DRIFTED = "drifted"


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def plan_hash(plans: Sequence[tuple[str, Plan]]) -> str:
    """SHA-256 of the canonical JSON of each scope's actions, in order (times and ids of the plan left
    out: the same changes from the same state hash alike)."""
    content = [
        {
            "scope": scope.lower(),
            "actions": [a.model_dump(mode="json") for a in plan.actions],
            "deferred": [a.model_dump(mode="json") for a in plan.deferred],
        }
        for scope, plan in plans
    ]
    return hashlib.sha256(_canonical(content)).hexdigest()


def plan_id(digest: str) -> str:
    """A short, readable name of a pinned plan, derived from its hash."""
    return f"plan-{digest[:16]}"


class ScopePlan(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    scope: str  # the resource id the plan was made on
    plan: Plan


class PinnedPlan(BaseModel):
    """What a dry-run ticket keeps for its approval: each scope's plan, its hash and id."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    hash: str
    scopes: tuple[ScopePlan, ...] = ()

    @classmethod
    def of(cls, plans: Sequence[tuple[str, Plan]]) -> PinnedPlan:
        digest = plan_hash(plans)
        return cls(
            id=plan_id(digest), hash=digest, scopes=tuple(ScopePlan(scope=s, plan=p) for s, p in plans)
        )

    def for_scope(self, scope: str) -> Plan | None:
        return next((s.plan for s in self.scopes if s.scope.lower() == scope.lower()), None)

    @property
    def verified(self) -> bool:
        """Whether the stored plans still hash to the stored hash (a record changed by hand does not)."""
        return plan_hash([(s.scope, s.plan) for s in self.scopes]) == self.hash


def once_each(plans: Sequence[tuple[str, Plan]]) -> list[tuple[str, Plan]]:
    """The scopes' plans with each action kept in the first scope that plans it only. A ticket over
    two vaults plans an environment-wide change (a share, a role, the DLP policy) from each; applied
    in the first scope, the second's copy would only read as drifted."""
    seen: set[str] = set()
    kept: list[tuple[str, Plan]] = []
    for scope, plan in plans:
        actions = tuple(a for a in plan.actions if a.id not in seen)
        deferred = tuple(a for a in plan.deferred if a.id not in seen)
        seen.update(a.id for a in (*actions, *deferred))
        kept.append((scope, plan.model_copy(update={"actions": actions, "deferred": deferred})))
    return kept


def of_file(plan: Plan) -> PinnedPlan:
    """A plan stored by `plan --out`, pinned as one plan on the scope its targets share: its hash is
    the one `plan --out` prints and `apply --plan FILE --plan-hash HASH` checks."""
    scope = covering_scope(plan)
    return PinnedPlan.of([(scope.resource_id if scope is not None else "", plan)])


def refusal(pinned: PinnedPlan, reviewed: str) -> str | None:
    """Why `pinned` must not be applied as the plan reviewed under the hash `reviewed`, or None: the
    one check of an approval (HTTP) and of `apply --plan --plan-hash` (CLI)."""
    if not pinned.verified:
        return "the stored plan no longer hashes to its recorded hash: it was changed after it was pinned"
    if reviewed.strip().casefold() != pinned.hash:
        return f"its hash is {pinned.hash}, not the reviewed {reviewed.strip()}"
    return None


def _normalised(state: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    # Permission names compare case-insensitively (ARM returns them as stored); empty lists are absent.
    return {k: sorted(str(v).casefold() for v in values) for k, values in state.items() if values}


def same_state(left: Mapping[str, Sequence[str]], right: Mapping[str, Sequence[str]]) -> bool:
    return _normalised(left) == _normalised(right)


def drift_reason(pinned: Action, now: Mapping[str, Sequence[str]] | None) -> str | None:
    """Why `pinned` must not be written given the target's state `now` (None: the fresh read no longer
    calls for this change at all), or None when the target still shows the plan's `before`."""
    if now is None:
        return f"{DRIFTED}: the target no longer calls for this change (changed since the plan was made)"
    if same_state(pinned.before, now):
        return None
    was, isnow = _normalised(pinned.before), _normalised(now)
    differ = sorted(k for k in {*was, *isnow} if was.get(k) != isnow.get(k))  # only what changed is named
    if all(len(was.get(k, ())) + len(isnow.get(k, ())) <= SHORT for k in differ):
        change = f"planned from {_brief(was, differ)}, now {_brief(isnow, differ)}"
    else:  # long lists (e.g. the role assignments on a vault): what was added and removed
        change = "; ".join(_delta(k, was.get(k, []), isnow.get(k, [])) for k in differ)
    return f"{DRIFTED}: the target changed since the plan was made ({change})"


SHORT = 8  # entries of a state shown whole in a drift reason


def _brief(state: Mapping[str, list[str]], keys: Sequence[str]) -> str:
    return "; ".join(f"{k}: {', '.join(state[k])}" for k in keys if k in state) or "nothing"


def _delta(key: str, was: list[str], now: list[str]) -> str:
    added, removed = [v for v in now if v not in was], [v for v in was if v not in now]
    return f"{key}: added {', '.join(added) or 'nothing'}; removed {', '.join(removed) or 'nothing'}"


def switched_since(pinned: Action, snapshot: Snapshot) -> str | None:
    """Why a pinned switch of a vault's permission model must not be made: the vault already reads
    the mode it would switch to (switched since the plan was made), or None."""
    for change in pinned.changes:
        if not isinstance(change, VaultAuthorizationChange):
            continue
        vault = snapshot.vault(change.vault_id)
        if vault is not None and vault.enable_rbac_authorization == change.enable_rbac_authorization:
            mode = "Azure RBAC" if change.enable_rbac_authorization else "access policies"
            return (
                f"{DRIFTED}: the vault was switched to {mode} since the plan was made "
                f"(it reads enableRbacAuthorization={str(vault.enable_rbac_authorization).lower()} now)"
            )
    return None


def pin(
    pinned: Plan,
    fresh: Plan,
    snapshot: Snapshot | None = None,
    own: Mapping[str, tuple[Change, ...]] | None = None,
) -> Plan:
    """The pinned plan as it may be applied now: its actions, in its order, each compared with the
    action a fresh plan from a fresh read makes for the same change (same id: same fix, target,
    principal and changes). One that drifted, or that a rail now stops, is kept, marked skipped with
    the reason. With the fresh read (`snapshot`), a switch of a vault that was switched since is
    named as such (a fresh plan has no migration for it at all), and a migration is judged without
    the role assignments interrupted attempts of it created (`own`, by action id, from their step
    rows): the attempt that resumes it adopts them."""
    fresh_actions = (*fresh.actions, *fresh.deferred)
    by_id = {a.id: a for a in fresh_actions}
    by_subject = {_subject(a): a for a in fresh_actions}
    checked = []
    for action in pinned.actions:
        if action.skip_reason is not None:
            checked.append(action)
            continue
        # The same change, else the fresh plan's change for the same fix, target and principal: its
        # `before` is the target's state now, which says how it drifted.
        current = by_id.get(action.id) or by_subject.get(_subject(action))
        reason = switched_since(action, snapshot) if snapshot is not None else None
        now = current.before if current is not None else None
        left = (own or {}).get(action.id, ())
        if left and now is not None and snapshot is not None and is_migration(action):
            now = _without_own(action, snapshot, left) or now
        reason = reason or drift_reason(action, now)
        if reason is None and current is not None and current.id != action.id:
            reason = f"{DRIFTED}: a plan made now would make another change on this target"
        if reason is None and current is not None:
            reason = current.skip_reason  # a rail the state now calls for (e.g. the last manager)
        checked.append(action if reason is None else action.model_copy(update={"skip_reason": reason}))
    return pinned.model_copy(update={"actions": tuple(checked), "dry_run": fresh.dry_run})


def _without_own(action: Action, snapshot: Snapshot, own: tuple[Change, ...]) -> dict[str, list[str]] | None:
    """The migration's vault as the fresh read shows it, less what interrupted attempts of it created
    (None: the vault is not in the read)."""
    vault = snapshot.vault(action.target)
    if vault is None:
        return None
    return state_now(action.before, vault, snapshot.role_assignments, definitions(snapshot), own)


def covering_scope(plan: Plan) -> Scope | None:
    """The smallest Azure scope holding every Azure target of the plan (a vault, its resource group,
    the subscription), for the fresh read a stored plan is checked against; None when the plan has no
    Azure target or spans subscriptions."""
    parts = {
        (
            sub.lower(),
            (arm_name(a.target, "resourceGroups") or "").lower(),
            (arm_name(a.target, "vaults") or "").lower(),
        ): (
            sub,
            arm_name(a.target, "resourceGroups"),
            arm_name(a.target, "vaults"),
        )
        for a in (*plan.actions, *plan.deferred)
        if (sub := arm_name(a.target, "subscriptions")) is not None
    }
    if len({key[0] for key in parts}) != 1:
        return None
    sub, group, vault = next(iter(parts.values()))
    if len({key[1] for key in parts}) > 1 or group is None:
        return Scope(subscription_id=sub)
    if len({key[2] for key in parts}) > 1 or vault is None:
        return Scope(subscription_id=sub, resource_group=group)
    return Scope(subscription_id=sub, resource_group=group, vault_name=vault)


# Power Platform changes made in one environment (its flows, shares, roles, connection references).
_ENVIRONMENT_CHANGES = (
    ShareChange,
    FlowStateChange,
    SecurityRoleChange,
    FlowSecureDataChange,
    FlowConnectionChange,
    ConnectionReferenceChange,
)


def environments_of(plan: Plan) -> tuple[str, ...]:
    """The Power Platform environments the plan's changes are made in (shares, flows, roles, connection
    references, DLP policies): a stored plan is checked against a fresh read of them."""
    found: set[str] = set()
    for action in (*plan.actions, *plan.deferred):
        for change in action.changes:
            if isinstance(change, _ENVIRONMENT_CHANGES):
                found.add(change.environment)
            elif isinstance(change, DlpPolicyChange):
                found.update(change.environments)
    return tuple(sorted(e for e in found if e))


def remediations_of(plan: Plan) -> tuple[str, ...]:
    return tuple(sorted({a.remediation_id for a in (*plan.actions, *plan.deferred)}))


def _subject(action: Action) -> tuple[str, str, str]:
    return (action.remediation_id, action.target.lower(), (action.principal or "").lower())


def is_drifted(reason: str | None) -> bool:
    return reason is not None and reason.startswith(DRIFTED)


def undoes_left(action: Action) -> bool:
    """A reviewed migration skipped as drifted before the vault's lease (`pin`): the run still takes
    the lease for it, to roll back what interrupted attempts of it left (as under the lease)."""
    return is_migration(action) and is_drifted(action.skip_reason)
