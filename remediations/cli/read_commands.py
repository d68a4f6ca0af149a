"""The CLI's read-only commands: `list-remediations`, `inventory` (vaults, policies, secret metadata)
and `graph` (who can reach which secret)."""

from __future__ import annotations

import argparse
from pathlib import Path

from remediations.cli.common import (
    EXIT_FAILURES,
    EXIT_OK,
    print_errors,
    print_json,
    progress_bar,
    read_snapshot,
)
from remediations.core.graph import ExposureGraph, secret_node
from remediations.core.graph import Path as GraphPath
from remediations.core.model import Snapshot
from remediations.core.registry import all_remediations
from remediations.report.model import unlisted_vaults


def cmd_list_remediations(args: argparse.Namespace) -> int:
    items = [
        {"id": r.id, "handles": sorted(r.handles), **r.metadata.model_dump()} for r in all_remediations()
    ]
    if args.json:
        print_json(items)
    else:
        for item in items:
            print(f"{item['id']:<28} {item['severity']:<8} {item['title']}")
    return EXIT_OK


def cmd_inventory(args: argparse.Namespace) -> int:
    with progress_bar() as progress:
        snapshot = read_snapshot(args, progress)
    if args.out:
        Path(args.out).write_text(snapshot.model_dump_json(indent=2), encoding="utf-8")
    if args.json:
        print(snapshot.model_dump_json(indent=2))
    else:
        for vault in snapshot.vaults:
            mode = "rbac" if vault.enable_rbac_authorization else "access policies"
            counts = f"policies={len(vault.access_policies)} secrets={len(vault.secrets)}"
            print(f"{vault.name:<30} {mode:<16} {counts}")
    print_errors(snapshot.errors)
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
    with progress_bar() as progress:
        snapshot = read_snapshot(args, progress)
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
        print_json([[e.model_dump() for e in p] for p in paths])
    else:
        for path in paths:
            print(_describe(path))
    _print_unknown(snapshot, args.who_can_read)
    print_errors(snapshot.errors)
    return EXIT_FAILURES if snapshot.errors else EXIT_OK
