"""Bad files: policy and scenario files with bad values fail with a clear error naming the field
(and never with a traceback from deep inside, or by silently using a default)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from emulator.scenario import load_scenario_file
from remediations.core.policy import PolicyError
from remediations.shell.policy_file import load_policy

POLICIES: list[tuple[dict[str, Any], str]] = [
    ({"maxActionsPerRun": -1}, "maxActionsPerRun"),
    ({"maxActionsPerRun": "many"}, "maxActionsPerRun"),
    ({"dryRun": "maybe"}, "dryRun"),
    ({"breakGlass": 3}, "breakGlass"),
    ({"secretPermissions": {"byIdentity": {"x": ["get", "lisst"]}}}, "secretPermissions"),
    ({"exclusions": {"vaults": "kv-a"}}, "exclusions"),
    ({"unknownSetting": True}, "unknownSetting"),
]


@pytest.mark.parametrize(("data", "field"), POLICIES)
def test_bad_policy_values_name_the_field(tmp_path: Path, data: dict[str, Any], field: str) -> None:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(data))
    with pytest.raises(PolicyError) as error:
        load_policy(path=path)
    assert field in str(error.value) and "Traceback" not in str(error.value)


SCENARIOS: list[tuple[dict[str, Any], str]] = [
    ({"vaults": [{"name": "kv", "resourceGroup": "rg", "accessPolicies": [{"objectId": 5}]}]}, "objectId"),
    ({"vaults": [{"name": "", "resourceGroup": "rg"}]}, "name"),
    ({"vaults": "not-a-list"}, "vaults"),
    ({"tenantId": "not-a-guid"}, "tenantId"),
]


@pytest.mark.parametrize(("data", "field"), SCENARIOS)
def test_bad_scenario_values_name_the_field(tmp_path: Path, data: dict[str, Any], field: str) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError) as error:
        load_scenario_file(path)
    assert field in str(error.value), str(error.value)
