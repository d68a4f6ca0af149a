# ruff: noqa: F811 - the emulator and app fixtures of tests/functions are imported, then requested by name
"""The safety scenarios through the real local runner (`python -m remediations serve`, its own process)
with the emulator and Azurite: overlapping tickets on one vault, forged caller headers in each auth
configuration, SIGKILL of the runner mid-apply then a re-send, and out-of-scope targets."""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from emulator.azure.roles import RoleDefinition
from emulator.azure.state import RoleAssignment
from emulator.wire import Request, Response
from remediations.core.access_policy import VAULT_ADMIN_ROLES
from tests.functions.conftest import (  # noqa: F401 - fixtures reused here
    ADMIN_USER,
    FLOW_SP,
    SUBSCRIPTION,
    VAULT,
    VAULT_NAME,
    app_env,
    cloud,
    policy_writes_since,
    secrets_of,
    ticket_body,
)
from tests.functions.test_alerts import sample

ROOT = Path(__file__).resolve().parents[2]
KEY = "local-safety-key-123"
AUTH = {"x-functions-key": KEY}
ENFORCE = {"VAULTGUARD_DRY_RUN": "false", "VAULTGUARD_POLICY_JSON": json.dumps({"dryRun": False})}
# Every identity may keep `get`; anything else is excess (narrow_access_policy removes it).
NARROW = {
    **ENFORCE,
    "VAULTGUARD_POLICY_JSON": json.dumps({"dryRun": False, "secretPermissions": {"default": ["get"]}}),
}
MANAGING = ("set", "delete", "purge", "recover", "restore", "all")


@contextmanager
def runner(env: dict[str, str]) -> Iterator[tuple[int, subprocess.Popen[str]]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "remediations", "serve", "--port", "0"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **env, "VAULTGUARD_LOCAL_FUNCTION_KEY": KEY},
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/api/", line)
        assert match, line
        threading.Thread(target=process.stderr.read, daemon=True).start()  # keep the pipe drained
        yield int(match.group(1)), process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=20)


def kill_runner_at(
    cloud: Emulator,
    env: dict[str, str],
    body: dict[str, Any],
    hit: Callable[[Request], bool],
    *,
    reaches: bool,
    path: str = "/api/remediations",
    headers: dict[str, str] | None = None,
) -> None:
    """POST the ticket (or `body` to `path`, e.g. an approval) to a runner the emulator SIGKILLs when
    the first request `hit` selects arrives; with `reaches` that write takes effect (nobody is left to
    read the answer), else it never does. Returns once the run is stale (VAULTGUARD_STALE_RUN_SECONDS=1
    in `env`)."""
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
                send(port, "POST", path, body, headers, timeout=60)
    finally:
        cloud.middlewares.remove(kill)
    assert killed and process[0].returncode == -signal.SIGKILL
    time.sleep(1.2)


def send(
    port: int,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 120,
) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    data = json.dumps(body).encode() if body is not None else None
    connection.request(
        method, path, body=data, headers={"Content-Type": "application/json", **AUTH, **(headers or {})}
    )
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    return response.status, (json.loads(raw) if raw else {})


def _managers(emu: Emulator) -> list[str]:
    with emu.state.lock:
        vault = emu.state.azure.vaults[VAULT_NAME]
        return [
            e.object_id
            for e in vault.access_policies
            if {p.lower() for p in e.permissions.get("secrets", [])} & set(MANAGING)
        ]


def _removes(emu: Emulator, mark: int) -> list[Request]:
    return [
        r for r in emu.requests.since(mark) if r.method == "PUT" and r.path.endswith("/accessPolicies/remove")
    ]


@pytest.fixture
def two_managers(app_env: dict[str, str], cloud: Emulator) -> Iterator[dict[str, str]]:
    """The flow identity and the admin can both manage secrets; no RBAC role covers the vault, so
    whichever keeps `set`/`delete` is the vault's last manager."""
    az = cloud.state.azure
    with cloud.state.lock:
        saved = dict(az.role_assignments)
        for name, assignment in list(az.role_assignments.items()):
            if assignment.role_definition_id.rsplit("/", 1)[-1].lower() in VAULT_ADMIN_ROLES:
                del az.role_assignments[name]
        # The app reads vaults and writes access policies through a custom role, nothing more.
        custom = RoleDefinition(
            str(uuid.uuid4()),
            "vaultguard remediator (custom)",
            "test",
            role_type="CustomRole",
            actions=(
                "Microsoft.KeyVault/vaults/read",
                "Microsoft.KeyVault/vaults/accessPolicies/write",
                "Microsoft.Authorization/*/read",
            ),
        )
        az.role_definitions[custom.id.lower()] = custom
        mine = RoleAssignment(
            str(uuid.uuid4()), f"/subscriptions/{SUBSCRIPTION}", custom.id, az.admin_object_id
        )
        az.role_assignments[mine.name] = mine
        for entry in az.vaults[VAULT_NAME].access_policies:
            if entry.object_id == FLOW_SP:
                entry.permissions["secrets"] = ["Get", "List", "Set"]
    try:
        yield {**app_env, **NARROW}
    finally:
        with cloud.state.lock:
            az.role_assignments.clear()
            az.role_assignments.update(saved)
            del az.role_definitions[custom.id.lower()]


def _hold_first_remove_until(cloud: Emulator, mark: int, reads: int) -> tuple[Any, list[int]]:
    """Both tickets plan from the same vault before either writes: the first remove waits until the
    vault has been read `reads` times since `mark` (each ticket's inventory, and the first one's
    re-read under the lease)."""
    seen: list[int] = []
    lock = threading.Lock()

    def vault_reads() -> int:
        return len(
            [
                r
                for r in cloud.requests.since(mark)
                if r.method == "GET" and r.path.rstrip("/").endswith(f"/vaults/{VAULT_NAME}")
            ]
        )

    def hold(request: Request) -> Response | None:
        if request.method == "PUT" and request.path.endswith("/accessPolicies/remove"):
            with lock:
                first = not seen
                seen.append(vault_reads())
            if first:
                deadline = time.monotonic() + 20
                while vault_reads() < reads and time.monotonic() < deadline:
                    time.sleep(0.05)
        return None

    return hold, seen


def test_two_concurrent_tickets_cannot_remove_both_managers(
    two_managers: dict[str, str], cloud: Emulator
) -> None:
    assert sorted(_managers(cloud)) == sorted([FLOW_SP, ADMIN_USER])
    mark = cloud.requests.mark()
    hold, seen = _hold_first_remove_until(cloud, mark, reads=3)
    cloud.middlewares.append(hold)
    try:
        with runner(two_managers) as (port, _):
            bodies = [
                ticket_body(
                    remediations=["narrow_access_policy"],
                    dryRun=False,
                    targets={"vaults": [VAULT], "principals": [who]},
                )
                for who in (FLOW_SP, ADMIN_USER)
            ]
            answers: list[tuple[int, dict[str, Any]]] = [(0, {})] * 2

            def post(index: int) -> None:
                answers[index] = send(port, "POST", "/api/remediations", bodies[index])

            threads = [threading.Thread(target=post, args=(i,)) for i in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
    finally:
        cloud.middlewares.remove(hold)
    assert [status for status, _ in answers] == [202, 202], answers
    assert seen, "a write was sent"
    # Both planned the removal as a write (no plan-time skip): the other manager was still there in
    # each snapshot, so only the write-time re-read can refuse the second.
    planned = [a for _, body in answers for a in body["plan"]]
    assert len(planned) == 2 and all(a["skip_reason"] is None for a in planned), planned
    outcomes = [o for _, body in answers for o in body["outcomes"]]
    assert sorted(o["status"] for o in outcomes) == ["applied", "skipped"], outcomes
    [skipped] = [o for o in outcomes if o["status"] == "skipped"]
    assert "last identity" in skipped["error"]
    assert len(_managers(cloud)) == 1  # 0 vaults without a manager
    assert len(_removes(cloud, mark)) == 1  # each write once; the refused one never sent


def test_the_same_ticket_twice_at_once_writes_once(app_env: dict[str, str], cloud: Emulator) -> None:
    mark = cloud.requests.mark()
    body = ticket_body(dryRun=False)
    with runner({**app_env, **ENFORCE}) as (port, _):
        answers: list[int] = []
        threads = [
            threading.Thread(target=lambda: answers.append(send(port, "POST", "/api/remediations", body)[0]))
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        status, stored = send(port, "GET", f"/api/remediations/{body['ticketId']}")
    assert sorted(answers) in ([200, 202], [202, 202]), answers
    assert status == 200 and stored["status"] == "applied"
    assert len(_removes(cloud, mark)) == 1
    assert secrets_of(cloud, FLOW_SP) == ["Get"]


def _principal(object_id: str, roles: tuple[str, ...] = ("Remediator",)) -> dict[str, str]:
    claims = [{"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": object_id}]
    claims += [{"typ": "roles", "val": role} for role in roles]
    encoded = base64.b64encode(json.dumps({"auth_typ": "aad", "claims": claims}).encode()).decode()
    return {
        "X-MS-CLIENT-PRINCIPAL": encoded,
        "X-MS-CLIENT-PRINCIPAL-ID": object_id,
        "X-MS-CLIENT-PRINCIPAL-NAME": "forged@contoso.example",
    }


@pytest.mark.parametrize(
    "config",
    [
        {"VAULTGUARD_REQUIRE_AUTHENTICATED_CALLER": "true"},
        {"VAULTGUARD_ALLOWED_CALLER_ROLES": "Remediator"},
        {"VAULTGUARD_REQUIRE_AUTHENTICATED_CALLER": "true", "VAULTGUARD_ALLOWED_CALLER_ROLES": "Remediator"},
    ],
)
def test_forged_principal_headers_without_easy_auth_apply_nothing(
    app_env: dict[str, str], cloud: Emulator, config: dict[str, str]
) -> None:
    mark = cloud.requests.mark()
    env = {**app_env, **ENFORCE, **config}
    env.pop("WEBSITE_AUTH_ENABLED", None)
    with runner(env) as (port, _):
        for headers in (_principal(ADMIN_USER), {"X-MS-CLIENT-PRINCIPAL-ID": ADMIN_USER}):
            status, problem = send(port, "POST", "/api/remediations", ticket_body(dryRun=False), headers)
            assert status == 503 and problem["type"].endswith("/not-configured"), problem
            assert "WEBSITE_AUTH_ENABLED" in problem["detail"]
            dry_status, _ = send(port, "POST", "/api/remediations", ticket_body(dryRun=True), headers)
            assert dry_status == 200  # a dry run changes nothing and needs no caller
        _, health = send(port, "GET", "/api/health")
    assert health["status"] == "degraded"
    assert any("WEBSITE_AUTH_ENABLED" in p for p in health["problems"])
    assert policy_writes_since(cloud, mark) == 0
    assert secrets_of(cloud, FLOW_SP) == ["Get", "List"]


def test_forged_headers_with_callers_not_required_are_not_believed(
    app_env: dict[str, str], cloud: Emulator
) -> None:
    """No caller required, no Easy Auth: the ticket runs (the deployment allows anonymous callers with
    the function key), but the forged principal is not recorded as who called."""
    env = {**app_env, **ENFORCE}
    env.pop("WEBSITE_AUTH_ENABLED", None)
    with runner(env) as (port, _):
        status, result = send(
            port, "POST", "/api/remediations", ticket_body(dryRun=False), _principal(ADMIN_USER)
        )
    assert status == 202, result
    assert ADMIN_USER not in json.dumps(result.get("attribution", {}).get("caller") or {})


def test_with_easy_auth_on_a_caller_without_the_role_is_403(app_env: dict[str, str], cloud: Emulator) -> None:
    mark = cloud.requests.mark()
    env = {
        **app_env,
        **ENFORCE,
        "VAULTGUARD_ALLOWED_CALLER_ROLES": "Remediator",
        "WEBSITE_AUTH_ENABLED": "true",
    }
    with runner(env) as (port, _):
        status, problem = send(
            port,
            "POST",
            "/api/remediations",
            ticket_body(dryRun=False),
            _principal(ADMIN_USER, roles=("Reader",)),
        )
        _, health = send(port, "GET", "/api/health")
    assert status == 403 and problem["type"].endswith("/forbidden"), problem
    assert not any("WEBSITE_AUTH_ENABLED" in p for p in health["problems"]), health
    assert policy_writes_since(cloud, mark) == 0


@pytest.mark.parametrize("when", ["before-write", "after-write"])
def test_sigkill_of_the_runner_mid_apply_then_a_resend_converges(
    app_env: dict[str, str], cloud: Emulator, when: str
) -> None:
    env = {**app_env, **ENFORCE, "VAULTGUARD_STALE_RUN_SECONDS": "1"}
    body = ticket_body(dryRun=False)
    mark = cloud.requests.mark()
    first_remove = lambda r: r.method == "PUT" and r.path.endswith("/accessPolicies/remove")  # noqa: E731
    kill_runner_at(cloud, env, body, first_remove, reaches=when == "after-write")
    with runner(env) as (port, _):  # the stored run is stale by now
        status, result = send(port, "POST", "/api/remediations", body)
        assert status == 202, result  # re-run, not an idempotent replay of `running`
        replay_status, replay = send(port, "POST", "/api/remediations", body)
    assert replay_status == 200 and replay["status"] == result["status"] != "running"
    assert secrets_of(cloud, FLOW_SP) == ["Get"]  # nothing lost
    sent = [r for r in _removes(cloud, mark) if r.status == 200]
    assert len(sent) == 1  # written once in all (after-write: the re-run finds it made)


@pytest.mark.parametrize("kind", ["ticket", "alert"])
def test_out_of_scope_targets_over_http_make_no_call(
    app_env: dict[str, str], cloud: Emulator, kind: str
) -> None:
    env = {**app_env, **ENFORCE, "VAULTGUARD_SUBSCRIPTION_IDS": str(uuid.UUID(int=7))}
    with runner(env) as (port, _):
        mark = cloud.requests.mark()
        if kind == "ticket":
            status, answer = send(port, "POST", "/api/remediations", ticket_body(dryRun=False))
            assert status == 403 and "out of scope" in json.dumps(answer), answer
        else:
            status, answer = send(port, "POST", "/api/alerts", sample("defender_security_alert_record"))
            assert status == 202 and answer["message"].startswith("ignored: out of scope"), answer
    assert cloud.requests.since(mark) == []  # no read, no write
    assert secrets_of(cloud, FLOW_SP) == ["Get", "List"]
