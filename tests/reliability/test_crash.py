"""Crash safety: the worker dies between the audit `pending` row and the write, or between
the write and the `applied` row. The next run re-reads the vault, records the truth in the interrupted
run's partition, and nothing is lost or applied twice.

In process, the crash is a BaseException raised at the exact point (nothing in the engine may catch
it, as nothing catches a SIGKILL). In a subprocess, the CLI is killed with SIGKILL by the emulator at
the moment its write arrives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from emulator.wire import Request, Response
from remediations.adapters.clients import AzureClients
from remediations.core.request import RunRequest
from remediations.shell.audit import TableAuditSink
from remediations.shell.pipeline import run
from remediations.shell.settings import AppSettings
from tests.reliability.tenants import SmallTenant, policy_writes

ROOT = Path(__file__).resolve().parents[2]


class Crash(BaseException):
    """The process dies here: not an Exception, so no handler in the engine or adapters sees it."""


class _CrashingManagement:
    def __init__(self, inner: Any, when: str) -> None:
        self._inner, self._when = inner, when

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def update_access_policy(self, *args: Any, **kwargs: Any) -> Any:
        if self._when == "before-write":
            raise Crash
        self._inner.update_access_policy(*args, **kwargs)
        raise Crash  # the write took effect; the process dies before it records the outcome


class CrashingClients:
    def __init__(self, inner: AzureClients, when: str) -> None:
        self._inner, self._when = inner, when

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def keyvault_management(self, subscription_id: str) -> Any:
        return _CrashingManagement(self._inner.keyvault_management(subscription_id), self._when)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def tenant(emu: Emulator, monkeypatch: pytest.MonkeyPatch, storage_env: dict[str, str]) -> SmallTenant:
    t = SmallTenant().load(emu)  # first: the tenant and admin credentials in emu.env come from it
    for name, value in emu.env.items():
        monkeypatch.setenv(name, value)
    return t


def _rerun(t: SmallTenant, audit: TableAuditSink, correlation_id: str) -> Any:
    with AzureClients() as clients:
        return run(
            RunRequest(
                trigger="timer", scope=t.scope, correlation_id=correlation_id, reconcile_after=timedelta(0)
            ),
            t.policy(),
            clients,
            audit,
        )


@pytest.mark.parametrize("when", ["before-write", "after-write"])
def test_a_crash_around_the_write_is_reconciled_by_the_next_run(
    emu: Emulator, tenant: SmallTenant, when: str
) -> None:
    t = tenant
    audit = TableAuditSink.from_settings(AppSettings.from_env())
    mark = emu.requests.mark()
    with AzureClients() as inner, pytest.raises(Crash):
        run(
            RunRequest(trigger="timer", scope=t.scope, correlation_id="crashed"),
            t.policy(),
            CrashingClients(inner, when),
            audit,
        )
    crashed = audit.records("crashed")
    assert [r.state for r in crashed] == ["pending"], "the crash left exactly one intent without outcome"
    victim = crashed[0]
    writes = policy_writes(emu, mark)
    assert len(writes) == (1 if when == "after-write" else 0)

    # A run inside the in-flight window leaves it alone (it may belong to a live worker).
    with AzureClients() as clients:
        early = run(
            RunRequest(trigger="timer", scope=t.scope, correlation_id="early", dry_run=True),
            t.policy(),
            clients,
            audit,
        )
    assert early.reconciled == () and audit.records("crashed") == crashed
    # A dry run past the window reports what it would settle, and records nothing.
    with AzureClients() as clients:
        preview = run(
            RunRequest(
                trigger="cli",
                scope=t.scope,
                correlation_id="preview",
                dry_run=True,
                reconcile_after=timedelta(0),
            ),
            t.policy(),
            clients,
            audit,
        )
    assert [r.action_id for r in preview.reconciled] == [victim.action_id]
    assert audit.records("crashed") == crashed and audit.records("preview") == []

    mark = emu.requests.mark()
    result = _rerun(t, audit, "next")
    [reconciled] = result.reconciled
    assert reconciled.correlation_id == "crashed" and reconciled.action_id == victim.action_id
    after_rows = audit.records("crashed")
    assert [r.state for r in after_rows] == ["pending", reconciled.state]
    if when == "before-write":
        assert reconciled.state == "noop" and reconciled.error == "interrupted before the write"
        # ...and this run makes the change itself, once.
        assert victim.action_id in {o.action_id for o in result.outcomes if o.status == "applied"}
    else:
        assert reconciled.state == "applied" and "in place" in reconciled.reason
        assert victim.action_id not in {a.id for a in result.plan.actions}
    assert "reconciled by run next" in reconciled.reason

    # Nothing lost: every over-privileged identity is narrowed; nothing doubled: one applied per action.
    policies = t.policies(emu)
    assert policies[t.flow_sp] == {"secrets": ["get"]} and policies[t.portal_sp] == {"secrets": ["Get"]}
    applied = [r.action_id for cid in ("crashed", "next") for r in audit.records(cid) if r.state == "applied"]
    assert sorted(applied) == sorted(set(applied)) and len(applied) == 2
    # Each remove reached Key Vault once in total for the victim (never re-sent after reconcile).
    removes_for_victim = [w for w in policy_writes(emu, 0) if victim.principal in w.body.decode()]
    assert len([w for w in removes_for_victim if w.status == 200]) == 1

    # A third run has nothing to do and nothing to reconcile.
    again = _rerun(t, audit, "third")
    assert again.plan.writes == () and again.reconciled == ()


def _cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "remediations", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("when", ["before-write", "after-write"])
def test_a_worker_killed_with_sigkill_mid_write_is_reconciled(
    emu: Emulator, tenant: SmallTenant, storage_env: dict[str, str], tmp_path: Path, when: str
) -> None:
    t = tenant
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(t.policy_dict()))
    env = {**os.environ, **emu.env, **storage_env}
    scope = f"/subscriptions/{t.sub}/resourceGroups/{t.scope.resource_group}"
    process = _cli(env, "apply", "--scope", scope, "--policy", str(policy_file), "--json")
    killed: list[int] = []

    def kill_on_first_write(request: Request) -> Response | None:
        if request.method == "PUT" and request.path.endswith("/accessPolicies/remove") and not killed:
            killed.append(process.pid)
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
            if when == "before-write":
                return Response(503)  # the write never reaches Key Vault
        return None  # after-write: Key Vault makes the change; nobody is left to read the answer

    emu.middlewares.append(kill_on_first_write)
    try:
        mark = emu.requests.mark()
        deadline = time.monotonic() + 90
        while not killed and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        process.wait(timeout=30)
        while not policy_writes(emu, mark) and time.monotonic() < deadline:
            time.sleep(0.05)  # the emulator finishes handling the write after the kill
    finally:
        emu.middlewares.remove(kill_on_first_write)
    assert killed and process.returncode == -signal.SIGKILL, process.communicate()
    assert len([w for w in policy_writes(emu, mark) if w.status == 200]) == (
        1 if when == "after-write" else 0
    )

    audit = TableAuditSink.from_settings(AppSettings.from_env())
    result = _rerun(t, audit, "after-kill")
    [reconciled] = result.reconciled
    assert reconciled.state == ("applied" if when == "after-write" else "noop")
    crashed_rows = audit.records(reconciled.correlation_id)
    assert [r.state for r in crashed_rows] == ["pending", reconciled.state]
    policies = t.policies(emu)
    assert policies[t.flow_sp] == {"secrets": ["get"]} and policies[t.portal_sp] == {"secrets": ["Get"]}
    all_applied = [
        r.action_id
        for cid in (reconciled.correlation_id, "after-kill")
        for r in audit.records(cid)
        if r.state == "applied"
    ]
    assert len(all_applied) == len(set(all_applied)) == 2
