"""`python -m emulator serve [--scenario FILE] [--dump FILE] [--requests FILE]`: print `export` lines,
then `ready`; on SIGINT/SIGTERM write the state (`--dump`) and the request log (`--requests`, JSON lines
without bodies) and exit."""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading

from emulator.core import Emulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the emulated APIs until SIGINT/SIGTERM")
    serve.add_argument("--scenario", help="scenario JSON file to seed the state")
    serve.add_argument("--dump", help="write the state as a scenario file (JSON) here on exit")
    serve.add_argument(
        "--requests",
        help="write the request log here on exit (JSON lines: method, host, path, route, "
        "status, caller oid; no bodies, which can hold secret values)",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    state = None
    if args.scenario:
        from emulator.scenario import load_scenario_file

        state = load_scenario_file(args.scenario)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with Emulator(state, host=args.host, port=args.port) as emulator:
        for name, value in emulator.env.items():
            print(f"export {name}={shlex.quote(value)}")
        print("ready", flush=True)
        stop.wait()
        if args.dump:
            emulator.dump(args.dump)
        if args.requests:
            with open(args.requests, "w", encoding="utf-8") as out:
                for entry in emulator.requests:
                    record = {
                        "method": entry.method,
                        "host": entry.host,
                        "path": entry.path,
                        "route": entry.route,
                        "status": entry.status,
                        "callerOid": entry.caller_oid,
                        "fault": entry.fault,
                        **({"carried": list(entry.carried)} if entry.carried else {}),
                    }
                    out.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
