"""Static analysis of a flow (Logic Apps workflow) definition: its Key Vault steps and hard-coded credentials.

Pure: no I/O. Works on what Power Automate and Logic Apps store and export:

- Power Automate `OpenApiConnection` steps of the `shared_keyvault` connector
  (`inputs.host.apiId` / `inputs.host.api.id`, `inputs.host.operationId` GetSecret, ListSecrets, ...,
  `inputs.parameters.secretName`), or the older path form (`inputs.path` `/secrets/.../value`);
- Logic Apps `ApiConnection` steps whose `inputs.host.connection.name` is
  `@parameters('$connections')['keyvault']['connectionId']` and whose `$connections` entry is a
  `.../managedApis/keyvault`, with `inputs.path` `/secrets/@{encodeURIComponent('name')}/value` or `/secrets`;
- Logic Apps Standard `ServiceProvider` steps with `serviceProviderId` `/serviceProviders/keyVault`.

Steps are found at any depth (core/flow_steps.py walks the definition). Each one is reported with its
JSON path, e.g. `actions.Scope_1.actions.Get_secret`.

Hard-coded credentials are found by `core/flow_credentials.py`; this module puts both into one analysis,
and `core/flow_findings.py` makes the findings of an analysis.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import unquote

from pydantic import Field

from remediations.core.flow_credentials import (
    HardcodedCredential,
    credentials_in,
    is_expression,
    secure_parameter_defaults,
)
from remediations.core.flow_steps import Step, iter_steps, secure_data
from remediations.core.model import Frozen

KeyVaultOperation = Literal[
    "get_secret",
    "get_secret_version",
    "list_secrets",
    "list_secret_versions",
    "get_secret_metadata",
    "get_secret_version_metadata",
    "other",
]
# Operations whose output is a secret value.
VALUE_OPERATIONS: frozenset[str] = frozenset({"get_secret", "get_secret_version"})

_OPERATION_IDS: dict[str, KeyVaultOperation] = {
    "getsecret": "get_secret",
    "getsecretversion": "get_secret_version",
    "listsecrets": "list_secrets",
    "listsecretversions": "list_secret_versions",
    "getsecretmetadata": "get_secret_metadata",
    "getsecretversionmetadata": "get_secret_version_metadata",
}


class KeyVaultAction(Frozen):
    """One Key Vault step of a definition. Never holds a secret value (only names)."""

    path: str  # JSON path, e.g. actions.Scope_1.actions.Get_secret
    name: str  # the action's name (unique within a definition)
    kind: str  # action type as written: OpenApiConnection, ApiConnection, ServiceProvider, ...
    operation: KeyVaultOperation
    operation_id: str | None = None  # as written (operationId), None for the path form
    secret_name: str | None = None  # only when static
    dynamic_secret_name: bool = False  # the name is an expression (e.g. @items('Apply_to_each')?['name'])
    in_foreach: bool = False
    foreach_path: str | None = None  # innermost enclosing Foreach
    iterates_list_output: bool = False  # an enclosing Foreach iterates a List secrets output
    list_action: str | None = None  # name of that List secrets action
    secure_inputs: bool = False
    secure_outputs: bool = False
    connection_reference: str | None = None
    vault: str | None = None  # when the connection reference says (vaultName); exports rarely do

    @property
    def reveals_value(self) -> bool:
        return self.operation in VALUE_OPERATIONS


class DefinitionAnalysis(Frozen):
    keyvault_actions: tuple[KeyVaultAction, ...] = ()
    hardcoded_credentials: tuple[HardcodedCredential, ...] = ()
    # Static names read by GetSecret/GetSecretVersion outside a List secrets loop: what the flow needs
    # (usage-based least privilege, `allowList: fromFlows`). Sorted, unique.
    needed_secret_names: tuple[str, ...] = ()
    # True when some value-reading step takes its name from an expression other than a List secrets loop
    # (a variable, a trigger input): the flow may read any secret, so `needed_secret_names` is not complete.
    reads_dynamic_secret_names: bool = False
    vault_names: tuple[str, ...] = Field(default=())  # vaults named by the connection references, if any

    @property
    def list_actions(self) -> tuple[KeyVaultAction, ...]:
        return tuple(a for a in self.keyvault_actions if a.operation == "list_secrets")

    @property
    def value_reads(self) -> tuple[KeyVaultAction, ...]:
        return tuple(a for a in self.keyvault_actions if a.reveals_value)

    @property
    def insecure_value_reads(self) -> tuple[KeyVaultAction, ...]:
        return tuple(a for a in self.value_reads if not a.secure_outputs)

    @property
    def dumps_vault(self) -> bool:
        """List secrets, then a Get secret per listed item: the flow reads every secret it can list."""
        return any(a.iterates_list_output for a in self.value_reads)


# --- Key Vault steps -----------------------------------------------------------------------------------

# parameters('$connections')['keyvault'] -> keyvault (also inside {..} and @{..} wrappers)
_CONNECTIONS_REF = re.compile(r"parameters\(\s*'\$connections'\s*\)\s*\[\s*'([^']+)'\s*\]")
_ACTION_REF = re.compile(r"\b(?:body|outputs)\(\s*'([^']+)'\s*\)")
_ENCODED_NAME = re.compile(r"^@\{\s*(?:encodeURIComponent\(\s*)+'((?:[^']|'')*)'\s*\)+\s*\}$")


def _reference_name(host: Mapping[str, Any]) -> str | None:
    """The connection reference a step uses: `connectionName`, or the `$connections` key it names."""
    for raw in (host.get("connectionName"), host.get("connection")):
        candidate = raw.get("name") or raw.get("referenceName") if isinstance(raw, dict) else raw
        if isinstance(candidate, str) and candidate:
            match = _CONNECTIONS_REF.search(candidate)
            return match.group(1) if match else candidate
    return None


# .../apis/shared_keyvault, .../managedApis/keyvault, and ARM forms such as
# [subscriptionResourceId('Microsoft.Web/locations/managedApis', parameters('location'), 'keyvault')]
_KEYVAULT_API = re.compile(r"(?:^|[/'\"])(?:shared_)?keyvault['\")\]\s]*$")


def _is_keyvault_api(api: str | None) -> bool:
    return bool(api) and _KEYVAULT_API.search(str(api).strip().rstrip("/").lower()) is not None


def _reference_api(reference: Any) -> str | None:
    """Connector of a connection reference in any export form: `id`, `api.id`, `api.name`, `apiId`."""
    if not isinstance(reference, Mapping):
        return None
    api = reference.get("api")
    for candidate in (
        reference.get("id"),
        reference.get("apiId"),
        api.get("id") if isinstance(api, Mapping) else None,
        api.get("name") if isinstance(api, Mapping) else None,
    ):
        if isinstance(candidate, str) and candidate:
            return candidate
    return None


def _find_vault_name(value: Any, depth: int = 0) -> str | None:
    if depth > 3 or not isinstance(value, Mapping):
        return None
    for key, item in value.items():
        if str(key).lower() == "vaultname":
            if isinstance(item, str) and item and not is_expression(item):
                return item
            if isinstance(item, Mapping) and isinstance(item.get("value"), str):
                return str(item["value"])
        found = _find_vault_name(item, depth + 1)
        if found:
            return found
    return None


def _without_query(path: str) -> str:
    """The path before its query string; a `?` inside `@{...}` (the `?[...]` operator) is not one."""
    depth = 0
    quoted = False
    for index, char in enumerate(path):
        if char == "'" and depth:
            quoted = not quoted
        elif not quoted and char == "{":
            depth += 1
        elif not quoted and char == "}" and depth:
            depth -= 1
        elif char == "?" and not depth:
            return path[:index]
    return path


def _operation_from_path(path: str) -> tuple[KeyVaultOperation, str | None] | None:
    """(operation, raw name segment) from a Key Vault connector path such as `/secrets/{name}/value`."""
    clean = _without_query(path).strip().rstrip("/")
    parts = clean.split("/")
    if len(parts) < 2 or parts[0] != "" or parts[1].lower() != "secrets":
        return None
    rest = parts[2:]
    if not rest:
        return "list_secrets", None
    name = rest[0]
    tail = [p.lower() for p in rest[1:]]
    shapes: dict[tuple[str, ...], KeyVaultOperation] = {
        (): "get_secret_metadata",
        ("value",): "get_secret",
        ("versions",): "list_secret_versions",
    }
    if tuple(tail) in shapes:
        return shapes[tuple(tail)], name
    if len(tail) == 2 and tail[0] == "versions":
        return "get_secret_version_metadata", name
    if len(tail) == 3 and tail[0] == "versions" and tail[2] == "value":
        return "get_secret_version", name
    return "other", name


def _static_name(raw: Any) -> tuple[str | None, bool]:
    """(static name, dynamic?) of a secret-name parameter or path segment."""
    if not isinstance(raw, str) or not raw:
        return None, False
    match = _ENCODED_NAME.match(raw.strip())
    # An ARM template part left unresolved (cli/flow_files.py renders it as `@{...}`) is not a literal name.
    if match and "@{" not in match.group(1):
        return match.group(1).replace("''", "'"), False
    if is_expression(raw):
        return None, True
    return unquote(raw.removeprefix("@@")) if raw.startswith("@@") else unquote(raw), False


def _keyvault_step(
    step: Step, connection_references: Mapping[str, Any]
) -> tuple[KeyVaultAction, tuple[str, ...]] | None:
    """The Key Vault step at `step`, plus the action names its enclosing Foreach expressions read."""
    action = step.action
    kind = str(action.get("type", ""))
    inputs = action.get("inputs")
    if not isinstance(inputs, Mapping):
        return None
    reference: str | None = None
    operation_id: str | None = None
    parameters: Mapping[str, Any] = {}
    raw_path: str | None = None
    if kind.lower() == "serviceprovider":
        config = inputs.get("serviceProviderConfiguration")
        if not isinstance(config, Mapping):
            return None
        if str(config.get("serviceProviderId", "")).rstrip("/").lower() != "/serviceproviders/keyvault":
            return None
        reference = str(config.get("connectionName") or "") or None
        operation_id = str(config.get("operationId") or "") or None
    else:
        host = inputs.get("host")
        if not isinstance(host, Mapping):
            return None
        reference = _reference_name(host)
        api = host.get("api")
        api_id = host.get("apiId") or (api.get("id") if isinstance(api, Mapping) else None)
        if not api_id and reference is not None:
            api_id = _reference_api(connection_references.get(reference))
        if api_id:
            if not _is_keyvault_api(str(api_id)):
                return None
        # No connector known (a bare definition without its references): trust a reference named for it.
        elif reference is None or "keyvault" not in reference.lower():
            return None
        operation_id = str(host.get("operationId") or "") or None
        raw_path = inputs.get("path") if isinstance(inputs.get("path"), str) else None
    if isinstance(inputs.get("parameters"), Mapping):
        parameters = inputs["parameters"]

    operation: KeyVaultOperation = "other"
    raw_name: Any = parameters.get("secretName")
    if operation_id:
        operation = _OPERATION_IDS.get(operation_id.lower(), "other")
    elif raw_path is not None:
        parsed = _operation_from_path(raw_path)
        if parsed is None:
            operation = "other"
        else:
            operation, segment = parsed
            raw_name = segment if raw_name is None else raw_name
    if operation == "list_secrets":
        raw_name = None
    secret_name, dynamic = _static_name(raw_name)
    secure_inputs, secure_outputs = secure_data(action)

    referenced: tuple[str, ...] = ()
    foreach_path = None
    if step.foreaches:
        foreach_path = step.foreaches[-1][0]
        referenced = tuple(n for _, _, expr in step.foreaches for n in _ACTION_REF.findall(expr))
    vault = _find_vault_name(connection_references.get(reference)) if reference else None
    return (
        KeyVaultAction(
            path=step.path,
            name=step.name,
            kind=kind,
            operation=operation,
            operation_id=operation_id,
            secret_name=secret_name,
            dynamic_secret_name=dynamic,
            in_foreach=bool(step.foreaches),
            foreach_path=foreach_path,
            secure_inputs=secure_inputs,
            secure_outputs=secure_outputs,
            connection_reference=reference,
            vault=vault,
        ),
        referenced,
    )


# --- the analysis --------------------------------------------------------------------------------------


def analyze_definition(
    definition: dict[str, Any], *, connection_references: Mapping[str, Any] | None = None
) -> DefinitionAnalysis:
    """Every Key Vault step and every hard-coded credential in a flow definition.

    `connection_references` is the flow's `connectionReferences` (Power Automate) or the `$connections`
    parameter value (Logic Apps); it tells which connector a step without `apiId` uses and, when it carries
    a `vaultName`, which vault.
    """
    references: Mapping[str, Any] = connection_references or {}
    if not references:
        # Logic Apps keep the references in the definition's $connections default, when at all.
        connections = (definition.get("parameters") or {}).get("$connections")
        if isinstance(connections, Mapping):
            default = connections.get("defaultValue") or connections.get("value")
            if isinstance(default, Mapping):
                references = default

    found: list[tuple[KeyVaultAction, tuple[str, ...]]] = []
    credentials: list[HardcodedCredential] = []
    for step in iter_steps(definition.get("actions"), "actions"):
        kv = _keyvault_step(step, references)
        if kv is not None:
            found.append(kv)
        credentials.extend(credentials_in(step.path, step.action))
    triggers = definition.get("triggers")
    if isinstance(triggers, Mapping):
        for name, trigger in triggers.items():
            if isinstance(trigger, Mapping):
                credentials.extend(credentials_in(f"triggers.{name}", trigger))
    credentials.extend(secure_parameter_defaults(definition))

    list_names = {a.name for a, _ in found if a.operation == "list_secrets"}
    actions: list[KeyVaultAction] = []
    for found_action, referenced in found:
        listed = next((n for n in referenced if n in list_names), None)
        if listed is not None:
            update = {"iterates_list_output": True, "list_action": listed}
            found_action = found_action.model_copy(update=update)  # noqa: PLW2901 - frozen: copy to mark
        actions.append(found_action)

    needed = sorted(
        {
            a.secret_name
            for a in actions
            if a.reveals_value and a.secret_name is not None and not a.iterates_list_output
        }
    )
    dynamic = any(a.reveals_value and a.dynamic_secret_name and not a.iterates_list_output for a in actions)
    vaults = sorted({a.vault for a in actions if a.vault})
    return DefinitionAnalysis(
        keyvault_actions=tuple(actions),
        hardcoded_credentials=tuple(credentials),
        needed_secret_names=tuple(needed),
        reads_dynamic_secret_names=dynamic,
        vault_names=tuple(vaults),
    )
