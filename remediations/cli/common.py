"""What the CLI's commands share: exit codes, JSON and error printing, the progress bar, and reading a
snapshot (from `--snapshot FILE` or Azure) with the Power Platform environments the arguments name."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from remediations.adapters.clients import AzureClients
from remediations.cli import checks
from remediations.core.model import PowerPlatformScope, Scope, Snapshot
from remediations.core.policy import PolicyError
from remediations.shell.inventory import Progress, inventory

EXIT_OK, EXIT_FAILURES, EXIT_USAGE = 0, 1, 2
EXIT_NOT_REVIEWED = 3  # apply --plan --plan-hash: the plan file is not the plan that was reviewed


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


@contextmanager
def progress_bar() -> Iterator[Progress]:
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


def read_snapshot(args: argparse.Namespace, progress: Progress) -> Snapshot:
    if args.snapshot:
        return Snapshot.model_validate_json(Path(args.snapshot).read_text(encoding="utf-8"))
    if not args.scope:
        raise PolicyError("give --scope (or --snapshot FILE)")
    with AzureClients() as clients:
        ready_for_azure(args, clients)
        return inventory(
            Scope.parse(args.scope), clients, progress=progress, pp_scope=power_platform_scope(args)
        )


def ready_for_azure(args: argparse.Namespace, clients: AzureClients) -> None:
    """Before the first read: one sign-in check, and `--environment` display names resolved to ids."""
    checks.require_sign_in(clients.credential)
    if getattr(args, "environment", None):
        args.environment = checks.resolve_environments(
            args.environment, clients.power_platform().list_environments
        )


def power_platform_scope(args: argparse.Namespace) -> PowerPlatformScope | None:
    environments = tuple(getattr(args, "environment", None) or ())
    every = bool(getattr(args, "all_environments", False))
    return (
        PowerPlatformScope(environments=environments, all_environments=every)
        if environments or every
        else None
    )


def print_errors(snapshot_errors: Sequence[Any]) -> None:
    for error in snapshot_errors:
        print(f"read failed: {error.operation} {error.resource_id}: {error.message}", file=sys.stderr)
