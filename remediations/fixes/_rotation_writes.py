"""The rotation run that writes: one `SecretRotationChange` applied to Key Vault (and, through the
rotator, to the issuer of the credential), each step named in the outcome.

Cut-over: the rotator makes the new value (`generate-value`, `add-credential`, `regenerate-unused-key`),
`set-new-version` (content type, expiry from the policy, tags `rotatedBy`/`rotatedAt`/`reason`/
`ticketId`/`rotationId`), `verify` (the version reads back the value written; the issuer lists it),
`disable-old` (never purge), then the pending step when due (`remove-old-credential`,
`regenerate-old-key`) and `clear-pending`. A failure before `disable-old` leaves the old version
enabled; the outcome is `failed` and names the step. A re-run of the same action resumes from the new
version's `rotationId` tag instead of rotating twice.

Secret values exist only in memory (`SecretValue`) between the rotator and Key Vault: never in a log,
an audit row, an outcome or a response, which name secret ids and versions only. Used by the
rotate_secret fix; the leading underscore keeps it out of fix discovery.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial

from remediations.core.model import Action, Outcome, SecretRotationChange, SecretVersionMeta
from remediations.core.rotation import (
    MAX_TAGS,
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
    followup_due,
    iso,
    tag_value,
)
from remediations.ports import AzureCallFailed, Clients, KeyVaultSecretsApi, ResourceGone
from remediations.rotators import RotationContext, Rotator, StepFailed, get_rotator

_PENDING_TAGS = (TAG_PENDING_REMOVE, TAG_REMOVE_AFTER, TAG_PENDING_REGENERATE)


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
