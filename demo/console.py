"""Terminal narration: rich when it is installed (requirements-dev), plain text otherwise.

Nothing here ever receives a secret value: callers pass `mask(value)` results only.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Sequence
from typing import Any

WIDTH = 120  # narration columns: long lines wrap onto indented continuation lines


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

    def info(self, text: str, hang: int = 2) -> None:
        """One narration line, wrapped at WIDTH; continuation lines indented `hang` more columns."""
        for line in self._wrap(text, hang):
            self._out(f"    {line}")

    @staticmethod
    def _wrap(text: str, hang: int, width: int = WIDTH - 4) -> list[str]:
        lines = textwrap.wrap(
            text,
            width=width,
            subsequent_indent=" " * hang,
            break_long_words=False,
            break_on_hyphens=False,
        )
        return lines or [""]

    def good(self, text: str) -> None:
        self._out(f"    [ok] {text}", "green")

    def bad(self, text: str) -> None:
        for i, line in enumerate(self._wrap(text, 5, width=WIDTH - 9)):
            self._out(f"    {'[!!] ' if i == 0 else ''}{line}", "bold red")

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        """Columns padded to their widest cell; the last column wraps so no line passes WIDTH."""
        cells = [[str(c) for c in row] for row in rows]
        widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
        lead = 4 + sum(w + 2 for w in widths[:-1])  # where the last column starts
        last = max(WIDTH - lead, 24)
        widths[-1] = min(widths[-1], last)
        line = "    " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
        self._out(line.rstrip(), "bold")
        for row in cells:
            tail = textwrap.wrap(row[-1], width=last, break_long_words=False, break_on_hyphens=False) or [""]
            head = "  ".join(c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True))
            self._out(("    " + head + ("  " if head else "") + tail[0]).rstrip())
            for more in tail[1:]:
                self._out(" " * lead + more)

    def error(self, text: str) -> None:
        """Failures go to stderr, so they show even when stdout is piped away."""
        sys.stdout.flush()
        print(text, file=sys.stderr, flush=True)
