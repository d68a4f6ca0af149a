"""The sweep queue's message: one scope for `remediate_worker` to run detect -> plan -> apply on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from remediations.triggers import ids

SCHEMA_VERSION = 1
ScopeKind = Literal["subscription", "vault", "environment"]
# quick: lists only, secret metadata from the last deep inventory; deep: list every vault's secrets.
SweepDepth = Literal["quick", "deep"]


def _guid(value: str) -> str:
    return ids.principal_id(value)


class ScopeMessage(BaseModel):
    """`{"version": 1, "kind": "subscription", "id": "<guid>", "sweepId": "...", "dryRun": true, ...}`.

    `id` is a subscription GUID, a Key Vault resource id or a Power Platform environment name,
    validated for its `kind`. Receiving the same message twice must be safe (the engine's writes
    are deltas); `sweepId` groups the messages of one sweep in logs and audit records.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    kind: ScopeKind
    id: Annotated[str, Field(min_length=1, max_length=400)]
    sweepId: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    dryRun: bool = True
    enqueuedAt: datetime
    correlationId: Annotated[str | None, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")] = None
    # How often the worker put this scope back because Azure throttled it (bounded: then it fails).
    requeues: Annotated[int, Field(ge=0, le=1000)] = 0
    depth: SweepDepth = "deep"  # messages queued before the split read secrets, as they did then

    @model_validator(mode="after")
    def _id_matches_kind(self) -> ScopeMessage:
        if self.kind == "subscription":
            object.__setattr__(self, "id", _guid(self.id))
        elif self.kind == "vault":
            ids.vault_id(self.id)
        else:
            ids.environment_name(self.id)
        return self

    @classmethod
    def for_scope(
        cls,
        kind: ScopeKind,
        scope_id: str,
        sweep_id: str,
        dry_run: bool,
        correlation_id: str | None = None,
        depth: SweepDepth = "deep",
    ) -> ScopeMessage:
        """A fresh message (enqueued now, no requeues) for one scope; `scope_id` is validated for `kind`."""
        return cls(
            kind=kind,
            id=scope_id,
            sweepId=sweep_id,
            dryRun=dry_run,
            enqueuedAt=datetime.now(UTC),
            correlationId=correlation_id,
            depth=depth,
        )

    def idempotency_key(self) -> str:
        """Equal for redeliveries of one scope of one sweep (whatever the enqueue time or requeues)."""
        return ids.delivery_key(self.kind, self.id.lower(), self.sweepId)


def new_sweep_id() -> str:
    return f"sweep-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


__all__ = ["ScopeMessage", "new_sweep_id"]
