"""`emulator.capacity.measure` runs (a smoke test; the number itself is reported, never asserted)."""

from __future__ import annotations

from emulator.capacity import measure


def test_measure_returns_a_rate_from_client_processes() -> None:
    assert measure(seconds=0.5, connections=2, processes=1) > 0
