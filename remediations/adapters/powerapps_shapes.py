"""Power Apps admin API and BAP shapes: environments, connections (with the identity each authenticates
as) and connection permissions, mapped to the model (pure mapping; the calls are in
adapters/powerplatform.py, the Dataverse shapes in adapters/dataverse.py)."""

from __future__ import annotations

from typing import Any

from remediations.core.dlp_shape import normalised_api_id
from remediations.core.model import Connection, Environment, PrincipalKind, Share


def _principal_kind(raw: str | None) -> PrincipalKind:
    """`principal.type` of a permission: Group, ServicePrincipal (the Terraform provider's recorded
    connection shares), else a user (User, Tenant)."""
    kind = str(raw or "").lower()
    return "group" if kind == "group" else "servicePrincipal" if kind == "serviceprincipal" else "user"


def environment_from_api(
    item: dict[str, Any],
    role_holders: dict[str, tuple[str, ...]],
    principal_names: dict[str, str] | None = None,
) -> Environment:
    props = item.get("properties") or {}
    return Environment(
        id=str(item.get("id") or item["name"]),
        name=str(item["name"]),
        display_name=str(props.get("displayName") or ""),
        role_holders=role_holders,
        principal_names=principal_names or {},
    )


def connection_from_api(
    item: dict[str, Any], environment: str, app_object_ids: dict[str, str] | None = None
) -> Connection:
    """Which identity the connection authenticates as, from what the admin API shows:
    service principal (`connectionParametersSet.values["token:clientId"]`, an application id that
    `app_object_ids` maps to the object id), managed identity (`values.managedIdentity`), otherwise the
    signed-in user who created it (OAuth: `createdBy`, `authenticatedUser`)."""
    props = item.get("properties") or {}
    parameter_set = props.get("connectionParametersSet") or {}
    values = parameter_set.get("values") or {}
    set_name = str(parameter_set.get("name") or "").lower()
    created_by = (props.get("createdBy") or {}).get("id")
    creator = str(created_by).lower() if created_by else None

    def value(key: str) -> str | None:
        for k, v in values.items():
            if k.lower() == key.lower():
                raw = v.get("value") if isinstance(v, dict) else v
                return str(raw) if raw else None
        return None

    identity: str | None = creator
    kind: Any = "user"
    client_id = value("token:clientId")
    managed = value("managedIdentity")
    if "managedidentity" in set_name or managed:
        identity, kind = (managed.lower() if managed else None), "managedIdentity"
    elif "serviceprincipal" in set_name or client_id:
        app_id = (client_id or "").lower()
        identity, kind = (app_object_ids or {}).get(app_id), "servicePrincipal"
    # Key Vault connections may carry their parameters (vaultName) only under
    # `connectionParametersSet.values` (`{"name": {"value": ...}}`), e.g. certificate or service
    # principal authentication; `connectionParameters` wins where both name one.
    # Only the vault name is taken from the set: its other values can be credentials (token:*, certificates).
    vault_name = value("vaultName")
    parameters = {"vaultName": vault_name} if vault_name else {}
    parameters |= {str(k): str(v) for k, v in (props.get("connectionParameters") or {}).items()}
    return Connection(
        id=str(item["name"]),
        environment=environment,
        connector_id=normalised_api_id(
            str(props.get("apiId") or item.get("id", "").split("/connections/")[0])
        ),
        identity_principal_id=identity,
        identity_kind=kind,
        parameters=parameters,
        display_name=str(props.get("displayName") or ""),
        created_by=creator,
    )


def service_principal_client_id(item: dict[str, Any]) -> str | None:
    values = ((item.get("properties") or {}).get("connectionParametersSet") or {}).get("values") or {}
    for key, value in values.items():
        if key.lower() == "token:clientid":
            raw = value.get("value") if isinstance(value, dict) else value
            return str(raw).lower() if raw else None
    return None


def connection_share_from_api(item: dict[str, Any], environment: str, connection: str) -> Share:
    props = item.get("properties") or {}
    principal = props.get("principal") or {}
    principal_type = str(principal.get("type") or "")
    # A tenant-wide share names the tenant; PS reads the id from principal.tenantId for those.
    principal_id = principal.get("tenantId") if principal_type == "Tenant" else principal.get("id")
    return Share(
        resource_kind="connection",
        resource_id=connection,
        principal_id=str(principal_id or "").lower(),
        principal_kind=_principal_kind(principal_type),
        role=str(props.get("roleName") or ""),
        environment=environment,
        permission_id=str(item.get("id") or "") or None,
    )
