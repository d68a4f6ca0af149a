"""Terminal narration: rich when it is installed (requirements-dev), plain text otherwise.

Nothing here ever receives a secret value: callers pass `mask(value)` results only.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any


def mask(value: str) -> str:
    """`****(24 chars)`: the length only, never a character of the value."""
    return f"****({len(value)} chars)"


class Console:
    def __init__(self, plain: bool = False) -> None:
        self._rich: Any = None
        if not plain:
            try:
                from rich.console import Console as RichConsole

                self._rich = RichConsole(highlight=False, soft_wrap=True)
            except ImportError:
                self._rich = None

    def _out(self, text: str, style: str | None = None) -> None:
        if self._rich is not None:
            self._rich.print(text, style=style, markup=False)
        else:
            print(text, flush=True)

    def title(self, text: str) -> None:
        self._out("")
        self._out(f"== {text} ==", "bold cyan")

    def step(self, text: str) -> None:
        self._out(f"  > {text}", "bold")

    def info(self, text: str) -> None:
        self._out(f"    {text}")

    def good(self, text: str) -> None:
        self._out(f"    [ok] {text}", "green")

    def bad(self, text: str) -> None:
        self._out(f"    [!!] {text}", "bold red")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        cells = [[str(c) for c in row] for row in rows]
        widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
        line = "    " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
        self._out(line.rstrip(), "bold")
        for row in cells:
            self._out("    " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())

    def error(self, text: str) -> None:
        """Failures go to stderr, so they show even when stdout is piped away."""
        sys.stdout.flush()
        print(text, file=sys.stderr, flush=True)
