"""What one run of the pipeline is asked to do: pure, typed data (no I/O, no Azure SDK).

Every trigger (timer worker, ticket, alert), the CLI, the bench and the reliability tests describe
their run as a `RunRequest` and hand it to the one pipeline (`remediations.shell.pipeline.run`).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from remediations.core.model import PowerPlatformScope, Scope, Severity

Trigger = Literal["timer", "ticket", "alert", "event", "cli"]
# Runs started by something that happened to one vault: never environment-wide.
EVENT_DRIVEN: frozenset[str] = frozenset({"alert", "event"})
# Which half of the tenant a run plans for. A sweep's vault worker plans the Key Vault half; its
# environment workers the Power Platform half, so each Power Platform change is planned once a sweep.
Part = Literal["all", "key_vault", "power_platform"]
Stage = Literal["plan", "apply"]

# A pending row younger than this may belong to a run still in flight (retries honour Retry-After up to
# a minute per attempt); the Functions host kills an invocation long before (timeout 30 min on Flex).
RECONCILE_AFTER = timedelta(minutes=30)
# Vault hosts are independent and the secret lists are latency-bound, not throttle-bound (docs/limits.md
# section 2): K workers at latency L send K/L calls/s. Key Vault's subscription budget is 20,000 per
# 10 s (2,000/s), so K <= 2,000 * L: 30 at L = 15 ms, 100 at 50 ms. 32 stays inside it for any real
# latency (a sweep of 5,000 vaults of 40 secrets makes 15,000 calls, under one window anyway).
SECRET_LIST_CONCURRENCY = 32
# ARM writes: 200 tokens refilled at 10/s per subscription x principal. 10 writers at ~40-100 ms each
# already outrun the refill, so more only queue on the pacer; writes to one vault stay sequential.
WRITE_CONCURRENCY = 10


class SecretTarget(BaseModel):
    """A secret named by a person: its vault (ARM id, or `https://{host}` for a secret URL) and name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    vault: str
    name: str


class Targets(BaseModel):
    """What a request names beyond its scope. A remediation that plans for named targets
    (`Remediation.plans_targets`, e.g. rotation) plans only these when a request carries them, not
    what its detectors found; the other remediations plan from findings as usual."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    secrets: tuple[SecretTarget, ...] = ()  # a ticket's named secrets
    exposed_vaults: tuple[str, ...] = ()  # vault ids an alert reports exposed (Defender)
    reason: str
    reference: str | None = None  # the ticket or alert id, kept on the findings and actions


class RunRequest(BaseModel):
    """One pass of inventory -> detect -> plan -> reconcile -> apply.

    `scope` None reads no Azure (a Power Platform environment's run). `remediations` None selects every
    registered one; `principals` keeps only findings about these object ids. `dry_run` None: the
    policy's. `reconcile`: judge writes an earlier run left pending (in a dry run they are reported,
    never written). `stop_after="plan"`: inventory, detect and plan only (the CLI's read-only `plan`).
    `sweep_id`: the vault workers of one sweep in a process share one Power Platform read.
    `include_secrets` None: secret metadata is listed when a selected remediation plans from it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    trigger: Trigger
    scope: Scope | None
    power_platform: PowerPlatformScope | None = None
    part: Part = "all"
    remediations: tuple[str, ...] | None = None
    principals: tuple[str, ...] | None = None
    min_severity: Severity | None = None
    targets: Targets | None = None
    dry_run: bool | None = None
    reconcile: bool = True
    reconcile_after: timedelta = RECONCILE_AFTER
    stop_after: Stage = "apply"
    correlation_id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    caller: str | None = None
    ticket_id: str | None = None
    sweep_id: str | None = None
    include_secrets: bool | None = None
    keep_secrets: bool = True
    # "store": a quick sweep's run takes secret metadata from the last deep inventory instead of
    # listing every vault (shell/secret_inventory.py); "read" lists them (and saves them when a store
    # is given: the deep sweep, an alert's refresh).
    secrets_from: Literal["read", "store"] = "read"
    read_concurrency: int = Field(default=SECRET_LIST_CONCURRENCY, ge=1)
    write_concurrency: int = Field(default=WRITE_CONCURRENCY, ge=1)
