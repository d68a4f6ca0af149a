"""POST /api/alerts: each published sample shape -> the expected signal; idempotent by alert id."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from remediations.triggers.alerts import parse_alert
from remediations.triggers.problems import ProblemError
from tests.functions.conftest import VAULT, Call, problem

SAMPLES = Path(__file__).with_name("alert_samples")


def sample(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    return data


EXPECTED = {
    "activity_log_administrative": ("recheck-vault", "activity-log-administrative", VAULT),
    "activity_log_security": ("revoke-and-rotate", "activity-log-security", VAULT),
    "activity_log_security_not_keyvault": ("acknowledged", "activity-log-security", None),
    "defender_security_alert_record": ("revoke-and-rotate", "defender-export", VAULT),
    "log_alerts_v2": ("recheck-vault", "log-alerts-v2", VAULT),
    "metric": ("acknowledged", "metric", None),
    "resource_health": ("acknowledged", "resource-health", None),
    "service_health": ("acknowledged", "service-health", None),
    "resolved": ("acknowledged", "activity-log-administrative", None),
}


def test_every_sample_file_has_an_expectation() -> None:
    assert {p.stem for p in SAMPLES.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_parses_to_the_expected_signal(name: str) -> None:
    kind, source, vault = EXPECTED[name]
    signal = parse_alert(sample(name))
    assert (signal.kind, signal.source, signal.vaultId) == (kind, source, vault)
    assert signal.reason


def test_administrative_signal_keeps_the_caller_for_self_recognition() -> None:
    signal = parse_alert(sample("activity_log_administrative"))
    assert signal.operationName == "Microsoft.KeyVault/vaults/accessPolicies/write"
    assert signal.caller == "admin@contoso.example"
    assert signal.callerObjectId == "3b9f6c1e-2a4d-4e8b-9c7f-0d1e2f3a4b5c"


def test_vault_write_and_vault_from_scope_when_targets_are_absent() -> None:
    payload = sample("activity_log_administrative")
    payload["data"]["essentials"]["alertTargetIDs"] = []
    payload["data"]["alertContext"]["operationName"] = "Microsoft.KeyVault/vaults/write"
    signal = parse_alert(payload)
    assert (signal.kind, signal.vaultId) == ("recheck-vault", VAULT)


def test_failed_vault_write_and_other_operations_are_acknowledged() -> None:
    failed = sample("activity_log_administrative")
    failed["data"]["alertContext"]["status"] = "Failed"
    assert parse_alert(failed).kind == "acknowledged"
    restart = sample("activity_log_administrative")
    restart["data"]["alertContext"]["operationName"] = "Microsoft.Compute/virtualMachines/restart/action"
    assert parse_alert(restart).kind == "acknowledged"


def test_resolved_and_fired_have_different_idempotency_keys() -> None:
    fired, resolved = parse_alert(sample("activity_log_administrative")), parse_alert(sample("resolved"))
    assert fired.alertId == resolved.alertId
    assert fired.idempotency_key() != resolved.idempotency_key()


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda p: p.update(schemaId="Microsoft.Insights/activityLogs"), 400),
        (lambda p: p.pop("schemaId"), 400),
        (lambda p: p["data"].pop("essentials"), 422),
        (lambda p: p["data"]["essentials"].pop("alertId"), 422),
        (lambda p: p["data"]["essentials"].update(alertId=7), 422),
        (lambda p: p["data"]["essentials"].update(monitorCondition="Maybe"), 422),
        (lambda p: p["data"].update(alertContext=[]), 422),
        (lambda p: p["data"]["essentials"].update(alertTargetIDs="x"), 422),
    ],
)
def test_bad_alerts_are_problems(mutate: Any, status: int) -> None:
    payload = copy.deepcopy(sample("activity_log_administrative"))
    mutate(payload)
    with pytest.raises(ProblemError) as raised:
        parse_alert(payload)
    assert raised.value.problem.status == status


def test_keyvault_write_without_any_vault_id_is_422() -> None:
    payload = sample("activity_log_administrative")
    context = payload["data"]["alertContext"]
    payload["data"]["essentials"]["alertTargetIDs"] = ["/subscriptions/x/../../evil"]
    context["authorization"]["scope"] = "/subscriptions/5f1c2b3a-8d4e-4f60-9a7b-1c2d3e4f5a6b"
    context["properties"]["entity"] = None
    with pytest.raises(ProblemError) as raised:
        parse_alert(payload)
    assert raised.value.problem.status == 422


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_post_each_sample_returns_202_and_is_idempotent(
    call: Call, app_env: dict[str, str], name: str
) -> None:
    kind, _, vault = EXPECTED[name]
    first = call("alerts", "POST", "/api/alerts", body=sample(name))
    assert first.status_code == 202, first.get_body()
    body = json.loads(first.get_body())
    assert body["signal"]["kind"] == kind
    assert body["signal"]["vaultId"] == vault
    assert body["status"] == ("acknowledged" if kind == "acknowledged" else "pending-engine")
    again = call("alerts", "POST", "/api/alerts", body=sample(name))
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert json.loads(again.get_body()) == body


def test_engine_is_called_once_per_alert(
    call: Call, app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from remediations.triggers import service

    seen: list[str] = []
    original = service.handle_alert

    def spy(signal: Any, **kwargs: Any) -> Any:
        seen.append(signal.kind)
        return original(signal, **kwargs)

    monkeypatch.setattr(service, "handle_alert", spy)
    for _ in range(3):
        call("alerts", "POST", "/api/alerts", body=sample("activity_log_security"))
    call("alerts", "POST", "/api/alerts", body=sample("metric"))
    assert seen == ["revoke-and-rotate"]


def test_unknown_schema_is_a_400_problem(call: Call, app_env: dict[str, str]) -> None:
    response = call("alerts", "POST", "/api/alerts", body={"hello": "world"})
    assert response.status_code == 400
    body = problem(response)
    assert body["type"].endswith("unknown-alert-schema")
    assert "azureMonitorCommonAlertSchema" in body["detail"]


def test_alerts_appear_in_the_run_list(call: Call, app_env: dict[str, str]) -> None:
    call("alerts", "POST", "/api/alerts", body=sample("log_alerts_v2"))
    response = call("tickets", "GET", "/api/remediations", params={"kind": "alert"})
    runs = json.loads(response.get_body())["runs"]
    assert [r["kind"] for r in runs] == ["alert"]
    assert runs[0]["status"] == "pending-engine"
