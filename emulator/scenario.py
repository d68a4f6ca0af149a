"""Scenario files: JSON that seeds the emulator's state. Validated; errors name the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from emulator.state import State


class ScenarioError(ValueError):
    pass


def load_scenario(data: dict[str, Any]) -> State:
    if not isinstance(data, dict):
        raise ScenarioError("a scenario is a JSON object")
    state = State()
    known: set[str] = set()
    unknown = sorted(set(data) - known)
    if unknown:
        raise ScenarioError(f"unknown scenario field(s): {', '.join(unknown)}")
    return state


def load_scenario_file(path: str | Path) -> State:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ScenarioError(f"scenario file not found: {path}") from None
    except json.JSONDecodeError as error:
        raise ScenarioError(f"scenario file {path} is not valid JSON: {error}") from None
    return load_scenario(data)
