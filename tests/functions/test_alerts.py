"""POST /api/alerts: each published sample shape -> the expected signal; idempotent by alert id."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from remediations.triggers.alerts import parse_alert
from remediations.triggers.problems import ProblemError
from tests.functions.conftest import (
    ADMIN_USER,
    FLOW_SP,
    VAULT,
    VAULT_NAME,
    Call,
    app_may_rotate,
    policy_writes_since,
    problem,
    secrets_of,
)

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
        (lambda p: p["data"]["essentials"].update(alertId="a\x00b"), 422),
        (lambda p: p["data"]["essentials"].update(alertId="a\r\nX-Injected: 1"), 422),
        (lambda p: p["data"]["essentials"].update(alertId="line\nbreak"), 422),
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


def test_a_defender_record_id_with_control_characters_is_422() -> None:
    payload = {"AlertType": "KV_ListGetAnomaly", "SystemAlertId": "abc\r\ndef"}
    with pytest.raises(ProblemError) as raised:
        parse_alert(payload)
    assert raised.value.problem.status == 422
    assert raised.value.problem.errors[0].path == "$.SystemAlertId"


def test_keyvault_write_without_any_vault_id_is_422() -> None:
    payload = sample("activity_log_administrative")
    context = payload["data"]["alertContext"]
    payload["data"]["essentials"]["alertTargetIDs"] = ["/subscriptions/x/../../evil"]
    context["authorization"]["scope"] = "/subscriptions/5f1c2b3a-8d4e-4f60-9a7b-1c2d3e4f5a6b"
    context["properties"]["entity"] = None
    with pytest.raises(ProblemError) as raised:
        parse_alert(payload)
    assert raised.value.problem.status == 422


def _split(plan: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(actions to apply, skipped actions) of a plan."""
    return [a for a in plan if a["skip_reason"] is None], [a for a in plan if a["skip_reason"]]


def _arm_requests(emu: Emulator, mark: int) -> list[Any]:
    return [r for r in emu.requests.since(mark) if r.host == "management.azure.com"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_post_each_sample_is_handled_by_the_engine_and_is_idempotent(
    call: Call, enforce: dict[str, str], cloud: Emulator, name: str
) -> None:
    """Enforce mode: an actionable sample re-checks the sample vault and removes `List` from the
    flow's identity (one write); the others touch nothing. The same delivery again is a replay."""
    kind, _, vault = EXPECTED[name]
    mark = cloud.requests.mark()
    first = call("alerts", "POST", "/api/alerts", body=sample(name))
    assert first.status_code == 202, first.get_body()
    body = json.loads(first.get_body())
    assert body["signal"]["kind"] == kind
    assert body["signal"]["vaultId"] == vault
    if kind == "acknowledged":
        assert body["status"] == "acknowledged"
        assert body["plan"] == [] and body["outcomes"] == []
        assert _arm_requests(cloud, mark) == []
        assert secrets_of(cloud, FLOW_SP) == ["Get", "List"]
    else:
        assert body["status"] == "handled", body
        assert body["dryRun"] is False
        writes, skipped = _split(body["plan"])
        assert [a["remediation_id"] for a in writes] == ["remove_list_permission"]
        assert writes[0]["principal"] == FLOW_SP
        # The app's identity may not list this vault's secrets: the refused list is reported, the
        # access-policy fix still ran, and a Defender alert's rotation is skipped for the vault, saying
        # why. A re-check (an access change) does not rotate.
        if kind == "revoke-and-rotate":
            [rotation] = skipped
            assert (rotation["remediation_id"], rotation["target"]) == ("rotate_secret", VAULT)
            assert "secret list of vault kv-fin-flows failed (HTTP 403)" in rotation["skip_reason"]
        else:
            assert skipped == []
        assert sorted(o["status"] for o in body["outcomes"]) == sorted(
            ["applied"] + ["skipped"] * len(skipped)
        )
        assert body["summary"] == {
            "findings": 1,
            "actions": 1,
            "failures": 0,
            "throttled": 0,
            "readErrors": 1,
        }
        assert any(n.startswith(f"read failed: list secrets {VAULT}: HTTP 403") for n in body["notes"])
        assert body["ownChange"] is False and body["alreadyCompliant"] is False
        assert secrets_of(cloud, FLOW_SP) == ["Get"]
        assert policy_writes_since(cloud, mark) == 1
        rotation_note = any("rotation.onAlert=report" in n for n in body["notes"])
        assert rotation_note == (kind == "revoke-and-rotate")
    mark = cloud.requests.mark()
    again = call("alerts", "POST", "/api/alerts", body=sample(name))
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert json.loads(again.get_body()) == body
    assert _arm_requests(cloud, mark) == []


def test_in_dry_run_an_alert_plans_and_writes_nothing(
    call: Call, app_env: dict[str, str], cloud: Emulator
) -> None:
    mark = cloud.requests.mark()
    body = json.loads(call("alerts", "POST", "/api/alerts", body=sample("log_alerts_v2")).get_body())
    assert body["status"] == "planned" and body["dryRun"] is True
    assert body["dryRunForcedBy"] == ["VAULTGUARD_DRY_RUN", "policy.dryRun"]
    assert [a["principal"] for a in _split(body["plan"])[0]] == [FLOW_SP]
    assert [o["status"] for o in body["outcomes"]] == ["skipped"]
    assert policy_writes_since(cloud, mark) == 0
    assert secrets_of(cloud, FLOW_SP) == ["Get", "List"]


def _administrative(alert_number: int, caller: str, object_id: str) -> dict[str, Any]:
    payload = sample("activity_log_administrative")
    essentials = payload["data"]["essentials"]
    essentials["alertId"] = essentials["alertId"][:-1] + str(alert_number)
    context = payload["data"]["alertContext"]
    context["caller"] = caller
    claims = json.loads(context["claims"])
    claims["http://schemas.microsoft.com/identity/claims/objectidentifier"] = object_id
    context["claims"] = json.dumps(claims)
    return payload


def test_the_app_recognises_its_own_access_policy_change(
    call: Call, enforce: dict[str, str], cloud: Emulator
) -> None:
    """The fix writes an access policy; Azure Monitor then reports that write with the app's identity
    as caller. The re-check plans 0 actions and the result says it recognised its own change."""
    fixed = json.loads(
        call("alerts", "POST", "/api/alerts", body=sample("activity_log_administrative")).get_body()
    )
    assert [o["status"] for o in fixed["outcomes"]] == ["applied"]
    me = cloud.state.azure.admin_object_id  # the identity the app signs in as (AZURE_CLIENT_ID)
    mark = cloud.requests.mark()
    response = call("alerts", "POST", "/api/alerts", body=_administrative(2, me, me))
    body = json.loads(response.get_body())
    assert response.status_code == 202
    assert body["status"] == "handled"
    assert body["ownChange"] is True and body["alreadyCompliant"] is True
    assert body["plan"] == [] and body["summary"]["actions"] == 0
    assert body["notes"][0].startswith("recognised the app's own change")
    assert policy_writes_since(cloud, mark) == 0
    # Someone else's change to an already compliant vault: re-checked, also nothing to do, not "own".
    other = json.loads(
        call(
            "alerts", "POST", "/api/alerts", body=_administrative(3, "admin@contoso.example", ADMIN_USER)
        ).get_body()
    )
    assert other["ownChange"] is False and other["alreadyCompliant"] is True
    assert other["notes"][0] == "the vault is already compliant: re-checked, 0 actions planned"
    assert policy_writes_since(cloud, mark) == 0


def test_alert_audit_rows_carry_the_alert_caller_and_id(
    call: Call, enforce: dict[str, str], cloud: Emulator
) -> None:
    from remediations.shell.audit import TableAuditSink
    from remediations.shell.settings import AppSettings

    body = json.loads(
        call("alerts", "POST", "/api/alerts", body=sample("activity_log_administrative")).get_body()
    )
    rows = TableAuditSink.from_settings(AppSettings.from_env()).records(body["correlationId"])
    assert [r.state for r in rows] == ["pending", "applied"]
    assert {(r.trigger, r.caller, r.ticket_id) for r in rows} == {
        ("alert", "admin@contoso.example", body["alertId"])
    }


def test_engine_is_called_once_per_alert(
    call: Call, app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from remediations.triggers import remediate_alert

    seen: list[str] = []
    original = remediate_alert.handle_alert

    def spy(signal: Any, **kwargs: Any) -> Any:
        seen.append(signal.kind)
        return original(signal, **kwargs)

    monkeypatch.setattr(remediate_alert, "handle_alert", spy)
    for _ in range(3):
        call("alerts", "POST", "/api/alerts", body=sample("activity_log_security"))
    call("alerts", "POST", "/api/alerts", body=sample("metric"))
    assert seen == ["revoke-and-rotate"]


def test_the_policy_is_read_once_per_alert(
    call: Call, policy_file_reads: Callable[[dict[str, Any]], list[str]], cloud: Emulator
) -> None:
    """The scope check and the run share one read of the policy file: the run is under the policy the
    scope was checked against (its dry run), and a replay reads it not at all."""
    reads = policy_file_reads({"dryRun": True})
    body = json.loads(call("alerts", "POST", "/api/alerts", body=sample("log_alerts_v2")).get_body())
    assert body["status"] == "planned" and "policy.dryRun" in body["dryRunForcedBy"]
    assert len(reads) == 1
    call("alerts", "POST", "/api/alerts", body=sample("log_alerts_v2"))
    assert len(reads) == 1


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
    assert runs[0]["status"] == "planned"


def test_a_failed_handling_is_500_and_the_retried_delivery_is_handled(
    call: Call, enforce: dict[str, str], cloud: Emulator
) -> None:
    rule = cloud.faults.status(403, host="management.azure.com", path="/vaults/kv-fin-flows$", method="GET")
    try:
        failed = call("alerts", "POST", "/api/alerts", body=sample("log_alerts_v2"))
    finally:
        rule.count = 0
    assert failed.status_code == 500
    problem(failed)
    assert secrets_of(cloud, FLOW_SP) == ["Get", "List"]
    retried = call("alerts", "POST", "/api/alerts", body=sample("log_alerts_v2"))
    assert retried.status_code == 202
    assert json.loads(retried.get_body())["status"] == "handled"
    assert secrets_of(cloud, FLOW_SP) == ["Get"]


def test_a_delivery_left_unfinished_is_replayed_while_fresh_and_handled_again_once_stale(
    call: Call, enforce: dict[str, str], cloud: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that died mid-handling leaves the delivery `received`: a retry while it may still be
    running gets that record back and runs nothing; once stale, the retry handles it."""
    from remediations.triggers.runs import RunStore

    monkeypatch.setenv("VAULTGUARD_STALE_RUN_SECONDS", "1")
    signal = parse_alert(sample("log_alerts_v2"))
    left = {"alertId": signal.alertId, "status": "received"}
    key = signal.idempotency_key()
    assert RunStore.from_env().reserve("alert", key, key, left, "received") is None
    mark = cloud.requests.mark()
    fresh = call("alerts", "POST", "/api/alerts", body=sample("log_alerts_v2"))
    assert (fresh.status_code, json.loads(fresh.get_body())) == (200, left)
    assert _arm_requests(cloud, mark) == []
    time.sleep(1.2)  # the stored handling is now stale
    stale = call("alerts", "POST", "/api/alerts", body=sample("log_alerts_v2"))
    assert stale.status_code == 202 and json.loads(stale.get_body())["status"] == "handled"
    assert secrets_of(cloud, FLOW_SP) == ["Get"]
    record = RunStore.from_env().get("alert", key)
    assert record is not None and record.status == "handled"


@pytest.mark.parametrize("on_alert", ["report", "rotate"])
def test_a_defender_alert_revokes_and_rotates_per_policy(
    call: Call,
    enforce: dict[str, str],
    cloud: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    on_alert: str,
) -> None:
    """The app may list the vault: a Defender alert removes the flow identity's `List` and, per
    `rotation.onAlert`, reports each secret of the vault (skipped actions naming them) or rotates it
    (a new version, the old one disabled). No value in the response."""
    me = cloud.state.azure.admin_object_id
    policy = {
        "dryRun": False,
        "rotation": {"onAlert": on_alert, "defaultRotator": "random"},
        "secretPermissions": {"byIdentity": {me: ["get", "list", "set"]}},  # the app keeps its own list
    }
    monkeypatch.setenv("VAULTGUARD_POLICY_JSON", json.dumps(policy))
    values = {"api-key": "alerted-api-key-value-1"}
    vault = cloud.state.azure.vaults[VAULT_NAME]
    with app_may_rotate(cloud, values):
        with cloud.state.lock:
            old = {n: s.latest.version for n, s in vault.secrets.items()}
        response = call("alerts", "POST", "/api/alerts", body=sample("defender_security_alert_record"))
        assert response.status_code == 202, response.get_body()
        body = json.loads(response.get_body())
        assert body["status"] == "handled" and body["summary"]["readErrors"] == 0
        writes, skipped = _split(body["plan"])
        rotations = sorted(
            (a for a in body["plan"] if a["remediation_id"] == "rotate_secret"), key=lambda a: a["target"]
        )
        assert [a["target"] for a in rotations] == [f"{VAULT}/secrets/{n}" for n in sorted(old)]
        assert [(a["remediation_id"], a["principal"]) for a in writes if a not in rotations] == [
            ("remove_list_permission", FLOW_SP)
        ]
        assert secrets_of(cloud, FLOW_SP) == ["Get"]
        by_action = {o["action_id"]: o for o in body["outcomes"]}
        with cloud.state.lock:
            versions = {n: list(s.versions) for n, s in vault.secrets.items()}
        if on_alert == "report":
            assert rotations and all(a in skipped for a in rotations)
            assert all("rotation.onAlert is 'report'" in a["skip_reason"] for a in rotations)
            assert {by_action[a["id"]]["status"] for a in rotations} == {"skipped"}
            assert {n: [v.version for v in vs] for n, vs in versions.items()} == {
                n: [v] for n, v in old.items()
            }
        else:
            assert {by_action[a["id"]]["status"] for a in rotations} == {"applied"}
            for name, version in old.items():
                first, new = versions[name]
                assert first.version == version and first.enabled is False and new.enabled is True
        text = response.get_body().decode() + caplog.text
        for name in old:
            for version in versions[name]:
                assert version.value not in text
    assert not any("rotation unavailable" in n for n in body["notes"])
