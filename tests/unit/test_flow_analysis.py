"""analyze_definition / flow_findings on hand-built definitions (fixtures: test_scan_flows.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from remediations.core.flow_analysis import DefinitionAnalysis, analyze_definition
from remediations.core.flow_findings import FLOW_DETECTOR_IDS, FlowRef, flow_findings
from remediations.core.flow_steps import iter_actions

KV_API = "/providers/Microsoft.PowerApps/apis/shared_keyvault"


def kv(
    operation: str, secret: str | None = None, *, secure: list[str] | None = None, **host: Any
) -> dict[str, Any]:
    action: dict[str, Any] = {
        "type": "OpenApiConnection",
        "runAfter": {},
        "inputs": {
            "host": {"apiId": KV_API, "connectionName": "shared_keyvault", "operationId": operation, **host},
            "parameters": {"secretName": secret} if secret is not None else {},
            "authentication": "@parameters('$authentication')",
        },
    }
    if secure is not None:
        action["runtimeConfiguration"] = {"secureData": {"properties": secure}}
    return action


def api_connection(path: str, reference: str = "keyvault") -> dict[str, Any]:
    return {
        "type": "ApiConnection",
        "runAfter": {},
        "inputs": {
            "host": {"connection": {"name": f"@parameters('$connections')['{reference}']['connectionId']"}},
            "method": "get",
            "path": path,
        },
    }


def http(**inputs: Any) -> dict[str, Any]:
    return {
        "type": "Http",
        "runAfter": {},
        "inputs": {"method": "GET", "uri": "https://api.example.com/x", **inputs},
    }


def definition(actions: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"triggers": {"manual": {"type": "Request", "kind": "Button"}}, "actions": actions, **extra}


def by_path(analysis: DefinitionAnalysis) -> dict[str, Any]:
    return {a.path: a for a in analysis.keyvault_actions}


# --- Key Vault steps -------------------------------------------------------------------------------------


def test_open_api_get_secret_with_secure_inputs_and_outputs() -> None:
    analysis = analyze_definition(
        definition({"Get_secret": kv("GetSecret", "db-pw", secure=["inputs", "outputs"])})
    )
    (action,) = analysis.keyvault_actions
    assert action.path == "actions.Get_secret"
    assert action.kind == "OpenApiConnection"
    assert (action.operation, action.operation_id, action.secret_name) == ("get_secret", "GetSecret", "db-pw")
    assert action.secure_inputs and action.secure_outputs
    assert action.connection_reference == "shared_keyvault"
    assert not action.in_foreach and not action.iterates_list_output
    assert analysis.needed_secret_names == ("db-pw",)
    assert analysis.insecure_value_reads == ()


def test_secure_inputs_only_leaves_outputs_insecure() -> None:
    analysis = analyze_definition(definition({"Get_secret": kv("GetSecret", "db-pw", secure=["inputs"])}))
    (action,) = analysis.keyvault_actions
    assert action.secure_inputs and not action.secure_outputs
    assert analysis.insecure_value_reads == (action,)


def test_every_nesting_construct_is_walked_with_its_json_path() -> None:
    actions = {
        "Scope_1": {
            "type": "Scope",
            "actions": {
                "Condition": {
                    "type": "If",
                    "expression": {"and": [{"equals": ["@true", "@true"]}]},
                    "actions": {"Get_in_if": kv("GetSecret", "a")},
                    "else": {"actions": {"Get_in_else": kv("GetSecretVersion", "b", secretVersion="1")}},
                }
            },
        },
        "Switch": {
            "type": "Switch",
            "expression": "@triggerBody()?['x']",
            "cases": {"Case": {"case": "one", "actions": {"Get_in_case": kv("GetSecret", "c")}}},
            "default": {"actions": {"Get_in_default": kv("GetSecretMetadata", "d")}},
        },
        "Until": {
            "type": "Until",
            "expression": "@equals(1, 1)",
            "limit": {"count": 3},
            "actions": {"Get_in_until": kv("GetSecret", "e", secure=["outputs"])},
        },
    }
    paths = by_path(analyze_definition(definition(actions)))
    assert set(paths) == {
        "actions.Scope_1.actions.Condition.actions.Get_in_if",
        "actions.Scope_1.actions.Condition.else.actions.Get_in_else",
        "actions.Switch.cases.Case.actions.Get_in_case",
        "actions.Switch.default.actions.Get_in_default",
        "actions.Until.actions.Get_in_until",
    }
    assert (
        paths["actions.Scope_1.actions.Condition.else.actions.Get_in_else"].operation == "get_secret_version"
    )
    assert paths["actions.Switch.default.actions.Get_in_default"].operation == "get_secret_metadata"
    # Metadata reads do not reveal a value, so "d" is not a needed name.
    assert analyze_definition(definition(actions)).needed_secret_names == ("a", "b", "c", "e")


@pytest.mark.parametrize(
    "items",
    [
        "@body('List_secrets')?['value']",
        "@outputs('List_secrets')?['body/value']",
        "@body('List_secrets').value",
    ],
)
def test_foreach_over_list_secrets_output_is_the_vault_dump(items: str) -> None:
    actions = {
        "List_secrets": kv("ListSecrets"),
        "Apply_to_each": {
            "type": "Foreach",
            "foreach": items,
            "actions": {"Get_secret": kv("GetSecret", "@items('Apply_to_each')?['name']")},
            "runAfter": {"List_secrets": ["Succeeded"]},
        },
    }
    analysis = analyze_definition(definition(actions))
    get = by_path(analysis)["actions.Apply_to_each.actions.Get_secret"]
    assert get.in_foreach and get.foreach_path == "actions.Apply_to_each"
    assert get.iterates_list_output and get.list_action == "List_secrets"
    assert get.secret_name is None and get.dynamic_secret_name
    assert analysis.dumps_vault
    assert analysis.needed_secret_names == ()
    assert not analysis.reads_dynamic_secret_names  # the loop's names are the listed ones, reported as a dump


def test_foreach_over_something_else_is_not_a_dump() -> None:
    actions = {
        "List_secrets": kv("ListSecrets"),
        "Apply_to_each": {
            "type": "Foreach",
            "foreach": "@triggerBody()?['names']",
            "actions": {"Get_secret": kv("GetSecret", "@items('Apply_to_each')")},
        },
    }
    analysis = analyze_definition(definition(actions))
    get = by_path(analysis)["actions.Apply_to_each.actions.Get_secret"]
    assert get.in_foreach and not get.iterates_list_output
    assert not analysis.dumps_vault
    assert analysis.reads_dynamic_secret_names


def test_nested_foreach_inherits_the_list_loop() -> None:
    actions = {
        "List_secrets": kv("ListSecrets"),
        "Outer": {
            "type": "Foreach",
            "foreach": "@body('List_secrets')?['value']",
            "actions": {
                "Inner": {
                    "type": "Foreach",
                    "foreach": "@variables('versions')",
                    "actions": {"Get_v": kv("GetSecret", "@items('Outer')?['name']")},
                }
            },
        },
    }
    get = by_path(analyze_definition(definition(actions)))["actions.Outer.actions.Inner.actions.Get_v"]
    assert get.foreach_path == "actions.Outer.actions.Inner"
    assert get.iterates_list_output and get.list_action == "List_secrets"


def test_logic_apps_api_connection_paths_with_connections_parameter() -> None:
    connections = {
        "keyvault": {
            "connectionId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Web/connections/keyvault",
            "connectionName": "keyvault",
            "id": "/subscriptions/s/providers/Microsoft.Web/locations/westeurope/managedApis/keyvault",
        },
        "office365": {
            "id": "/subscriptions/s/providers/Microsoft.Web/locations/westeurope/managedApis/office365"
        },
    }
    actions = {
        "Get_token": api_connection("/secrets/@{encodeURIComponent('api-token')}/value"),
        "Get_double": api_connection("/secrets/@{encodeURIComponent(encodeURIComponent('sql-pw'))}/value"),
        "Get_version": api_connection("/secrets/@{encodeURIComponent('cert')}/versions/abc/value"),
        "List_secrets": api_connection("/secrets"),
        "Meta": api_connection("/secrets/@{encodeURIComponent('x')}"),
        # `?[...]` inside an expression is not a query string.
        "Dynamic": api_connection(
            "/secrets/@{encodeURIComponent(items('Loop')?['name'])}/value?api-version=1"
        ),
        "Send_mail": api_connection("/v2/Mail", reference="office365"),
    }
    analysis = analyze_definition(definition(actions), connection_references=connections)
    got = {
        a.name: (a.kind, a.operation, a.secret_name, a.connection_reference)
        for a in analysis.keyvault_actions
    }
    assert got == {
        "Get_token": ("ApiConnection", "get_secret", "api-token", "keyvault"),
        "Get_double": ("ApiConnection", "get_secret", "sql-pw", "keyvault"),
        "Get_version": ("ApiConnection", "get_secret_version", "cert", "keyvault"),
        "List_secrets": ("ApiConnection", "list_secrets", None, "keyvault"),
        "Meta": ("ApiConnection", "get_secret_metadata", "x", "keyvault"),
        "Dynamic": ("ApiConnection", "get_secret", None, "keyvault"),
    }
    assert analysis.reads_dynamic_secret_names
    assert analysis.needed_secret_names == ("api-token", "cert", "sql-pw")


def test_connector_is_decided_by_the_reference_not_the_name() -> None:
    # A reference called "keyvault" that points at another connector is not Key Vault...
    other = {"keyvault": {"id": "/subscriptions/s/providers/Microsoft.Web/locations/x/managedApis/sql"}}
    actions = {"Get": api_connection("/secrets/@{encodeURIComponent('n')}/value")}
    assert analyze_definition(definition(actions), connection_references=other).keyvault_actions == ()
    # ...and a Key Vault reference with an unrelated name is.
    renamed = {"kv-prod": {"id": "/subscriptions/s/providers/Microsoft.Web/locations/x/managedApis/keyvault"}}
    actions = {"Get": api_connection("/secrets/@{encodeURIComponent('n')}/value", reference="kv-prod")}
    (action,) = analyze_definition(definition(actions), connection_references=renamed).keyvault_actions
    assert action.connection_reference == "kv-prod"


def test_solution_style_references_and_vault_name() -> None:
    step = kv("GetSecret", "n")
    del step["inputs"]["host"]["apiId"]
    step["inputs"]["host"]["connectionName"] = "shared_keyvault_1"
    references = {
        "shared_keyvault_1": {
            "runtimeSource": "embedded",
            "connection": {"connectionReferenceLogicalName": "cr_keyvault"},
            "api": {"name": "shared_keyvault"},
            "connectionParameters": {"vaultName": "kv-payroll"},
        }
    }
    analysis = analyze_definition(definition({"Get": step}), connection_references=references)
    (action,) = analysis.keyvault_actions
    assert action.vault == "kv-payroll" and analysis.vault_names == ("kv-payroll",)


def test_api_object_form_with_path_and_service_provider_form() -> None:
    hybrid = {
        "type": "OpenApiConnection",
        "inputs": {
            "host": {
                "connection": {"name": "@parameters('$connections')['keyvault']['connectionId']"},
                "api": {"id": KV_API},
            },
            "method": "get",
            "path": "/secrets/@{encodeURIComponent('function-key')}/value",
        },
    }
    service_provider = {
        "type": "ServiceProvider",
        "inputs": {
            "parameters": {"secretName": "clientsecret"},
            "serviceProviderConfiguration": {
                "connectionName": "keyVault",
                "operationId": "getSecret",
                "serviceProviderId": "/serviceProviders/keyVault",
            },
        },
    }
    analysis = analyze_definition(definition({"Hybrid": hybrid, "Std": service_provider}))
    got = {a.name: (a.operation, a.secret_name, a.connection_reference) for a in analysis.keyvault_actions}
    assert got == {
        "Hybrid": ("get_secret", "function-key", "keyvault"),
        "Std": ("get_secret", "clientsecret", "keyVault"),
    }


def test_other_connectors_and_plain_actions_are_ignored() -> None:
    actions = {
        "Compose": {"type": "Compose", "inputs": "@body('x')"},
        "Post": {
            "type": "OpenApiConnection",
            "inputs": {
                "host": {
                    "apiId": "/providers/Microsoft.PowerApps/apis/shared_office365",
                    "operationId": "SendEmailV2",
                },
                "parameters": {"emailMessage/Subject": "hi"},
            },
        },
    }
    assert analyze_definition(definition(actions)) == DefinitionAnalysis()


def test_iter_actions_yields_nested_actions_and_triggers() -> None:
    d = definition({"Scope": {"type": "Scope", "actions": {"Inner": {"type": "Compose"}}}})
    assert [p for p, _ in iter_actions(d)] == [
        "actions.Scope",
        "actions.Scope.actions.Inner",
        "triggers.manual",
    ]


# --- hard-coded credentials --------------------------------------------------------------------------------

PLANTED = {
    "basic_pw": "Tr0ub4dor&3-horse",
    "api_key": "k3y-0f-th3-p4rtn3r-api",
    "bearer": "abc.def-ghi_jkl",
    "sp_secret": "Qx8~vT2.pL9rZ4kW7mN1bF6hJ3sD5gA0cE",
    "sig": "R4nd0mS1gn4tur3V4lu3",
    "account_key": "bm90LXJlYWxseS1hLWtleS1idXQtbG9uZy1lbm91Z2g=",
    "token": "9f8e7d6c5b4a39281706f5e4d3c2b1a0ZyXwVuTs",
}


def credential_definition() -> dict[str, Any]:
    return definition(
        {
            "Basic_call": http(
                authentication={"type": "Basic", "username": "svc", "password": PLANTED["basic_pw"]}
            ),
            "Scope": {
                "type": "Scope",
                "actions": {
                    "Key_header": http(
                        headers={"X-API-Key": PLANTED["api_key"], "Accept": "application/json"}
                    ),
                    "Bearer_header": http(headers={"Authorization": f"Bearer {PLANTED['bearer']}"}),
                },
            },
            "OAuth": http(
                authentication={
                    "type": "ActiveDirectoryOAuth",
                    "tenant": "contoso.onmicrosoft.com",
                    "audience": "https://management.azure.com",
                    "clientId": "00000000-0000-0000-0000-000000000001",
                    "secret": PLANTED["sp_secret"],
                }
            ),
            "Sas_uri": http(
                uri=f"https://st.blob.core.windows.net/c/b?sv=2022-11-02&sp=r&sig={PLANTED['sig']}"
            ),
            "Conn_string": {
                "type": "Compose",
                "inputs": {
                    "cs": "DefaultEndpointsProtocol=https;AccountName=st;"
                    f"AccountKey={PLANTED['account_key']};"
                },
            },
            "Token_literal": {"type": "Compose", "inputs": {"note": PLANTED["token"]}},
        }
    )


def test_hard_coded_credentials_are_found_by_place_and_kind_without_values() -> None:
    analysis = analyze_definition(credential_definition())
    got = {(c.path, c.field, c.kind, c.length) for c in analysis.hardcoded_credentials}
    assert got == {
        (
            "actions.Basic_call",
            "inputs.authentication.password",
            "basic_auth_password",
            len(PLANTED["basic_pw"]),
        ),
        (
            "actions.Scope.actions.Key_header",
            "inputs.headers.X-API-Key",
            "api_key_header",
            len(PLANTED["api_key"]),
        ),
        (
            "actions.Scope.actions.Bearer_header",
            "inputs.headers.Authorization",
            "bearer_token_header",
            len(PLANTED["bearer"]),
        ),
        ("actions.OAuth", "inputs.authentication.secret", "oauth_client_secret", len(PLANTED["sp_secret"])),
        ("actions.Sas_uri", "inputs.uri", "query_string_secret", len(PLANTED["sig"])),
        ("actions.Conn_string", "inputs.cs", "connection_string_key", len(PLANTED["account_key"])),
        ("actions.Token_literal", "inputs.note", "high_entropy_token", len(PLANTED["token"])),
    }
    dumped = analysis.model_dump_json()
    for value in PLANTED.values():
        assert value not in dumped


def test_references_and_placeholders_are_not_credentials() -> None:
    d = definition(
        {
            "Refs": http(
                headers={
                    "Authorization": "Bearer @{body('Get_secret')?['value']}",
                    "x-api-key": "@parameters('partnerKey')",
                    "Ocp-Apim-Subscription-Key": "@body('Get_secret')?['value']",
                },
                authentication={"type": "Basic", "username": "svc", "password": "@parameters('pw')"},
                uri="https://f.azurewebsites.net/api/x?code=@{body('Get_key')?['value']}",
            ),
            "Arm": http(
                authentication={"type": "ActiveDirectoryOAuth", "secret": "[parameters('spSecret')]"}
            ),
            "Conn": {"type": "Compose", "inputs": "Server=x;Database=y;Password=@{parameters('sqlPw')};"},
            "Placeholder": http(headers={"x-api-key": "<your-key>"}),
            "Ids": {
                "type": "Compose",
                "inputs": {
                    "tenant": "72f988bf-86f1-41af-91ab-2d7cd011db47",
                    "schema": "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/x#",
                    "text": "this is an ordinary sentence, not a token at all",
                    # embedded content (an icon), not a credential: longer than any token we flag
                    "icon": "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAYAAAAf8/9hAAAAGXRFWHRTb2Z0" * 6,
                },
            },
            "Get_secret": kv("GetSecret", "partner-api-key", secure=["inputs", "outputs"]),
            "Auth_param": kv("ListSecrets"),  # its `authentication` is @parameters('$authentication')
        }
    )
    assert analyze_definition(d).hardcoded_credentials == ()


def test_trigger_and_secure_parameter_default_credentials() -> None:
    d = definition(
        {},
        parameters={
            "$connections": {"defaultValue": {}, "type": "Object"},
            "apiPassword": {"type": "SecureString", "defaultValue": "hunter2-but-longer"},
            "emptySecure": {"type": "SecureString", "defaultValue": ""},
            "plain": {"type": "String", "defaultValue": "not-a-secret"},
        },
    )
    d["triggers"] = {
        "Poll": {
            "type": "Http",
            "recurrence": {"frequency": "Hour", "interval": 1},
            "inputs": {
                "method": "GET",
                "uri": "https://x.example.com/feed",
                "queries": {"apikey": "p0ll-k3y-v4lu3"},
            },
        }
    }
    got = {(c.path, c.field, c.kind) for c in analyze_definition(d).hardcoded_credentials}
    assert got == {
        ("triggers.Poll", "inputs.queries.apikey", "query_string_secret"),
        ("parameters.apiPassword", "defaultValue", "secure_parameter_default"),
    }


# --- findings ----------------------------------------------------------------------------------------------


def dump_definition(secure_get: bool) -> dict[str, Any]:
    return definition(
        {
            "List_secrets": kv("ListSecrets"),
            "Apply_to_each": {
                "type": "Foreach",
                "foreach": "@body('List_secrets')?['value']",
                "actions": {
                    "Get_secret": kv(
                        "GetSecret",
                        "@items('Apply_to_each')?['name']",
                        secure=["outputs"] if secure_get else None,
                    )
                },
            },
            "Get_known": kv("GetSecret", "payroll-db", secure=["inputs", "outputs"]),
        }
    )


def test_findings_for_the_vault_dump() -> None:
    flow = FlowRef(
        resource_id="/providers/Microsoft.ProcessSimple/environments/e/flows/f", display_name="Payroll"
    )
    findings = {
        f.detector_id + ":" + f.evidence["action_path"]: f
        for f in flow_findings(flow, analyze_definition(dump_definition(secure_get=False)))
    }
    assert set(findings) == {
        "flow_lists_secrets:actions.List_secrets",
        "flow_insecure_get_secret:actions.Apply_to_each.actions.Get_secret",
        "flow_secure_get_secret:actions.Get_known",
    }
    listing = findings["flow_lists_secrets:actions.List_secrets"]
    assert listing.severity == "critical"
    assert listing.evidence["reads_each_listed_secret"] == ["actions.Apply_to_each.actions.Get_secret"]
    insecure = findings["flow_insecure_get_secret:actions.Apply_to_each.actions.Get_secret"]
    assert insecure.severity == "critical" and insecure.resource_id == flow.resource_id
    assert (
        insecure.evidence["flow"] == "Payroll"
        and insecure.evidence["connection_reference"] == "shared_keyvault"
    )
    info = findings["flow_secure_get_secret:actions.Get_known"]
    assert info.severity == "low" and info.evidence["informational"] is True
    assert info.evidence["secret_names"] == ["payroll-db"]
    assert all(f.detector_id in FLOW_DETECTOR_IDS for f in findings.values())


def test_list_without_a_reading_loop_is_high_and_a_secure_loop_is_informational() -> None:
    only_list = flow_findings("f.json", analyze_definition(definition({"List_secrets": kv("ListSecrets")})))
    assert [(f.detector_id, f.severity) for f in only_list] == [("flow_lists_secrets", "high")]
    secure_loop = flow_findings("f.json", analyze_definition(dump_definition(secure_get=True)))
    kinds = sorted((f.detector_id, f.severity) for f in secure_loop)
    # The loop still reads every secret (listing stays critical), but no value reaches the run history.
    assert kinds == [
        ("flow_lists_secrets", "critical"),
        ("flow_secure_get_secret", "low"),
        ("flow_secure_get_secret", "low"),
    ]


def test_credential_findings_carry_no_value_and_ids_are_stable() -> None:
    analysis = analyze_definition(credential_definition())
    first = flow_findings("exports/flow.json", analysis)
    assert {f.detector_id for f in first} == {"flow_hardcoded_credential"}
    assert all(f.severity == "high" for f in first)
    text = json.dumps([f.model_dump(mode="json") for f in first])
    for value in PLANTED.values():
        assert value not in text
    assert [f.id for f in first] == [
        f.id for f in flow_findings("exports/flow.json", analyze_definition(credential_definition()))
    ]
    assert len({f.id for f in first}) == len(first)


def test_agrees_with_the_emulator_seed_and_attack() -> None:
    """The emulator's flow runner executes these shapes; the analysis must read them the same way."""
    from emulator.powerplatform.definitions import dump_vault_definition

    dump = flow_findings("attack", analyze_definition(dump_vault_definition()))
    assert sorted((f.detector_id, f.severity) for f in dump) == [
        ("flow_insecure_get_secret", "critical"),
        ("flow_lists_secrets", "critical"),
    ]
    seed = json.loads((Path(__file__).resolve().parents[2] / "emulator/scenarios/seed.json").read_text())
    verdicts = {}
    for flow in seed["powerPlatform"]["flows"]:
        analysis = analyze_definition(flow["definition"], connection_references=flow["connectionReferences"])
        verdicts[flow["displayName"]] = sorted(f.detector_id for f in flow_findings(flow["name"], analysis))
    assert verdicts["Nightly payroll export"] == ["flow_secure_get_secret"]
    assert verdicts["Quarterly report (personal)"] == ["flow_insecure_get_secret"]
