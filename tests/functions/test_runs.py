"""The run store on Azurite: large results are chunked and read back whole; too large is refused."""

from __future__ import annotations

import os
import random
import string

import pytest

from remediations.triggers.runs import MAX_COMPRESSED_BYTES, ResultTooLarge, RunStore


def _incompressible(size: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    return "".join(rng.choices(string.ascii_letters + string.digits, k=size))


def test_a_multi_megabyte_result_round_trips_through_parts(app_env: dict[str, str]) -> None:
    store = RunStore.from_env()
    # ~1.5 MB of poorly compressible text: more than one entity (12 x 64,000 bytes) can hold.
    body = {"outcomes": [{"id": i, "note": _incompressible(1000, i)} for i in range(1500)]}
    assert store.reserve("ticket", "BIG-1", "fp", {"status": "running"}, "running", True) is None
    store.save("ticket", "BIG-1", "fp", body, "applied", True)
    stored = store.get("ticket", "BIG-1")
    assert stored is not None
    assert stored.body == body and stored.status == "applied" and stored.fingerprint == "fp"
    assert [r.status for r in store.recent(5)] == ["applied"]


def test_reserve_twice_returns_the_first_record_unchanged(app_env: dict[str, str]) -> None:
    store = RunStore.from_env()
    assert store.reserve("alert", "k1", "a", {"n": 1}, "received") is None
    again = store.reserve("alert", "k1", "b", {"n": 2}, "received")
    assert again is not None and again.body == {"n": 1} and again.fingerprint == "a"


def test_too_large_results_are_refused_not_truncated(app_env: dict[str, str]) -> None:
    store = RunStore.from_env()
    huge = {"blob": os.urandom(MAX_COMPRESSED_BYTES).hex()}
    store.reserve("ticket", "HUGE-1", "fp", {}, "running")
    with pytest.raises(ResultTooLarge):
        store.save("ticket", "HUGE-1", "fp", huge, "applied")
