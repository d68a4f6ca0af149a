"""Key Vault events from Event Grid: what an event asks of us (pure parsing, no I/O).

Key Vault publishes to an Event Grid system topic (learn.microsoft.com/azure/event-grid/
event-schema-key-vault). The function receives one event per invocation, in the Event Grid schema
(`id, topic, subject, eventType, eventTime, data, dataVersion`) or as a CloudEvent (`id, source,
subject, type, time, data, specversion`); `function_app.py` hands either here as a plain dict.

What each type asks:
- `Microsoft.KeyVault.VaultAccessPolicyChanged` -> `recheck-vault`: run every remediation on the vault
  (as an activity-log alert on `accessPolicies/write` does, seconds instead of minutes later);
- `SecretNearExpiry` / `SecretExpired` -> `plan-rotation`: plan rotation of that one secret;
- `SecretNewVersionCreated` -> `refresh-inventory`: read the vault's secret list again (no plan, no
  write) so the quick sweep's stored deep inventory has the new version's expiry and tags;
- anything else (keys, certificates, other secret events) -> `acknowledged`, recorded only.

Every actionable event's live secret read refreshes the vault's stored deep inventory.

The vault comes from `topic` / `source` (the vault's ARM id), never from `data`: the documented sample
spells `data` keys inconsistently (`Id`, `"objectName "` with a trailing space, `version` with a
leading one), so `data` keys are matched case- and space-insensitively and only name the secret.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from remediations.triggers import ids
from remediations.triggers.alerts import canonical_vault_id
from remediations.triggers.problems import FieldError, bad_request, validation_failed

PREFIX = "Microsoft.KeyVault."
ACCESS_POLICY_CHANGED = PREFIX + "VaultAccessPolicyChanged"
SECRET_NEAR_EXPIRY = PREFIX + "SecretNearExpiry"
SECRET_EXPIRED = PREFIX + "SecretExpired"
SECRET_NEW_VERSION = PREFIX + "SecretNewVersionCreated"
MAX_ID_LENGTH = 200
# Key Vault secret names: 1-127 characters of 0-9, a-z, A-Z and '-'.
_SECRET_NAME_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-")

EventKind = Literal["recheck-vault", "plan-rotation", "refresh-inventory", "acknowledged"]
EventSchema = Literal["EventGridSchema", "CloudEventSchemaV1_0"]


class VaultEvent(BaseModel):
    """One Key Vault event, as the app reads it. `kind` decides; `reason` says why in a sentence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    eventId: str
    eventType: str
    schema_: EventSchema
    kind: EventKind
    reason: str
    vaultId: str | None = None
    secretName: str | None = None
    eventTime: str | None = None

    @property
    def actionable(self) -> bool:
        return self.kind != "acknowledged"

    def idempotency_key(self) -> str:
        """Event Grid retries a delivery with the same id; id + source is unique per event (CloudEvents)."""
        return ids.delivery_key(self.eventId, (self.vaultId or "").lower())


def parse_event(payload: object) -> VaultEvent:
    """Parse one decoded event. Raises `ProblemError` (400 not an event, 422 bad fields)."""
    if not isinstance(payload, dict):
        raise bad_request("An event must be a JSON object.", kind="unknown-event-schema")
    cloud = "specversion" in payload
    names = ("id", "source", "type", "time") if cloud else ("id", "topic", "eventType", "eventTime")
    event_id, source, event_type, time = (payload.get(n) for n in names)
    errors = [
        FieldError(f"$.{name}", "must be a non-empty string")
        for name, value in zip(names[:3], (event_id, source, event_type), strict=True)
        if not isinstance(value, str) or not value.strip()
    ]
    if isinstance(event_id, str) and len(event_id) > MAX_ID_LENGTH:
        errors.append(FieldError("$.id", f"must be at most {MAX_ID_LENGTH} characters"))
    if errors:
        raise validation_failed(errors)
    assert isinstance(event_id, str) and isinstance(source, str) and isinstance(event_type, str)
    common: dict[str, Any] = {
        "eventId": event_id,
        "eventType": event_type,
        "schema_": "CloudEventSchemaV1_0" if cloud else "EventGridSchema",
        "eventTime": time if isinstance(time, str) else None,
    }
    if not event_type.startswith(PREFIX):
        return VaultEvent(**common, kind="acknowledged", reason=f"not a Key Vault event ({event_type})")
    vault_id = _vault_id(source, "$.source" if cloud else "$.topic")
    data = _data(payload.get("data"))
    subject = payload.get("subject")
    if event_type == ACCESS_POLICY_CHANGED:
        return VaultEvent(
            **common,
            kind="recheck-vault",
            vaultId=vault_id,
            reason="the vault's access policies (or its permission model) changed: re-check the vault",
        )
    if event_type in (SECRET_NEAR_EXPIRY, SECRET_EXPIRED):
        name = _secret_name(data, subject)
        when = "expired" if event_type == SECRET_EXPIRED else "is about to expire"
        return VaultEvent(
            **common,
            kind="plan-rotation",
            vaultId=vault_id,
            secretName=name,
            reason=f"secret {name} {when}: plan its rotation",
        )
    if event_type == SECRET_NEW_VERSION:
        name = _secret_name(data, subject)
        return VaultEvent(
            **common,
            kind="refresh-inventory",
            vaultId=vault_id,
            secretName=name,
            reason=f"a new version of secret {name} was created: refresh the vault's stored secret inventory",
        )
    return VaultEvent(
        **common,
        kind="acknowledged",
        vaultId=vault_id,
        reason=f"{event_type.removeprefix(PREFIX)} needs no action",
    )


def _vault_id(source: str, path: str) -> str:
    if ids.VAULT_ID.match(source) is None:
        raise validation_failed([FieldError(path, "must be a Key Vault resource id")])
    return canonical_vault_id(source)


def _data(raw: object) -> dict[str, str]:
    """`data` keys folded (lower case, no spaces), string values stripped; other values dropped."""
    if not isinstance(raw, dict):
        return {}
    return {str(k).replace(" ", "").lower(): v.strip() for k, v in raw.items() if isinstance(v, str)}


def _secret_name(data: dict[str, str], subject: object) -> str:
    name = data.get("objectname") or (subject.strip() if isinstance(subject, str) else "")
    if not name or len(name) > 127 or not set(name) <= _SECRET_NAME_CHARS:
        raise validation_failed([FieldError("$.data.objectName", "must name a Key Vault secret")])
    if data.get("objecttype", "Secret").lower() != "secret":
        raise validation_failed([FieldError("$.data.objectType", "must be Secret for a secret event")])
    return name


__all__ = ["VaultEvent", "parse_event"]
