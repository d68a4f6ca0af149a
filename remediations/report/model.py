"""The report's typed data (`ReportData`) and the pure builder that assembles it from a run.

Everything a renderer needs is here, already ordered (findings by severity) and counted, so the
markdown, HTML, JSON and SARIF renderers are plain functions over one value. No field can hold a
secret value: the inputs (Finding, Action, Outcome, AuditRecord, Snapshot) have none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

import remediations
from remediations.core.closure import FlowPath, PathClosed, PathLeft
from remediations.core.detect import DEFAULT_HELP, detector_info
from remediations.core.evidence import Evidence, FlowStepEvidence
from remediations.core.model import (
    SEVERITIES,
    Action,
    Finding,
    InventoryError,
    Outcome,
    Plan,
    Severity,
    Snapshot,
    severity_rank,
)
from remediations.report.graph_view import (
    GraphView,
    compare,
    display_names,
    graph_view,
    label_of,
    name_in,
    readable_pairs,
)
from remediations.report.simulate import simulate
from remediations.shell.audit import AuditRecord

OUTCOME_STATES = ("applied", "noop", "failed", "skipped", "deferred")

AfterSource = Literal["re-read after apply", "applied outcomes", "planned (dry run)"]


def at_least(findings: Iterable[Finding], minimum: Severity | None) -> list[Finding]:
    """Findings at or above `minimum` (all when None)."""
    if minimum is None:
        return list(findings)
    limit = severity_rank(minimum)
    return [f for f in findings if severity_rank(f.severity) <= limit]


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(
        findings, key=lambda f: (severity_rank(f.severity), f.detector_id, f.resource_id.lower(), f.id)
    )


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ActionCounts(_Frozen):
    planned: int = 0  # writes in the plan (not skipped by the planner, not deferred)
    applied: int = 0
    noop: int = 0
    failed: int = 0
    skipped: int = 0
    deferred: int = 0


class Summary(_Frozen):
    findings_by_severity: dict[str, int]  # every severity, most severe first
    actions: ActionCounts
    api_calls: dict[str, int] = Field(default_factory=dict)  # service -> calls, when the caller counted
    duration_seconds: float | None = None
    exposure_before: int | None = None  # (person, secret) pairs readable through a flow
    exposure_after: int | None = None
    # Vaults whose secret list could not be read: their read paths are unknown, not zero.
    exposure_unknown: tuple[str, ...] = ()
    inventory_errors: int = 0

    @property
    def total_findings(self) -> int:
        return sum(self.findings_by_severity.values())


class AttackReplay(_Frozen):
    """The seed attack replayed before and after the fix: secret names only, never values."""

    attacker: str
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    note: str = ""


class PathLeftRow(_Frozen):
    """One person -> flow -> secret path a fresh read after apply still has (core/closure.py), labelled."""

    person: str
    flow: str
    secret: str
    via: str
    reason: str | None  # None: nothing accepts it, the run failed to close it

    @property
    def why(self) -> str:
        return self.reason or "not accepted by the policy (a failure of the run)"


class PathClosedRow(_Frozen):
    """One person -> flow -> secret chain a fresh read after apply still shows that no longer reaches the
    secret (core/closure.py), labelled, with why it is closed."""

    person: str
    flow: str
    secret: str
    via: str
    why: str


def _path_labels(path: FlowPath, snapshot: Snapshot | None) -> dict[str, str]:
    """Names first, as the rest of the report: the person's and the secret's labels, the flow's name."""
    return {
        "person": label_of(snapshot, f"principal:{path.person.lower()}"),
        "flow": path.flow_name or label_of(snapshot, f"flow:{path.flow}"),
        "secret": label_of(snapshot, path.secret),
        "via": path.via,
    }


def _path_rows(paths: Sequence[PathLeft], snapshot: Snapshot | None) -> tuple[PathLeftRow, ...]:
    rows = {PathLeftRow(**_path_labels(p, snapshot), reason=p.reason) for p in paths}
    return tuple(sorted(rows, key=lambda r: (r.reason is not None, r.person, r.flow, r.secret)))


def _closed_rows(paths: Sequence[PathClosed], snapshot: Snapshot | None) -> tuple[PathClosedRow, ...]:
    rows = {PathClosedRow(**_path_labels(p, snapshot), why=p.why) for p in paths}
    return tuple(sorted(rows, key=lambda r: (r.person, r.flow, r.secret)))


class RuleInfo(_Frozen):
    id: str
    description: str
    help_uri: str
    # The detector's registered severity (SARIF `defaultConfiguration.level`); its findings may be higher.
    default_severity: Severity
    # The most severe finding of this rule in the report (SARIF `security-severity`, which code scanning
    # reads from the rule only: a raised finding must not show as the rule's default).
    severity: Severity
    detail: str = ""  # a longer "what to do", when we have one
    informational: bool = False  # every finding of the rule is informational (evidence `informational`)


def evidence_of(finding: Finding) -> Evidence | None:
    """The finding's typed evidence, or None for a detector this version does not register (the report
    still lists its findings, by id, with no more than the finding itself says)."""
    return Evidence.of(finding) if detector_info(finding.detector_id) is not None else None


def is_informational(finding: Finding) -> bool:
    """A finding that records good practice (e.g. a secured Get secret): shown, never a failure."""
    evidence = evidence_of(finding)
    return isinstance(evidence, FlowStepEvidence) and evidence.informational is True


class ReportData(_Frozen):
    title: str
    generated_at: datetime
    scope: str
    run_id: str | None = None
    dry_run: bool = True
    tool_version: str = remediations.__version__
    summary: Summary
    findings: tuple[Finding, ...] = ()  # most severe first
    rules: tuple[RuleInfo, ...] = ()
    actions: tuple[Action, ...] = ()
    deferred: tuple[Action, ...] = ()
    outcomes: tuple[Outcome, ...] = ()
    graph_before: GraphView | None = None
    graph_after: GraphView | None = None  # every node of both; edges marked kept/narrowed/removed/added
    graph_after_source: AfterSource | None = None
    audit: tuple[AuditRecord, ...] = ()  # an excerpt: the first `audit_limit` rows of the run
    audit_total: int = 0
    attack_replay: AttackReplay | None = None
    inventory_errors: tuple[InventoryError, ...] = ()
    paths_left: tuple[PathLeftRow, ...] | None = None  # None: closure was not verified for this report
    paths_closed: tuple[PathClosedRow, ...] | None = None  # the chains closure found closed, with why
    # Raw id (lower case) -> display name: tables show names first and keep the id for hover.
    names: dict[str, str] = Field(default_factory=dict)

    def name_of(self, raw_id: str | None) -> str | None:
        """The display name of an object id, flow, connection, environment or vault id; None if unknown."""
        return name_in(self.names, raw_id)

    def outcome_for(self, action_id: str) -> Outcome | None:
        for outcome in self.outcomes:
            if outcome.action_id == action_id:
                return outcome
        return None


def _rules(findings: Sequence[Finding]) -> tuple[RuleInfo, ...]:
    worst: dict[str, Severity] = {}
    failing: set[str] = set()
    for finding in findings:
        current = worst.get(finding.detector_id)
        if current is None or severity_rank(finding.severity) < severity_rank(current):
            worst[finding.detector_id] = finding.severity
        if not is_informational(finding):
            failing.add(finding.detector_id)
    return tuple(
        RuleInfo(
            id=rule_id,
            description=info.title if info else rule_id.replace("_", " ").capitalize(),
            help_uri=info.help_url if info else DEFAULT_HELP,
            default_severity=info.severity if info else severity,
            severity=severity,
            detail=info.detail if info else "",
            informational=rule_id not in failing,
        )
        for rule_id, severity in sorted(worst.items())
        for info in [detector_info(rule_id)]
    )


def _counts(plan: Plan | None, outcomes: Sequence[Outcome]) -> ActionCounts:
    by_status = Counter(o.status for o in outcomes)
    planned = len(plan.writes) if plan is not None else 0
    skipped = by_status["skipped"]
    if not outcomes and plan is not None:  # planned only: the planner's own skips still count
        skipped = len(plan.actions) - len(plan.writes)
    return ActionCounts(
        planned=planned,
        applied=by_status["applied"],
        noop=by_status["noop"],
        failed=by_status["failed"],
        skipped=skipped,
        deferred=by_status["deferred"] if outcomes else (len(plan.deferred) if plan is not None else 0),
    )


def unlisted_vaults(snapshot: Snapshot) -> dict[str, str]:
    """Vault name (lower case) -> `unknown: cannot list secrets in kv-x (HTTP 403)` for each vault whose
    secret list was refused or failed: the graph has none of its secrets, so "0 read paths" would claim
    what nobody checked. A refusal that says what is missing adds `; grant ...` (core/list_grants.py)."""
    names = {v.id.lower(): v.name for v in snapshot.vaults}
    return {
        names[e.resource_id.lower()].lower(): (
            f"unknown: cannot list secrets in {names[e.resource_id.lower()]} ({e.label}){e.remedy_note}"
        )
        for e in sorted(snapshot.errors, key=lambda e: e.resource_id)
        if e.operation == "list secrets" and e.resource_id.lower() in names
    }


def _distinct(findings: Sequence[Finding]) -> list[Finding]:
    """One finding per id: runs that cover overlapping scopes (a sweep's vault and environment messages,
    a ticket after a sweep) report the same finding more than once, and a report must count it once."""
    return list({f.id: f for f in reversed(findings)}.values())[::-1]


def build_report(
    *,
    findings: Sequence[Finding],
    snapshot: Snapshot | None = None,
    plan: Plan | None = None,
    outcomes: Sequence[Outcome] = (),
    audit: Sequence[AuditRecord] = (),
    snapshot_after: Snapshot | None = None,
    title: str = "vaultguard report",
    scope: str | None = None,
    run_id: str | None = None,
    generated_at: datetime | None = None,
    api_calls: Mapping[str, int] | None = None,
    duration_seconds: float | None = None,
    attack_replay: AttackReplay | None = None,
    min_severity: Severity | None = None,
    audit_limit: int = 50,
    inventory_errors: Sequence[InventoryError] = (),
    paths_left: Sequence[PathLeft] | None = None,
    paths_closed: Sequence[PathClosed] | None = None,
    remediators: Collection[str] = (),
) -> ReportData:
    """Pure: assemble the report. The "after" graph is, in order of preference: `snapshot_after`
    (re-read after apply), the snapshot with the actions whose outcome is applied/noop simulated,
    or (dry run, no outcomes) the snapshot with every planned write simulated. `paths_left`: the
    closure check's person -> flow -> secret paths after apply (listed with their reasons);
    `paths_closed`: the chains it found closed, each with why.
    `remediators`: vaultguard's own object id(s), left out of the graphs (it is the fixer, not a
    reach path)."""
    kept = sort_findings(at_least(_distinct(findings), min_severity))
    by_severity = Counter(f.severity for f in kept)

    graph_before = graph_after = None
    after_source: AfterSource | None = None
    exposure_before = exposure_after = None
    if snapshot is not None:
        graph_before = graph_view(snapshot, remediators=remediators)
        after_snapshot: Snapshot | None = None
        if snapshot_after is not None:
            after_snapshot, after_source = snapshot_after, "re-read after apply"
        elif plan is not None:
            if outcomes and not plan.dry_run:
                done = {o.action_id for o in outcomes if o.status in {"applied", "noop"}}
                chosen = [a for a in plan.actions if a.id in done]
                after_source = "applied outcomes"
            else:
                chosen, after_source = list(plan.writes), "planned (dry run)"
            after_snapshot = simulate(snapshot, chosen)
        if after_snapshot is not None:
            graph_after = compare(graph_before, graph_view(after_snapshot, remediators=remediators))
            exposure_after = len(readable_pairs(after_snapshot))
        exposure_before = len(readable_pairs(snapshot))

    ordered_audit = sorted(audit, key=lambda r: (r.recorded_at, r.row_key))
    # Reads that failed: the snapshot's, plus the caller's (e.g. files scan-flows could not read).
    errors = (*(snapshot.errors if snapshot is not None else ()), *inventory_errors)
    return ReportData(
        title=title,
        generated_at=generated_at or datetime.now(UTC),
        scope=scope or (snapshot.scope.resource_id if snapshot is not None else "-"),
        run_id=run_id,
        dry_run=plan.dry_run if plan is not None else True,
        summary=Summary(
            findings_by_severity={s: by_severity[s] for s in SEVERITIES},
            actions=_counts(plan, outcomes),
            api_calls=dict(sorted((api_calls or {}).items())),
            duration_seconds=duration_seconds,
            exposure_before=exposure_before,
            exposure_after=exposure_after,
            exposure_unknown=tuple(unlisted_vaults(snapshot).values()) if snapshot is not None else (),
            inventory_errors=len(errors),
        ),
        findings=tuple(kept),
        rules=_rules(kept),
        actions=plan.actions if plan is not None else (),
        deferred=plan.deferred if plan is not None else (),
        outcomes=tuple(outcomes),
        graph_before=graph_before,
        graph_after=graph_after,
        graph_after_source=after_source,
        audit=tuple(ordered_audit[:audit_limit]),
        audit_total=len(ordered_audit),
        attack_replay=attack_replay,
        inventory_errors=tuple(errors),
        paths_left=None if paths_left is None else _path_rows(paths_left, snapshot_after or snapshot),
        paths_closed=None if paths_closed is None else _closed_rows(paths_closed, snapshot_after or snapshot),
        names=display_names(snapshot) if snapshot is not None else {},
    )
