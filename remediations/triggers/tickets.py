"""The ticket API's request and response models (`POST /api/remediations`).

Input is validated strictly (`extra="forbid"`, anchored id patterns, bounded lists) so that nothing
a caller sends can reach an ARM or Power Platform URL unchecked. Remediation names are checked
against the fix registry (`default_remediation_ids()`), or against `context={"known_remediations": ids}`
passed to `model_validate`.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from remediations.core.pinned import PinnedPlan
from remediations.core.registry import remediation_ids
from remediations.triggers import ids
from remediations.triggers.caller import Attribution, Caller


def default_remediation_ids() -> frozenset[str]:
    """The registered fixes (importing the registry loads no Azure SDK)."""
    return frozenset(remediation_ids())


TICKET_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
_TICKET_ID = re.compile(TICKET_ID_PATTERN)
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]*$")
MAX_TARGETS_PER_KIND = 100


def _not_only_dots(value: str) -> str:
    # "." and ".." match the pattern but are path segments, not names.
    if not value.strip("."):
        raise ValueError("must contain a character other than '.'")
    return value


TicketId = Annotated[
    str, Field(pattern=TICKET_ID_PATTERN, min_length=1, max_length=64), AfterValidator(_not_only_dots)
]
VaultId = Annotated[str, Field(max_length=400), AfterValidator(ids.vault_id)]
SecretId = Annotated[str, Field(max_length=600), AfterValidator(ids.secret_id)]
FlowId = Annotated[str, Field(max_length=300), AfterValidator(ids.flow_id)]
ConnectionId = Annotated[str, Field(max_length=300), AfterValidator(ids.connection_id)]
PrincipalId = Annotated[str, Field(max_length=36), AfterValidator(ids.principal_id)]
EnvironmentName = Annotated[str, Field(max_length=64), AfterValidator(ids.environment_name)]


def printable(value: str | None) -> str | None:
    if value is not None and not _PRINTABLE.match(value):
        raise ValueError("must not contain control characters")
    return value


class Targets(BaseModel):
    """What a ticket acts on. At least one list must be non-empty."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vaults: list[VaultId] = Field(default_factory=list, max_length=MAX_TARGETS_PER_KIND)
    secrets: list[SecretId] = Field(default_factory=list, max_length=MAX_TARGETS_PER_KIND)
    flows: list[FlowId] = Field(default_factory=list, max_length=MAX_TARGETS_PER_KIND)
    connections: list[ConnectionId] = Field(default_factory=list, max_length=MAX_TARGETS_PER_KIND)
    principals: list[PrincipalId] = Field(default_factory=list, max_length=MAX_TARGETS_PER_KIND)
    environments: list[EnvironmentName] = Field(default_factory=list, max_length=MAX_TARGETS_PER_KIND)

    @model_validator(mode="after")
    def _at_least_one(self) -> Targets:
        if not any(
            (self.vaults, self.secrets, self.flows, self.connections, self.principals, self.environments)
        ):
            raise ValueError(
                "name at least one target (vaults, secrets, flows, connections, principals, environments)"
            )
        return self


class TicketRequest(BaseModel):
    """Body of `POST /api/remediations`. `ticketId` is the idempotency key."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ticketId: TicketId
    remediations: list[str] = Field(min_length=1, max_length=16)
    targets: Targets
    dryRun: bool = True
    requester: Annotated[
        str | None,
        Field(
            max_length=256,
            description="Who asks, as the caller declares it. Behind App Service Authentication the "
            "authenticated caller is recorded instead, and this is kept as `declaredRequester` when it "
            "names someone else.",
        ),
        AfterValidator(printable),
    ] = None
    reason: Annotated[str | None, Field(max_length=2000), AfterValidator(printable)] = None

    @field_validator("remediations")
    @classmethod
    def _known(cls, value: list[str], info: ValidationInfo) -> list[str]:
        context = info.context if isinstance(info.context, dict) else {}
        known = context.get("known_remediations")
        known_ids = frozenset(known) if known is not None else default_remediation_ids()
        if len(set(value)) != len(value):
            raise ValueError("lists a remediation more than once")
        for name in value:
            if name not in known_ids:
                raise ValueError("names an unknown remediation; known: " + ", ".join(sorted(known_ids)))
        return value

    def fingerprint(self) -> str:
        """A hash of the request as validated: equal for bodies that mean the same thing."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


TicketStatus = Literal["running", "planned", "applied", "partially-applied", "failed"]


class RunSummary(BaseModel):
    """The per-run numbers that also go out as the run metric."""

    model_config = ConfigDict(extra="forbid")

    findings: int = 0
    actions: int = 0
    failures: int = 0
    throttled: int = 0
    readErrors: int = 0  # failed reads, partial ones included (a refused secret list is not a failure)

    def metric(self) -> dict[str, int]:
        """The keyword arguments of `observability.record_run_metric`."""
        return {
            "findings": self.findings,
            "actions": self.actions,
            "failures": self.failures,
            "throttled": self.throttled,
            "read_errors": self.readErrors,
        }


class TicketResult(BaseModel):
    """What `POST` and `GET /api/remediations/{ticketId}` return, and what the run store keeps."""

    model_config = ConfigDict(extra="forbid")

    ticketId: str
    status: TicketStatus
    dryRun: bool
    remediations: list[str]
    targets: Targets
    plan: list[dict[str, Any]] = Field(
        default_factory=list, description="The engine's planned actions (JSON of its Action model)."
    )
    outcomes: list[dict[str, Any]] = Field(
        default_factory=list, description="The engine's outcomes (JSON of its Outcome model)."
    )
    summary: RunSummary = Field(default_factory=RunSummary)
    message: str | None = None
    requestedDryRun: bool | None = Field(
        default=None, description="What the ticket asked for; `dryRun` is what was done."
    )
    dryRunForcedBy: list[str] = Field(
        default_factory=list,
        description="The deployment settings that kept this run a dry run whatever the ticket said.",
    )
    findings: list[dict[str, Any]] = Field(
        default_factory=list, description="The engine's findings on the targets (JSON of its Finding model)."
    )
    scopes: list[str] = Field(default_factory=list, description="The resource ids the engine looked at.")
    notes: list[str] = Field(default_factory=list)
    correlationId: str | None = None
    createdAt: datetime
    completedAt: datetime | None = None
    requester: str | None = Field(
        default=None,
        description="Who the run is recorded as: the authenticated caller (`name (object id)`) when App "
        "Service Authentication named one (see `caller`), else the body's `requester` as declared.",
    )
    declaredRequester: str | None = Field(
        default=None,
        description="The body's `requester` when it names someone other than the authenticated caller: "
        "kept for the record, never used as the requester.",
    )
    caller: Caller | None = Field(
        default=None,
        description="The caller App Service Authentication authenticated (X-MS-CLIENT-PRINCIPAL* headers); "
        "null when there was none or the deployment does not trust those headers.",
    )
    reason: str | None = None
    planId: str | None = Field(
        default=None, description="The id of this run's plan, pinned for approval (derived from planHash)."
    )
    planHash: str | None = Field(
        default=None,
        description="SHA-256 of the canonical JSON of the planned actions, their `before` state included "
        "(no secret values). `POST /api/remediations/{ticketId}/approve` applies exactly this plan.",
    )
    approvedBy: str | None = Field(
        default=None, description="On an approval's result: the approver (`name (object id)`)."
    )
    approvalReason: str | None = None
    # The plans behind planHash, stored with the ticket for its approval; never in a response.
    pinned: PinnedPlan | None = Field(default=None, exclude=True)

    @classmethod
    def accepted(
        cls,
        request: TicketRequest,
        status: TicketStatus,
        message: str | None = None,
        attribution: Attribution | None = None,
    ) -> TicketResult:
        who = attribution or Attribution(requester=request.requester)
        return cls(
            ticketId=request.ticketId,
            status=status,
            dryRun=request.dryRun,
            requestedDryRun=request.dryRun,
            remediations=list(request.remediations),
            targets=request.targets,
            message=message,
            createdAt=datetime.now(UTC),
            requester=who.requester,
            declaredRequester=who.declared_requester,
            caller=who.caller,
            reason=request.reason,
        )


def valid_ticket_id(value: str) -> bool:
    return bool(_TICKET_ID.match(value)) and value.strip(".") != ""
