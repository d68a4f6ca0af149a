"""A last check before anything is written: no forbidden value (e.g. a secret the caller knows) may
appear in a rendered report. The model has no field for a secret value; this proves it per output."""

from __future__ import annotations

import html
import json
from collections.abc import Collection


class ForbiddenValueError(ValueError):
    """A rendered report contains a value that must never leave the process (the value is not echoed)."""


def _spellings(value: str) -> set[str]:
    # The renderers escape: a value with `<`, `"` or `|` would appear escaped, so look for those too.
    return {
        value,
        html.escape(value),
        html.escape(value, quote=False),
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        value.replace("|", "\\|"),
    }


def check_output(text: str, forbidden_values: Collection[str] | None, *, fmt: str) -> str:
    """Return `text` unchanged, or raise if any non-empty forbidden value occurs in it."""
    for index, value in enumerate(sorted(v for v in (forbidden_values or ()) if v)):
        if any(spelling in text for spelling in _spellings(value)):
            # Say which format leaked and which entry (by position), never the value itself.
            raise ForbiddenValueError(f"the {fmt} report contains forbidden value #{index}; not written")
    return text
