"""Client-side pacing for ARM writes, so a large apply stays inside Azure's write bucket instead of
collecting 429s (each of which is a wasted call and a Retry-After of at least a second).

ARM's write budget is a token bucket per subscription x principal: 200 tokens, refilled at 10/s
(docs/limits.md 1a). `TokenBucket` mirrors it slightly below the real numbers, so that jitter between our
clock and ARM's does not tip us over. A 429 that still happens is retried by adapters/retry.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

ARM_WRITE_BUCKET = 200
ARM_WRITE_REFILL_PER_S = 10.0
SAFETY = 0.95  # run at 95 % of the published budget


class TokenBucket:
    """Thread-safe: `acquire(n)` blocks until n tokens are available, then takes them."""

    def __init__(
        self,
        capacity: float,
        refill_per_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if capacity < 1 or refill_per_s <= 0:
            raise ValueError("a token bucket needs capacity >= 1 and a positive refill rate")
        self.capacity = capacity
        self.refill_per_s = refill_per_s
        self._clock = clock
        self._sleep = sleep
        self._tokens = capacity
        self._stamp = clock()
        self._lock = threading.Lock()
        self.waited_s = 0.0  # total time callers spent waiting, for reports

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.refill_per_s)
        self._stamp = now

    def acquire(self, tokens: int = 1) -> float:
        """Takes `tokens` (at most `capacity`), waiting as needed; returns the seconds waited."""
        need = min(float(tokens), self.capacity)
        waited = 0.0
        while True:
            with self._lock:
                self._refill()
                if self._tokens >= need - 1e-9:  # float refills land a hair under whole tokens
                    self._tokens -= need
                    self.waited_s += waited
                    return waited
                wait = (need - self._tokens) / self.refill_per_s
            self._sleep(wait)
            waited += wait


def arm_write_pacer() -> TokenBucket:
    return TokenBucket(ARM_WRITE_BUCKET * SAFETY, ARM_WRITE_REFILL_PER_S * SAFETY)
