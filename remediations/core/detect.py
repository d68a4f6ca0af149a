"""Detectors: pure functions Snapshot x Policy -> [Finding], registered by a stable id.

Detectors never do I/O. Exclusions, break-glass identities and RBAC-mode vaults (where Azure
ignores access policies) produce no access-policy findings.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator

from remediations.core.flow_allow_list import effective_policy
from remediations.core.model import AccessPolicy, Finding, Snapshot, Vault, expand_secret_permissions
from remediations.core.policy import Policy

Detector = Callable[[Snapshot, Policy], list[Finding]]

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


def detector(detector_id: str) -> Callable[[Detector], Detector]:
    def register(fn: Detector) -> Detector:
        if detector_id in _DETECTORS:
            raise ValueError(f"detector {detector_id!r} is registered twice")
        _DETECTORS[detector_id] = fn
        return fn

    return register


def detector_ids() -> list[str]:
    load_detectors()
    return sorted(_DETECTORS)


def detector_description(detector_id: str) -> str | None:
    """The first line of a detector's docstring (reports use it as the rule's short description)."""
    load_detectors()
    fn = _DETECTORS.get(detector_id)
    doc = (fn.__doc__ or "").strip() if fn is not None else ""
    return doc.splitlines()[0].strip() if doc else None


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


def reviewable_policies(snapshot: Snapshot, policy: Policy) -> Iterator[tuple[Vault, AccessPolicy]]:
    """Access policies we may judge: access-policy vaults, not excluded, not break-glass."""
    for vault in snapshot.vaults:
        if vault.enable_rbac_authorization or policy.excludes_vault(vault):
            continue
        for entry in vault.access_policies:
            if policy.is_break_glass(entry.object_id) or policy.excludes_identity(entry.object_id):
                continue
            yield vault, entry


def _evidence(vault: Vault, entry: AccessPolicy, **extra: object) -> dict[str, object]:
    return {
        "vault": vault.name,
        "objectId": entry.object_id,
        "applicationId": entry.application_id,
        "secretPermissions": list(entry.permissions.secrets),
        **extra,
    }


def _needed_names(policy: Policy, object_id: str, vault: Vault) -> dict[str, object]:
    names = policy.needed_secret_names(object_id, vault)
    return {} if names is None else {"neededSecretNames": list(names)}


@detector("secret_list_permission")
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
            Finding.create(
                detector_id="secret_list_permission",
                severity="high",
                resource_id=vault.id,
                principal=entry.object_id,
                message=f"{entry.object_id} can list every secret in vault {vault.name}",
                evidence=_evidence(vault, entry),
            )
        )
    return findings


@detector("excess_secret_permissions")
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
            Finding.create(
                detector_id="excess_secret_permissions",
                severity="high" if "list" in excess else "medium",
                resource_id=vault.id,
                principal=entry.object_id,
                message=f"{entry.object_id} holds secret permissions {excess} on vault {vault.name} "
                f"beyond its "
                f"allow-list {sorted(allowed)}",
                evidence=_evidence(
                    vault,
                    entry,
                    allowed=sorted(allowed),
                    excess=excess,
                    **_needed_names(policy, entry.object_id, vault),
                ),
            )
        )
    return findings


@detector("orphaned_principal")
def orphaned_principal(snapshot: Snapshot, policy: Policy) -> list[Finding]:
    """An access policy for an identity the directory says is gone (not: could not be asked)."""
    findings = []
    for vault, entry in reviewable_policies(snapshot, policy):
        identity = snapshot.identity(entry.object_id)
        if identity is None or identity.exists is not False:
            continue
        findings.append(
            Finding.create(
                detector_id="orphaned_principal",
                severity="medium",
                resource_id=vault.id,
                principal=entry.object_id,
                message=f"vault {vault.name} grants access to {entry.object_id}, "
                "which no longer exists in the directory",
                evidence=_evidence(vault, entry),
            )
        )
    return findings
