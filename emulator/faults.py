"""Fault injection per host and route, configurable at run time: latency, status codes (429 with
Retry-After, 500, 503), connection resets. Rules are checked in order; every matching latency rule
adds its delay (the answer comes no sooner than their sum, the handler's own work included: time to
answer, emulator/core.py), and the first matching failure rule (by probability and remaining count) fires."""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field


class ConnectionReset(Exception):
    """Raised to make the server drop the connection without a response."""


@dataclass
class FaultRule:
    kind: str  # "latency" | "status" | "reset"
    host: str = ".*"  # regex, full match
    path: str = ".*"  # regex, search
    method: str | None = None
    probability: float = 1.0
    count: int | None = None  # fires at most this many times (None: unlimited)
    latency_ms: float = 0.0
    status: int = 503
    retry_after: float | None = None
    # False: the request never reaches the handler. True: the handler runs (a write takes effect) and
    # the client gets the fault instead of the response, the ambiguous case retries must survive.
    after: bool = False
    fired: int = 0
    _host_re: re.Pattern[str] = field(init=False, repr=False)
    _path_re: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in {"latency", "status", "reset"}:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        self._host_re = re.compile(self.host, re.IGNORECASE)
        self._path_re = re.compile(self.path, re.IGNORECASE)

    def matches(self, method: str, host: str, path: str) -> bool:
        return (
            (self.method is None or self.method.upper() == method)
            and self._host_re.fullmatch(host) is not None
            and self._path_re.search(path) is not None
        )


@dataclass(frozen=True)
class FaultDecision:
    delay_s: float = 0.0
    rule: FaultRule | None = None


class Faults:
    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._random = random.Random(seed)
        self.injected = 0

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self._rules.append(rule)
        return rule

    def latency(self, ms: float, host: str = ".*", path: str = ".*") -> FaultRule:
        return self.add(FaultRule("latency", host=host, path=path, latency_ms=ms))

    def status(
        self,
        status: int,
        host: str = ".*",
        path: str = ".*",
        method: str | None = None,
        probability: float = 1.0,
        count: int | None = None,
        retry_after: float | None = None,
        after: bool = False,
    ) -> FaultRule:
        return self.add(
            FaultRule(
                "status",
                host=host,
                path=path,
                method=method,
                probability=probability,
                count=count,
                status=status,
                retry_after=retry_after,
                after=after,
            )
        )

    def reset(
        self,
        host: str = ".*",
        path: str = ".*",
        probability: float = 1.0,
        count: int | None = None,
        method: str | None = None,
        after: bool = False,
    ) -> FaultRule:
        return self.add(
            FaultRule(
                "reset",
                host=host,
                path=path,
                method=method,
                probability=probability,
                count=count,
                after=after,
            )
        )

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def decide(self, method: str, host: str, path: str) -> FaultDecision:
        with self._lock:
            delay = 0.0
            chosen: FaultRule | None = None
            for rule in self._rules:
                if not rule.matches(method, host, path):
                    continue
                if rule.kind == "latency":
                    delay += rule.latency_ms / 1000.0
                    continue
                if chosen is not None or (rule.count is not None and rule.fired >= rule.count):
                    continue
                if self._random.random() < rule.probability:
                    rule.fired += 1
                    self.injected += 1
                    chosen = rule
            return FaultDecision(delay, chosen)
