"""The CLI's run commands: `plan` (dry run: findings and the before/after diff), `apply` (plan and apply,
audited; or apply a stored plan) and `audit` (the audit rows of one run). Each runs the one pipeline
(shell/pipeline.py) and writes the reports `--output-dir` / `--output-formats` ask for."""

from __future__ import annotations

import argparse
import getpass
import re
import sys
import time
from pathlib import Path
from typing import Any

from remediations.adapters.clients import AzureClients
from remediations.cli import checks
from remediations.cli.checks import UsageError
from remediations.cli.common import (
    EXIT_FAILURES,
    EXIT_NOT_REVIEWED,
    EXIT_OK,
    power_platform_scope,
    print_errors,
    print_json,
    progress_bar,
    ready_for_azure,
)
from remediations.core.model import Plan, Scope, Snapshot
from remediations.core.pinned import covering_scope, environments_of, of_file, refusal, remediations_of
from remediations.core.policy import Policy, PolicyError
from remediations.core.rbac import definitions
from remediations.core.request import RunRequest, Stage
from remediations.report import build_report, write_reports
from remediations.report.fmt import short_resource
from remediations.report.graph_view import display_names, name_in
from remediations.shell.audit import AuditSink, MemoryAuditSink
from remediations.shell.inventory import Progress
from remediations.shell.pipeline import RunResult, run

_GUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)


def _show_plan(plan: Plan, names: dict[str, str]) -> None:
    """Each action by name (vault, flow, person), the id beside it; permissions as plain lists."""

    def named(raw_id: str) -> str:
        return name_in(names, raw_id) or short_resource(raw_id)

    def readable(text: str) -> str:
        # Shares and environments are listed by GUID ("<object id>:CanEdit"): say the name instead.
        return _GUID.sub(lambda m: name_in(names, m[0]) or m[0], text)

    for action in plan.actions + plan.deferred:
        state = "SKIP" if action.skip_reason else ("DEFERRED" if action in plan.deferred else "CHANGE")
        who = f" for {named(action.principal)} ({action.principal})" if action.principal else ""
        print(f"{state:<8} {action.remediation_id} on {named(action.target)}{who}")
        print(f"         target: {action.target}")
        for key in sorted(set(action.before) | set(action.after)):
            before, after = action.before.get(key, []), action.after.get(key, [])
            if before or after:
                was, now = readable(", ".join(before)) or "none", readable(", ".join(after)) or "none"
                print(f"         {key}: {was} -> {now}")
        for change in action.changes:
            print(f"         {readable(change.describe())}")
        print(f"         why: {readable(action.skip_reason or action.reason)}")
    print(f"plan {plan.id}: {len(plan.writes)} change(s), {len(plan.deferred)} deferred (dry run)")


def _names(snapshot: Snapshot) -> dict[str, str]:
    """What `_show_plan` says instead of an id: people, flows, vaults, and roles (a role assignment's
    role GUID) by name."""
    roles = {guid: role.role_name for guid, role in definitions(snapshot).items() if role.role_name}
    return {**roles, **display_names(snapshot)}


def _write_reports(args: argparse.Namespace, **report: Any) -> None:
    """`--output-dir` / `--output-formats`: write the report files; say where on stderr."""
    formats: list[str] = args.output_formats or []
    if not formats and not args.output_dir:
        return  # terminal only
    title = f"vaultguard {args.command}"
    data = build_report(title=title, **report)
    written = write_reports(Path(args.output_dir or "out"), data, formats or ["json", "sarif", "md", "html"])
    for path in written.values():
        print(f"report written: {path}", file=sys.stderr)


def _run(
    args: argparse.Namespace,
    policy: Policy,
    clients: AzureClients,
    audit: AuditSink,
    progress: Progress,
    *,
    stop_after: Stage,
    caller: str | None = None,
    snapshot: Snapshot | None = None,
    pinned: Plan | None = None,
) -> RunResult:
    """The pipeline over `--scope` (or a stored `--snapshot`), `--severity` applied before planning;
    `pinned`: a stored plan to apply instead of the one made now (core/pinned.py)."""
    if snapshot is None and not args.scope:
        raise PolicyError("give --scope (or --snapshot FILE)")
    if snapshot is None:
        ready_for_azure(args, clients)
    request = RunRequest(
        trigger="cli",
        scope=Scope.parse(args.scope) if snapshot is None else snapshot.scope,
        power_platform=power_platform_scope(args),
        remediations=tuple(args.remediation) if args.remediation else None,
        min_severity=args.severity,
        dry_run=getattr(args, "dry_run", True),
        stop_after=stop_after,
        caller=caller,
        ticket_id=getattr(args, "ticket", None),
        include_secrets=True,  # the report lists every secret a finding or path names
    )
    return run(request, policy, clients, audit, progress=progress, snapshot=snapshot, pinned=pinned)


def cmd_plan(args: argparse.Namespace, policy: Policy) -> int:
    started = time.monotonic()
    stored = (
        Snapshot.model_validate_json(Path(args.snapshot).read_text(encoding="utf-8"))
        if args.snapshot
        else None
    )
    # Read-only: the pipeline stops after planning (no reconcile, no apply, no audit row).
    with AzureClients() as clients, progress_bar() as progress:
        result = _run(args, policy, clients, MemoryAuditSink(), progress, stop_after="plan", snapshot=stored)
    findings, plan, snapshot = list(result.findings), result.plan, result.snapshot
    _write_reports(
        args, findings=findings, snapshot=snapshot, plan=plan, duration_seconds=time.monotonic() - started
    )
    stored_hash = None
    if args.out:
        Path(args.out).write_text(plan.model_dump_json(indent=2), encoding="utf-8")
        stored_hash = of_file(plan).hash
    if args.json:
        shown = {
            "findings": [f.model_dump(mode="json") for f in findings],
            "plan": plan.model_dump(mode="json"),
        }
        print_json({**shown, "planHash": stored_hash} if stored_hash else shown)
    else:
        _show_plan(plan, _names(snapshot) if snapshot is not None else {})
        if stored_hash:
            print(f"plan hash {stored_hash}: apply exactly this plan with")
            print(f"  apply --plan {args.out} --plan-hash {stored_hash}")
    print_errors(result.inventory_errors)
    return EXIT_FAILURES if result.inventory_errors else EXIT_OK


def _report_run(result: RunResult, as_json: bool) -> int:
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        for outcome in result.outcomes:
            print(f"{outcome.status:<9} {outcome.action_id} {outcome.error or ''}".rstrip())
        counts = {s: result.count(s) for s in ("applied", "failed", "skipped", "noop", "deferred")}
        print(f"run {result.correlation_id}: {counts}")
        for path in result.closure_paths:
            print(path.describe())
    print_errors(result.inventory_errors)
    return EXIT_FAILURES if result.failures else EXIT_OK


def cmd_apply(args: argparse.Namespace, policy: Policy) -> int:
    caller = f"cli:{getpass.getuser()}"
    audit = checks.audit_sink()
    started = time.monotonic()
    pinned: Plan | None = None
    if args.plan_hash and not args.plan:
        raise UsageError("--plan-hash checks a stored plan: give --plan FILE too")
    if args.plan:
        pinned = Plan.model_validate_json(Path(args.plan).read_text(encoding="utf-8"))
        why = refusal(of_file(pinned), args.plan_hash) if args.plan_hash else None
        if why is not None:
            print(
                f"vaultguard: refused: {args.plan} is not the plan reviewed: {why}; nothing written",
                file=sys.stderr,
            )
            return EXIT_NOT_REVIEWED
        _pin_arguments(args, pinned)
    with AzureClients() as clients, progress_bar() as progress:
        if not args.scope:
            raise PolicyError("give --scope or --plan FILE")
        # A stored plan is applied as it is: the run reads and plans only to skip, as drifted, each
        # action whose target changed since (the same pinned-plan check as an approved ticket).
        result = _run(
            args, policy, clients, audit, progress, stop_after="apply", caller=caller, pinned=pinned
        )
        snapshot = result.snapshot
    _write_reports(
        args,
        findings=result.findings,
        snapshot=snapshot,
        plan=result.plan,
        outcomes=result.outcomes,
        audit=[] if result.plan.dry_run else audit.records(result.correlation_id),
        run_id=result.correlation_id,
        scope=result.scope.resource_id,
        duration_seconds=time.monotonic() - started,
        paths_left=result.paths_left,
        paths_closed=result.paths_closed,
    )
    return _report_run(result, args.json)


def _pin_arguments(args: argparse.Namespace, plan: Plan) -> None:
    """The scope, environments and remediations a stored plan was made on, for its fresh read."""
    if not args.scope:
        scope = covering_scope(plan)
        if scope is None:
            raise PolicyError("the plan names no Azure target in one subscription: give --scope")
        args.scope = scope.resource_id
    if not args.environment and not getattr(args, "all_environments", False):
        args.environment = list(environments_of(plan)) or None
    args.remediation = list(remediations_of(plan)) or None


def cmd_audit(args: argparse.Namespace) -> int:
    records = checks.audit_sink().records(args.run)
    if args.json:
        print_json([r.model_dump(mode="json") for r in records])
    else:
        for r in records:
            print(
                f"{r.recorded_at:%Y-%m-%dT%H:%M:%S} {r.state:<8} {r.remediation_id} {r.target} "
                f"{r.principal} {r.before.get('secrets', [])} -> {r.after.get('secrets', [])} {r.error or ''}"
            )
    return EXIT_OK
