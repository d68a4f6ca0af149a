"""`python -m remediations` / `vaultguard`: inventory, graph, plan, apply, audit, list-remediations,
scan-flows (offline, see remediations/cli/scan_flows.py), serve (the local HTTP runner).

Exit codes: 0 success, 1 a read or write failed (each failure is printed), 2 bad input or policy.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from remediations.cli import checks, scan_flows, serve_options
from remediations.cli.checks import UsageError
from remediations.cli.common import EXIT_NOT_REVIEWED, EXIT_USAGE
from remediations.cli.read_commands import cmd_graph, cmd_inventory, cmd_list_remediations
from remediations.cli.run_commands import cmd_apply, cmd_audit, cmd_plan
from remediations.core.policy import PolicyError
from remediations.core.registry import all_remediations
from remediations.report import SEVERITIES, parse_formats
from remediations.shell.policy_file import load_policy


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
