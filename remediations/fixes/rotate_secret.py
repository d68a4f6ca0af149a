"""rotate_secret: assume breach. A secret someone could reach through a leaking path (or one a ticket or
an alert names, or one about to expire) gets a new value, and the exposed version is disabled.

Cut-over, each step named in the outcome: the rotator makes the new value (`generate-value`,
`add-credential`, `regenerate-unused-key`), `set-new-version` (content type, expiry from the policy,
tags `rotatedBy`/`rotatedAt`/`reason`/`ticketId`/`rotationId`), `verify` (the version reads back the
value written; the issuer lists it), `disable-old` (never purge), then the pending step when due
(`remove-old-credential`, `regenerate-old-key`) and `clear-pending`. A failure before `disable-old`
leaves the old version enabled; the outcome is `failed` and names the step. A re-run of the same action
resumes from the new version's `rotationId` tag instead of rotating twice.

Secret values exist only in memory (`SecretValue`) between the rotator and Key Vault: never in a
log, an audit row, an outcome or a response, which name secret ids and versions only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import partial

from remediations.core.evidence import SecretEvidence
from remediations.core.model import (
    Action,
    Finding,
    Outcome,
    SecretRotationChange,
    SecretVersionMeta,
    Snapshot,
)
from remediations.core.policy import Policy
from remediations.core.registry import Remediation, RemediationMetadata, register
from remediations.core.request import Targets
from remediations.core.rotation import (
    EXPOSED_SECRET,
    FOLLOWUP_DUE,
    MAX_TAGS,
    NEAR_EXPIRY,
    ROTATED_BY,
    ROTATION_TAGS,
    TAG_COMPROMISED,
    TAG_OWNER,
    TAG_PENDING_REGENERATE,
    TAG_PENDING_REMOVE,
    TAG_REASON,
    TAG_REMOVE_AFTER,
    TAG_ROTATED_AT,
    TAG_ROTATED_BY,
    TAG_ROTATION_ID,
    TAG_ROTATOR,
    TAG_SUPERSEDED_BY,
    TAG_TICKET,
    alert_findings,
    find_secret,
    find_vault,
    followup_due,
    iso,
    secret_resource_id,
    tag_value,
    ticket_findings,
)
from remediations.ports import AzureCallFailed, Clients, KeyVaultSecretsApi, ResourceGone
from remediations.rotators import RotationContext, Rotator, StepFailed, get_rotator
from remediations.rotators.random_value import length_and_charset

_EXPOSURE_SOURCES = frozenset({"finding", "ticket", "alert"})
_PENDING_TAGS = (TAG_PENDING_REMOVE, TAG_REMOVE_AFTER, TAG_PENDING_REGENERATE)


# -- planning (pure) ---------------------------------------------------------------------------------


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


# -- applying -----------------------------------------------------------------------------------------


def _latest(versions: list[SecretVersionMeta]) -> SecretVersionMeta:
    epoch = datetime.min.replace(tzinfo=UTC)
    ranked = sorted(enumerate(versions), key=lambda iv: (iv[1].created or epoch, iv[0]))
    return ranked[-1][1]


def _with_room(tags: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """Add markers to an old version's tags while Key Vault's 15-tag limit allows."""
    out = dict(tags)
    for key, value in extra.items():
        if key in out or len(out) < MAX_TAGS:
            out[key] = value
    return out


class _Run:
    def __init__(self, action: Action, change: SecretRotationChange, clients: Clients, now: datetime) -> None:
        self.action = action
        self.change = change
        self.api: KeyVaultSecretsApi = clients.keyvault_secrets(change.vault_uri)
        self.clients = clients
        self.now = now
        self.new_version: str | None = None
        self.disabled: list[str] = []
        self.pending: list[str] = []
        self.ctx: RotationContext | None = None

    def context(self, current: SecretVersionMeta) -> RotationContext:
        self.ctx = RotationContext(
            action_id=self.action.id,
            change=self.change,
            clients=self.clients,
            current=current,
            now=self.now,
            expires=self.now + timedelta(days=self.change.expiry_days),
        )
        return self.ctx

    def after(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {"steps": list(self.ctx.steps) if self.ctx else []}
        if self.new_version:
            out["newVersion"] = [self.new_version]
        if self.disabled:
            out["disabledVersions"] = list(self.disabled)
        if self.pending:
            out["pending"] = list(self.pending)
        return out

    # -- steps ----------------------------------------------------------------------------------------
    def disable_old(self, ctx: RotationContext, versions: list[SecretVersionMeta], compromised: bool) -> None:
        name = self.change.secret_name
        for version in versions:
            if version.version == self.new_version or version.enabled is False:
                continue
            extra = {TAG_COMPROMISED: "true"} if compromised else {}
            if self.new_version:
                extra[TAG_SUPERSEDED_BY] = self.new_version
            result = ctx.step("disable-old", partial(self._disable, name, version, extra))
            if result.enabled is not False:
                raise StepFailed("disable-old", f"version {version.version} is still enabled")
            self.disabled.append(version.version)

    def _disable(self, name: str, version: SecretVersionMeta, extra: dict[str, str]) -> SecretVersionMeta:
        tags = _with_room(version.tags, extra)
        return self.api.update_version(name, version.version, enabled=False, tags=tags)

    def finish_pending(
        self, ctx: RotationContext, rotator: Rotator, version: str, tags: dict[str, str]
    ) -> None:
        if not any(tags.get(t) for t in _PENDING_TAGS):
            return
        if not followup_due(tags, self.now):
            self.pending = [
                f"{TAG_PENDING_REMOVE}={tags.get(TAG_PENDING_REMOVE)} after {tags.get(TAG_REMOVE_AFTER)}"
            ]
            return
        rotator.complete(ctx, tags)
        cleared = {k: v for k, v in tags.items() if k not in _PENDING_TAGS}
        ctx.step(
            "clear-pending",
            lambda: self.api.update_version(self.change.secret_name, version, tags=cleared),
        )

    def new_tags(self, current: SecretVersionMeta, rotator_tags: dict[str, str]) -> dict[str, str]:
        tags = {k: v for k, v in current.tags.items() if k not in ROTATION_TAGS}
        tags[TAG_ROTATOR] = self.change.rotator
        tags.update(rotator_tags)
        tags.update(
            {
                TAG_ROTATED_BY: ROTATED_BY,
                TAG_ROTATED_AT: iso(self.now),
                TAG_REASON: tag_value(self.change.reason),
                TAG_ROTATION_ID: self.action.id,
            }
        )
        if self.change.ticket_id:
            tags[TAG_TICKET] = tag_value(self.change.ticket_id)
        return tags

    # -- phases ---------------------------------------------------------------------------------------
    def cut_over(self, rotator: Rotator, versions: list[SecretVersionMeta], latest: SecretVersionMeta) -> str:
        ctx = self.context(latest)
        name = self.change.secret_name
        if any(latest.tags.get(t) for t in _PENDING_TAGS):
            # An earlier rotation's old credential is still alive; it is older than the one we replace.
            rotator.complete(ctx, latest.tags)
        prepared = rotator.prepare(ctx)
        tags = self.new_tags(latest, prepared.tags)
        try:
            if len(tags) > MAX_TAGS:
                raise StepFailed(
                    "set-new-version",
                    f"the new version would carry {len(tags)} tags; Key Vault allows {MAX_TAGS}",
                )
            new = ctx.step(
                "set-new-version",
                lambda: self.api.set_secret(
                    name, prepared.value, content_type=prepared.content_type, expires=ctx.expires, tags=tags
                ),
            )
        except StepFailed as failure:
            if prepared.rollback is not None:
                try:
                    ctx.step(prepared.rollback_step, prepared.rollback)
                except StepFailed as rollback_failure:
                    raise StepFailed(failure.step, f"{failure.message}; {rollback_failure}") from failure
            raise
        self.new_version = new.version
        if not ctx.step("verify", lambda: self.api.value_matches(name, new.version, prepared.value)):
            raise StepFailed("verify", f"version {new.version} does not read back the value written")
        rotator.verify(ctx, tags, prepared.value)
        self.disable_old(ctx, versions, self.change.compromised)
        self.finish_pending(ctx, rotator, new.version, tags)
        return "applied"

    def resume(self, rotator: Rotator, versions: list[SecretVersionMeta], latest: SecretVersionMeta) -> str:
        """The new version exists (this action wrote it): finish what a failed or repeated run left."""
        ctx = self.context(latest)
        self.new_version = latest.version
        if not ctx.step("verify", lambda: self.api.is_readable(self.change.secret_name, latest.version)):
            raise StepFailed("verify", f"version {latest.version} does not read back")
        rotator.verify(ctx, latest.tags, None)
        self.disable_old(ctx, versions, self.change.compromised)
        self.finish_pending(ctx, rotator, latest.version, dict(latest.tags))
        return "applied" if self.disabled or "clear-pending" in ctx.steps else "noop"

    def follow_up(self, rotator: Rotator, latest: SecretVersionMeta) -> str:
        ctx = self.context(latest)
        self.new_version = latest.version
        if not any(latest.tags.get(t) for t in _PENDING_TAGS):
            return "noop"
        self.finish_pending(ctx, rotator, latest.version, dict(latest.tags))
        return "applied" if "clear-pending" in ctx.steps else "noop"

    def manual(self, versions: list[SecretVersionMeta], latest: SecretVersionMeta) -> str:
        ctx = self.context(latest)
        self.disable_old(ctx, versions, compromised=True)
        return "applied" if self.disabled else "noop"


def rotate(action: Action, clients: Clients, now: datetime | None = None) -> Outcome:
    """Apply one rotation action; never raises for an Azure error."""
    changes = [c for c in action.changes if isinstance(c, SecretRotationChange)]
    if len(changes) != 1 or len(action.changes) != 1:
        return Outcome(
            action_id=action.id, status="failed", error="expected exactly one secret rotation change"
        )
    change = changes[0]
    rotator = get_rotator(change.rotator)
    if rotator is None:
        return Outcome(action_id=action.id, status="failed", error=f"unknown rotator {change.rotator!r}")
    run = _Run(action, change, clients, now or datetime.now(UTC))
    try:
        versions = run.api.list_versions(change.secret_name)
    except ResourceGone as gone:
        return Outcome(action_id=action.id, status="noop", before=action.before, error=str(gone))
    except AzureCallFailed as error:
        return Outcome(
            action_id=action.id, status="failed", before=action.before, error=f"step read-versions: {error}"
        )
    if not versions:
        return Outcome(
            action_id=action.id, status="noop", before=action.before, error="the secret has no versions"
        )
    latest = _latest(versions)
    before = {
        "secret": [f"{change.vault_uri.rstrip('/')}/secrets/{change.secret_name}"],
        "currentVersion": [latest.version],
        "enabledVersions": [v.version for v in versions if v.enabled is not False],
        "rotator": [change.rotator],
    }
    try:
        if change.phase == "follow-up":
            status = run.follow_up(rotator, latest)
        elif not rotator.replaces_value:
            status = run.manual(versions, latest)
        elif latest.tags.get(TAG_ROTATION_ID) == action.id:
            status = run.resume(rotator, versions, latest)
        else:
            status = run.cut_over(rotator, versions, latest)
    except StepFailed as failure:
        after = run.after()
        after["failedStep"] = [failure.step]
        still = [v for v in before["enabledVersions"] if v not in run.disabled]
        kept = f"; version(s) {still} still enabled" if still else ""
        return Outcome(
            action_id=action.id, status="failed", before=before, after=after, error=f"{failure}{kept}"
        )
    after = run.after()
    if change.rotator == "manual" and status == "applied":
        after["needsOwner"] = [latest.tags.get(TAG_OWNER, "unassigned")]
    return Outcome(
        action_id=action.id,
        status="applied" if status == "applied" else "noop",
        before=before,
        after=after,
        verified=status == "applied",
    )


@register
class RotateSecret(Remediation):
    id = "rotate_secret"
    handles = frozenset({EXPOSED_SECRET, NEAR_EXPIRY, FOLLOWUP_DUE})
    needs_secret_metadata = True
    plans_targets = True
    metadata = RemediationMetadata(
        title="Rotate exposed or expiring secrets: new version, verified, old version disabled",
        severity="high",
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
