"""Azure's published request limits, enforced at run time (see docs/limits.md).

- ARM (management.azure.com): token buckets per subscription x principal x operation type
  (reads 250 refilling 25/s, writes 200 at 10/s, deletes 200 at 10/s), reported in
  `x-ms-ratelimit-remaining-subscription-{reads,writes,deletes}`; an empty bucket answers 429 with
  `Retry-After` (seconds until a token is back) and the `SubscriptionRequestsThrottled` code.
  Requests without a subscription in the path use the tenant buckets (`...-tenant-reads`).
- Key Vault data plane: 4,000 transactions per 10 s per vault (300 secret creates), 5x that per
  subscription (20,000 / 1,500). 429 when over. Microsoft's throttling guidance documents no
  `Retry-After` header for Key Vault, so none is sent (clients fall back to exponential backoff).
  Throttled (429) requests do not count, as documented.

The defaults are the real numbers, which are big enough not to bother small tests. Tune or turn
off with `emu.limits` (e.g. `emu.limits.arm_reads = Bucket(5, 1)`, `emu.limits.enabled = False`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Bucket:
    capacity: float
    refill_per_s: float


@dataclass(frozen=True)
class Window:
    limit: int
    seconds: float


@dataclass
class Limits:
    enabled: bool = True
    arm_reads: Bucket = Bucket(250, 25)
    arm_writes: Bucket = Bucket(200, 10)
    arm_deletes: Bucket = Bucket(200, 10)
    kv_vault: Window = Window(4000, 10.0)
    kv_vault_secret_creates: Window = Window(300, 10.0)
    kv_subscription: Window = Window(20000, 10.0)
    kv_subscription_secret_creates: Window = Window(1500, 10.0)
    # Role assignment changes take effect on the Key Vault data plane only after this delay
    # (Azure documents "up to 10 minutes"; 0 keeps tests fast).
    rbac_propagation_s: float = 0.0
    # Page size for ARM lists that page (vaults; the real page size is not documented).
    arm_page_size: int = 1000


@dataclass
class _BucketState:
    tokens: float
    stamp: float


@dataclass
class Throttler:
    """Counts requests against `Limits`. Thread-safe; cheap (one dict lookup per request)."""

    _buckets: dict[tuple[str, str, str], _BucketState] = field(default_factory=dict)
    _windows: dict[tuple[str, str], deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()
            self._windows.clear()

    def take_arm(self, scope: str, principal: str, kind: str, spec: Bucket) -> tuple[bool, int, float]:
        """(allowed, remaining tokens, seconds until the next token). kind: reads|writes|deletes."""
        key = (scope, principal, kind)
        now = time.monotonic()
        with self._lock:
            state = self._buckets.get(key)
            if state is None:
                state = self._buckets[key] = _BucketState(spec.capacity, now)
            else:
                state.tokens = min(spec.capacity, state.tokens + (now - state.stamp) * spec.refill_per_s)
                state.stamp = now
            if state.tokens >= 1:
                state.tokens -= 1
                return True, int(state.tokens), 0.0
            wait = (1 - state.tokens) / spec.refill_per_s if spec.refill_per_s > 0 else 3600.0
            return False, 0, wait

    def take_windows(self, keys: list[tuple[tuple[str, str], Window]]) -> str | None:
        """Counts one request in every window, or none of them if one is full (returns its key)."""
        now = time.monotonic()
        with self._lock:
            logs = []
            for key, window in keys:
                log = self._windows.get(key)
                if log is None:
                    log = self._windows[key] = deque()
                horizon = now - window.seconds
                while log and log[0] <= horizon:
                    log.popleft()
                if len(log) >= window.limit:
                    return f"{key[0]} {key[1]}"
                logs.append(log)
            for log in logs:
                log.append(now)
            return None


def retry_after_seconds(wait: float) -> int:
    return max(1, math.ceil(wait))
