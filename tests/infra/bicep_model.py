"""A small reading layer over pycep's parse of the Bicep in infra/ (no Bicep compiler on the machine).

pycep returns a dict per file: `parameters`, `variables`, `resources`, `modules`, `outputs`. A resource or
module with `if (...)` or `[for ...]` wraps its body as `{"condition"/"loop_type": ..., "config": body}`;
expressions are nested `{"operator": ...}` / `{"function": ...}` dicts, and names of params/vars/resources
appear as bare strings. These helpers unwrap that just enough for the infra tests to assert structure.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

from pycep import BicepParser

INFRA = Path(__file__).resolve().parents[2] / "infra"

Template = dict[str, Any]

_INTERPOLATION = re.compile(r"\$\{(\w+)\}")


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@functools.cache
def template(relative: str) -> Template:
    """The parsed template of infra/<relative>, e.g. `template("app/api.bicep")`."""
    parsed = BicepParser().parse(file_path=INFRA / relative)
    return dict(parsed)


def body(entry: dict[str, Any]) -> dict[str, Any]:
    """A resource's or module's own properties, with any `if`/`for` wrapper removed."""
    config: dict[str, Any] = entry["config"]
    if "loop_type" in config or ("condition" in config and "config" in config):
        inner: dict[str, Any] = config["config"]
        return inner
    return config


def condition(entry: dict[str, Any]) -> Any:
    """The `if (...)` expression of a resource or module, or None when it is unconditional."""
    return entry["config"].get("condition") if "config" in entry["config"] else None


def loop(entry: dict[str, Any]) -> dict[str, Any] | None:
    """`{"item_name": ..., "array_name": ...}` of a `[for x in y: ...]` resource or module, else None."""
    loop_type = entry["config"].get("loop_type")
    return None if loop_type is None else dict(loop_type["detail"])


def resources(tpl: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    """Resources of one type declared (not `existing`) in the template, by symbolic name."""
    return {
        name: entry
        for name, entry in tpl.get("resources", {}).items()
        if entry["type"] == resource_type and not entry["existing"]
    }


def only(tpl: Template, resource_type: str) -> dict[str, Any]:
    """The body of the single resource of a type in the template."""
    found = resources(tpl, resource_type)
    assert len(found) == 1, f"expected one {resource_type}, found {sorted(found)}"
    return body(next(iter(found.values())))


def dotted(value: Any) -> str:
    """`a.b.c` for a property-access expression (or a bare name); anything else is an error."""
    if isinstance(value, str):
        return value
    operator = value["operator"]
    assert operator["type"] == "property_accessor", value
    operands = operator["operands"]
    return f"{dotted(operands['operand_1'])}.{dotted(operands['operand_2'])}"


def variable(tpl: Template, name: str) -> Any:
    return resolve(tpl, tpl["variables"][name]["value"])


def resolve(tpl: Template, value: Any) -> Any:
    """Substitute the template's string variables into a value: a bare variable name becomes its value and
    `${var}` interpolations of string variables are expanded. Other names are left as they are."""
    variables = tpl.get("variables", {})
    if isinstance(value, str):
        if value in variables:
            return resolve(tpl, variables[value]["value"])

        def expand(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                resolved = resolve(tpl, variables[name]["value"])
                if isinstance(resolved, str):
                    return resolved
            return match.group(0)

        return _INTERPOLATION.sub(expand, value).replace("\\'", "'")
    return value


def role_definition_guid(tpl: Template, assignment: dict[str, Any]) -> str:
    """The role GUID of a role assignment written as
    `subscriptionResourceId('Microsoft.Authorization/roleDefinitions', <guid var>)`."""
    function = assignment["properties"]["roleDefinitionId"]["function"]
    assert function["type"] == "subscription_resource_id", function
    parameters = function["parameters"]
    assert parameters["resource_type"] == "Microsoft.Authorization/roleDefinitions", parameters
    guid = resolve(tpl, parameters["resource_name_1"])
    assert isinstance(guid, str), guid
    return guid.lower()


def app_settings(tpl: Template) -> dict[str, Any]:
    """The function app's `siteConfig.appSettings`, by name."""
    site = only(tpl, "Microsoft.Web/sites")
    return {item["name"]: item["value"] for item in site["properties"]["siteConfig"]["appSettings"]}
