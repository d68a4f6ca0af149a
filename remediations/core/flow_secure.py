"""Secure inputs/outputs on a flow's Key Vault actions, as a pure edit of its definition.

`runtimeConfiguration.secureData.properties` ["inputs", "outputs"] hides an action's inputs and
outputs from the run history (Logic Apps workflow definition language, "Secure data in run history";
Power Automate's "Secure inputs/outputs" settings write the same). Actions are named by the JSON path
flow analysis reports (`actions.Scope.actions.Get_secret`), so a fix stores paths, never definitions
(a definition may hold hard-coded credentials: it must not reach the audit log).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from remediations.core.flow_steps import iter_steps, secure_data

SECURE_DATA: tuple[str, ...] = ("inputs", "outputs")


def _steps_at(definition: Mapping[str, Any], paths: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = set(paths)
    return {s.path: s.action for s in iter_steps(definition.get("actions"), "actions") if s.path in wanted}


def unsecured(definition: Mapping[str, Any], paths: Iterable[str]) -> tuple[str, ...]:
    """The paths (of those given, that still exist) whose action lacks secure inputs or outputs."""
    return tuple(
        sorted(p for p, action in _steps_at(definition, paths).items() if not all(secure_data(action)))
    )


def with_secure_data(definition: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """A copy of the definition with secure inputs and outputs on the actions at `paths`; other
    `secureData` properties an action has are kept, and nothing else changes."""
    secured = copy.deepcopy(dict(definition))
    for action in _steps_at(secured, paths).values():
        runtime = action.setdefault("runtimeConfiguration", {})
        secure = runtime.setdefault("secureData", {})
        held = [p for p in secure.get("properties") or [] if isinstance(p, str)]
        secure["properties"] = [*held, *(p for p in SECURE_DATA if p not in {h.lower() for h in held})]
    return secured
