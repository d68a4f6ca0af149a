"""`make demo` / `python -m demo [--out DIR] [--plain]`: the seed attack on the emulator, fixed through
the app's real triggers (local function runner + Azurite), proved closed, and reported in out/.

Exit 0 only when the story holds; 1 naming the failed check; 2 when something it needs is missing;
130 on Ctrl-C (children stopped, temp files removed either way).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from demo.console import Console
from demo.procs import ROOT, Children, DemoError, check_prerequisites, interrupts_as_keyboard_interrupt
from demo.story import CheckFailed, Story


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "out"), help="report directory (default: out/)")
    parser.add_argument("--plain", action="store_true", help="plain text, no colours")
    parser.add_argument(
        "--state-out",
        help="tests only: copy the emulator's final state here (it holds every secret value, old and new)",
    )
    args = parser.parse_args(argv)
    console = Console(plain=args.plain)
    try:
        check_prerequisites()
    except DemoError as error:
        console.error(f"make demo: {error}")
        return 2
    with interrupts_as_keyboard_interrupt():
        kids = Children()
        try:
            Story(console, Path(args.out), kids, state_out=args.state_out).run()
        except CheckFailed as failed:
            console.error(f"make demo: FAILED check: {failed}")
            return 1
        except DemoError as error:
            console.error(f"make demo: {error}")
            return 2
        except KeyboardInterrupt:
            console.error("make demo: interrupted; stopping the emulator, Azurite and the function runner")
            return 130
        finally:
            kids.stop()
    console.title("The story holds: exit 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
