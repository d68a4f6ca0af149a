"""The one run pipeline: inventory -> detect -> plan -> reconcile -> apply, for every caller.

The timer's queue worker (vault and environment messages), tickets, alerts, the CLI (`plan`, `apply`),
`make bench` and the reliability tests all describe their run as a `RunRequest`
(remediations/core/request.py) and call `run`. Detection and planning are pure; reading and writing go
through `Clients`, and every write is audited `pending` before and with its outcome after.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

from pydantic import BaseModel, ConfigDict, Field

from remediations.adapters.clients import Clients
from remediations.core.closure import Closure, PathClosed, PathLeft, unaccepted
from remediations.core.detect import VaultFindings, detect, detector_ids_on, own_list_notes
from remediations.core.model import (
    Finding,
    InventoryError,
    Outcome,
    Plan,
    PowerPlatformScope,
    Scope,
    Snapshot,
)
from remediations.core.pinned import pin
from remediations.core.planning import build_plan, limit_writes
from remediations.core.policy import Policy
from remediations.core.rbac import definitions
from remediations.core.registry import get_remediation, remediation_ids
from remediations.core.request import EVENT_DRIVEN, RunRequest
from remediations.core.vault_bound import bound_to_vault
from remediations.ports import VaultPage
from remediations.shell.apply import (
    Interrupted,
    RunContext,
    apply_plan,
    read_interrupted,
    reconcile_dangling,
)
from remediations.shell.audit import AuditRecord, AuditSink
from remediations.shell.closure import verify_closure
from remediations.shell.collector import collector_paused
from remediations.shell.inventory import Progress, inventory, inventory_power_platform_only
from remediations.shell.page_detection import PageDetection
from remediations.shell.pp_inventory import PowerPlatformInventory, inventory_powerplatform
from remediations.shell.read_once import ReadOnce
from remediations.shell.reconcile import created_in_place, left_by_interrupted
from remediations.shell.secret_inventory import (
    DeepInventory,
    SecretInventoryStore,
    StoredJoin,
    stored_for,
)
from remediations.shell.write_guard import PROCESS_LEASES, VaultLeases

# A write budget shared beyond one run (a sweep's, a ticket's over its scopes): asked for n writes,
# grants how many may be made.
Budget = Callable[[int], int]

# Power Platform inventories read for a sweep's vault workers in this process, by (sweep, scope).
SWEEP_POWER_PLATFORM: ReadOnce[PowerPlatformInventory] = ReadOnce(
    ttl_s=1800.0, size=4, keep=lambda read: not read.errors
)


def _noop_progress(stage: str, done: int, total: int) -> None:
    return None


class RunResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    correlation_id: str
    scope: Scope
    findings: tuple[Finding, ...]
    plan: Plan
    outcomes: tuple[Outcome, ...]
    inventory_errors: tuple[InventoryError, ...]
    reconciled: tuple[AuditRecord, ...] = ()
    # After writes on a scope with flows: the person -> flow -> secret paths a fresh read still has,
    # each with its reason (None: not verified, nothing was written or no flow was read).
    paths_left: tuple[PathLeft, ...] | None = None
    # The chains the graph still has that no longer reach their secret (a turned-off flow its editor
    # cannot turn on again), each with why; reported, never failures.
    paths_closed: tuple[PathClosed, ...] | None = None
    # False for a run about one vault (alert, event): it may not make the environment-wide changes
    # that close most paths, so its paths left are reported, not failures (the sweep or a ticket
    # closes them; failing would only make Event Grid or the alert's sender retry the same run).
    closure_required: bool = True
    # What the run noticed and deliberately left alone, for the caller's notes (information, no failure).
    notes: tuple[str, ...] = ()
    # Kept for the caller's report; never serialised with the result (it holds the whole inventory).
    snapshot: Snapshot | None = Field(default=None, exclude=True, repr=False)
    # Wall and CPU seconds of each stage (inventory, detect, plan, reconcile, apply), for `make bench`.
    stage_seconds: dict[str, float] = Field(default_factory=dict, exclude=True)
    stage_cpu_seconds: dict[str, float] = Field(default_factory=dict, exclude=True)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failures(self) -> int:
        """Failed writes plus failed reads that stopped the run: a run with any is not a success.
        A path left after apply that the policy does not accept is one too.
        A partial read failure (a refused secret list) is not one: its dependants are skipped actions
        in the plan, and it is counted in `read_errors`."""
        return (
            self.count("failed")
            + sum(1 for e in self.inventory_errors if not e.partial)
            + len(self.unaccepted_paths)
        )

    @property
    def unaccepted_paths(self) -> list[PathLeft]:
        """Paths left that no policy reason accepts: each one is a failure of a run that had to close it."""
        return unaccepted(list(self.paths_left or ())) if self.closure_required else []

    @property
    def closure_paths(self) -> tuple[PathLeft | PathClosed, ...]:
        """What the closure check found, as a run reports it: the paths left, then those closed."""
        return (*(self.paths_left or ()), *(self.paths_closed or ()))

    @property
    def read_errors(self) -> int:
        """Every failed read, partial or not."""
        return len(self.inventory_errors)


def selected_remediations(request: RunRequest, policy: Policy | None = None) -> list[str] | None:
    """The remediation ids the run plans (None: every registered one selected by default), within the
    request's part. A part names its platform's fixes, not a choice of fixes: with a `policy`, the opt-in
    ones it does not ask for (`selected_by_default`) stay out, as they do for a run naming none."""
    if request.part == "all":
        return None if request.remediations is None else list(request.remediations)
    power_platform = request.part == "power_platform"
    if request.remediations is not None:
        wanted = list(request.remediations)
    else:
        wanted = [
            r for r in remediation_ids() if policy is None or get_remediation(r).selected_by_default(policy)
        ]
    return [r for r in wanted if get_remediation(r).power_platform == power_platform]


def complete_for(request: RunRequest) -> frozenset[str] | None:
    """The remediations whose every action over the scope this run plans (None: all of them), so
    reconcile may read "not planned" as "no longer wanted" for their rows: those the request selects
    within its part (a sweep's environment message: every Power Platform fix), none when it narrows
    the findings (principals, targets, severity)."""
    if request.principals is not None or request.targets is not None or request.min_severity is not None:
        return frozenset()
    selected = selected_remediations(request)
    return None if selected is None else frozenset(selected)


def lists_secrets(request: RunRequest, selected: list[str] | None = None) -> bool:
    """Whether the inventory lists secret metadata: when a selected remediation plans from it. A
    remediation that plans for named targets needs it only when the request names some."""
    if request.include_secrets is not None:
        return request.include_secrets
    targets = request.targets
    named = targets is not None and bool(targets.secrets or targets.exposed_vaults)
    for rid in remediation_ids() if selected is None else selected:
        remediation = get_remediation(rid)
        if remediation.needs_secret_metadata and (targets is None or not remediation.plans_targets or named):
            return True
    return False


def _shared_power_platform(
    sweep_id: str, pp_scope: PowerPlatformScope, clients: Clients
) -> Callable[[], PowerPlatformInventory]:
    key = (sweep_id, pp_scope.model_dump_json())
    return lambda: SWEEP_POWER_PLATFORM.get(key, lambda: inventory_powerplatform(pp_scope, clients))


def _read(
    request: RunRequest,
    selected: list[str] | None,
    clients: Clients,
    progress: Progress,
    store: SecretInventoryStore | None = None,
    pages: PageDetection | None = None,
) -> Snapshot:
    """The run's snapshot. `pages`: detect on each vault page of a stored-inventory read as it arrives."""
    pp_scope = request.power_platform
    if request.scope is None:
        if pp_scope is None or pp_scope.empty:
            raise ValueError("a run needs an Azure scope or Power Platform environments to read")
        return inventory_power_platform_only(pp_scope, clients, progress=progress)
    scope: Scope = request.scope
    shared = (
        _shared_power_platform(request.sweep_id, pp_scope, clients)
        if request.sweep_id and pp_scope is not None and not pp_scope.empty
        else None
    )
    wanted = lists_secrets(request, selected)
    stored = wanted and store is not None and request.secrets_from == "store"
    deep = DeepInventory(store) if wanted and store is not None and not stored else None

    def read(on_vault_page: VaultPage | None = None, beside: Callable[[], None] | None = None) -> Snapshot:
        return inventory(
            scope,
            clients,
            progress=progress,
            include_secrets=wanted and not stored,
            pp_scope=pp_scope,
            concurrency=request.read_concurrency,
            keep_secrets=request.keep_secrets,
            power_platform=shared,
            on_listed=deep.listed if deep is not None else None,
            on_vault_page=on_vault_page,
            taken_at=pages.taken_at if pages is not None else None,
            beside=beside,
        )

    if stored and store is not None:
        # The stored inventory does not depend on the vault list: both reads run side by side, and each
        # vault page is joined with it as it arrives.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="stored-secrets") as pool:
            join = StoredJoin(
                lambda: stored_for(scope, store, with_lists=request.keep_secrets),
                pool,
                keep_secrets=request.keep_secrets,
                on_joined=pages.page if pages is not None else None,
            )
            return join.snapshot(read(join.page, beside=join.start))
    snapshot = read()
    if deep is not None:
        deep.refused(snapshot)
    return snapshot


def _findings(
    request: RunRequest, snapshot: Snapshot, policy: Policy, early: VaultFindings | None = None
) -> list[Finding]:
    power_platform = detector_ids_on("power_platform")
    if request.part == "power_platform":
        findings = detect(snapshot, policy, only=set(power_platform))
    else:
        findings = detect(snapshot, policy, early=early)
    if request.part == "key_vault":  # the environment messages of the same sweep own these, once
        findings = [f for f in findings if f.detector_id not in power_platform]
    if request.principals is not None:
        wanted = {p.lower() for p in request.principals}
        findings = [f for f in findings if (f.principal or "").lower() in wanted]
    if request.min_severity is not None:
        from remediations.report.model import at_least  # noqa: PLC0415 - the report's severity order

        findings = at_least(findings, request.min_severity)
    return findings


def _reads_lists_only(request: RunRequest) -> bool:
    """A quick run over Azure: paged lists and the stored inventory, no call per vault or flow."""
    pp = request.power_platform
    return request.scope is not None and request.secrets_from == "store" and (pp is None or pp.empty)


class _Stages:
    """Wall and CPU time of each stage, in order."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def done(self, stage: str) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        self.wall[stage], self.cpu[stage] = wall - self._wall, cpu - self._cpu
        self._wall, self._cpu = wall, cpu


def run(
    request: RunRequest,
    policy: Policy,
    clients: Clients,
    audit: AuditSink,
    *,
    budget: Budget | None = None,
    progress: Progress = _noop_progress,
    snapshot: Snapshot | None = None,
    secret_store: SecretInventoryStore | None = None,
    leases: VaultLeases = PROCESS_LEASES,
    pinned: Plan | None = None,
) -> RunResult:
    """One pass over the request's scope. A dry run (default: the policy's `dryRun`) writes nothing,
    audit included. `budget` is asked for the plan's writes between planning and applying, so a shared
    cap is spent only on writes that will be made. `snapshot`: a stored inventory instead of reading.
    `secret_store`: the last deep secret inventory per vault, read from (`request.secrets_from`
    "store") or saved to (a run that lists secrets).

    Writes an earlier run left pending for longer than `request.reconcile_after` are reconciled before
    this run writes (reported, not recorded, in a dry run); a plan filtered for a row's remediation
    (named remediations, principals, one part, targets; `complete_for`) cannot say "no longer planned",
    so a row is judged then only from its re-read (in place, gone, an access-policy entry back at its
    `before`), never as not made by this run.

    `pinned`: a reviewed plan to apply instead of the plan this run makes. The run still reads and
    plans, but only to compare: each pinned action whose target no longer shows the state it was
    planned from is skipped as drifted (core/pinned.py); nothing else is written.
    """
    context = RunContext(
        correlation_id=request.correlation_id,
        trigger=request.trigger,
        ticket_id=request.ticket_id,
        caller=request.caller,
    )
    stages = _Stages()
    selected = selected_remediations(request, policy)
    # Detecting and planning, and a read of lists only, allocate the run's whole snapshot at once: the
    # cyclic collector is paused meanwhile (shell/collector.py), as it rescans those objects without
    # end. Not during a read of thousands of calls (secret lists, Power Platform): their clients'
    # cyclic garbage would pile up for its whole length.
    with ExitStack() as paused:
        lists_only = snapshot is None and _reads_lists_only(request)
        # A lists-only read detects per vault on each page as it arrives (shell/page_detection.py).
        pages = (
            PageDetection(request.scope, policy, clients.own_object_id())
            if lists_only and request.scope is not None
            else None
        )
        if lists_only:
            paused.enter_context(collector_paused())
        if snapshot is None:
            snapshot = _read(request, selected, clients, progress, secret_store, pages)
        stages.done("inventory")
        if not lists_only:
            paused.enter_context(collector_paused())
        findings = _findings(request, snapshot, policy, pages.found if pages is not None else None)
        stages.done("detect")
        plan = build_plan(
            findings,
            snapshot,
            policy,
            remediation_ids=selected,
            dry_run=request.dry_run,
            targets=request.targets,
        )
        # A run about one vault plans only on that vault and the flows and connections that use it; an
        # alert's or event's run never makes an environment-wide change.
        if request.scope is not None:
            findings, plan = bound_to_vault(
                request.scope, snapshot, findings, plan, environment_wide=request.trigger not in EVENT_DRIVEN
            )
        interrupted: Interrupted | None = None
        if pinned is not None:
            # What interrupted attempts of a reviewed migration created is not drift: read them first.
            if request.reconcile and request.stop_after == "apply":
                interrupted = read_interrupted(
                    snapshot,
                    audit,
                    older_than=request.reconcile_after,
                    power_platform=request.part != "key_vault",
                )
            own = created_in_place(interrupted.steps, snapshot) if interrupted is not None else None
            plan = pin(pinned, plan, snapshot, own)
        if budget is not None and not plan.dry_run and plan.writes:
            plan = limit_writes(plan, budget(len(plan.writes)))
        stages.done("plan")
    reconciled: list[AuditRecord] = []
    outcomes: list[Outcome] = []
    verified: Closure | None = None
    if request.stop_after == "apply":
        if request.reconcile:
            reconciled = reconcile_dangling(
                snapshot,
                plan,
                audit,
                context,
                older_than=request.reconcile_after,
                complete_for=complete_for(request),
                power_platform=request.part != "key_vault",
                interrupted=interrupted,
            )
        stages.done("reconcile")
        outcomes = apply_plan(
            plan,
            clients,
            audit,
            context,
            progress=progress,
            concurrency=request.write_concurrency,
            leases=leases,
            pinned=pinned is not None,
            inherited=left_by_interrupted(reconciled),
            roles=definitions(snapshot),
        )
        stages.done("apply")
        if request.part == "all":  # a sweep's vault and environment messages each see half the fix
            fresh = request.model_copy(update={"sweep_id": None, "include_secrets": True})
            reread = lambda: _read(fresh, selected, clients, progress)  # noqa: E731 - read only if needed
            verified = verify_closure(snapshot, outcomes, policy, reread, clients.own_object_id)
        stages.done("verify")
    return RunResult(
        correlation_id=context.correlation_id,
        scope=snapshot.scope,
        findings=tuple(findings),
        plan=plan,
        outcomes=tuple(outcomes),
        inventory_errors=snapshot.errors,
        reconciled=tuple(reconciled),
        paths_left=None if verified is None else verified.left,
        paths_closed=None if verified is None else verified.closed,
        closure_required=request.trigger not in EVENT_DRIVEN,
        notes=tuple(own_list_notes(snapshot, policy)),
        snapshot=snapshot,
        stage_seconds=stages.wall,
        stage_cpu_seconds=stages.cpu,
    )
