"""The request log: what each client sent and what it got, for tests and benchmarks to count."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    host: str
    path: str
    query: dict[str, str]
    caller_oid: str | None
    status: int
    latency_ms: float
    body: bytes  # request body for writes (PUT/POST/PATCH/DELETE); empty for reads
    fault: str | None = None  # the injected fault, if any
    route: str | None = None
    # Names (never values) of the secrets a flow's HTTP action request carried (route flow.http.egress).
    carried: tuple[str, ...] = ()

    @property
    def is_write(self) -> bool:
        return self.method in {"PUT", "POST", "PATCH", "DELETE"}


class RequestLog:
    def __init__(self, keep: bool = True) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []
        self.keep = keep  # benchmarks can turn off entry keeping; counters always run
        self.counts: Counter[tuple[str, str]] = Counter()  # (host, method) -> calls

    def add(self, entry: LoggedRequest) -> None:
        with self._lock:
            self.counts[(entry.host, entry.method)] += 1
            if self.keep:
                self._entries.append(entry)

    def __iter__(self) -> Iterator[LoggedRequest]:
        with self._lock:
            return iter(list(self._entries))

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.counts.clear()

    def mark(self) -> int:
        """A position to take `since(mark)` from: the requests made after it."""
        with self._lock:
            return len(self._entries)

    def since(self, mark: int) -> list[LoggedRequest]:
        with self._lock:
            return list(self._entries[mark:])

    def filter(
        self, method: str | None = None, host: str | None = None, path_contains: str | None = None
    ) -> list[LoggedRequest]:
        return [
            e
            for e in self
            if (method is None or e.method == method.upper())
            and (host is None or e.host == host or e.host.endswith("." + host))
            and (path_contains is None or path_contains.lower() in e.path.lower())
        ]
