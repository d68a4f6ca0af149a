"""What every model shares: frozen pydantic data, content-derived ids, and the age text findings use."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from pydantic import BaseModel, ConfigDict


def age_text(since: datetime, now: datetime) -> str:
    """`3h 05m` from `since` to `now` (never negative)."""
    minutes = max(0, int((now - since).total_seconds() // 60))
    return f"{minutes // 60}h {minutes % 60:02d}m"


def stable_id(*parts: object) -> str:
    """A short content hash: the same inputs always give the same id, on any machine."""
    payload = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
