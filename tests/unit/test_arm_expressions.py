"""The ARM template expression evaluator scan-flows uses to read Logic Apps ARM templates offline."""

from __future__ import annotations

import pytest

from remediations.core.arm_expressions import (
    TemplateContext,
    Text,
    Unresolved,
    evaluate,
    is_template_expression,
    render,
)

CONTEXT = TemplateContext(
    parameters={
        "SecretName": {"type": "string", "defaultValue": "datadog-api-key"},
        "NoDefault": {"type": "string"},
        "PlaybookName": {"type": "string", "defaultValue": "[concat('pb-', variables('suffix'))]"},
        "Port": {"type": "int", "defaultValue": 443},
    },
    variables={
        "suffix": "prod",
        "keyvault": "[concat('keyvault-', parameters('PlaybookName'))]",
        "loop": "[variables('loop')]",
    },
)
SENTINEL_PATH = "[concat('/secrets/@{encodeURIComponent(''', parameters('{name}'), ''')}/value')]"


def placeholder(part: Unresolved) -> str:
    return "<" + part.text + ">"


def test_the_sentinel_path_with_a_default_resolves_to_the_logic_apps_path() -> None:
    value = evaluate(SENTINEL_PATH.replace("{name}", "SecretName"), CONTEXT)
    assert value == "/secrets/@{encodeURIComponent('datadog-api-key')}/value"


def test_a_parameter_without_default_stays_an_unresolved_part_between_literals() -> None:
    value = evaluate(SENTINEL_PATH.replace("{name}", "NoDefault"), CONTEXT)
    assert value == Text(
        ("/secrets/@{encodeURIComponent('", Unresolved("parameters('NoDefault')"), "')}/value")
    )
    assert render(value, placeholder) == "/secrets/@{encodeURIComponent('<parameters('NoDefault')>')}/value"


def test_variables_and_defaults_that_are_expressions_are_evaluated() -> None:
    assert evaluate("[variables('keyvault')]", CONTEXT) == "keyvault-pb-prod"
    assert evaluate("[concat('port-', parameters('Port'))]", CONTEXT) == "port-443"


def test_format_fills_placeholders() -> None:
    assert evaluate("[format('/secrets/{0}/{1}', parameters('SecretName'), 'value')]", CONTEXT) == (
        "/secrets/datadog-api-key/value"
    )
    assert evaluate("[format('{0}/{1}', 'a')]", CONTEXT) == Unresolved("format('{0}/{1}', 'a')")


def test_unknown_functions_and_properties_stay_unresolved() -> None:
    value = evaluate("[concat('/subscriptions/', subscription().subscriptionId, '/secrets')]", CONTEXT)
    assert value == Text(("/subscriptions/", Unresolved("subscription().subscriptionId"), "/secrets"))
    assert evaluate("[resourceGroup().location]", CONTEXT) == Unresolved("resourceGroup().location")


def test_quote_escaping_and_literal_brackets() -> None:
    assert evaluate("[concat('it''s', ' ok')]", CONTEXT) == "it's ok"
    assert evaluate("[[not an expression]", CONTEXT) == "[not an expression]"
    assert evaluate("/secrets/plain/value", CONTEXT) == "/secrets/plain/value"
    assert not is_template_expression("[[x]")
    assert is_template_expression(" [concat('a')] ")


@pytest.mark.parametrize(
    "source", ["[concat('a', ]", "[concat('a')", "['unterminated]", "[concat('a') extra]"]
)
def test_malformed_expressions_are_returned_unevaluated(source: str) -> None:
    assert evaluate(source, CONTEXT) == source


def test_a_variable_cycle_stops() -> None:
    assert isinstance(evaluate("[variables('loop')]", CONTEXT), Unresolved)
