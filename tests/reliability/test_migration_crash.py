# ruff: noqa: F811 - the emulator and app fixtures of tests/functions are imported, then requested by name
"""A crash mid-migration through the real local runner (`python -m remediations serve`, its own process):
the emulator SIGKILLs the runner when one of the migration's writes arrives. Every step began is in the
audit (intent before, result after); the re-sent ticket reconciles the interrupted run from those rows
and a re-read (assignment exists? vault in RBAC mode?), then finishes the migration or rolls it back,
the interrupted run's assignments included. Never half-applied without a row saying so."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import time
from typing import Any

import pytest

from emulator import Emulator
from emulator.wire import Request, Response
from tests.functions.conftest import VAULT_NAME, app_env, cloud, ticket_body  # noqa: F401 - fixtures reused
from tests.functions.test_rbac_migration_ticket import (  # noqa: F401 - the `migrate` fixture reused
    POLICY,
    _below_vault,
    _expected,
    _switched,
    migrate,
)
from tests.security.test_safety_over_http import runner, send

VAULT_PATCH = "/providers/Microsoft.KeyVault/vaults/"
ASSIGNMENT_PUT = "/providers/Microsoft.Authorization/roleAssignments/"


def _env(app_env: dict[str, str]) -> dict[str, str]:
    return {
        **app_env,
        "VAULTGUARD_DRY_RUN": "false",
        "VAULTGUARD_POLICY_JSON": json.dumps(POLICY),
        "VAULTGUARD_STALE_RUN_SECONDS": "1",  # the killed run (and its vault lease) is stale after 1 s
    }


def _kill_at(cloud: Emulator, env: dict[str, str], body: dict[str, Any], hit: Any, *, reaches: bool) -> None:
    """Send the ticket to a runner the emulator kills when the request `hit` selects arrives; with
    `reaches` the write takes effect first (nobody is left to read the answer), else it never does."""
    killed: list[int] = []
    process: list[subprocess.Popen[str]] = []

    def kill(request: Request) -> Response | None:
        if hit(request) and not killed:
            killed.append(process[0].pid)
            os.kill(process[0].pid, signal.SIGKILL)
            process[0].wait(timeout=30)
            return None if reaches else Response(503)
        return None

    cloud.middlewares.append(kill)
    try:
        with runner(env) as (port, started):
            process.append(started)
            with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
                send(port, "POST", "/api/remediations", body, timeout=60)
    finally:
        cloud.middlewares.remove(kill)
    assert killed and process[0].returncode == -signal.SIGKILL
    time.sleep(1.2)


def _rows_of(action_id: str) -> dict[str, list[Any]]:
    """Every audit row of the action, by run (correlation id), in row order."""
    from azure.data.tables import TableClient

    from remediations.shell.audit import from_entity
    from remediations.shell.settings import AppSettings

    settings = AppSettings.from_env()
    assert settings.storage_connection is not None
    table = TableClient.from_connection_string(settings.storage_connection, settings.audit_table)
    runs: dict[str, list[Any]] = {}
    for entity in table.query_entities("action_id eq @a", parameters={"a": action_id}):
        row = from_entity(dict(entity))
        runs.setdefault(row.correlation_id, []).append(row)
    return {run: sorted(rows, key=lambda r: r.row_key) for run, rows in runs.items()}


def _dry_run_action(env: dict[str, str]) -> str:
    body = ticket_body(remediations=["migrate_to_rbac"], dryRun=True)
    with runner(env) as (port, _):
        status, planned = send(port, "POST", "/api/remediations", body)
    assert status == 200, planned
    [action] = planned["plan"]
    return str(action["id"])


def _trail(rows: list[Any]) -> list[tuple[int | None, str]]:
    return [(r.step, r.state) for r in rows]


def test_killed_at_the_switch_before_it_took_effect_then_the_resend_finishes(
    app_env: dict[str, str], migrate: dict[str, str], cloud: Emulator
) -> None:
    env = _env(app_env)
    action_id = _dry_run_action(env)
    body = ticket_body(remediations=["migrate_to_rbac"], dryRun=False)
    switch = lambda r: r.method == "PATCH" and VAULT_PATCH in r.path  # noqa: E731
    _kill_at(cloud, env, body, switch, reaches=False)
    assert not _switched(cloud) and _below_vault(cloud) == _expected(cloud)  # half-way, as the rows say
    [(crashed, rows)] = _rows_of(action_id).items()
    steps = [(1, "pending"), (1, "applied"), (2, "pending"), (2, "applied"), (3, "pending"), (3, "applied")]
    verify = [(4, "pending"), (4, "applied")]
    assert _trail(rows) == [(None, "pending"), *steps, *verify, (5, "pending")]
    assert rows[-1].reason.startswith("switch") and rows[-1].changes[0].type == "vaultAuthorization"

    with runner(env) as (port, _):
        status, result = send(port, "POST", "/api/remediations", body)
    assert status == 202, result
    assert [o["status"] for o in result["outcomes"]] == ["applied"], result["outcomes"]
    assert _switched(cloud) and _below_vault(cloud) == _expected(cloud)
    runs = _rows_of(action_id)
    settled = runs[crashed]
    # The interrupted run's trail now ends: the switch step did not take effect, the action was picked
    # up again by the re-sent ticket (which adopted the three assignments it found).
    assert _trail(settled)[-3:] == [(5, "pending"), (5, "noop"), (None, "noop")]
    outcome = settled[-1]
    assert "planned again by this run" in outcome.reason and len(outcome.changes) == 3
    [resent] = [rows for run, rows in runs.items() if run != crashed]
    assert _trail(resent)[0] == (None, "pending") and _trail(resent)[-1] == (None, "applied")


def test_killed_after_the_switch_took_effect_is_reconciled_applied_and_nothing_is_written_again(
    app_env: dict[str, str], migrate: dict[str, str], cloud: Emulator
) -> None:
    env = _env(app_env)
    action_id = _dry_run_action(env)
    body = ticket_body(remediations=["migrate_to_rbac"], dryRun=False)
    switch = lambda r: r.method == "PATCH" and VAULT_PATCH in r.path  # noqa: E731
    _kill_at(cloud, env, body, switch, reaches=True)
    deadline = time.monotonic() + 10
    while not _switched(cloud) and time.monotonic() < deadline:
        time.sleep(0.05)  # the emulator finishes the PATCH after the kill
    assert _switched(cloud)

    mark = cloud.requests.mark()
    with runner(env) as (port, _):
        status, result = send(port, "POST", "/api/remediations", body)
    assert status == 202 and result["outcomes"] == [], result
    assert [r.method for r in cloud.requests.since(mark) if r.method in {"PUT", "PATCH", "DELETE"}] == []
    [(_, rows)] = _rows_of(action_id).items()
    assert _trail(rows)[-3:] == [(5, "pending"), (5, "applied"), (None, "applied")]
    assert "switched after verification" in rows[-1].reason


def test_killed_between_two_creates_then_a_resend_that_fails_rolls_back_both_runs_assignments(
    app_env: dict[str, str], migrate: dict[str, str], cloud: Emulator
) -> None:
    env = _env(app_env)
    action_id = _dry_run_action(env)
    body = ticket_body(remediations=["migrate_to_rbac"], dryRun=False)
    puts: list[str] = []

    def second_create(request: Request) -> bool:
        if request.method == "PUT" and ASSIGNMENT_PUT in request.path:
            puts.append(request.path)
        return len(puts) == 2

    _kill_at(cloud, env, body, second_create, reaches=False)
    assert len(_below_vault(cloud)) == 1 and not _switched(cloud)  # one assignment made, then the kill
    [(crashed, rows)] = _rows_of(action_id).items()
    assert _trail(rows) == [(None, "pending"), (1, "pending"), (1, "applied"), (2, "pending")]

    # The re-sent ticket adopts the interrupted run's assignment; its switch is refused after it took
    # effect, so it switches back and deletes every assignment of the migration, both runs'.
    cloud.faults.status(403, path=f"/vaults/{VAULT_NAME}$", method="PATCH", count=1, after=True)
    with runner(env) as (port, _):
        status, result = send(port, "POST", "/api/remediations", body)
    assert status == 202, result
    [outcome] = result["outcomes"]
    assert outcome["status"] == "failed" and outcome["error"].endswith("; rolled back"), outcome
    assert not _switched(cloud) and _below_vault(cloud) == []
    settled = _rows_of(action_id)[crashed]
    assert _trail(settled)[-3:] == [(2, "pending"), (2, "noop"), (None, "noop")]
    assert len(settled[-1].changes) == 1  # the assignment the interrupted run left, handed on
