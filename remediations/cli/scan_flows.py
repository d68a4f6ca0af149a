"""`vaultguard scan-flows PATH...`: find Key Vault leaks in exported flows, offline (shift left).

No tenant, no network: reads files and runs `analyze_definition` + `flow_findings` on every flow found in

- Power Platform solution exports, zipped or unpacked (`Workflows/*.json`: `properties.definition` and
  `properties.connectionReferences`);
- flow package exports (.zip with `Microsoft.Flow/flows/<id>/definition.json`);
- bare definitions (`definition.json` with `actions`/`triggers`, or `{"definition": ...}` as in a Logic Apps
  Standard `workflow.json`);
- Logic Apps ARM templates (`resources[]` of type `Microsoft.Logic/workflows`, `$connections` parameter),
  their template expressions evaluated first (remediations/core/arm_expressions.py).

Directories are walked for `*.json` and `*.zip`; JSON files inside directories and archives that are not
flows (manifests, connection maps) are skipped. A file named on the command line must contain a flow.

Exit codes: 0 no finding at or above `--fail-on` (default high), 1 at least one, 2 unreadable input
(a message per file, never a traceback, and no "0 flow(s) scanned" line when nothing could be read);
a reader that stops early (`| head`) ends the output quietly. Informational findings (a Get secret with
secure outputs) never fail the scan. Output: a text table, `--json`, and/or `--sarif FILE|-` (SARIF 2.1.0
through the shared writer in remediations/report/sarif.py, with the file and line of each action).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from remediations.cli.flow_files import scan
from remediations.cli.scan_report import render_json, render_text, sarif_report
from remediations.core.model import SEVERITIES
from remediations.report import render_sarif

EXIT_OK, EXIT_FINDINGS, EXIT_UNREADABLE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="exported flow files, archives or directories"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument(
        "--sarif",
        metavar="FILE",
        help="also write SARIF 2.1.0 to FILE (- for stdout, instead of the table or --json)",
    )
    parser.add_argument(
        "--fail-on",
        choices=SEVERITIES,
        default="high",
        help="exit 1 when a finding is at or above this severity (default: high; informational never fails)",
    )


def _write_stdout(text: str) -> None:
    """Write the report; a reader that stops early (`| head`) is not an error worth a traceback."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would report the pipe again when flushing stdout at exit: point it at devnull.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def run(args: argparse.Namespace) -> int:
    result = scan(args.paths)
    sarif_to_stdout = args.sarif == "-"
    if args.sarif and not sarif_to_stdout:
        try:
            Path(args.sarif).write_text(render_sarif(sarif_report(result)), encoding="utf-8")
        except OSError as exc:
            result.errors.append(f"{args.sarif}: SARIF cannot be written ({exc.strerror or exc})")
    if sarif_to_stdout:
        output = render_sarif(sarif_report(result))
    elif args.json:
        output = json.dumps(render_json(result), indent=2, sort_keys=True) + "\n"
    else:
        output = render_text(result) + "\n" if result.flows or not result.errors else ""
    _write_stdout(output)
    for error in result.errors:
        print(f"vaultguard scan-flows: {error}", file=sys.stderr)
    if result.errors:
        return EXIT_UNREADABLE
    return EXIT_FINDINGS if result.failing(args.fail_on) else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vaultguard scan-flows", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
