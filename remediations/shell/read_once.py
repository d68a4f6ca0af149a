"""One read shared by the callers that ask for the same key within a while, in one process.

A sweep sends one queue message per vault; each vault worker needs the same Power Platform inventory
(flows and connections feed `allowList: fromFlows` and the exposure graph). Without sharing, an
instance working through a batch of a 5,000-vault sweep would read every configured environment once
per vault. Keyed by the sweep, so every sweep reads afresh; a read that reported errors is not kept,
so the next message retries it instead of inheriting the failure.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class ReadOnce(Generic[T]):
    """`get(key, read)`: the value read for `key` less than `ttl_s` ago, else `read()` once (callers
    asking for the same key meanwhile wait for that read). At most `size` keys are kept."""

    def __init__(
        self,
        *,
        ttl_s: float,
        size: int,
        keep: Callable[[T], bool] = lambda value: True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._size = size
        self._keep = keep
        self._clock = clock
        self._lock = threading.Lock()
        self._values: OrderedDict[Hashable, tuple[float, T]] = OrderedDict()
        self._reading: dict[Hashable, threading.Lock] = {}

    def get(self, key: Hashable, read: Callable[[], T]) -> T:
        with self._lock:
            hit = self._fresh(key)
            if hit is not None:
                return hit[1]
            reading = self._reading.setdefault(key, threading.Lock())
        with reading:  # one read per key; the others wait for it, then find it kept
            with self._lock:
                hit = self._fresh(key)
                if hit is not None:
                    return hit[1]
            try:
                value = read()
            finally:
                with self._lock:
                    self._reading.pop(key, None)
            with self._lock:
                if self._keep(value):
                    self._values[key] = (self._clock(), value)
                    self._values.move_to_end(key)
                    while len(self._values) > self._size:
                        self._values.popitem(last=False)
            return value

    def _fresh(self, key: Hashable) -> tuple[float, T] | None:
        hit = self._values.get(key)
        if hit is not None and self._clock() - hit[0] >= self._ttl_s:
            del self._values[key]
            return None
        return hit

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
