"""The deployment as a whole: every file parses, azd wiring, pinned AVM modules, parameter files, outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.infra.bicep_model import INFRA, bicep_files, body, loop, template

ROOT = INFRA.parent


@pytest.mark.parametrize("path", bicep_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses(path: Path) -> None:
    parsed = template(str(path.relative_to(INFRA)))
    assert parsed.get("resources") or parsed.get("modules"), f"{path} declares nothing"


def test_local_modules_exist() -> None:
    for path in bicep_files():
        for name, module in template(str(path.relative_to(INFRA))).get("modules", {}).items():
            if module["type"] == "local":
                target = (path.parent / module["detail"]["path"]).resolve()
                assert target.is_file(), f"{path.name}: module {name} -> missing {target}"


def test_main_is_subscription_scoped_with_azd_naming() -> None:
    main = template("main.bicep")
    assert main["globals"]["scope"]["value"] == "subscription"
    token = json.dumps(main["variables"]["resourceToken"]["value"])
    assert '"to_lower"' in token and '"unique_string"' in token
    for name in ("environmentName", "location"):
        assert '"' + name + '"' in token
    tags = main["variables"]["tags"]["value"]
    assert tags["'azd-env-name'"] == "environmentName"
    rg = body(main["resources"]["rg"])
    assert rg["tags"] == "tags"


def test_avm_modules_are_public_and_pinned() -> None:
    registry = {
        name: module["detail"]
        for name, module in template("main.bicep")["modules"].items()
        if module["type"] != "local"
    }
    assert {detail["path"] for detail in registry.values()} == {
        "avm/res/managed-identity/user-assigned-identity",
        "avm/res/web/serverfarm",
        "avm/res/operational-insights/workspace",
        "avm/res/insights/component",
    }
    for name, detail in registry.items():
        assert detail["public"] and detail["alias"] == "public", name
        assert re.fullmatch(r"\d+\.\d+\.\d+", detail["tag"]), f"{name} is not pinned: {detail['full']}"


def test_plan_is_flex_consumption_and_app_insights_has_no_local_auth() -> None:
    modules = template("main.bicep")["modules"]
    plan = body(modules["plan"])["params"]
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["reserved"] is True
    insights = body(modules["appInsights"])["params"]
    assert insights["disableLocalAuth"] is True
    assert insights["workspaceResourceId"] == {
        "operator": {
            "type": "property_accessor",
            "operands": {
                "operand_1": "logAnalytics",
                "operand_2": {
                    "operator": {
                        "type": "property_accessor",
                        "operands": {"operand_1": "outputs", "operand_2": "resourceId"},
                    }
                },
            },
        }
    }


def test_azure_yaml_deploys_this_folder_as_a_python_function() -> None:
    text = (ROOT / "azure.yaml").read_text()
    services = text[text.index("services:") :]
    assert re.search(r"^  api:\n    project: \.\n    language: python\n    host: function$", services, re.M)
    assert re.search(r"^infra:\n  provider: bicep\n  path: infra\n  module: main$", text, re.M)


@pytest.mark.parametrize(
    "name", ["main.parameters.json", "main.dev.parameters.json", "main.prod.parameters.json"]
)
def test_parameter_files_set_only_declared_parameters_and_every_required_one(name: str) -> None:
    declared = template("main.bicep")["parameters"]
    given = json.loads((INFRA / name).read_text())["parameters"]
    assert set(given) <= set(declared), set(given) - set(declared)
    required = {p for p, spec in declared.items() if spec["default"] is None}
    assert required <= set(given), required - set(given)
    dry_run = given.get("dryRun", {"value": declared["dryRun"]["default"]})["value"]
    assert dry_run in (True, "${VAULTGUARD_DRY_RUN=true}"), f"{name} must keep dry-run on by default"


def test_dry_run_defaults_to_true_all_the_way_down() -> None:
    assert template("main.bicep")["parameters"]["dryRun"]["default"] is True
    assert template("app/api.bicep")["parameters"]["dryRun"]["default"] is True


def test_outputs_carry_no_keys_or_secrets() -> None:
    for path in bicep_files():
        tpl = template(str(path.relative_to(INFRA)))
        for name, output in tpl.get("outputs", {}).items():
            text = json.dumps(output).lower()
            assert "listkeys" not in text and "connectionstring" not in text, f"{path.name}:{name}"
            assert not re.search(r"key|secret|password", name, re.I), f"{path.name}:{name}"
        for name, param in tpl.get("parameters", {}).items():
            assert not any(d["type"] == "secure" for d in param["decorators"]), f"{path.name}:{name}"
            plain = re.sub("keyvault", "", name, flags=re.I)
            assert not re.search(r"key|secret|password", plain, re.I), (
                f"{path.name}: parameter {name} looks like a secret; secrets do not belong in parameters"
            )


def test_azd_outputs() -> None:
    outputs = template("main.bicep")["outputs"]
    for name in (
        "AZURE_LOCATION",
        "AZURE_TENANT_ID",
        "AZURE_RESOURCE_GROUP",
        "AZURE_FUNCTION_NAME",
        "SERVICE_API_NAME",
        "VAULTGUARD_ALERTS_ENDPOINT",
    ):
        assert name in outputs, name


def test_remediation_scope_modules_loop_over_their_parameters() -> None:
    modules = template("main.bicep")["modules"]
    assert loop(modules["targetRoles"]) == {"item_name": "groupName", "array_name": "targetResourceGroups"}
    assert body(modules["targetRoles"])["scope"]["function"]["type"] == "resource_group"
    assert loop(modules["rotationRoles"]) == {
        "item_name": "vaultId",
        "array_name": "rotationVaultResourceIds",
    }
    assert body(modules["rotationRoles"])["scope"]["function"]["type"] == "resource_group"
