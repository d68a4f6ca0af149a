"""The committed OpenAPI document is current; logs carry the invocation context; metrics are fixed."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from remediations.triggers import observability, openapi
from tests.functions.conftest import Call, ticket_body


def test_committed_openapi_json_is_up_to_date() -> None:
    assert openapi.PATH.read_text(encoding="utf-8") == openapi.render(), (
        "run: python -m remediations.triggers.openapi"
    )


def test_openapi_is_served(call: Call) -> None:
    response = call("openapi", "GET", "/api/openapi.json")
    document = json.loads(response.get_body())
    assert document["openapi"] == "3.1.0"
    assert {"/remediations", "/remediations/{ticketId}", "/alerts"} <= set(document["paths"])
    assert document["components"]["schemas"]["TicketRequest"]["additionalProperties"] is False


def test_every_log_line_of_a_ticket_carries_correlation_trigger_and_ticket(
    call: Call, app_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    body = ticket_body()
    response = call(
        "tickets", "POST", "/api/remediations", body=body, headers={"x-correlation-id": "corr-123"}
    )
    assert response.headers["x-correlation-id"] == "corr-123"
    ours = [r for r in caplog.records if r.name.startswith("vaultguard")]
    assert ours
    for record in ours:
        assert getattr(record, "correlation_id", None) == "corr-123"
        assert getattr(record, "trigger", None) == "tickets"
        assert getattr(record, "ticket_id", None) == body["ticketId"]
    metric = [r for r in ours if getattr(r, "vaultguard_event", None) == observability.METRIC_EVENT]
    assert len(metric) == 1
    fields: dict[str, Any] = vars(metric[0])
    assert {f"vaultguard_{n}" for n in observability.METRIC_FIELDS} <= set(fields)


def test_json_formatter_emits_context_fields() -> None:
    with observability.invocation("unit", "cid-1", "T-1"):
        record = logging.getLogger("vaultguard.test").makeRecord(
            "vaultguard.test", logging.INFO, __file__, 1, "hello %s", ("x",), None, extra={"k": 1}
        )
    line = json.loads(observability.JsonFormatter().format(record))
    assert line["message"] == "hello x"
    assert (line["correlation_id"], line["trigger"], line["ticket_id"], line["k"]) == (
        "cid-1",
        "unit",
        "T-1",
        1,
    )


def test_unsafe_correlation_headers_are_replaced() -> None:
    assert observability.correlation_id_from({"x-correlation-id": "ok-1"}) == "ok-1"
    generated = observability.correlation_id_from({"x-correlation-id": "bad value\n<script>"})
    assert generated != "bad value\n<script>" and len(generated) == 32
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert (
        observability.correlation_id_from({"traceparent": traceparent}) == "4bf92f3577b34da6a3ce929d0e0e4736"
    )
