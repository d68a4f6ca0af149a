"""Detectors: pure functions Snapshot x Policy -> [Finding], registered by a stable id.

Detectors never do I/O. Exclusions, break-glass identities and RBAC-mode vaults (where Azure
ignores access policies) produce no access-policy findings.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator

from remediations.core.model import AccessPolicy, Finding, Snapshot, Vault, expand_secret_permissions
from remediations.core.policy import Policy

Detector = Callable[[Snapshot, Policy], list[Finding]]

_DETECTORS: dict[str, Detector] = {}
# Modules whose detectors register on import; loaded before any detector is listed or run.
DETECTOR_MODULES: tuple[str, ...] = ("remediations.core.rotation",)


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


def detect(snapshot: Snapshot, policy: Policy, only: set[str] | None = None) -> list[Finding]:
    load_detectors()
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
                evidence=_evidence(vault, entry, allowed=sorted(allowed), excess=excess),
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


# RBAC and dead-identity detectors live in their own module and register themselves on import.
from remediations.core import detect_rbac as _detect_rbac  # noqa: E402, F401
