"""The sweep timer enqueues one message per vault on Azurite; the worker validates messages.

The 50-vault end-to-end drain is in tests/emulator/test_sweep_worker.py."""

from __future__ import annotations

import base64
import json
from typing import Any

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest
from azure.storage.queue import QueueClient

from emulator import Emulator
from tests.functions.conftest import SUBSCRIPTIONS, VAULT, policy_writes_since


def _drain(env: dict[str, str]) -> list[bytes]:
    """Raw queue contents, decoded from base64 as the host does (host.json messageEncoding)."""
    queue = QueueClient.from_connection_string(env["AzureWebJobsStorage"], env["VAULTGUARD_QUEUE_NAME"])
    return [base64.b64decode(m.content) for m in queue.receive_messages(max_messages=32)]


def test_timer_enqueues_one_message_per_vault(
    functions: dict[str, Any], app_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="vaultguard")
    functions["sweep"].get_user_function()(TimerRequest(past_due=True))
    bodies = [json.loads(b) for b in _drain(app_env)]
    assert [b["id"] for b in bodies] == [VAULT]
    assert {b["kind"] for b in bodies} == {"vault"}
    assert {b["dryRun"] for b in bodies} == {True}
    assert len({b["sweepId"] for b in bodies}) == 1
    assert any(getattr(r, "past_due", False) for r in caplog.records)
    assert all(getattr(r, "trigger", None) == "sweep" for r in caplog.records if r.name == "vaultguard")


def test_worker_accepts_what_the_timer_sent(
    functions: dict[str, Any], app_env: dict[str, str], cloud: Emulator
) -> None:
    from remediations.triggers.messages import ScopeMessage
    from remediations.triggers.runs import RunStore

    functions["sweep"].get_user_function()(TimerRequest())
    bodies = _drain(app_env)
    assert len(bodies) == 1
    worker = functions["remediate_worker"].get_user_function()
    mark = cloud.requests.mark()
    worker(func.QueueMessage(id="m1", body=bodies[0]))
    # The worker ran the vault's pipeline in the deployment's default dry run: it planned the sample
    # vault's fixes, stored them with the run, and changed nothing.
    stored = RunStore.from_env().get("scope", ScopeMessage.model_validate_json(bodies[0]).idempotency_key())
    assert stored is not None and stored.body is not None
    assert stored.status == "planned" and stored.body["scope"]["id"] == VAULT
    assert stored.body["summary"]["findings"] > 0 and stored.body["summary"]["failures"] == 0
    assert {a["target"] for a in stored.body["plan"]} == {VAULT}
    assert policy_writes_since(cloud, mark) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        json.dumps(
            {
                "version": 1,
                "kind": "subscription",
                "id": "not-a-guid",
                "sweepId": "s1",
                "enqueuedAt": "2025-01-01T00:00:00Z",
            }
        ).encode(),
        json.dumps(
            {
                "version": 1,
                "kind": "vault",
                "id": "/subscriptions/../x",
                "sweepId": "s1",
                "enqueuedAt": "2025-01-01T00:00:00Z",
            }
        ).encode(),
        json.dumps(
            {
                "version": 2,
                "kind": "subscription",
                "id": SUBSCRIPTIONS[0],
                "sweepId": "s1",
                "enqueuedAt": "2025-01-01T00:00:00Z",
                "extra": 1,
            }
        ).encode(),
    ],
)
def test_worker_rejects_a_bad_message_by_raising(
    functions: dict[str, Any], app_env: dict[str, str], body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    from remediations.triggers.jobs import InvalidScopeMessage

    worker = functions["remediate_worker"].get_user_function()
    with pytest.raises(InvalidScopeMessage):
        worker(func.QueueMessage(id="bad", body=body))
    assert any(r.levelname == "ERROR" and "rejecting queue message" in r.getMessage() for r in caplog.records)


def test_sweep_with_no_subscriptions_logs_an_error_and_sends_nothing(
    functions: dict[str, Any],
    app_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("VAULTGUARD_SUBSCRIPTION_IDS", "")
    functions["sweep"].get_user_function()(TimerRequest())
    assert any(r.levelname == "ERROR" for r in caplog.records)


def test_max_dequeue_count_matches_host_json() -> None:
    from pathlib import Path

    from remediations.triggers.jobs import MAX_DEQUEUE_COUNT

    host = json.loads((Path(__file__).parents[2] / "host.json").read_text())
    assert host["extensions"]["queues"]["maxDequeueCount"] == MAX_DEQUEUE_COUNT


def test_a_bad_message_on_its_last_try_lands_in_the_poison_queue_with_its_reason(
    app_env: dict[str, str],
) -> None:
    from remediations.triggers import jobs

    # What function_app.remediate_worker passes on the fifth delivery; no raise: poisoned by us.
    jobs.work(b"not json", message_id="bad-5", dequeue_count=5)
    poison = QueueClient.from_connection_string(
        app_env["AzureWebJobsStorage"], app_env["VAULTGUARD_QUEUE_NAME"] + "-poison"
    )
    [record] = [json.loads(base64.b64decode(m.content)) for m in poison.receive_messages()]
    assert record["message"] == "not json" and record["messageId"] == "bad-5"
    assert record["dequeueCount"] == 5 and record["reason"].startswith("not a scope message")


def test_an_environment_scope_when_the_policy_names_no_environments_is_acknowledged(
    functions: dict[str, Any], app_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    from remediations.triggers.messages import ScopeMessage

    caplog.set_level("INFO", logger="vaultguard")
    message = ScopeMessage.for_scope(
        "environment", "Default-7c6b5a49-3827-4160-9f8e-d7c6b5a49382", "s1", True
    )
    functions["remediate_worker"].get_user_function()(
        func.QueueMessage(id="env", body=message.model_dump_json().encode())
    )
    assert any("names no Power Platform environments" in r.getMessage() for r in caplog.records)
