"""Detectors: pure functions Snapshot x Policy -> [Finding], registered by a stable id together with
their default severity, title, help URL, platform and evidence model (`detector(...)`); a detector makes
its findings with `new_finding`, which applies that severity and checks that model.

Detectors never do I/O. Exclusions, break-glass identities and RBAC-mode vaults (where Azure
ignores access policies) produce no access-policy findings.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from remediations.core.evidence import AccessPolicyEvidence, Evidence, ExcessPermissionsEvidence
from remediations.core.flow_allow_list import effective_policy
from remediations.core.model import (
    AccessPolicy,
    Finding,
    Severity,
    Snapshot,
    Vault,
    expand_secret_permissions,
)
from remediations.core.policy import Policy

Detector = Callable[[Snapshot, Policy], list[Finding]]
Platform = Literal["azure", "power_platform"]
DEFAULT_HELP = "https://learn.microsoft.com/azure/key-vault/general/security-features"
ACCESS_POLICY_HELP = "https://learn.microsoft.com/azure/key-vault/general/assign-access-policy"
RBAC_HELP = "https://learn.microsoft.com/azure/key-vault/general/rbac-guide"
ROTATION_HELP = "https://learn.microsoft.com/azure/key-vault/secrets/tutorial-rotation"
DLP_HELP = "https://learn.microsoft.com/power-platform/admin/wp-data-loss-prevention"


class DetectorInfo(BaseModel):
    """What reports, SARIF rules and the triggers know of a detector, given where it is registered."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    # The rule's default (SARIF `defaultConfiguration.level`): every finding has at least this severity,
    # and a finding may raise it (a List secrets whose output is read is critical, not high).
    severity: Severity
    title: str  # the rule's short description
    platform: Platform  # Power Platform findings are planned by the environment worker, never per vault
    help_url: str = DEFAULT_HELP
    detail: str = ""  # what to do about it (SARIF fullDescription/help), where a sentence beats the link
    # The model its findings' evidence is built from and read back with (`Evidence.of`).
    evidence: type[Evidence] = Field(exclude=True, repr=False)


_DETECTORS: dict[str, Detector] = {}
_INFO: dict[str, DetectorInfo] = {}
# Every module holding detectors besides this one. They register on import and import `detector` from
# here, so they are loaded lazily (before any detector is listed, described or run), never at the
# bottom of this file. A test imports the whole package in a fresh interpreter and checks this list.
DETECTOR_MODULES: tuple[str, ...] = (
    "remediations.core.detect_rbac",  # RBAC grants, orphaned assignments, dead identities, big vaults
    "remediations.core.pp_detect",  # Power Platform shares, connections, flow definitions
    "remediations.core.rotation",  # exposed / near-expiry secrets, rotation follow-ups
)


def load_detectors() -> None:
    for module in DETECTOR_MODULES:
        importlib.import_module(module)


def detector(
    detector_id: str,
    *,
    severity: Severity,
    title: str,
    evidence: type[Evidence],
    platform: Platform = "azure",
    help_url: str = DEFAULT_HELP,
    detail: str = "",
) -> Callable[[Detector], Detector]:
    """Register a detector with its metadata (the title is the SARIF rule's short description)."""

    def register(fn: Detector) -> Detector:
        if detector_id in _DETECTORS:
            raise ValueError(f"detector {detector_id!r} is registered twice")
        _DETECTORS[detector_id] = fn
        _INFO[detector_id] = DetectorInfo(
            id=detector_id,
            severity=severity,
            title=title,
            evidence=evidence,
            platform=platform,
            help_url=help_url,
            detail=detail,
        )
        return fn

    return register


def _registered(detector_id: str) -> DetectorInfo:
    info = _INFO.get(detector_id) or detector_info(detector_id)
    if info is None:
        raise KeyError(f"no detector {detector_id!r} is registered")
    return info


def new_finding(
    detector_id: str,
    *,
    resource_id: str,
    principal: str | None,
    message: str,
    evidence: Evidence,
    severity: Severity | None = None,
) -> Finding:
    """A finding of a registered detector, at its registered severity or at `severity` when this finding
    raises it. Its evidence must be the detector's registered model, so `Evidence.of` reads it back."""
    info = _registered(detector_id)
    ascending = get_args(Severity)  # low ... critical
    if severity is not None and ascending.index(severity) < ascending.index(info.severity):
        raise ValueError(f"{detector_id}: a finding may raise its severity {info.severity}, not lower it")
    if type(evidence) is not info.evidence:
        raise TypeError(f"{detector_id} registered {info.evidence.__name__}, not {type(evidence).__name__}")
    return Finding.create(
        detector_id=detector_id,
        severity=severity or info.severity,
        resource_id=resource_id,
        principal=principal,
        message=message,
        evidence=evidence.as_dict(),
    )


def evidence_model(detector_id: str) -> type[Evidence]:
    """The evidence model `detector_id` registered."""
    return _registered(detector_id).evidence


def detector_ids() -> list[str]:
    load_detectors()
    return sorted(_DETECTORS)


def detector_info(detector_id: str) -> DetectorInfo | None:
    load_detectors()
    return _INFO.get(detector_id)


def detector_ids_on(platform: Platform) -> frozenset[str]:
    load_detectors()
    return frozenset(i for i, info in _INFO.items() if info.platform == platform)


def detect(snapshot: Snapshot, policy: Policy, only: set[str] | None = None) -> list[Finding]:
    load_detectors()
    policy = effective_policy(policy, snapshot)  # `allowList: fromFlows` -> allow-lists from definitions
    findings: dict[str, Finding] = {}
    for detector_id in sorted(_DETECTORS):
        if only is not None and detector_id not in only:
            continue
        for finding in _DETECTORS[detector_id](snapshot, policy):
            findings.setdefault(finding.id, finding)  # the same problem seen twice is one finding
    return sorted(findings.values(), key=lambda f: (f.resource_id.lower(), f.principal or "", f.detector_id))


# The last answer of `reviewable_policies`, with the vaults tuple and policy it was made from (held, so
# their ids cannot be reused meanwhile): three detectors ask for the same one in a row.
_REVIEWABLE: list[tuple[tuple[Vault, ...], Policy, list[tuple[Vault, AccessPolicy]]]] = []


def reviewable_policies(snapshot: Snapshot, policy: Policy) -> list[tuple[Vault, AccessPolicy]]:
    """Access policies we may judge: access-policy vaults, not excluded, not break-glass."""
    last = _REVIEWABLE[-1] if _REVIEWABLE else None
    if last is not None and last[0] is snapshot.vaults and last[1] is policy:
        return last[2]
    found = [
        (vault, entry)
        for vault in snapshot.vaults
        if not vault.enable_rbac_authorization and not policy.excludes_vault(vault)
        for entry in vault.access_policies
        if not policy.is_break_glass(entry.object_id) and not policy.excludes_identity(entry.object_id)
    ]
    _REVIEWABLE[:] = [(snapshot.vaults, policy, found)]
    return found


def _evidence(vault: Vault, entry: AccessPolicy) -> AccessPolicyEvidence:
    return AccessPolicyEvidence(
        vault=vault.name,
        object_id=entry.object_id,
        application_id=entry.application_id,
        secret_permissions=entry.permissions.secrets,
    )


@detector(
    "secret_list_permission",
    severity="high",
    title="An identity can list every secret in a vault (enumeration: the seed attack)",
    evidence=AccessPolicyEvidence,
    help_url=ACCESS_POLICY_HELP,
)
def secret_list_permission(snapshot: Snapshot, policy: Policy) -> list[Finding]:
    """`list` lets anyone who can run a flow as this identity enumerate the vault (the seed attack).

    Only for identities with no allow-list rule; where a rule exists, `excess_secret_permissions`
    covers `list` together with the other excess, so a vault gets one write per identity.
    """
    findings = []
    for vault, entry in reviewable_policies(snapshot, policy):
        if "list" not in expand_secret_permissions(entry.permissions.secrets):
            continue
        if policy.allowed_secret_permissions(entry.object_id, vault) is not None:
            continue
        findings.append(
            new_finding(
                "secret_list_permission",
                resource_id=vault.id,
                principal=entry.object_id,
                message=f"{entry.object_id} can list every secret in vault {vault.name}",
                evidence=_evidence(vault, entry),
            )
        )
    return findings


@detector(
    "excess_secret_permissions",
    severity="medium",  # high when the excess includes `list`
    title="An identity holds secret permissions beyond its purpose's allow-list",
    evidence=ExcessPermissionsEvidence,
    help_url=ACCESS_POLICY_HELP,
)
def excess_secret_permissions(snapshot: Snapshot, policy: Policy) -> list[Finding]:
    findings = []
    for vault, entry in reviewable_policies(snapshot, policy):
        allowed = policy.allowed_secret_permissions(entry.object_id, vault)
        if allowed is None:
            continue
        excess = sorted(expand_secret_permissions(entry.permissions.secrets) - allowed)
        if not excess:
            continue
        findings.append(
            new_finding(
                "excess_secret_permissions",
                severity="high" if "list" in excess else None,
                resource_id=vault.id,
                principal=entry.object_id,
                message=f"{entry.object_id} holds secret permissions {', '.join(excess)} "
                f"on vault {vault.name} beyond its allow-list ({', '.join(sorted(allowed)) or 'nothing'})",
                evidence=_excess_evidence(vault, entry, policy, allowed, excess),
            )
        )
    return findings


def _excess_evidence(
    vault: Vault, entry: AccessPolicy, policy: Policy, allowed: frozenset[str], excess: list[str]
) -> ExcessPermissionsEvidence:
    names = policy.needed_secret_names(entry.object_id, vault)
    known = {} if names is None else {"needed_secret_names": names}  # unset, not null, when unknown
    return ExcessPermissionsEvidence(
        **_evidence(vault, entry).model_dump(), allowed=tuple(sorted(allowed)), excess=tuple(excess), **known
    )


@detector(
    "orphaned_principal",
    severity="medium",
    title="A vault grants access to an identity that no longer exists in the directory",
    evidence=AccessPolicyEvidence,
    help_url=ACCESS_POLICY_HELP,
)
def orphaned_principal(snapshot: Snapshot, policy: Policy) -> list[Finding]:
    """An access policy for an identity the directory says is gone (not: could not be asked)."""
    findings = []
    for vault, entry in reviewable_policies(snapshot, policy):
        identity = snapshot.identity(entry.object_id)
        if identity is None or identity.exists is not False:
            continue
        findings.append(
            new_finding(
                "orphaned_principal",
                resource_id=vault.id,
                principal=entry.object_id,
                message=f"vault {vault.name} grants access to {entry.object_id}, "
                "which no longer exists in the directory",
                evidence=_evidence(vault, entry),
            )
        )
    return findings
