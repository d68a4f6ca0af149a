"""Helpers shared by the Power Platform services: bearer authentication, admin checks, paging,
principal rendering and the error shapes the real services answer with."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from emulator.tokens import bearer_claims
from emulator.wire import HttpError, Request, Response

if TYPE_CHECKING:
    from emulator.state import State

FLOW_HOST = r"api\.flow\.microsoft\.com"
POWERAPPS_HOST = r"api\.powerapps\.com"
BAP_HOST = r"api\.bap\.microsoft\.com"

# Token audiences (Microsoft.PowerApps.RestClientModule.psm1 asks for the `service.*` ones; other
# clients use the API hosts themselves). The trailing slash is optional, as in Entra.
FLOW_AUDIENCES = frozenset({"https://service.flow.microsoft.com", "https://api.flow.microsoft.com"})
POWERAPPS_AUDIENCES = frozenset(
    {
        "https://service.powerapps.com",
        "https://api.powerapps.com",
        "https://api.bap.microsoft.com",
    }
)


def authenticate(request: Request, audiences: frozenset[str]) -> dict[str, Any]:
    """The caller's claims; 401 when the token is missing, malformed, expired or for another audience."""
    header = request.headers.get("authorization")
    if not header:
        raise HttpError(
            401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
        )
    claims = bearer_claims(header)
    if claims is None:
        raise HttpError(401, "InvalidAuthenticationToken", "The access token is invalid or expired.")
    audience = str(claims.get("aud", "")).rstrip("/")
    if audience not in audiences:
        raise HttpError(
            401,
            "InvalidAuthenticationTokenAudience",
            f"The access token has been obtained for the wrong audience or resource '{audience}'.",
        )
    if not claims.get("oid"):
        raise HttpError(401, "InvalidAuthenticationToken", "The access token has no 'oid' claim.")
    request.caller = claims
    return claims


def caller_oid(claims: dict[str, Any]) -> str:
    return str(claims["oid"])


def is_tenant_admin(state: State, claims: dict[str, Any]) -> bool:
    """Power Platform / Global administrators, registered management apps, and the emulator's
    admin service principal (whose credentials `Emulator.env` hands to the app under test)."""
    pp = state.powerplatform
    appid = str(claims.get("appid") or claims.get("azp") or "")
    return (
        caller_oid(claims) in pp.admins
        or appid in pp.management_apps
        or (bool(appid) and appid == state.azure.admin_client_id)
    )


def require_admin(state: State, claims: dict[str, Any], environment: str | None = None) -> None:
    """`scopes/admin` routes: tenant admins, or System Administrators of that environment."""
    if is_tenant_admin(state, claims):
        return
    if environment is not None:
        env = state.powerplatform.environments.get(environment)
        principals = state.principals_of(caller_oid(claims))
        if env is not None and "System Administrator" in env.roles_of(principals):
            return
    raise HttpError(
        403,
        "Forbidden",
        f"The caller with object id '{caller_oid(claims)}' does not have permission to perform "
        "this action: it requires the Power Platform administrator role.",
    )


def page(request: Request, items: list[Any], size: int) -> tuple[list[Any], str | None]:
    """Slices `items` by `$skiptoken` (an offset) and `$top`; returns the page and the nextLink."""
    try:
        start = max(0, int(request.query.get("$skiptoken", "0")))
        top = int(request.query.get("$top", str(size)))
    except ValueError:
        raise HttpError(400, "InvalidQueryParameter", "$top and $skiptoken must be integers.") from None
    top = max(1, min(top, size))
    chunk = items[start : start + top]
    if start + top >= len(items):
        return chunk, None
    query = {k: v for k, v in request.query.items() if k != "$skiptoken"}
    query["$skiptoken"] = str(start + top)
    return chunk, f"https://{request.host}{request.path}?{urlencode(query)}"


def paged_response(
    request: Request, items: list[Any], size: int, render: Callable[[Any], dict[str, Any]]
) -> Response:
    """One page of `items` as `{"value": [...], "nextLink": ...}`, the shape of every PP list API."""
    chunk, next_link = page(request, items, size)
    body: dict[str, Any] = {"value": [render(item) for item in chunk]}
    if next_link:
        body["nextLink"] = next_link
    return Response.json(200, body)


def principal(state: State, object_id: str, principal_type: str | None = None) -> dict[str, Any]:
    """`{id, displayName, email, type, tenantId}` as the permissions APIs render a principal."""
    info = state.powerplatform.directory.get(object_id, {})
    rendered: dict[str, Any] = {
        "id": object_id,
        "type": principal_type or info.get("type", "User"),
        "tenantId": state.azure.tenant_id,
    }
    if info.get("displayName"):
        rendered["displayName"] = info["displayName"]
    if info.get("email"):
        rendered["email"] = info["email"]
    return rendered


def api_version(request: Request) -> str:
    """Every Power Platform route requires `api-version` (the value is not checked strictly)."""
    version = request.query.get("api-version")
    if not version:
        raise HttpError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    return version
