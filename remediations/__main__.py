"""`python -m remediations` / `vaultguard`: inventory, graph, plan, apply, audit, list-remediations,
scan-flows (offline, see remediations/cli/scan_flows.py), serve (the local HTTP runner).

Exit codes: 0 success, 1 a read or write failed (each failure is printed), 2 bad input or policy.
"""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from remediations.adapters.clients import AzureClients
from remediations.cli import checks, scan_flows, serve_options
from remediations.cli.checks import UsageError
from remediations.core.graph import ExposureGraph, secret_node
from remediations.core.graph import Path as GraphPath
from remediations.core.model import Plan, PowerPlatformScope, Scope, Snapshot
from remediations.core.pinned import covering_scope, environments_of, of_file, refusal, remediations_of
from remediations.core.policy import Policy, PolicyError
from remediations.core.registry import all_remediations
from remediations.core.request import RunRequest, Stage
from remediations.report import SEVERITIES, build_report, parse_formats, write_reports
from remediations.report.fmt import short_resource
from remediations.report.graph_view import display_names, name_in
from remediations.report.model import unlisted_vaults
from remediations.shell.audit import AuditSink, MemoryAuditSink
from remediations.shell.inventory import Progress, inventory
from remediations.shell.pipeline import RunResult, run
from remediations.shell.policy_file import load_policy

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2
EXIT_NOT_REVIEWED = 3  # apply --plan --plan-hash: the plan file is not the plan that was reviewed


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


@contextmanager
def _progress() -> Iterator[Progress]:
    """A rich progress bar on a terminal; silent otherwise (and when rich is not installed, as in Azure)."""
    if not sys.stderr.isatty():
        yield lambda stage, done, total: None
        return
    try:
        from rich.progress import Progress as RichProgress  # noqa: PLC0415 - optional, dev-only dependency
    except ImportError:
        yield lambda stage, done, total: None
        return
    with RichProgress(transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


def _snapshot(args: argparse.Namespace, progress: Progress) -> Snapshot:
    if args.snapshot:
        return Snapshot.model_validate_json(Path(args.snapshot).read_text(encoding="utf-8"))
    if not args.scope:
        raise PolicyError("give --scope (or --snapshot FILE)")
    with AzureClients() as clients:
        _ready_for_azure(args, clients)
        return inventory(Scope.parse(args.scope), clients, progress=progress, pp_scope=_pp_scope(args))


def _ready_for_azure(args: argparse.Namespace, clients: AzureClients) -> None:
    """Before the first read: one sign-in check, and `--environment` display names resolved to ids."""
    checks.require_sign_in(clients.credential)
    if getattr(args, "environment", None):
        args.environment = checks.resolve_environments(
            args.environment, clients.power_platform().list_environments
        )


def _pp_scope(args: argparse.Namespace) -> PowerPlatformScope | None:
    environments = tuple(getattr(args, "environment", None) or ())
    every = bool(getattr(args, "all_environments", False))
    return (
        PowerPlatformScope(environments=environments, all_environments=every)
        if environments or every
        else None
    )


def _print_errors(snapshot_errors: Sequence[Any]) -> None:
    for error in snapshot_errors:
        print(f"read failed: {error.operation} {error.resource_id}: {error.message}", file=sys.stderr)


def cmd_list_remediations(args: argparse.Namespace) -> int:
    items = [
        {"id": r.id, "handles": sorted(r.handles), **r.metadata.model_dump()} for r in all_remediations()
    ]
    if args.json:
        _print_json(items)
    else:
        for item in items:
            print(f"{item['id']:<28} {item['severity']:<8} {item['title']}")
    return EXIT_OK


def cmd_inventory(args: argparse.Namespace) -> int:
    with _progress() as progress:
        snapshot = _snapshot(args, progress)
    if args.out:
        Path(args.out).write_text(snapshot.model_dump_json(indent=2), encoding="utf-8")
    if args.json:
        print(snapshot.model_dump_json(indent=2))
    else:
        for vault in snapshot.vaults:
            mode = "rbac" if vault.enable_rbac_authorization else "access policies"
            counts = f"policies={len(vault.access_policies)} secrets={len(vault.secrets)}"
            print(f"{vault.name:<30} {mode:<16} {counts}")
    _print_errors(snapshot.errors)
    return EXIT_FAILURES if snapshot.errors else EXIT_OK


def _describe(path: GraphPath) -> str:
    hops = [path[0].source] + [
        f"-[{e.relation}{':' + ','.join(e.permissions) if e.permissions else ''}]-> {e.target}" for e in path
    ]
    return " ".join(hops)


def _secret(snapshot: Snapshot, text: str) -> str:
    """`VAULT/SECRET` (vault name or resource id) -> the graph's secret node."""
    vault_part, _, name = text.rstrip("/").rpartition("/")
    vault_part = vault_part.removesuffix("/secrets")
    vault = next(
        (v for v in snapshot.vaults if vault_part.lower() in {v.name.lower(), v.id.lower()}),
        None,
    )
    if vault is None or not name:
        raise ValueError(f"--who-can-read {text!r}: give VAULT/SECRET with a vault in the scope")
    return secret_node(vault.id, name)


def _print_unknown(snapshot: Snapshot, secret: str | None) -> None:
    """Unknown is not zero: say which vaults' secrets could not be listed (only the asked-for vault's
    when `--who-can-read` found no path)."""
    unknown = unlisted_vaults(snapshot)
    if secret is None:
        lines = list(unknown.values())
    else:
        vault = secret.rstrip("/").rpartition("/")[0].removesuffix("/secrets").rsplit("/", 1)[-1].lower()
        lines = [unknown[vault]] if vault in unknown else []
    for line in lines:
        print(line)


def cmd_graph(args: argparse.Namespace) -> int:
    with _progress() as progress:
        snapshot = _snapshot(args, progress)
    graph = ExposureGraph.build(snapshot)
    principal = args.what_can_read or args.principal
    if principal:
        paths = graph.what_can_read(principal)
    elif args.who_can_read:
        paths = graph.who_can_read(_secret(snapshot, args.who_can_read))
    else:
        secrets = sorted({e.target for e in graph.edges if e.target.startswith("secret:")})
        paths = [p for s in secrets for p in graph.who_can_read(s) if p[0].source.startswith("principal:")]
    if args.json:
        _print_json([[e.model_dump() for e in p] for p in paths])
    else:
        for path in paths:
            print(_describe(path))
    _print_unknown(snapshot, args.who_can_read)
    _print_errors(snapshot.errors)
    return EXIT_FAILURES if snapshot.errors else EXIT_OK


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
        _ready_for_azure(args, clients)
    request = RunRequest(
        trigger="cli",
        scope=Scope.parse(args.scope) if snapshot is None else snapshot.scope,
        power_platform=_pp_scope(args),
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
    with AzureClients() as clients, _progress() as progress:
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
        _print_json({**shown, "planHash": stored_hash} if stored_hash else shown)
    else:
        _show_plan(plan, display_names(snapshot) if snapshot is not None else {})
        if stored_hash:
            print(f"plan hash {stored_hash}: apply exactly this plan with")
            print(f"  apply --plan {args.out} --plan-hash {stored_hash}")
    _print_errors(result.inventory_errors)
    return EXIT_FAILURES if result.inventory_errors else EXIT_OK


def _report_run(result: RunResult, as_json: bool) -> int:
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        for outcome in result.outcomes:
            print(f"{outcome.status:<9} {outcome.action_id} {outcome.error or ''}".rstrip())
        counts = {s: result.count(s) for s in ("applied", "failed", "skipped", "noop", "deferred")}
        print(f"run {result.correlation_id}: {counts}")
        for path in result.paths_left or ():
            print(path.describe())
    _print_errors(result.inventory_errors)
    return EXIT_FAILURES if result.failures else EXIT_OK


def _audit_sink() -> AuditSink:
    return checks.audit_sink()


def cmd_apply(args: argparse.Namespace, policy: Policy) -> int:
    caller = f"cli:{getpass.getuser()}"
    audit = _audit_sink()
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
    with AzureClients() as clients, _progress() as progress:
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
    records = _audit_sink().records(args.run)
    if args.json:
        _print_json([r.model_dump(mode="json") for r in records])
    else:
        for r in records:
            print(
                f"{r.recorded_at:%Y-%m-%dT%H:%M:%S} {r.state:<8} {r.remediation_id} {r.target} "
                f"{r.principal} {r.before.get('secrets', [])} -> {r.after.get('secrets', [])} {r.error or ''}"
            )
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="vaultguard", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    def formats(text: str) -> list[str]:
        try:  # checked while parsing: a typo must not surface only after `apply` has written
            return parse_formats(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from error

    def reports(p: argparse.ArgumentParser) -> None:
        p.add_argument("--output-dir", metavar="DIR", help="write reports here (default formats: all)")
        p.add_argument(
            "--output-formats",
            type=formats,
            metavar="LIST",
            help="comma-separated: json,sarif,md,html (default dir: out)",
        )
        p.add_argument("--severity", choices=SEVERITIES, help="only findings at or above this severity")

    def command(name: str, help_text: str, *, scope: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        p.add_argument("--policy", metavar="FILE", help="policy JSON (default: VAULTGUARD_POLICY_FILE/_JSON)")
        if scope:
            p.add_argument(
                "--scope",
                help="/subscriptions/<id>[/resourceGroups/<rg>[/providers/Microsoft.KeyVault/vaults/<name>]]",
            )
            p.add_argument(
                "--environment",
                action="append",
                help="also read this Power Platform environment: id or display name (repeatable)",
            )
            p.add_argument(
                "--all-environments", action="store_true", help="also read every Power Platform environment"
            )
        return p

    command("list-remediations", "the registered fixes and their metadata", scope=False)
    for name, help_text in (
        ("inventory", "read vaults, policies, secret metadata"),
        ("graph", "who can reach which secret"),
        ("plan", "dry run: findings and the before/after diff"),
    ):
        p = command(name, help_text)
        p.add_argument("--snapshot", metavar="FILE", help="use a stored snapshot instead of reading Azure")
        if name == "inventory":
            p.add_argument("--out", metavar="FILE", help="also write the snapshot JSON here")
        if name == "graph":
            p.add_argument("--principal", help="paths from this object id instead of into every secret")
            p.add_argument(
                "--what-can-read", metavar="PRINCIPAL", help="paths from this object id to secrets"
            )
            p.add_argument(
                "--who-can-read", metavar="VAULT/SECRET", help="paths from people into this secret"
            )
        if name == "plan":
            p.add_argument("--out", metavar="FILE", help="store the plan to apply later (apply --plan)")
            p.add_argument("--remediation", action="append", help="only this remediation id (repeatable)")
            reports(p)
    p = command("apply", "plan and apply (writes unless --dry-run), audited")
    p.add_argument("--plan", metavar="FILE", help="apply a stored plan instead of planning now")
    p.add_argument(
        "--plan-hash",
        metavar="HASH",
        help=f"the hash `plan --out` printed for the reviewed plan (FILE differs: exit {EXIT_NOT_REVIEWED})",
    )
    p.add_argument("--dry-run", action="store_true", help="plan only; write nothing")
    p.add_argument("--remediation", action="append", help="only this remediation id (repeatable)")
    p.add_argument("--ticket", help="ticket id recorded in the audit log")
    reports(p)
    p = command("audit", "audit rows of one run", scope=False)
    p.add_argument("--run", required=True, help="correlation (run) id")
    p = sub.add_parser("serve", help=serve_options.SUMMARY, description=serve_options.DESCRIPTION)
    serve_options.add_arguments(p)
    scan_flows.add_arguments(sub.add_parser("scan-flows", help="offline: Key Vault leaks in exported flows"))
    return top


def cmd_serve(args: argparse.Namespace) -> int:
    from remediations import serve  # noqa: PLC0415 - only this command needs the HTTP runner

    return serve.main(["--host", args.host, "--port", str(args.port)])


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "serve":  # no policy needed to start serving; each request loads its own
        return cmd_serve(args)
    if args.command == "scan-flows":  # offline: no policy, no tenant; its own exit codes
        return scan_flows.run(args)
    try:
        checks.unknown_remediations(
            getattr(args, "remediation", None) or (), (r.id for r in all_remediations())
        )
        policy = load_policy(path=args.policy)
        handlers: dict[str, Callable[[], int]] = {
            "list-remediations": lambda: cmd_list_remediations(args),
            "inventory": lambda: cmd_inventory(args),
            "graph": lambda: cmd_graph(args),
            "plan": lambda: cmd_plan(args, policy),
            "apply": lambda: cmd_apply(args, policy),
            "audit": lambda: cmd_audit(args),
        }
        return handlers[args.command]()
    except (PolicyError, ValueError, UsageError) as error:
        print(f"vaultguard: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
