"""What every model shares: frozen pydantic data, content-derived ids, and the age text findings use."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict


def age_text(since: datetime, now: datetime) -> str:
    """`3h 05m` from `since` to `now` (never negative)."""
    minutes = max(0, int((now - since).total_seconds() // 60))
    return f"{minutes // 60}h {minutes % 60:02d}m"


def stable_id(*parts: object) -> str:
    """A short content hash: the same inputs always give the same id, on any machine."""
    payload = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


T = TypeVar("T")

# derived(): (name, ids of the inputs) -> (the inputs, the value); a few snapshots live at a time.
_DERIVED_SIZE = 32
_DERIVED: dict[tuple[str, tuple[int, ...]], tuple[tuple[object, ...], Any]] = {}
_DERIVED_LOCK = threading.Lock()


def derived(name: str, inputs: tuple[object, ...], build: Callable[[], T]) -> T:
    """`build()`, made once for these very input objects (frozen: what is derived from them holds) and
    kept with them, so their ids cannot be reused meanwhile: a snapshot's lookups and the detectors'
    shared views are built once per snapshot, not once per question. A `model_copy` that replaces an
    input gets a fresh value. The last few are kept."""
    key = (name, tuple(id(i) for i in inputs))
    cached = _DERIVED.get(key)
    if cached is not None and all(a is b for a, b in zip(cached[0], inputs, strict=True)):
        value: T = cached[1]
        return value
    value = build()
    with _DERIVED_LOCK:
        if len(_DERIVED) >= _DERIVED_SIZE:
            _DERIVED.pop(next(iter(_DERIVED)), None)
        _DERIVED[key] = (inputs, value)
    return value


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
