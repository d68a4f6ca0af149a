"""What is wrong (Finding), what to do about it (Action, Plan) and what happened (Outcome). Ids are
derived from content, so the same problem seen twice, or a plan stored and applied later, keeps its id."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from pydantic import Field

from remediations.core.model.base import Frozen, stable_id
from remediations.core.model.changes import Change
from remediations.core.model.keyvault import PROVENANCE_KEYS

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = tuple(reversed(get_args(Severity)))  # most severe first


def severity_rank(severity: str) -> int:
    """0 for critical ... 3 for low (unknown sorts last): the one order of severities."""
    return SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)


# Where a role assignment sits relative to a vault (remediations/core/rbac.py).
ScopeLevel = Literal["secret", "vault", "resource_group", "subscription", "above_subscription"]


class Finding(Frozen):
    id: str
    detector_id: str
    severity: Severity
    resource_id: str
    principal: str | None = None
    message: str
    evidence: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def create(
        cls,
        *,
        detector_id: str,
        severity: Severity,
        resource_id: str,
        principal: str | None,
        message: str,
        evidence: dict[str, Any],
    ) -> Finding:
        return cls(
            id=stable_id(
                detector_id,
                resource_id.lower(),
                (principal or "").lower(),
                {k: v for k, v in evidence.items() if k not in PROVENANCE_KEYS},
            ),
            detector_id=detector_id,
            severity=severity,
            resource_id=resource_id,
            principal=principal,
            message=message,
            evidence=evidence,
        )


class Action(Frozen):
    id: str
    remediation_id: str
    target: str  # resource id the change is made on
    principal: str | None = None
    changes: tuple[Change, ...]  # applied in order
    before: dict[str, list[str]]
    after: dict[str, list[str]]
    reason: str
    finding_ids: tuple[str, ...] = ()
    skip_reason: str | None = None  # planned but must not be applied (e.g. it would remove the last manager)

    @classmethod
    def create(
        cls,
        *,
        remediation_id: str,
        target: str,
        principal: str | None,
        changes: tuple[Change, ...],
        before: dict[str, list[str]],
        after: dict[str, list[str]],
        reason: str,
        finding_ids: tuple[str, ...],
        skip_reason: str | None = None,
    ) -> Action:
        change_payload = [c.model_dump(mode="json") for c in changes]
        return cls(
            id=stable_id(remediation_id, target.lower(), (principal or "").lower(), change_payload),
            remediation_id=remediation_id,
            target=target,
            principal=principal,
            changes=changes,
            before=before,
            after=after,
            reason=reason,
            finding_ids=tuple(sorted(finding_ids)),
            skip_reason=skip_reason,
        )


class Plan(Frozen):
    id: str
    actions: tuple[Action, ...] = ()
    deferred: tuple[Action, ...] = ()  # over the per-run cap; planned again next run
    created_at: datetime
    dry_run: bool = True

    @property
    def writes(self) -> tuple[Action, ...]:
        return tuple(a for a in self.actions if a.skip_reason is None)


OutcomeStatus = Literal["applied", "failed", "skipped", "noop", "deferred"]


class Outcome(Frozen):
    action_id: str
    status: OutcomeStatus
    before: dict[str, list[str]] = Field(default_factory=dict)
    after: dict[str, list[str]] = Field(default_factory=dict)
    error: str | None = None
    verified: bool = False
