"""Azure Monitor alerts (common alert schema) and Defender for Cloud alert records -> typed signals.

An action group with `useCommonAlertSchema: true` posts `{"schemaId": "azureMonitorCommonAlertSchema",
"data": {"essentials": {...}, "alertContext": {...}}}` to `/api/alerts`. We act on three kinds:

- Activity Log - Administrative, operation `Microsoft.KeyVault/vaults/accessPolicies/write` or
  `Microsoft.KeyVault/vaults/write` -> `recheck-vault` (someone changed who can read the vault).
  The caller (`alertContext.caller`, and the object id in `claims`) is kept so the engine can
  recognise a change it made itself.
- Activity Log - Security carrying a Microsoft Defender for Key Vault alert (`KV_*` alert types),
  or the SecurityAlert record of continuous export (`AlertType`, `SystemAlertId`, `ResourceId` /
  `AzureResourceId`, `CompromisedEntity`, `Entities`) -> `revoke-and-rotate` per policy.
- Log Alerts V2 whose target ids or dimensions name a vault -> `recheck-vault`.

Everything else that is a well-formed common-schema alert (metric, resource health, service health,
other activity log categories, `monitorCondition: Resolved`) is `acknowledged` with a reason.
Payloads of no known schema are a 400 problem; a known schema with missing or mistyped essentials
is a 422 problem naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from remediations.triggers import ids
from remediations.triggers.problems import FieldError, ProblemError, bad_request, validation_failed

COMMON_SCHEMA_ID = "azureMonitorCommonAlertSchema"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
VAULT_WRITE_OPERATIONS = frozenset(
    {"microsoft.keyvault/vaults/accesspolicies/write", "microsoft.keyvault/vaults/write"}
)
# Defender for Key Vault alert types start with KV_; sample alerts generated from the portal are
# prefixed SIMULATED_ (e.g. SIMULATED_KV_ListGetAnomaly).
_KV_ALERT_PREFIXES = ("KV_", "SIMULATED_KV_")
_MAX_TEXT = 512

SignalKind = Literal["recheck-vault", "revoke-and-rotate", "acknowledged"]
SignalSource = Literal[
    "activity-log-administrative",
    "activity-log-security",
    "defender-export",
    "log-alerts-v2",
    "metric",
    "resource-health",
    "service-health",
    "other",
]


class AlertSignal(BaseModel):
    """What an alert asks of us. `kind` decides; `reason` says why in a sentence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alertId: str
    kind: SignalKind
    source: SignalSource
    reason: str
    monitorCondition: Literal["Fired", "Resolved"] = "Fired"
    monitoringService: str | None = None
    alertRule: str | None = None
    vaultId: str | None = None
    operationName: str | None = None
    operationStatus: str | None = None
    caller: str | None = None
    callerObjectId: str | None = None
    alertType: str | None = None
    firedAt: str | None = None

    @property
    def actionable(self) -> bool:
        return self.kind != "acknowledged"

    def idempotency_key(self) -> str:
        """Fired and Resolved notifications share an alertId; they are different deliveries."""
        return ids.delivery_key(self.alertId, self.monitorCondition)


def parse_alert(payload: object) -> AlertSignal:
    """Parse a decoded JSON body. Raises `ProblemError` (400 unknown schema, 422 bad fields)."""
    if not isinstance(payload, dict):
        raise bad_request("An alert must be a JSON object.", kind="unknown-alert-schema")
    schema_id = payload.get("schemaId")
    if schema_id == COMMON_SCHEMA_ID:
        return _parse_common(payload)
    if schema_id is None and isinstance(payload.get("AlertType"), str):
        return _parse_security_alert_record(payload)
    if isinstance(schema_id, str):
        raise bad_request(
            f"Unsupported alert schemaId; enable the common alert schema on the action group "
            f"(schemaId '{COMMON_SCHEMA_ID}').",
            kind="unknown-alert-schema",
        )
    raise bad_request(
        f"Unknown alert schema: expected the Azure Monitor common alert schema (schemaId "
        f"'{COMMON_SCHEMA_ID}') or a Defender for Cloud SecurityAlert record (AlertType, SystemAlertId).",
        kind="unknown-alert-schema",
    )


# --- common alert schema -------------------------------------------------------------------------


def _parse_common(payload: dict[str, Any]) -> AlertSignal:
    data = _object(payload, "data", "$.data")
    essentials = _object(data, "essentials", "$.data.essentials")
    context_raw = data.get("alertContext")
    if context_raw is not None and not isinstance(context_raw, dict):
        raise validation_failed([FieldError("$.data.alertContext", "must be an object or null")])
    context: dict[str, Any] = context_raw or {}

    alert_id = _text(essentials, "alertId", "$.data.essentials.alertId", required=True)
    assert alert_id is not None
    _check_alert_id(alert_id, "$.data.essentials.alertId")
    condition = _text(essentials, "monitorCondition", "$.data.essentials.monitorCondition") or "Fired"
    if condition not in ("Fired", "Resolved"):
        raise validation_failed(
            [FieldError("$.data.essentials.monitorCondition", "must be Fired or Resolved")]
        )
    service = _text(essentials, "monitoringService", "$.data.essentials.monitoringService")
    targets = _string_list(essentials, "alertTargetIDs", "$.data.essentials.alertTargetIDs")

    base: dict[str, Any] = {
        "alertId": alert_id,
        "monitorCondition": condition,
        "monitoringService": service,
        "alertRule": _text(essentials, "alertRule", "$.data.essentials.alertRule"),
        "firedAt": _text(essentials, "firedDateTime", "$.data.essentials.firedDateTime"),
    }
    source = _source_of(service, context)
    if condition == "Resolved":
        return AlertSignal(
            **base,
            kind="acknowledged",
            source=source,
            reason="The alert is resolved; resolutions are acknowledged and need no action.",
        )
    if source == "activity-log-administrative":
        return _administrative(base, targets, context)
    if source == "activity-log-security":
        return _security(base, targets, context)
    if source == "log-alerts-v2":
        return _log_v2(base, targets, context)
    reasons = {
        "metric": "Metric alerts carry no access change; nothing to do.",
        "resource-health": "Resource Health alerts carry no access change; nothing to do.",
        "service-health": "Service Health alerts carry no access change; nothing to do.",
    }
    return AlertSignal(
        **base,
        kind="acknowledged",
        source=source,
        reason=reasons.get(source, "This alert type is not one vaultguard acts on; nothing to do."),
    )


def _source_of(service: str | None, context: dict[str, Any]) -> SignalSource:
    normalised = (service or "").strip().lower()
    if normalised == "activity log - administrative":
        return "activity-log-administrative"
    if normalised == "activity log - security":
        return "activity-log-security"
    if normalised == "log alerts v2":
        return "log-alerts-v2"
    if normalised == "platform":
        return "metric"
    if normalised in ("resource health", "resourcehealth"):
        return "resource-health"
    if normalised in ("servicehealth", "service health"):
        return "service-health"
    # Older activity log payloads name the category only in alertContext.eventSource.
    if normalised.startswith("activity log") or not normalised:
        event_source = str(context.get("eventSource", "")).lower()
        if event_source == "administrative":
            return "activity-log-administrative"
        if event_source == "security":
            return "activity-log-security"
    return "other"


def _administrative(base: dict[str, Any], targets: list[str], context: dict[str, Any]) -> AlertSignal:
    operation = _text(context, "operationName", "$.data.alertContext.operationName")
    authorization = context.get("authorization") if isinstance(context.get("authorization"), dict) else {}
    assert isinstance(authorization, dict)
    if operation is None:
        operation = _text(authorization, "action", "$.data.alertContext.authorization.action")
    status = _text(context, "status", "$.data.alertContext.status")
    caller = _text(context, "caller", "$.data.alertContext.caller")
    common = {
        **base,
        "source": "activity-log-administrative",
        "operationName": operation,
        "operationStatus": status,
        "caller": caller,
        "callerObjectId": _claims_object_id(context.get("claims")),
    }
    if operation is None or operation.lower() not in VAULT_WRITE_OPERATIONS:
        return AlertSignal(
            **common,
            kind="acknowledged",
            reason="The administrative operation does not change Key Vault access; nothing to do.",
        )
    vault = _first_vault(_administrative_candidates(targets, authorization, context))
    if vault is None:
        raise validation_failed(
            [FieldError("$.data.essentials.alertTargetIDs", "names no Key Vault resource id")],
            detail="The alert is a Key Vault write but names no vault.",
        )
    if status is not None and status.lower() == "failed":
        return AlertSignal(
            **common,
            vaultId=vault,
            kind="acknowledged",
            reason="The Key Vault write failed, so access did not change; nothing to do.",
        )
    return AlertSignal(
        **common,
        vaultId=vault,
        kind="recheck-vault",
        reason=f"{operation} changed the vault's access; re-check it.",
    )


def _administrative_candidates(
    targets: list[str], authorization: dict[str, Any], context: dict[str, Any]
) -> Iterable[object]:
    yield from targets
    yield authorization.get("scope")
    yield context.get("entity")
    properties = context.get("properties")
    if isinstance(properties, dict):
        yield properties.get("entity")
        yield properties.get("resource")


def _security(base: dict[str, Any], targets: list[str], context: dict[str, Any]) -> AlertSignal:
    properties = context.get("properties") if isinstance(context.get("properties"), dict) else {}
    assert isinstance(properties, dict)
    alert_type = _first_text(
        properties, ("alertType", "AlertType", "alertTypeName", "alert_type")
    ) or _first_text(context, ("alertType", "AlertType"))
    candidates: list[object] = [*targets]
    for key in (
        "resourceId",
        "ResourceId",
        "azureResourceId",
        "AzureResourceId",
        "compromisedEntity",
        "entity",
    ):
        candidates.append(properties.get(key))
    authorization = context.get("authorization")
    if isinstance(authorization, dict):
        candidates.append(authorization.get("scope"))
    vault = _first_vault(candidates)
    common = {
        **base,
        "source": "activity-log-security",
        "operationName": _text(context, "operationName", "$.data.alertContext.operationName"),
        "alertType": alert_type,
    }
    return _defender_signal(common, alert_type, vault)


def _defender_signal(common: dict[str, Any], alert_type: str | None, vault: str | None) -> AlertSignal:
    is_kv_type = alert_type is not None and alert_type.startswith(_KV_ALERT_PREFIXES)
    if vault is None:
        if is_kv_type:
            raise validation_failed(
                [FieldError("$", "a Defender for Key Vault alert must name the vault's resource id")],
                detail="The Defender for Key Vault alert names no vault.",
            )
        return AlertSignal(
            **common,
            kind="acknowledged",
            reason="The security alert is not about a Key Vault; nothing to do.",
        )
    label = alert_type or "A security alert"
    return AlertSignal(
        **common,
        vaultId=vault,
        kind="revoke-and-rotate",
        reason=f"{label} on the vault: revoke exposed access and rotate secrets per policy.",
    )


def _log_v2(base: dict[str, Any], targets: list[str], context: dict[str, Any]) -> AlertSignal:
    candidates: list[object] = [*targets]
    condition = context.get("condition")
    if isinstance(condition, dict) and isinstance(condition.get("allOf"), list):
        for criterion in condition["allOf"]:
            if isinstance(criterion, dict) and isinstance(criterion.get("dimensions"), list):
                for dimension in criterion["dimensions"]:
                    if isinstance(dimension, dict):
                        candidates.append(dimension.get("value"))
    vault = _first_vault(candidates)
    common = {**base, "source": "log-alerts-v2"}
    if vault is None:
        return AlertSignal(
            **common,
            kind="acknowledged",
            reason="The log search alert names no Key Vault (in target ids or dimensions); nothing to do.",
        )
    return AlertSignal(
        **common,
        vaultId=vault,
        kind="recheck-vault",
        reason="A log search alert names the vault; re-check it.",
    )


# --- Defender for Cloud SecurityAlert record (continuous export / Log Analytics) -----------------


def _parse_security_alert_record(payload: dict[str, Any]) -> AlertSignal:
    alert_type = _text(payload, "AlertType", "$.AlertType", required=True)
    alert_id = _first_text(payload, ("SystemAlertId", "VendorOriginalId", "AlertId"))
    if alert_id is None:
        raise validation_failed([FieldError("$.SystemAlertId", "is required")])
    _check_alert_id(alert_id, "$.SystemAlertId")
    candidates: list[object] = [
        payload.get("AzureResourceId"),
        payload.get("ResourceId"),
        payload.get("CompromisedEntity"),
    ]
    candidates.extend(_entity_resource_ids(payload.get("ResourceIdentifiers")))
    candidates.extend(_entity_resource_ids(payload.get("Entities")))
    status = _first_text(payload, ("Status",)) or ""
    common: dict[str, Any] = {
        "alertId": alert_id,
        "source": "defender-export",
        "alertType": alert_type,
        "monitoringService": "Microsoft Defender for Cloud",
        "alertRule": _first_text(payload, ("AlertDisplayName", "AlertName", "DisplayName")),
        "firedAt": _first_text(payload, ("TimeGenerated", "StartTimeUtc", "StartTime")),
    }
    if status.lower() in ("resolved", "dismissed"):
        return AlertSignal(
            **{**common, "monitorCondition": "Resolved"},
            kind="acknowledged",
            reason=f"The security alert is {status.lower()}; nothing to do.",
        )
    return _defender_signal(common, alert_type, _first_vault(candidates))


def _entity_resource_ids(raw: object) -> list[object]:
    """`Entities` / `ResourceIdentifiers` come as a list or as a JSON string of one (Log Analytics)."""
    if isinstance(raw, str) and len(raw) < 200_000:
        try:
            raw = json.loads(raw)
        except ValueError:
            return []
    found: list[object] = []
    if isinstance(raw, list):
        for entity in raw[:200]:
            if isinstance(entity, dict):
                for key in ("AzureResourceId", "ResourceId", "azureResourceId", "resourceId"):
                    found.append(entity.get(key))
    return found


# --- helpers -------------------------------------------------------------------------------------


def _first_vault(candidates: Iterable[object]) -> str | None:
    for candidate in candidates:
        if isinstance(candidate, str) and len(candidate) <= 1024:
            found = ids.vault_id_in(candidate)
            if found is not None:
                return canonical_vault_id(found)
    return None


def canonical_vault_id(vault: str) -> str:
    """Alerts send ids lower-cased; ARM ids are case-insensitive. Canonical casing, lower-case GUID."""
    match = ids.VAULT_ID.match(vault)
    if match is None:
        raise ValueError("not a vault id")
    return (
        f"/subscriptions/{match['sub'].lower()}/resourceGroups/{match['rg']}"
        f"/providers/Microsoft.KeyVault/vaults/{match['vault']}"
    )


def _claims_object_id(claims: object) -> str | None:
    if isinstance(claims, str) and 0 < len(claims) < 20_000:
        try:
            claims = json.loads(claims)
        except ValueError:
            return None
    if isinstance(claims, dict):
        for key in ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid"):
            value = claims.get(key)
            if isinstance(value, str) and ids.GUID.match(value):
                return value.lower()
    return None


def _object(parent: dict[str, Any], key: str, path: str) -> dict[str, Any]:
    value = parent.get(key)
    if not isinstance(value, dict):
        raise validation_failed([FieldError(path, "is required and must be an object")])
    return value


def _text(parent: dict[str, Any], key: str, path: str, *, required: bool = False) -> str | None:
    value = parent.get(key)
    if value is None:
        if required:
            raise validation_failed([FieldError(path, "is required")])
        return None
    if not isinstance(value, str):
        if required:
            raise validation_failed([FieldError(path, "must be a string")])
        return None
    if required and not value.strip():
        raise validation_failed([FieldError(path, "must not be empty")])
    if len(value) > _MAX_TEXT:
        if required:
            raise validation_failed([FieldError(path, "is too long")])
        return value[:_MAX_TEXT]
    return value


def _check_alert_id(alert_id: str, path: str) -> None:
    """The alert id is stored and keys the idempotency record: no control characters (NUL, CR, LF)."""
    if _CONTROL.search(alert_id):
        raise validation_failed([FieldError(path, "must not contain control characters")])


def _first_text(parent: dict[str, Any], keys: Iterable[str]) -> str | None:
    for key in keys:
        value = parent.get(key)
        if isinstance(value, str) and value.strip():
            return value[:_MAX_TEXT]
    return None


def _string_list(parent: dict[str, Any], key: str, path: str) -> list[str]:
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise validation_failed([FieldError(path, "must be an array of strings")])
    return [item for item in value[:100] if isinstance(item, str)]


__all__ = ["AlertSignal", "ProblemError", "canonical_vault_id", "parse_alert"]
