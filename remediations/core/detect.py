"""Detectors: pure functions Snapshot x Policy -> [Finding], registered by a stable id together with
their default severity, title, help URL, platform and evidence model (`detector(...)`, the one place the
id is written). A detector's body is handed its registration, whose `finding` applies that id and
severity and checks that model.

Detectors never do I/O. Exclusions, break-glass identities and RBAC-mode vaults (where Azure
ignores access policies) produce no access-policy findings.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from remediations.core.evidence import AccessPolicyEvidence, Evidence, ExcessPermissionsEvidence
from remediations.core.flow_allow_list import effective_policy
from remediations.core.list_grants import is_own_list_entry
from remediations.core.model import (
    AccessPolicy,
    Finding,
    Severity,
    Snapshot,
    Vault,
    derived,
    expand_secret_permissions,
    severity_rank,
)
from remediations.core.policy import Policy

Platform = Literal["azure", "power_platform"]
DEFAULT_HELP = "https://learn.microsoft.com/azure/key-vault/general/security-features"
ACCESS_POLICY_HELP = "https://learn.microsoft.com/azure/key-vault/general/assign-access-policy"
RBAC_HELP = "https://learn.microsoft.com/azure/key-vault/general/rbac-guide"
ROTATION_HELP = "https://learn.microsoft.com/azure/key-vault/secrets/tutorial-rotation"
DLP_HELP = "https://learn.microsoft.com/power-platform/admin/wp-data-loss-prevention"


class DetectorInfo(BaseModel):
    """What reports, SARIF rules and the triggers know of a detector, given where it is registered; its
    `finding` makes the detector's findings, so no detector spells its own id again."""

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
    # Its findings on a vault depend only on that vault, the policy and the snapshot's time (no role
    # assignment, identity, flow or other vault): a quick run detects them on each vault page as it
    # arrives (`detect_vaults`), while the next page is read.
    per_vault: bool = Field(default=False, exclude=True)

    def finding(
        self,
        *,
        resource_id: str,
        principal: str | None,
        message: str,
        evidence: Evidence,
        severity: Severity | None = None,
    ) -> Finding:
        """A finding of this detector, at its severity or at `severity` when this finding raises it. Its
        evidence must be the registered model, so `Evidence.of` reads it back."""
        if severity is not None and severity_rank(severity) > severity_rank(self.severity):
            raise ValueError(f"{self.id}: a finding may raise its severity {self.severity}, not lower it")
        if type(evidence) is not self.evidence:
            raise TypeError(f"{self.id} registered {self.evidence.__name__}, not {type(evidence).__name__}")
        return Finding.create(
            detector_id=self.id,
            severity=severity or self.severity,
            resource_id=resource_id,
            principal=principal,
            message=message,
            evidence=evidence.as_dict(),
        )


# A detector's body: handed the snapshot, the policy and its own registration, whose `finding` makes
# its findings (so the body never spells its id, severity or evidence model).
DetectorBody = Callable[[Snapshot, Policy, DetectorInfo], list[Finding]]


@dataclass(frozen=True)
class Detector:
    """A registered detector: its metadata and its body. Called with a snapshot and a policy."""

    info: DetectorInfo
    body: DetectorBody

    def __call__(self, snapshot: Snapshot, policy: Policy) -> list[Finding]:
        return self.body(snapshot, policy, self.info)


_DETECTORS: dict[str, Detector] = {}
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


def register_detector(info: DetectorInfo, body: DetectorBody) -> Detector:
    """Register `body` under the metadata `info` (declared apart, e.g. the flow-definition rules)."""
    if info.id in _DETECTORS:
        raise ValueError(f"detector {info.id!r} is registered twice")
    made = _DETECTORS[info.id] = Detector(info, body)
    return made


def detector(
    detector_id: str,
    *,
    severity: Severity,
    title: str,
    evidence: type[Evidence],
    platform: Platform = "azure",
    help_url: str = DEFAULT_HELP,
    detail: str = "",
    per_vault: bool = False,
) -> Callable[[DetectorBody], Detector]:
    """Register a detector with its metadata (the title is the SARIF rule's short description): the one
    place its id is written."""
    info = DetectorInfo(
        id=detector_id,
        severity=severity,
        title=title,
        evidence=evidence,
        platform=platform,
        help_url=help_url,
        detail=detail,
        per_vault=per_vault,
    )
    return lambda body: register_detector(info, body)


def registered(detector_id: str) -> Detector:
    """The detector registered under `detector_id` (KeyError naming it when there is none)."""
    found = _DETECTORS.get(detector_id)
    if found is None:
        load_detectors()
        found = _DETECTORS.get(detector_id)
    if found is None:
        raise KeyError(f"no detector {detector_id!r} is registered")
    return found


def highest_severity(detector_ids: Iterable[str]) -> Severity:
    """The most severe registered default among `detector_ids`: a fix's priority is that of the worst
    finding it answers."""
    return min((registered(d).info.severity for d in detector_ids), key=severity_rank)


def evidence_model(detector_id: str) -> type[Evidence]:
    """The evidence model `detector_id` registered."""
    return registered(detector_id).info.evidence


def detector_ids() -> list[str]:
    load_detectors()
    return sorted(_DETECTORS)


def detector_info(detector_id: str) -> DetectorInfo | None:
    load_detectors()
    found = _DETECTORS.get(detector_id)
    return found.info if found is not None else None


def detector_ids_on(platform: Platform) -> frozenset[str]:
    load_detectors()
    return frozenset(i for i, found in _DETECTORS.items() if found.info.platform == platform)


@dataclass(frozen=True)
class VaultFindings:
    """What the per-vault detectors found on some vaults, under a policy: made page by page while a
    vault list is still being read, and reused by `detect` only on a snapshot holding exactly these
    vault objects, in this order, under the same effective policy."""

    vaults: tuple[Vault, ...]
    policy: Policy
    by_detector: dict[str, tuple[Finding, ...]]

    def then(self, more: VaultFindings) -> VaultFindings:
        """These vaults' findings followed by `more`'s (the next page), under the same policy."""
        if more.policy is not self.policy:
            raise ValueError("vault findings made under different policies do not add up")
        return VaultFindings(
            vaults=self.vaults + more.vaults,
            policy=self.policy,
            by_detector={d: found + more.by_detector[d] for d, found in self.by_detector.items()},
        )

    def covers(self, snapshot: Snapshot, policy: Policy) -> bool:
        """Made from `snapshot`'s very vault objects, in order, under `policy`."""
        vaults = snapshot.vaults
        return (
            policy is self.policy
            and len(vaults) == len(self.vaults)
            and all(a is b for a, b in zip(vaults, self.vaults, strict=True))
        )


def detect_vaults(snapshot: Snapshot, policy: Policy) -> VaultFindings:
    """The per-vault detectors' findings on `snapshot`'s vaults (e.g. one page of the vault list, with
    the run's time and no other data). `policy` must already be the effective one (`effective_policy`
    of the whole snapshot), as `detect` checks before reusing them."""
    load_detectors()
    return VaultFindings(
        vaults=snapshot.vaults,
        policy=policy,
        by_detector={
            i: tuple(made(snapshot, policy)) for i, made in sorted(_DETECTORS.items()) if made.info.per_vault
        },
    )


def detect(
    snapshot: Snapshot, policy: Policy, only: set[str] | None = None, early: VaultFindings | None = None
) -> list[Finding]:
    """Every registered detector's findings (or those `only` names), once each, in a stable order.
    `early`: the per-vault detectors' findings already made on these vaults (page by page), used
    instead of running them again when they cover this snapshot under its effective policy."""
    load_detectors()
    policy = effective_policy(policy, snapshot)  # `allowList: fromFlows` -> allow-lists from definitions
    reuse: dict[str, tuple[Finding, ...]] = {}
    if early is not None and early.covers(snapshot, policy):
        reuse = early.by_detector
    findings: dict[str, Finding] = {}
    for detector_id in sorted(_DETECTORS):
        if only is not None and detector_id not in only:
            continue
        made = reuse.get(detector_id)
        for finding in made if made is not None else _DETECTORS[detector_id](snapshot, policy):
            findings.setdefault(finding.id, finding)  # the same problem seen twice is one finding
    return sorted(findings.values(), key=lambda f: (f.resource_id.lower(), f.principal or "", f.detector_id))


def reviewed_vaults(snapshot: Snapshot, policy: Policy, *, rbac: bool) -> list[Vault]:
    """The vaults the policy does not exclude that use Azure RBAC (`rbac`) or access policies."""
    return [
        vault
        for vault in snapshot.vaults
        if vault.enable_rbac_authorization == rbac and not policy.excludes_vault(vault)
    ]


def reviewable_policies(snapshot: Snapshot, policy: Policy) -> list[tuple[Vault, AccessPolicy]]:
    """Access policies we may judge: access-policy vaults, not excluded, not break-glass, not the app's
    own list-only entry (the grant its deep sweep needs, `own_list_entries`). Made once per vaults,
    policy and app identity: several detectors ask for it in a row."""
    app = snapshot.app_object_id
    return derived(
        "reviewable policies",
        (snapshot.vaults, policy, app),
        lambda: [
            (vault, entry)
            for vault in reviewed_vaults(snapshot, policy, rbac=False)
            for entry in vault.access_policies
            if not policy.leaves_alone(entry.object_id) and not is_own_list_entry(entry, app)
        ],
    )


def own_list_notes(snapshot: Snapshot, policy: Policy) -> list[str]:
    """One note per reviewed access-policy vault where the app's own identity holds secret `list` only:
    the detectors leave that entry alone, and the run says so."""
    app = snapshot.app_object_id
    return [
        f"left alone: the app's own identity {app} holds secret list only on vault {vault.name} (the grant "
        "its deep sweep needs to read secret names; no flow connection runs as the app's managed identity)"
        for vault in reviewed_vaults(snapshot, policy, rbac=False)
        if any(is_own_list_entry(entry, app) for entry in vault.access_policies)
    ]


def _evidence(vault: Vault, entry: AccessPolicy) -> AccessPolicyEvidence:
    return AccessPolicyEvidence(
        vault=vault.name,
        object_id=entry.object_id,
        application_id=entry.application_id,
        secret_permissions=entry.permissions.secrets,
    )


def _entry_findings(
    rule: DetectorInfo,
    snapshot: Snapshot,
    policy: Policy,
    selects: Callable[[Vault, AccessPolicy], bool],
    message: Callable[[Vault, AccessPolicy], str],
) -> list[Finding]:
    """One finding per reviewable access-policy entry that `selects` picks, the entry its evidence."""
    return [
        rule.finding(
            resource_id=vault.id,
            principal=entry.object_id,
            message=message(vault, entry),
            evidence=_evidence(vault, entry),
        )
        for vault, entry in reviewable_policies(snapshot, policy)
        if selects(vault, entry)
    ]


@detector(
    "secret_list_permission",
    per_vault=True,
    severity="high",
    title="An identity can list every secret in a vault (enumeration: the seed attack)",
    evidence=AccessPolicyEvidence,
    help_url=ACCESS_POLICY_HELP,
)
def secret_list_permission(snapshot: Snapshot, policy: Policy, rule: DetectorInfo) -> list[Finding]:
    """`list` lets anyone who can run a flow as this identity enumerate the vault (the seed attack).

    Only for identities with no allow-list rule; where a rule exists, `excess_secret_permissions`
    covers `list` together with the other excess, so a vault gets one write per identity.
    """
    return _entry_findings(
        rule,
        snapshot,
        policy,
        lambda vault, entry: (
            "list" in expand_secret_permissions(entry.permissions.secrets)
            and policy.allowed_secret_permissions(entry.object_id, vault) is None
        ),
        lambda vault, entry: f"{entry.object_id} can list every secret in vault {vault.name}",
    )


@detector(
    "excess_secret_permissions",
    per_vault=True,
    severity="medium",  # high when the excess includes `list`
    title="An identity holds secret permissions beyond its purpose's allow-list",
    evidence=ExcessPermissionsEvidence,
    help_url=ACCESS_POLICY_HELP,
)
def excess_secret_permissions(snapshot: Snapshot, policy: Policy, rule: DetectorInfo) -> list[Finding]:
    findings = []
    for vault, entry in reviewable_policies(snapshot, policy):
        allowed = policy.allowed_secret_permissions(entry.object_id, vault)
        if allowed is None:
            continue
        excess = sorted(expand_secret_permissions(entry.permissions.secrets) - allowed)
        if not excess:
            continue
        findings.append(
            rule.finding(
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
def orphaned_principal(snapshot: Snapshot, policy: Policy, rule: DetectorInfo) -> list[Finding]:
    """An access policy for an identity the directory says is gone (not: could not be asked)."""
    gone = snapshot.gone_identities()
    if not gone:  # the rule: no entry to look at
        return []
    return _entry_findings(
        rule,
        snapshot,
        policy,
        lambda vault, entry: entry.object_id.lower() in gone,
        lambda vault, entry: (
            f"vault {vault.name} grants access to {entry.object_id}, which no longer exists in the directory"
        ),
    )
