"""Planning, pure: the actions every selected remediation plans for a snapshot's findings (or for the
targets a request names), de-duplicated, in a stable order, covered removals skipped, capped."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

from remediations.core.flow_allow_list import effective_policy
from remediations.core.model import AccessPolicyChange, Action, Finding, Plan, Snapshot, stable_id
from remediations.core.policy import Policy
from remediations.core.registry import all_remediations
from remediations.core.request import Targets


def build_plan(
    findings: list[Finding],
    snapshot: Snapshot,
    policy: Policy,
    *,
    remediation_ids: Collection[str] | None = None,
    dry_run: bool | None = None,
    targets: Targets | None = None,
) -> Plan:
    """Pure: actions from every remediation, de-duplicated, in a stable order, capped per run.

    `targets` (a ticket's named secrets, an alert's vault): each selected remediation's
    `plan_for_targets` actions come first; a remediation that `plans_targets` then plans nothing else.
    Each remediation's `unchecked` actions (what a failed read kept it from checking) are added as
    skipped actions, so a blind spot shows in the plan."""
    policy = effective_policy(policy, snapshot)  # the same derived allow-lists `detect` used
    selected = [
        r
        for r in all_remediations()
        if (r.selected_by_default(policy) if remediation_ids is None else r.id in remediation_ids)
    ]
    actions: dict[str, Action] = {}
    if targets is not None:
        for remediation in selected:
            for action in remediation.plan_for_targets(snapshot, targets, policy):
                actions.setdefault(action.id, action)
    for remediation in selected:
        if targets is not None and remediation.plans_targets:
            continue
        for action in remediation.unchecked(snapshot, policy):
            actions.setdefault(action.id, action)
        mine = [f for f in findings if f.detector_id in remediation.handles]
        if not mine:
            continue
        for action in remediation.plan(snapshot, mine, policy):
            actions.setdefault(action.id, action)
    return assemble_plan(
        actions.values(),
        policy,
        created_at=snapshot.taken_at,
        dry_run=policy.dry_run if dry_run is None else dry_run,
    )


def assemble_plan(actions: Iterable[Action], policy: Policy, *, created_at: datetime, dry_run: bool) -> Plan:
    """Pure: the planned actions in a stable order, a removal another one covers skipped, the writes
    over the policy's cap deferred."""
    ordered = _without_subsumed(
        sorted(actions, key=lambda a: (a.target.lower(), a.principal or "", a.remediation_id))
    )
    kept: list[Action] = []
    deferred: list[Action] = []
    writes = 0
    for action in ordered:
        if action.skip_reason is None:
            if writes >= policy.max_actions_per_run:
                deferred.append(action)
                continue
            writes += 1
        kept.append(action)
    return Plan(
        id=stable_id("plan", [a.id for a in kept], [a.id for a in deferred]),
        actions=tuple(kept),
        deferred=tuple(deferred),
        created_at=created_at,
        dry_run=dry_run,
    )


def limit_writes(plan: Plan, granted: int) -> Plan:
    """Pure: keep the first `granted` writes (plan order); defer the rest. Skipped actions stay."""
    writes = [a for a in plan.actions if a.skip_reason is None]
    if len(writes) <= granted:
        return plan
    allowed = {a.id for a in writes[: max(granted, 0)]}
    kept = tuple(a for a in plan.actions if a.skip_reason is not None or a.id in allowed)
    deferred = tuple(a for a in writes if a.id not in allowed) + plan.deferred
    return plan.model_copy(
        update={
            "id": stable_id("plan", [a.id for a in kept], [a.id for a in deferred]),
            "actions": kept,
            "deferred": deferred,
        }
    )


def _removals(action: Action) -> dict[tuple[str, str, str], set[str]] | None:
    """Access-policy removals of an action, per entry, as lower-cased `kind:permission`; None when the
    action makes any other kind of change (then it is never counted as subsumed)."""
    out: dict[tuple[str, str, str], set[str]] = {}
    for change in action.changes:
        if not isinstance(change, AccessPolicyChange) or change.operation != "remove":
            return None
        key = (action.target.lower(), change.object_id.lower(), (change.application_id or "").lower())
        out.setdefault(key, set()).update(
            f"{kind}:{p.lower()}" for kind, perms in change.permissions.as_dict().items() for p in perms
        )
    return out or None


def _without_subsumed(ordered: list[Action]) -> list[Action]:
    """Two remediations may remove from the same access-policy entry (an orphan holding `list`: one
    removes `list`, the other the whole entry). The smaller removal is kept in the plan as skipped,
    naming the action that covers it, so one write is made per entry and nothing is silently dropped."""
    # Only writes removing from exactly the same entries can cover each other: bucket them by those
    # entries (in plan order) so each action is compared with its few peers, not with every write.
    writes: dict[frozenset[tuple[str, str, str]], list[tuple[Action, dict[tuple[str, str, str], set[str]]]]]
    writes = {}
    for write in ordered:
        removals = _removals(write) if write.skip_reason is None else None
        if removals is not None:
            writes.setdefault(frozenset(removals), []).append((write, removals))
    out: list[Action] = []
    for action in ordered:
        mine = _removals(action) if action.skip_reason is None else None
        cover = None
        if mine is not None:
            cover = next(
                (
                    other
                    for other, theirs in writes[frozenset(mine)]
                    if other.id != action.id
                    and all(mine[k] <= theirs[k] for k in mine)
                    and (any(mine[k] < theirs[k] for k in mine) or other.id < action.id)
                ),
                None,
            )
        reason = f"covered by {cover.remediation_id} ({cover.id}), which removes more" if cover else None
        out.append(action.model_copy(update={"skip_reason": reason}) if reason else action)
    return out
