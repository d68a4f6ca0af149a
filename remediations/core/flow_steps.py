"""Walking a flow (Logic Apps workflow) definition: every action at any depth (Scope, If `actions` /
`else.actions`, Switch `cases.*.actions` / `default.actions`, Until, Foreach) with its JSON path, e.g.
`actions.Scope_1.actions.Get_secret`, and the Foreach loops around it; and an action's secure inputs
and outputs. Pure. One walker for every reader: the Key Vault steps (core/flow_analysis.py) and the
secure-data edit (core/flow_secure.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Step:
    """An action with its JSON path, its name and the Foreach loops around it."""

    path: str
    name: str
    action: dict[str, Any]
    foreaches: tuple[tuple[str, str, str], ...]  # enclosing (path, name, foreach expression), outermost first


def iter_steps(actions: Any, prefix: str, foreaches: tuple[tuple[str, str, str], ...] = ()) -> Iterator[Step]:
    """Every action under `actions` (a definition's, or a container's), depth first, paths from `prefix`."""
    if not isinstance(actions, dict):
        return
    for name, action in actions.items():
        if not isinstance(action, dict):
            continue
        path = f"{prefix}.{name}"
        yield Step(path, str(name), action, foreaches)
        inner = foreaches
        if str(action.get("type", "")).lower() == "foreach":
            inner = (*foreaches, (path, str(name), str(action.get("foreach", ""))))
        yield from iter_steps(action.get("actions"), f"{path}.actions", inner)
        otherwise = action.get("else")
        if isinstance(otherwise, dict):
            yield from iter_steps(otherwise.get("actions"), f"{path}.else.actions", inner)
        cases = action.get("cases")
        if isinstance(cases, dict):
            for case_name, case in cases.items():
                if isinstance(case, dict):
                    yield from iter_steps(case.get("actions"), f"{path}.cases.{case_name}.actions", inner)
        default = action.get("default")
        if isinstance(default, dict):
            yield from iter_steps(default.get("actions"), f"{path}.default.actions", inner)


def iter_actions(definition: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(JSON path, action) for every action at any depth, then every trigger."""
    for step in iter_steps(definition.get("actions"), "actions"):
        yield step.path, step.action
    triggers = definition.get("triggers")
    if isinstance(triggers, dict):
        for name, trigger in triggers.items():
            if isinstance(trigger, dict):
                yield f"triggers.{name}", trigger


def secure_data(action: Mapping[str, Any]) -> tuple[bool, bool]:
    """(secure inputs, secure outputs) of an action: `runtimeConfiguration.secureData.properties`."""
    runtime = action.get("runtimeConfiguration")
    secure = runtime.get("secureData") if isinstance(runtime, Mapping) else None
    props = secure.get("properties") if isinstance(secure, Mapping) else None
    names = {str(p).lower() for p in props} if isinstance(props, list) else set()
    return "inputs" in names, "outputs" in names
