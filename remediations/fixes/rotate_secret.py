"""rotate_secret: assume breach. A secret someone could reach through a leaking path (or one a ticket or
an alert names, or one about to expire) gets a new value, and the exposed version is disabled.

This module plans (pure): one action per secret, with its rotator and reason, or a skipped action that
says why not. The run that writes (cut-over, verify, disable the old version, pending follow-ups) is
`fixes/_rotation_writes.py`. Secret values never appear in a plan, an outcome or a log.
"""

from __future__ import annotations

from collections.abc import Sequence

from remediations.core.detect import highest_severity
from remediations.core.evidence import SecretEvidence
from remediations.core.model import Action, Finding, Outcome, SecretRotationChange, Snapshot
from remediations.core.policy import Policy
from remediations.core.registry import Remediation, RemediationMetadata, register
from remediations.core.request import Targets
from remediations.core.rotation import (
    EXPOSED_SECRET,
    FOLLOWUP_DUE,
    NEAR_EXPIRY,
    TAG_OWNER,
    TAG_PENDING_REMOVE,
    TAG_ROTATOR,
    alert_findings,
    find_secret,
    find_vault,
    secret_resource_id,
    ticket_findings,
)
from remediations.fixes._rotation_writes import rotate
from remediations.ports import Clients
from remediations.rotators import get_rotator
from remediations.rotators.random_value import length_and_charset

_EXPOSURE_SOURCES = frozenset({"finding", "ticket", "alert"})


def _reason(findings: list[Finding], near_expiry_days: int) -> str:
    parts: list[str] = []
    for finding in findings:
        ev = SecretEvidence.of(finding)
        if ev.source == "finding":
            parts.append(f"exposed via {', '.join(ev.detectors or ())}")
        elif ev.source == "ticket":
            parts.append(f"ticket {ev.ticket_id or '(none)'}: {ev.reason or ''}".strip())
        elif ev.source == "alert":
            parts.append(f"alert {ev.alert_id or '(none)'}: {ev.reason or ''}".strip())
        elif ev.source == "near-expiry":
            parts.append(f"expires {ev.expires} (within {near_expiry_days} days)")
        else:  # follow-up
            parts.append(f"pending step of the last rotation is due ({', '.join(ev.pending or ())})")
    return "; ".join(dict.fromkeys(parts)) or "rotation requested"


def _skipped(target: str, vault_uri: str, name: str, reason: str, ids: list[str], skip: str) -> Action:
    change = SecretRotationChange(vault_uri=vault_uri, secret_name=name, rotator="none", reason=reason)
    return Action.create(
        remediation_id=RotateSecret.id,
        target=target,
        principal=None,
        changes=(change,),
        before={"secret": [target]},
        after={},
        reason=reason,
        finding_ids=tuple(ids),
        skip_reason=skip,
    )


def plan_rotations(snapshot: Snapshot, findings: Sequence[Finding], policy: Policy) -> list[Action]:
    """One action per secret named by the findings: rotate it, or finish its pending step."""
    rules = policy.rotation
    groups: dict[tuple[str, str], list[Finding]] = {}
    for finding in findings:
        ev = SecretEvidence.of(finding)
        vault_ref = ev.vault_id or ev.vault_uri
        groups.setdefault((vault_ref.lower(), ev.secret_name.lower()), []).append(finding)

    actions: list[Action] = []
    for (vault_ref, _), group in sorted(groups.items()):
        ids = [f.id for f in group]
        read = [SecretEvidence.of(f) for f in group]
        first = read[0]
        name = first.secret_name
        sources: set[str] = {e.source for e in read}
        # A rotation completes a pending step anyway; leaving it out of the reason keeps the action id
        # of an exposure that persists (a re-run then resumes instead of rotating a second time).
        reasons = [f for f, e in zip(group, read, strict=True) if e.source != "follow-up"] or group
        reason = _reason(reasons, rules.near_expiry_days)
        vault = find_vault(snapshot, vault_ref) or find_vault(snapshot, first.vault_uri)
        secret = find_secret(vault, name) if vault is not None else None
        listing = snapshot.secret_list_error(vault.id) if vault is not None else None
        if vault is not None and listing is not None:
            target = secret_resource_id(vault, name) if name else vault.id
            skip = f"the secret list of vault {vault.name} failed ({listing.label}): cannot rotate {name}"
            actions.append(_skipped(target, vault.vault_uri, name, reason, ids, skip))
            continue
        if vault is None or secret is None:
            uri = first.vault_uri or vault_ref
            actions.append(
                _skipped(group[0].resource_id, uri, name, reason, ids, "secret not found in the inventory")
            )
            continue
        target = secret_resource_id(vault, secret.name)
        if policy.excludes_vault(vault):
            actions.append(
                _skipped(target, vault.vault_uri, secret.name, reason, ids, "vault excluded by policy")
            )
            continue
        if sources == {"alert"} and rules.on_alert == "report":
            skip = "policy rotation.onAlert is 'report': rotate by ticket after review"
            actions.append(_skipped(target, vault.vault_uri, secret.name, reason, ids, skip))
            continue

        phase = "follow-up" if sources == {"follow-up"} else "rotate"
        if phase == "follow-up":  # the pending tag says which issuer still holds the old credential
            rotator_name = "app-credential" if secret.tags.get(TAG_PENDING_REMOVE) else "storage-key"
        else:
            rotator_name = secret.tags.get(TAG_ROTATOR, rules.default_rotator).lower()
        rotator = get_rotator(rotator_name)
        problem = (
            f"unknown rotator {rotator_name!r}" if rotator is None else rotator.check(secret.tags, rules)
        )
        length, charset = length_and_charset(secret.tags, rules)
        ticket_id = next((e.ticket_id for e in read if e.ticket_id), None)
        change = SecretRotationChange(
            vault_uri=vault.vault_uri,
            secret_name=secret.name,
            rotator=rotator_name,
            reason=reason,
            phase=phase,
            ticket_id=ticket_id,
            expiry_days=rules.expiry_days,
            overlap_hours=rules.app_credential_overlap_hours,
            value_length=length if rotator_name == "random" else None,
            charset=charset if rotator_name == "random" else None,
            compromised=bool(sources & _EXPOSURE_SOURCES),
        )
        after = (
            {"pending": ["finish the pending step"]}
            if phase == "follow-up"
            else {"newVersion": ["(new)"], "disabledVersions": ["(current)"]}
            if rotator_name != "manual"
            else {"disabledVersions": ["(current)"], "needsOwner": [secret.tags.get(TAG_OWNER, "unassigned")]}
        )
        actions.append(
            Action.create(
                remediation_id=RotateSecret.id,
                target=target,
                principal=None,
                changes=(change,),
                before={"secret": [secret.id], "rotator": [rotator_name]},
                after=after,
                reason=reason,
                finding_ids=tuple(ids),
                skip_reason=problem,
            )
        )
    return actions


def unreadable_vaults(snapshot: Snapshot, policy: Policy) -> list[Action]:
    """Pure: one skipped action per vault whose secret list failed. Exposure, expiry and pending
    follow-ups of its secrets could not be checked; the rest of the vault's fixes still ran."""
    actions = []
    for vault in snapshot.vaults:
        error = snapshot.secret_list_error(vault.id)
        if error is None or policy.excludes_vault(vault):
            continue
        actions.append(
            Action.create(
                remediation_id=RotateSecret.id,
                target=vault.id,
                principal=None,
                changes=(),
                before={"vault": [vault.id]},
                after={},
                reason="check the vault's secrets for exposure, expiry and due rotation follow-ups",
                finding_ids=(),
                skip_reason=(
                    f"the secret list of vault {vault.name} failed ({error.label}): its secrets were "
                    "not checked or rotated (grant the app's identity secrets list/readMetadata)"
                ),
            )
        )
    return actions


def plan_for_targets(
    snapshot: Snapshot,
    policy: Policy,
    targets: Sequence[tuple[str, str]],
    reason: str,
    ticket_id: str | None = None,
) -> list[Action]:
    """Pure, for tickets: rotate explicit `(vault_uri, secret_name)` targets (a person says they leaked).
    The snapshot must cover the vaults (their secret metadata gives each secret's rotator)."""
    return plan_rotations(snapshot, ticket_findings(snapshot, targets, reason, ticket_id), policy)


def plan_for_alert(
    snapshot: Snapshot, policy: Policy, vault_ref: str, reason: str, alert_id: str | None = None
) -> list[Action]:
    """Pure, for Defender alerts on a vault: rotate its secrets, or report them (`rotation.onAlert`)."""
    return plan_rotations(snapshot, alert_findings(snapshot, vault_ref, reason, alert_id), policy)


@register
class RotateSecret(Remediation):
    id = "rotate_secret"
    handles = frozenset({EXPOSED_SECRET, NEAR_EXPIRY, FOLLOWUP_DUE})
    needs_secret_metadata = True
    plans_targets = True
    metadata = RemediationMetadata(
        title="Rotate exposed or expiring secrets: new version, verified, old version disabled",
        severity=highest_severity(handles),
        risk=(
            "Consumers pinned to the old version, or holding the old value (an app's client secret after "
            "the overlap, the old storage key), stop working; `manual` leaves the secret without an "
            "enabled version until its owner sets one."
        ),
        permissions_required=(
            "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            "Microsoft.KeyVault/vaults/secrets/setSecret/action",
            "Microsoft.KeyVault/vaults/secrets/update/action",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
            "Microsoft.Storage/storageAccounts/listkeys/action",
            "Microsoft.Storage/storageAccounts/regeneratekey/action",
            "Microsoft Graph Application.ReadWrite.OwnedBy (addPassword, removePassword)",
        ),
        cli_equivalent=(
            "az keyvault secret set --vault-name <vault> --name <secret> --value <new> --expires <date> "
            "--tags rotatedBy=vaultguard; az keyvault secret set-attributes --vault-name <vault> "
            "--name <secret> --version <old> --enabled false"
        ),
        bicep_hint="not declarative: secret values are never put in templates",
    )

    def plan(self, snapshot: Snapshot, findings: list[Finding], policy: Policy) -> list[Action]:
        return plan_rotations(snapshot, findings, policy)

    def unchecked(self, snapshot: Snapshot, policy: Policy) -> list[Action]:
        return unreadable_vaults(snapshot, policy)

    def plan_for_targets(self, snapshot: Snapshot, targets: Targets, policy: Policy) -> list[Action]:
        """A ticket's named secrets (those in this snapshot's vaults) rotate, exactly those; an alert's
        exposed vault rotates per `rotation.onAlert`, with the vaults whose secrets could not be listed.
        A request naming neither (an alert's re-check) rotates nothing."""
        actions: list[Action] = []
        if targets.secrets:
            named = [(s.vault, s.name) for s in targets.secrets if find_vault(snapshot, s.vault) is not None]
            actions += plan_for_targets(snapshot, policy, named, targets.reason, targets.reference)
        for vault in targets.exposed_vaults:
            actions += plan_for_alert(snapshot, policy, vault, targets.reason, targets.reference)
        if targets.exposed_vaults:
            actions += unreadable_vaults(snapshot, policy)
        return actions

    def apply(self, action: Action, clients: Clients) -> Outcome:
        return rotate(action, clients)
