# ruff: noqa: F811 - the emulator and app fixtures of tests/functions are imported, then requested by name
"""A crash mid-migration through the real local runner (`python -m remediations serve`, its own process):
the emulator SIGKILLs the runner when one of the migration's writes arrives. Every step began is in the
audit (intent before, result after); the re-sent ticket reconciles the interrupted run from those rows
and a re-read (assignment exists? vault in RBAC mode?), then finishes the migration or rolls it back,
the interrupted run's assignments included, also when a run in between deferred it over the write cap.
A re-sent ticket that finds the vault changed under its lease skips the migration as drifted and rolls
back what the killed run created (kept and named when the vault reads Azure RBAC by then); killed in
turn mid-rollback, the next drifted run finishes it. An approved migration killed half-way resumes when
approved again (its own assignments are not drift); when something else changed, the approval sent
again skips it as drifted at the start of the run and rolls back what the killed run created all the
same, under the vault's lease.
Never half-applied without a row saying so."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from emulator import Emulator
from emulator.azure.state import AccessPolicy, Vault
from emulator.wire import Request
from tests.functions.conftest import (  # noqa: F401 - fixtures reused
    FLOW_SP,
    VAULT,
    VAULT_NAME,
    app_env,
    cloud,
    ticket_body,
)
from tests.functions.test_approval_migration import _changed_after_the_read, grant_other, take_back_grant
from tests.functions.test_rbac_migration_ticket import (  # noqa: F401 - the `migrate` fixture reused
    POLICY,
    _below_vault,
    _expected,
    _switched,
    migrate,
)
from tests.security.test_approval_over_http import ALICE, BOB
from tests.security.test_safety_over_http import kill_runner_at, runner, send

VAULT_PATCH = "/providers/Microsoft.KeyVault/vaults/"
ASSIGNMENT_PUT = "/providers/Microsoft.Authorization/roleAssignments/"
MIGRATE = ["migrate_to_rbac"]


def _env(app_env: dict[str, str]) -> dict[str, str]:
    return {
        **app_env,
        "VAULTGUARD_DRY_RUN": "false",
        "VAULTGUARD_POLICY_JSON": json.dumps(POLICY),
        "VAULTGUARD_STALE_RUN_SECONDS": "1",  # the killed run (and its vault lease) is stale after 1 s
    }


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


def _prepared(app_env: dict[str, str]) -> tuple[dict[str, str], str, dict[str, Any]]:
    """The runner's settings, the migration's action id (from a dry run: the same plan), the ticket."""
    env = _env(app_env)
    with runner(env) as (port, _):
        status, planned = send(
            port, "POST", "/api/remediations", ticket_body(remediations=MIGRATE, dryRun=True)
        )
    assert status == 200, planned
    [action] = planned["plan"]
    return env, str(action["id"]), ticket_body(remediations=MIGRATE, dryRun=False)


def _switch(request: Request) -> bool:
    return request.method == "PATCH" and VAULT_PATCH in request.path


def _trail(rows: list[Any]) -> list[tuple[int | None, str]]:
    return [(r.step, r.state) for r in rows]


def test_killed_at_the_switch_before_it_took_effect_then_the_resend_finishes(
    app_env: dict[str, str], migrate: dict[str, str], cloud: Emulator
) -> None:
    env, action_id, body = _prepared(app_env)
    kill_runner_at(cloud, env, body, _switch, reaches=False)
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
    assert "3 of 3 assignment(s) in place); planned again by this run, which adopts them" in outcome.reason
    [resent] = [rows for run, rows in runs.items() if run != crashed]
    assert _trail(resent)[0] == (None, "pending") and _trail(resent)[-1] == (None, "applied")


def test_killed_after_the_switch_took_effect_is_reconciled_applied_and_nothing_is_written_again(
    app_env: dict[str, str], migrate: dict[str, str], cloud: Emulator
) -> None:
    env, action_id, body = _prepared(app_env)
    kill_runner_at(cloud, env, body, _switch, reaches=True)
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


def _second_create() -> Callable[[Request], bool]:
    """Selects the migration's second role-assignment PUT."""
    puts: list[str] = []

    def second_create(request: Request) -> bool:
        if request.method == "PUT" and ASSIGNMENT_PUT in request.path:
            puts.append(request.path)
        return len(puts) == 2

    return second_create


def _killed_between_two_creates(
    app_env: dict[str, str], cloud: Emulator
) -> tuple[dict[str, str], str, dict[str, Any], str]:
    """The runner killed as the migration's second create arrives (it never takes effect): one
    assignment made, the rows say so. The runner's settings, the action id, the ticket, the killed run."""
    env, action_id, body = _prepared(app_env)
    kill_runner_at(cloud, env, body, _second_create(), reaches=False)
    assert len(_below_vault(cloud)) == 1 and not _switched(cloud)  # one assignment made, then the kill
    [(crashed, rows)] = _rows_of(action_id).items()
    assert _trail(rows) == [(None, "pending"), (1, "pending"), (1, "applied"), (2, "pending")]
    return env, action_id, body, crashed


def _resent_with_the_switch_refused(cloud: Emulator, env: dict[str, str], body: dict[str, Any]) -> Any:
    """Re-send the ticket; the switch is refused after it took effect, so the run switches back and
    deletes every assignment of the migration, those it adopted included. Its outcome."""
    cloud.faults.status(403, path=f"/vaults/{VAULT_NAME}$", method="PATCH", count=1, after=True)
    with runner(env) as (port, _):
        status, result = send(port, "POST", "/api/remediations", body)
    assert status == 202, result
    [outcome] = result["outcomes"]
    assert outcome["status"] == "failed" and outcome["error"].endswith("; rolled back"), outcome
    assert not _switched(cloud) and _below_vault(cloud) == []
    return outcome


def test_killed_between_two_creates_then_a_resend_that_fails_rolls_back_both_runs_assignments(
    app_env: dict[str, str], migrate: dict[str, str], cloud: Emulator
) -> None:
    env, action_id, body, crashed = _killed_between_two_creates(app_env, cloud)
    # The re-sent ticket adopts the interrupted run's assignment and rolls it back with its own.
    _resent_with_the_switch_refused(cloud, env, body)
    settled = _rows_of(action_id)[crashed]
    assert _trail(settled)[-3:] == [(2, "pending"), (2, "noop"), (None, "noop")]
    assert "1 of 2 assignment(s) in place" in settled[-1].reason  # handed on, rolled back above


OTHER_VAULT = "kv-fin-other"


@contextmanager
def _another_vault(cloud: Emulator) -> Iterator[str]:
    """A second access-policy vault beside the sample one (the flow's identity reads it, the app's
    lists it), removed afterwards with any role assignment made on it. Yields its resource id."""
    with cloud.state.lock:
        az = cloud.state.azure
        group = VAULT.split("/resourceGroups/")[1].split("/")[0]
        other = Vault(OTHER_VAULT, az.subscription_id, group, az.tenant_id)
        other.access_policies += [
            AccessPolicy(az.tenant_id, FLOW_SP, permissions={"secrets": ["Get"]}),
            AccessPolicy(az.tenant_id, az.admin_object_id, permissions={"secrets": ["List"]}),
        ]
        az.vaults[OTHER_VAULT] = other
    try:
        yield other.arm_id
    finally:
        with cloud.state.lock:
            az = cloud.state.azure
            del az.vaults[OTHER_VAULT]
            for name in [n for n, a in az.role_assignments.items() if OTHER_VAULT in a.scope.lower()]:
                del az.role_assignments[name]


def test_killed_between_two_creates_then_deferred_by_the_cap_still_hands_what_is_left_to_the_next_attempt(
    app_env: dict[str, str], migrate: dict[str, str], cloud: Emulator
) -> None:
    env, action_id, body, crashed = _killed_between_two_creates(app_env, cloud)
    [left] = _below_vault(cloud)

    # Another ticket over both vaults, one write allowed: the other vault's migration takes it and the
    # sample vault's, planned again, is deferred. Its interrupted row stays pending, not handed on.
    capped = {**POLICY, "maxActionsPerRun": 1}
    capped["rbacMigration"] = {**POLICY["rbacMigration"], "vaults": [VAULT_NAME, OTHER_VAULT]}  # type: ignore[dict-item]
    with _another_vault(cloud) as other:
        both = ticket_body(remediations=MIGRATE, dryRun=False, targets={"vaults": [other, VAULT]})
        with runner({**env, "VAULTGUARD_POLICY_JSON": json.dumps(capped)}) as (port, _):
            status, result = send(port, "POST", "/api/remediations", both)
        assert status == 202, result
        by_status = {o["status"]: o for o in result["outcomes"]}
        assert set(by_status) == {"applied", "deferred"}, result["outcomes"]
        assert by_status["deferred"]["action_id"] == action_id
    assert _below_vault(cloud) == [left] and not _switched(cloud)  # nothing written on the sample vault
    settled = _rows_of(action_id)[crashed]
    assert _trail(settled)[-2:] == [(2, "pending"), (2, "noop")]  # the unfinished step settled...
    assert settled[-1].step is not None  # ...and the action itself still pending, for its next attempt

    # The re-sent ticket attempts it: it adopts the assignment the killed run left and, its switch
    # refused, rolls back every assignment of the migration, the killed run's too.
    outcome = _resent_with_the_switch_refused(cloud, env, body)
    assert "adopted 1 assignment(s)" in outcome["after"]["steps"][0]
    settled = _rows_of(action_id)[crashed]
    assert _trail(settled)[-1] == (None, "noop") and "which adopts them" in settled[-1].reason


def _resent_with_a_change_after_its_read(
    cloud: Emulator, env: dict[str, str], body: dict[str, Any], change: Callable[[], None]
) -> tuple[Any, int]:
    """Re-send the ticket; `change` is made once the run has read the vault and its assignments (so it
    plans again and adopts what the killed run left), before the vault's lease. Its outcome and the
    request log's mark before it."""
    mark = cloud.requests.mark()
    with _changed_after_the_read(cloud, change) as changed, runner(env) as (port, _):
        status, result = send(port, "POST", "/api/remediations", body)
    assert status == 202 and changed, result
    [outcome] = result["outcomes"]
    return outcome, mark


def test_killed_between_two_creates_then_a_drifted_resend_rolls_back_what_the_killed_run_created(
    app_env: dict[str, str], migrate: dict[str, str], cloud: Emulator
) -> None:
    """Someone gives another identity `get` while the re-sent ticket runs: the migration is skipped as
    drifted under the lease, and the assignment the killed run made (an extra grant nothing asks for
    now) is deleted by its own name there, an intent row before the delete and a result row after."""
    env, action_id, body, crashed = _killed_between_two_creates(app_env, cloud)
    [left] = _below_vault(cloud)
    outcome, mark = _resent_with_a_change_after_its_read(cloud, env, body, lambda: grant_other(cloud))
    assert outcome["status"] == "skipped", outcome
    assert outcome["error"].startswith("drifted: the target changed since the plan was made"), outcome
    assert "; rolled back what an interrupted attempt left: " in outcome["error"]
    assert _below_vault(cloud) == [] and not _switched(cloud)
    [delete] = [r for r in cloud.requests.since(mark) if r.method in {"PUT", "PATCH", "DELETE"}]
    assert delete.method == "DELETE" and ASSIGNMENT_PUT in delete.path
    runs = _rows_of(action_id)
    assert _trail(runs[crashed])[-1] == (None, "noop")  # handed on to the re-sent ticket
    [resent] = [rows for run, rows in runs.items() if run != crashed]
    adopt, delete_steps = [(1, "pending"), (1, "applied")], [(2, "pending"), (2, "applied")]
    assert _trail(resent) == [(None, "pending"), *adopt, *delete_steps, (None, "skipped")]
    [adopted] = resent[1].changes  # the re-sent ticket's own rows name what it took over
    assert adopted.operation == "create" and resent[1].reason.startswith("adopt ")  # type: ignore[union-attr]
    [undo] = resent[3].changes
    assert undo.type == "roleAssignment" and undo.operation == "delete"  # type: ignore[union-attr]
    assert resent[3].reason.startswith("roll back: ") and resent[-1].error == outcome["error"]
    assert resent[-1].error.endswith(left[2])  # the leftover named by its scope


def test_killed_between_two_creates_then_switched_by_hand_keeps_and_names_what_the_killed_run_created(
    app_env: dict[str, str], migrate: dict[str, str], cloud: Emulator
) -> None:
    """Someone switches the vault to RBAC while the re-sent ticket runs: the killed run's assignment may
    now be the access its identity relies on, so it stays, named in the skipped outcome."""
    env, _, body, _ = _killed_between_two_creates(app_env, cloud)
    left = _below_vault(cloud)

    def switch() -> None:
        with cloud.state.lock:
            cloud.state.azure.vaults[VAULT_NAME].enable_rbac_authorization = True

    outcome, mark = _resent_with_a_change_after_its_read(cloud, env, body, switch)
    assert outcome["status"] == "skipped" and outcome["error"].startswith("drifted"), outcome
    assert "kept: the vault reads Azure RBAC now" in outcome["error"]
    assert _below_vault(cloud) == left
    assert [r for r in cloud.requests.since(mark) if r.method in {"PUT", "PATCH", "DELETE"}] == []


def _delete(request: Request) -> bool:
    return request.method == "DELETE" and ASSIGNMENT_PUT in request.path


def test_killed_while_rolling_back_what_a_killed_run_left_then_the_next_drifted_run_finishes_it(
    app_env: dict[str, str], migrate: dict[str, str], cloud: Emulator
) -> None:
    """The re-sent ticket skips the migration as drifted and is killed in turn at the DELETE of the
    assignment the first killed run left: its own rows name that assignment (it adopted it), so the
    next run is handed it and, skipping the migration as drifted too, deletes it by its name."""
    env, action_id, body, crashed = _killed_between_two_creates(app_env, cloud)
    [left] = _below_vault(cloud)
    with _changed_after_the_read(cloud, lambda: grant_other(cloud)) as changed:
        kill_runner_at(cloud, env, body, _delete, reaches=False)
    assert changed and _below_vault(cloud) == [left]  # killed before the delete took effect
    [killed] = [run for run in _rows_of(action_id) if run != crashed]
    rows = _rows_of(action_id)[killed]
    assert _trail(rows) == [(None, "pending"), (1, "pending"), (1, "applied"), (2, "pending")]
    assert rows[1].reason.startswith("adopt ") and rows[-1].reason.startswith("roll back: ")

    take_back_grant(cloud)  # the next ticket plans the same migration, and the vault changes again
    outcome, mark = _resent_with_a_change_after_its_read(cloud, env, body, lambda: grant_other(cloud))
    assert outcome["status"] == "skipped" and outcome["error"].startswith("drifted"), outcome
    assert "; rolled back what an interrupted attempt left: " in outcome["error"]
    assert _below_vault(cloud) == [] and not _switched(cloud)
    [delete] = [r for r in cloud.requests.since(mark) if r.method in {"PUT", "PATCH", "DELETE"}]
    assert delete.method == "DELETE" and ASSIGNMENT_PUT in delete.path
    settled = _rows_of(action_id)[killed]
    assert _trail(settled)[-3:] == [(2, "pending"), (2, "noop"), (None, "failed")]
    assert settled[-1].error.startswith("rollback interrupted; left in place: ")
    assert "planned again by this run, which adopts what is left" in settled[-1].reason


def _approval_killed_between_two_creates(
    app_env: dict[str, str], cloud: Emulator
) -> tuple[dict[str, str], str, dict[str, Any], str, str]:
    """A dry run reviewed by one caller, approved by another; the runner applying the approval killed
    as the second create arrives (one assignment made). The runner's settings, the approval's path and
    body, the action id, the killed run."""
    env = {**_env(app_env), "WEBSITE_AUTH_ENABLED": "true"}
    with runner(env) as (port, _):
        dry_run = ticket_body(requester=None, remediations=MIGRATE, dryRun=True)
        status, planned = send(port, "POST", "/api/remediations", dry_run, ALICE)
    assert status == 200 and planned["status"] == "planned", planned
    [action] = planned["plan"]
    path, approval = f"/api/remediations/{planned['ticketId']}/approve", {"planHash": planned["planHash"]}
    kill_runner_at(cloud, env, approval, _second_create(), reaches=False, path=path, headers=BOB)
    assert len(_below_vault(cloud)) == 1 and not _switched(cloud)
    [(crashed, rows)] = _rows_of(str(action["id"])).items()
    assert _trail(rows) == [(None, "pending"), (1, "pending"), (1, "applied"), (2, "pending")]
    return env, path, approval, str(action["id"]), crashed


def test_an_approved_migration_killed_between_two_creates_resumes_when_approved_again(
    app_env: dict[str, str], migrate: dict[str, str], cloud: Emulator
) -> None:
    """The assignment the killed approval created is new since the review, but it is this migration's
    own (its step rows name it): not drift. The approval sent again adopts it and finishes."""
    env, path, approval, action_id, crashed = _approval_killed_between_two_creates(app_env, cloud)
    with runner(env) as (port, _):
        status, result = send(port, "POST", path, approval, BOB)
    assert status == 202, result
    [outcome] = result["outcomes"]
    assert outcome["status"] == "applied", outcome
    assert "adopted 1 assignment(s)" in outcome["after"]["steps"][0]
    assert _switched(cloud) and _below_vault(cloud) == _expected(cloud)
    settled = _rows_of(action_id)[crashed]
    assert _trail(settled)[-1] == (None, "noop") and "which adopts them" in settled[-1].reason


def test_an_approved_migration_killed_then_changed_by_someone_is_skipped_and_its_leftover_rolled_back(
    app_env: dict[str, str], migrate: dict[str, str], cloud: Emulator
) -> None:
    """Only the killed attempt's own assignments are discounted: another identity given `get` since
    skips the approved migration at the start of the run. The run still takes the vault's lease for it
    and deletes the assignment the killed attempt created (an extra grant nothing asks for now) by its
    own name: an adopt row, an intent row before the delete, a result row after it."""
    env, path, approval, action_id, crashed = _approval_killed_between_two_creates(app_env, cloud)
    [left] = _below_vault(cloud)
    grant_other(cloud)
    mark = cloud.requests.mark()
    with runner(env) as (port, _):
        status, result = send(port, "POST", path, approval, BOB)
    assert status == 202, result
    [outcome] = result["outcomes"]
    assert outcome["status"] == "skipped", outcome
    assert outcome["error"].startswith("drifted: the target changed since the plan was made"), outcome
    assert "access policy secrets: get" in outcome["error"]
    assert "; rolled back what an interrupted attempt left: " in outcome["error"]
    [delete] = [r for r in cloud.requests.since(mark) if r.method in {"PUT", "PATCH", "DELETE"}]
    assert delete.method == "DELETE" and ASSIGNMENT_PUT in delete.path
    assert _below_vault(cloud) == [] and not _switched(cloud)
    runs = _rows_of(action_id)
    settled = runs[crashed][-1]  # handed on to the approval sent again, which says what it does with it
    assert settled.state == "noop" and "skipped as drifted by this run" in settled.reason
    [again] = [rows for run, rows in runs.items() if run != crashed]
    adopt, delete_steps = [(1, "pending"), (1, "applied")], [(2, "pending"), (2, "applied")]
    assert _trail(again) == [(None, "pending"), *adopt, *delete_steps, (None, "skipped")]
    assert again[1].reason.startswith("adopt ") and again[3].reason.startswith("roll back: ")
    assert again[-1].error == outcome["error"] and again[-1].error.endswith(left[2])


def test_an_approved_migration_killed_then_switched_by_hand_keeps_and_names_its_leftover(
    app_env: dict[str, str], migrate: dict[str, str], cloud: Emulator
) -> None:
    """The vault switched to RBAC by a person since: the approval sent again skips the migration as
    drifted, and the killed attempt's assignment, maybe the access its identity relies on now, stays."""
    env, path, approval, _, _ = _approval_killed_between_two_creates(app_env, cloud)
    left = _below_vault(cloud)
    with cloud.state.lock:
        cloud.state.azure.vaults[VAULT_NAME].enable_rbac_authorization = True
    mark = cloud.requests.mark()
    with runner(env) as (port, _):
        status, result = send(port, "POST", path, approval, BOB)
    assert status == 202, result
    [outcome] = result["outcomes"]
    assert outcome["status"] == "skipped" and outcome["error"].startswith("drifted: the vault was switched")
    assert "kept: the vault reads Azure RBAC now" in outcome["error"], outcome
    assert _below_vault(cloud) == left
    assert [r for r in cloud.requests.since(mark) if r.method in {"PUT", "PATCH", "DELETE"}] == []
