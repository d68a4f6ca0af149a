"""Scenario files: JSON that seeds the emulator's state. Validated; errors name the field path.

The Azure keys are described in `emulator.azure.scenario`; the top-level `powerPlatform` key is
handed to `emulator.powerplatform.scenario.load(state, data["powerPlatform"])` when that module
exists."""

from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path
from typing import Any

from emulator.azure import scenario as azure_scenario
from emulator.azure.scenario import ScenarioError
from emulator.state import State

__all__ = ["ScenarioError", "dump_scenario", "load_scenario", "load_scenario_file"]


def _powerplatform() -> Any:
    try:
        return importlib.import_module("emulator.powerplatform.scenario")
    except ImportError:
        return None


def load_scenario(data: dict[str, Any]) -> State:
    if not isinstance(data, dict):
        raise ScenarioError("invalid scenario: (top level): a scenario is a JSON object")
    state = State()
    azure_scenario.load(state, data)
    if "powerPlatform" in data:
        module = _powerplatform()
        if module is None or not hasattr(module, "load"):
            # Until the Power Platform loader exists, its section is skipped, loudly.
            warnings.warn(
                "scenario: 'powerPlatform' ignored: emulator.powerplatform.scenario.load is missing",
                stacklevel=2,
            )
        else:
            try:
                module.load(state, data["powerPlatform"])
            except ValueError as error:  # PowerPlatformScenarioError: the message names the field path
                raise ScenarioError(f"invalid scenario: {error}") from None
    return state


def load_scenario_file(path: str | Path) -> State:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ScenarioError(f"scenario file not found: {path}") from None
    except json.JSONDecodeError as error:
        raise ScenarioError(f"scenario file {path} is not valid JSON: {error}") from None
    return load_scenario(data)


def dump_scenario(state: State) -> dict[str, Any]:
    """The whole state in the scenario format; `load_scenario` reads it back."""
    data = azure_scenario.dump(state.azure)
    module = _powerplatform()
    if module is not None and hasattr(module, "dump"):
        data["powerPlatform"] = module.dump(state)
    return data
