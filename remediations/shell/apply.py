"""Apply a plan: every write under its vault's lease, audited `pending` before and with its outcome after.

`reconcile_dangling` settles writes whose outcome a crash left unknown by reading the target again.
A fix that writes in steps gets an `AuditedSteps`: each step audited on its own, as child rows.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from remediations.adapters.clients import Clients
from remediations.core.model import Action, Change, Outcome, Plan, RoleDefinition, Snapshot
from remediations.core.pinned import undoes_left
from remediations.core.registry import StepState, get_remediation
from remediations.core.request import RECONCILE_AFTER, WRITE_CONCURRENCY, Trigger
from remediations.shell.audit import AuditRecord, AuditSink, AuditState, steps_of
from remediations.shell.inventory import Progress, no_progress
from remediations.shell.pacing import TokenBucket, arm_write_pacer
from remediations.shell.reconcile import named_changes, reconcile, scopes
from remediations.shell.write_guard import PROCESS_LEASES, LeasedVault, VaultLeases


class RunContext(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    correlation_id: str
    trigger: Trigger
    ticket_id: str | None = None
    caller: str | None = None


def _audit(
    sink: AuditSink,
    context: RunContext,
    action: Action,
    *,
    sequence: int,
    state: AuditState,
    outcome: Outcome | None = None,
) -> None:
    sink.record(
        AuditRecord(
            correlation_id=context.correlation_id,
            action_id=action.id,
            sequence=sequence,
            state=state,
            remediation_id=action.remediation_id,
            target=action.target,
            principal=action.principal,
            before=outcome.before if outcome is not None and outcome.before else action.before,
            after=outcome.after if outcome is not None and outcome.after else action.after,
            reason=action.skip_reason or action.reason,
            error=outcome.error if outcome is not None else None,
            trigger=context.trigger,
            ticket_id=context.ticket_id,
            caller=context.caller,
        )
    )


class AuditedSteps:
    """The `StepLog` of one action: each step a child row of the action, intent before, result after."""

    def __init__(
        self, sink: AuditSink, context: RunContext, action: Action, inherited: tuple[Change, ...] = ()
    ) -> None:
        self._sink, self._context, self._action = sink, context, action
        self._inherited = inherited
        self._steps: dict[int, AuditRecord] = {}

    @property
    def inherited(self) -> tuple[Change, ...]:
        return self._inherited

    def begin(self, what: str, change: Change | None = None) -> int:
        step = len(self._steps) + 1
        action, context = self._action, self._context
        self._steps[step] = AuditRecord(
            correlation_id=context.correlation_id,
            action_id=action.id,
            sequence=0,
            state="pending",
            remediation_id=action.remediation_id,
            target=action.target,
            principal=action.principal,
            reason=what,
            trigger=context.trigger,
            ticket_id=context.ticket_id,
            caller=context.caller,
            step=step,
            changes=() if change is None else (change,),
        )
        self._sink.record(self._steps[step])
        return step

    def end(self, step: int, state: StepState, error: str | None = None) -> None:
        update = {"sequence": 1, "state": state, "error": error, "recorded_at": datetime.now(UTC)}
        self._sink.record(self._steps[step].model_copy(update=update))


def apply_plan(
    plan: Plan,
    clients: Clients,
    audit: AuditSink,
    context: RunContext,
    *,
    progress: Progress = no_progress,
    concurrency: int = WRITE_CONCURRENCY,
    pacer: TokenBucket | None = None,
    leases: VaultLeases = PROCESS_LEASES,
    pinned: bool = False,
    inherited: Mapping[str, tuple[Change, ...]] | None = None,
    roles: Mapping[str, RoleDefinition] | None = None,
) -> list[Outcome]:
    """Apply each action (never in a dry run). An audit failure stops the run before the next write.

    Vaults are worked on `concurrency` at a time; the actions on one vault run in plan order (their
    last-manager checks were simulated in that order). Every write takes a token from `pacer`
    (default: ARM's write bucket), so a large apply is paced instead of throttled. Outcomes come back
    in plan order. A target's writes are made under its lease (`leases`, keyed by the fix's
    `lease_key`: the target, or a DLP policy's display name), held once for all of them;
    under it the vault is read once (shell/write_guard.py `LeasedVault`): a change another run already
    made is not sent again, and the last-manager rail is judged on the vault as it is now. `pinned`:
    a reviewed plan; an access-policy entry that no longer shows the action's `before` under the
    lease is skipped as drifted. The access-policy writes are verified by one read of the vault
    after them, and their outcomes audited then. A migration to RBAC is judged there too, on the vault
    and the role assignments bearing on it, named with `roles` (the inventory's role definitions), and
    skipped as drifted when they no longer show its `before`. `inherited`: by action id, the changes an
    interrupted attempt of it left (reconcile), for its fix; for an action skipped as drifted (there,
    or a reviewed migration at the start of the run: its vault's lease is taken for it all the same),
    its fix undoes them under the lease (`undo_inherited`), each write audited as a step.
    """
    pacer = pacer if pacer is not None else arm_write_pacer()
    total = len(plan.actions) + len(plan.deferred)
    results: list[Outcome | None] = [None] * len(plan.actions)
    lock = threading.Lock()
    stop = threading.Event()
    raised: list[BaseException] = []
    done = 0

    def may_write(action: Action) -> bool:
        """Whether the action may write: not skipped, or skipped as drifted with leftovers to undo."""
        return action.skip_reason is None or (undoes_left(action) and bool((inherited or {}).get(action.id)))

    def undo_left(action: Action, settled: Outcome, left: tuple[Change, ...]) -> Outcome:
        """The skipped action's outcome once its fix has undone (each step audited, under the lease)
        what interrupted attempts of it left, or named what stays."""
        _audit(audit, context, action, sequence=0, state="pending")
        pacer.acquire(len(left))
        steps = AuditedSteps(audit, context, action, left)
        undone = get_remediation(action.remediation_id).undo_inherited(action, clients, steps)
        if undone is None:
            return still_left(settled, left)
        return settled.model_copy(
            update={
                "status": "failed" if undone.failed else settled.status,
                "error": f"{settled.error}; {undone.summary}",
                "after": {"steps": list(undone.steps)} if undone.steps else settled.after,
            }
        )

    def one(action: Action, vault: LeasedVault) -> tuple[Outcome, bool]:
        """The action's outcome, and whether it waits for the vault's verifying read (its outcome is
        audited then)."""
        left = (inherited or {}).get(action.id, ())
        if action.skip_reason is not None:
            outcome = Outcome(
                action_id=action.id, status="skipped", before=action.before, error=action.skip_reason
            )
            if left and not plan.dry_run and undoes_left(action):  # drifted before the lease, now held
                outcome = undo_left(action, outcome, left)
            elif left:  # not attempted: never silent
                outcome = still_left(outcome, left)
            _audit(audit, context, action, sequence=1, state=outcome.status, outcome=outcome)
            return outcome, False
        if plan.dry_run:
            dry = Outcome(
                action_id=action.id,
                status="skipped",
                before=action.before,
                after=action.after,
                error="dry run",
            )
            return dry, False
        settled = vault.settle(action, left)
        if settled is not None:
            if left and settled.status == "skipped":  # drifted: the fix undoes what it may of what is left
                settled = undo_left(action, settled, left)
            elif left and settled.status == "failed":  # not adopted after all: never silent
                settled = still_left(settled, left)
            _audit(audit, context, action, sequence=1, state=settled.status, outcome=settled)
            return settled, False
        _audit(audit, context, action, sequence=0, state="pending")
        pacer.acquire(max(1, len(action.changes)))
        steps = AuditedSteps(audit, context, action, left)
        outcome = get_remediation(action.remediation_id).apply_in_steps(action, clients, steps)
        if vault.wrote(action, outcome):
            return outcome, True
        _audit(audit, context, action, sequence=1, state=outcome.status, outcome=outcome)
        return outcome, False

    def work(indices: list[int]) -> None:
        nonlocal done
        if stop.is_set():
            return
        first = plan.actions[indices[0]]
        target = first.target
        writes = not plan.dry_run and any(may_write(plan.actions[i]) for i in indices)
        # One lease for all of the target's actions, so one read under it judges them all.
        lease = get_remediation(first.remediation_id).lease_key(first)
        with leases.hold(lease) if writes else contextlib.nullcontext():
            vault = LeasedVault(target, clients, pinned=pinned, roles=roles)
            waiting: dict[int, Outcome] = {}  # written; audited once the read after the writes says
            try:
                for index in indices:
                    if stop.is_set():
                        break
                    outcome, waits = one(plan.actions[index], vault)
                    results[index] = outcome
                    if waits:
                        waiting[index] = outcome
                    with lock:
                        done += 1
                        current = done
                    progress("apply", current, total)
                verified = vault.verify()
                for index, sent in waiting.items():
                    action = plan.actions[index]
                    outcome = results[index] = verified.get(action.id, sent)
                    _audit(audit, context, action, sequence=1, state=outcome.status, outcome=outcome)
            except BaseException as error:  # noqa: BLE001 - re-raised below; an audit failure stops new writes
                with lock:
                    raised.append(error)
                stop.set()

    by_target: dict[tuple[str, str], list[int]] = {}  # by lease key and target
    for index, action in enumerate(plan.actions):
        key = get_remediation(action.remediation_id).lease_key(action).lower()
        by_target.setdefault((key, action.target.lower()), []).append(index)
    groups = list(by_target.values())
    workers = max(1, min(concurrency, len(groups)))
    if workers == 1 or plan.dry_run:
        for indices in groups:
            work(indices)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(work, groups))
    if raised:
        raise raised[0]
    outcomes = [o for o in results if o is not None]
    for action in plan.deferred:
        outcome = Outcome(
            action_id=action.id,
            status="deferred",
            before=action.before,
            error="over the cap of actions per run; planned again next run",
        )
        if not plan.dry_run:
            _audit(audit, context, action, sequence=1, state="deferred", outcome=outcome)
        outcomes.append(outcome)
    return outcomes


def still_left(outcome: Outcome, left: tuple[Change, ...]) -> Outcome:
    """The outcome naming what interrupted attempts of its action left in place and nobody undid."""
    why = f"left in place by an interrupted attempt: {named_changes(left)}"
    return outcome.model_copy(update={"error": f"{outcome.error}; {why}"})


@dataclass(frozen=True)
class Interrupted:
    """The writes earlier runs left `pending` in a run's scope and their actions' step rows, read once:
    a reviewed plan is checked with them (what their steps created is not drift), then reconciled."""

    dangling: list[AuditRecord]
    steps: dict[tuple[str, str], list[AuditRecord]]


def read_interrupted(
    snapshot: Snapshot,
    audit: AuditSink,
    *,
    older_than: timedelta = RECONCILE_AFTER,
    power_platform: bool = True,
) -> Interrupted:
    """The pending rows older than `older_than` in the snapshot's scope (`scopes`), with their steps."""
    dangling = audit.dangling(datetime.now(UTC) - older_than, scopes(snapshot, power_platform=power_platform))
    return Interrupted(dangling, steps_of(audit, dangling))  # each run's partition read once


def reconcile_dangling(
    snapshot: Snapshot,
    plan: Plan,
    audit: AuditSink,
    context: RunContext,
    *,
    older_than: timedelta = RECONCILE_AFTER,
    complete_for: Collection[str] | None = None,
    power_platform: bool = True,
    interrupted: Interrupted | None = None,
) -> list[AuditRecord]:
    """Record the truth for writes an earlier run left `pending` (crash, kill, timeout) in this scope
    and, with `power_platform`, in the Power Platform environments the snapshot read (False: a sweep's
    vault message, whose environment messages settle those).

    Runs after inventory and planning (the snapshot is the re-read), before this run writes anything.
    The rows go into the interrupted run's partition. A dry run returns them without recording them
    (a dry run writes no audit rows): it reports what a real run would settle. `interrupted`: those
    rows as read already (`read_interrupted`, for a reviewed plan's check), else read here.
    """
    if interrupted is None:
        interrupted = read_interrupted(snapshot, audit, older_than=older_than, power_platform=power_platform)
    planned = {a.id for a in (*plan.actions, *plan.deferred)}
    rows = reconcile(
        interrupted.dangling,
        snapshot,
        planned,
        context.correlation_id,
        complete_for=complete_for,
        steps=interrupted.steps,
        attempted={a.id for a in plan.writes},
        deferred={a.id for a in plan.deferred},
        undone={a.id for a in plan.actions if undoes_left(a)},
    )
    if not plan.dry_run:
        for row in rows:
            # An action's `changes` (what its interrupted steps left) are for this run's new attempt;
            # the step rows already record each one, and a long list would not fit a table property.
            audit.record(row if row.step is not None else row.model_copy(update={"changes": ()}))
    return rows
