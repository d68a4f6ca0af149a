"""The local runner's admin API (`POST /admin/functions/{name}`): timer and queue functions run on
demand, as the Functions host's admin API runs them, behind the master key."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func
from azure.functions.timer import TimerRequest

from remediations.serve import Job, Runner, discover_jobs

MASTER = "master-key-for-tests"


def _runner(calls: list[Any], fail: bool = False) -> Runner:
    def record(arg: Any) -> None:
        calls.append(arg)
        if fail:
            raise RuntimeError("boom")

    jobs = {
        "sweep": Job("sweep", "timerTrigger", record),
        "remediate_worker": Job("remediate_worker", "queueTrigger", record),
    }
    return Runner([], None, jobs, MASTER)


def _post(runner: Runner, name: str, body: Any, key: str | None = MASTER) -> tuple[int, dict[str, Any]]:
    headers = {"x-functions-key": key} if key else {}
    status, _, out = runner.dispatch("POST", f"/admin/functions/{name}", headers, json.dumps(body).encode())
    return status, json.loads(out) if out else {}


def test_discovers_the_apps_timer_queue_and_event_grid_functions(functions: dict[str, Any]) -> None:
    jobs = discover_jobs(functions.values())
    assert {name: job.trigger for name, job in jobs.items()} == {
        "sweep": "timerTrigger",
        # On demand too: `POST /admin/functions/deep_sweep`, as the Functions host's admin API runs it.
        "deep_sweep": "timerTrigger",
        "remediate_worker": "queueTrigger",
        "keyvault_events": "eventGridTrigger",
    }


def test_timer_and_queue_functions_run_with_the_master_key() -> None:
    calls: list[Any] = []
    runner = _runner(calls)
    assert _post(runner, "sweep", {"input": ""})[0] == 202
    assert _post(runner, "remediate_worker", {"input": '{"kind": "vault"}'})[0] == 202
    timer, message = calls
    assert isinstance(timer, TimerRequest) and timer.past_due is False
    assert isinstance(message, func.QueueMessage) and message.get_body() == b'{"kind": "vault"}'


def test_admin_api_needs_the_master_key_and_a_known_function() -> None:
    calls: list[Any] = []
    runner = _runner(calls)
    assert _post(runner, "sweep", {"input": ""}, key="wrong")[0] == 401
    assert _post(runner, "sweep", {"input": ""}, key=None)[0] == 401
    assert _post(runner, "tickets", {"input": ""})[0] == 404  # HTTP functions are not run this way
    assert _post(runner, "sweep", {"input": 3})[0] == 400
    assert calls == []
    status, _, _ = runner.dispatch("GET", "/admin/functions/sweep", {"x-functions-key": MASTER}, b"")
    assert status == 405


def test_a_failing_function_is_a_500_problem_without_traceback() -> None:
    status, body = _post(_runner([], fail=True), "sweep", {"input": ""})
    assert status == 500 and body["detail"] == "sweep raised RuntimeError."
    assert "boom" not in json.dumps(body)


def test_without_a_master_key_there_is_no_admin_api() -> None:
    runner = Runner([], None, {"sweep": Job("sweep", "timerTrigger", lambda _: None)}, None)
    status, _, _ = runner.dispatch("POST", "/admin/functions/sweep", {}, b"{}")
    assert status == 404
