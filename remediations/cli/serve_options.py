"""Options of the local HTTP runner, shared by `python -m remediations serve` and
`python -m remediations.serve` (kept apart from remediations/serve.py so that building the CLI parser
loads no Functions SDK)."""

from __future__ import annotations

import argparse

DESCRIPTION = (
    "Serve the function app's HTTP functions locally at http://HOST:PORT/api/... (the same handlers Azure "
    "runs, from function_app.app.get_functions()), for trying the API and for the local tests. Set "
    "VAULTGUARD_LOCAL_FUNCTION_KEY to require that key (x-functions-key header or ?code=) as Azure does; set "
    "VAULTGUARD_LOCAL_MASTER_KEY to also run timer and queue functions with POST /admin/functions/{name}. "
    "Settings (scope, storage, emulator exports) come from the environment, as in the Functions host."
)
SUMMARY = "serve the app's HTTP functions locally (the /api routes, no Functions host needed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1; bind wider only with a function key set)",
    )
    parser.add_argument("--port", type=int, default=7071, help="port (default: 7071, as the Functions host)")
