"""shell/read_once.py: one read per key shared by concurrent and later callers, for a while."""

from __future__ import annotations

import threading
import time

import pytest

from remediations.shell.read_once import ReadOnce


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_callers_at_the_same_time_share_one_read() -> None:
    reads: list[str] = []
    started = threading.Event()

    def slow_read() -> str:
        reads.append("read")
        started.set()
        time.sleep(0.2)  # the others arrive while this read is in flight
        return "inventory"

    cache: ReadOnce[str] = ReadOnce(ttl_s=60, size=4)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("sweep-1", slow_read)))]
    threads[0].start()
    started.wait()
    threads += [
        threading.Thread(target=lambda: results.append(cache.get("sweep-1", slow_read))) for _ in range(7)
    ]
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join()
    assert reads == ["read"] and results == ["inventory"] * 8


def test_a_new_key_or_an_old_value_reads_again_and_the_cache_stays_small() -> None:
    clock = Clock()
    cache: ReadOnce[int] = ReadOnce(ttl_s=10, size=2, clock=clock)
    counter = iter(range(100))
    assert cache.get("a", lambda: next(counter)) == 0
    assert cache.get("a", lambda: next(counter)) == 0
    assert cache.get("b", lambda: next(counter)) == 1  # another sweep reads afresh
    clock.now = 10.0
    assert cache.get("a", lambda: next(counter)) == 2  # expired
    cache.get("c", lambda: next(counter))
    cache.get("d", lambda: next(counter))
    assert len(cache._values) == 2


def test_failed_reads_are_not_kept() -> None:
    cache: ReadOnce[list[str]] = ReadOnce(ttl_s=60, size=4, keep=lambda errors: not errors)
    assert cache.get("k", lambda: ["throttled"]) == ["throttled"]
    assert cache.get("k", lambda: []) == []  # read again: the failure was not shared
    assert cache.get("k", lambda: ["never read"]) == []

    def broken() -> list[str]:
        raise RuntimeError("no response")

    with pytest.raises(RuntimeError):
        cache.get("other", broken)
    assert cache.get("other", lambda: []) == []
