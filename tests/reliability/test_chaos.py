"""Chaos convergence: with 10-30% of requests on every host failing (429 with Retry-After,
500, 503, connection resets before the handler and after a write took effect) and latency everywhere,
repeated sweeps reach exactly the state a fault-free run reaches, no action is recorded applied twice,
and every failure is an audit row with its reason.

The fast variant runs in `make test`; the soak (`make soak`) loops over fresh tenants for minutes and
prints the summary line.
"""

from __future__ import annotations

import os
import time

import pytest

from emulator import Emulator
from remediations.shell.audit import TableAuditSink
from remediations.shell.settings import AppSettings
from tests.reliability import chaos
from tests.reliability.soak import SOAK
from tests.security.leakscan import LeakScan


def _reference(vaults: int, seed: int, audit: TableAuditSink, monkeypatch: pytest.MonkeyPatch) -> dict:
    generated = chaos.tenant(vaults, seed)
    with Emulator(generated.state) as emu:
        for name, value in emu.env.items():
            monkeypatch.setenv(name, value)
        clean = chaos.sweep_until_done(emu, generated, audit, prefix=f"ref-{seed}")
        assert emu.faults.injected == 0
        assert clean.failed == 0 and chaos.audit_violations(clean) == []
        assert clean.sweeps == 2, "a fault-free run fixes everything in one sweep, the second finds nothing"
        return chaos.permission_state(emu)


def _chaotic(
    vaults: int, seed: int, rate: float, audit: TableAuditSink, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict, chaos.Convergence, Emulator]:
    generated = chaos.tenant(vaults, seed)
    emu = Emulator(generated.state, seed=seed)
    with emu:
        for name, value in emu.env.items():
            monkeypatch.setenv(name, value)
        rules = chaos.inject(emu, rate)
        mark = emu.requests.mark()
        done = chaos.sweep_until_done(emu, generated, audit, prefix=f"chaos-{seed}", max_sweeps=15)
        emu.faults.clear()
        # Faults off: one more sweep must find nothing left and write nothing.
        final = chaos.sweep_until_done(emu, generated, audit, prefix=f"chaos-{seed}-check", max_sweeps=1)
        assert final.results[0].plan.writes == () and chaos.unexpected_errors(final.results[0]) == []
        done.results += final.results
        done.rows += final.rows
        statuses = chaos.write_statuses(emu, mark)
        assert not any(500 <= status < 600 and status not in (500, 503) for status in statuses), statuses
        assert rules[0].fired == 2 and all(r.fired for r in rules[3:]), [(r.kind, r.fired) for r in rules]
        after_write = [r for r in emu.requests.since(mark) if r.fault == "reset-after"]
        assert after_write, "a write must have taken effect with its answer lost"
        return chaos.permission_state(emu), done, emu


def _leaks(leak_scan: LeakScan, emu: Emulator, done: chaos.Convergence) -> int:
    """Secret values of this tenant in its audit rows and outcomes (logs/output are scanned at teardown)."""
    scan = LeakScan()  # this tenant only; the session-wide guard still gets the emulator for teardown
    scan.watch(emu)
    leak_scan.watch(emu)
    scan.add("audit rows", "\n".join(r.model_dump_json() for r in done.rows))
    scan.add("run results", "\n".join(r.model_dump_json() for r in done.results))
    return len(scan.hits())


def test_sweeps_under_faults_converge_to_the_fault_free_state(
    storage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, leak_scan: LeakScan
) -> None:
    audit = TableAuditSink.from_settings(AppSettings.from_env())
    with chaos.fast_retries(monkeypatch, 0.02):
        expected = _reference(12, 11, audit, monkeypatch)
        actual, done, emu = _chaotic(12, 11, 0.3, audit, monkeypatch)
    assert emu.faults.injected >= 15, "the test must actually inject faults"
    assert done.applied > 0
    SOAK.add(done, emu, lost=chaos.differences(expected, actual), leaks=_leaks(leak_scan, emu, done))
    assert actual == expected
    assert chaos.audit_violations(done) == []


@pytest.mark.slow
def test_soak_chaos_for_minutes(
    storage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, leak_scan: LeakScan
) -> None:
    """Fresh tenants, one after another, for SOAK_SECONDS (default 180), rates cycling 10-30%."""
    audit = TableAuditSink.from_settings(AppSettings.from_env())
    deadline = time.monotonic() + float(os.environ.get("SOAK_SECONDS", "180"))
    seed = 100
    rates = (0.1, 0.2, 0.3)
    with chaos.fast_retries(monkeypatch, 0.1):
        while time.monotonic() < deadline:
            expected = _reference(30, seed, audit, monkeypatch)
            actual, done, emu = _chaotic(30, seed, rates[seed % len(rates)], audit, monkeypatch)
            SOAK.add(done, emu, lost=chaos.differences(expected, actual), leaks=_leaks(leak_scan, emu, done))
            assert actual == expected, f"seed {seed}: the chaotic run ended in a different state"
            assert chaos.audit_violations(done) == [], f"seed {seed}"
            seed += 1
    assert SOAK.tenants >= 2
    assert (SOAK.out_of_scope, SOAK.lost, SOAK.duplicates) == (0, 0, 0), SOAK.line()
