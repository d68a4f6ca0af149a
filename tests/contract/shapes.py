"""Shape of a JSON document as {path: type}: the contract a recorded response and the emulator's answer
must share. Paths use "/" (keys such as `@odata.type` hold dots), `[]` for list items and `*` for the
values of a map whose keys are data (connection reference names)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def values_at(document: Any, path: str) -> list[Any]:
    """Every value at `path` ("a/b[]/c", "refs/*/name"); [] when the path is absent."""
    found = [document]
    for part in [p for p in path.split("/") if p]:
        items = part.endswith("[]")
        key = part[:-2] if items else part
        step: list[Any] = []
        for node in found:
            if not isinstance(node, dict):
                continue
            if key == "*":
                step += list(node.values())
            elif key in node:
                step.append(node[key])
        found = [i for s in step if isinstance(s, list) for i in s] if items else step
    return found


def types_at(document: Any, path: str) -> set[str]:
    return {_type(v) for v in values_at(document, path)}


def same_shape(recorded: Any, emulated: Any, paths: list[str]) -> list[str]:
    """Problems: a path present in one and not the other, or of another type. A recorded `null` says the
    field is nullable, so any type on the emulator's side matches it."""
    problems = []
    for path in paths:
        want, got = types_at(recorded, path), types_at(emulated, path)
        if not want:
            problems.append(f"{path}: not in the recorded response (fix the contract)")
        elif not got:
            problems.append(f"{path}: missing from the emulator's response")
        elif not (got <= want or "null" in want):
            problems.append(f"{path}: recorded {sorted(want)}, emulator {sorted(got)}")
    return problems


def absent(document: Any, paths: list[str]) -> list[str]:
    return [
        f"{path}: present but the real service leaves it out" for path in paths if values_at(document, path)
    ]
