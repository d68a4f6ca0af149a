"""What every Azure service module shares: the context (state, limits, router), bearer-token
authentication per host (ARM 401 `AuthenticationFailed`, Key Vault's 401 challenge, Graph 401),
`api-version` checks, throttling, ARM authorization (403 `AuthorizationFailed`) and paging."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from emulator.azure import roles
from emulator.azure.state import AzureState
from emulator.azure.throttling import Limits, Throttler, retry_after_seconds
from emulator.tokens import bearer_claims
from emulator.wire import Handler, HttpError, Request, Response

if TYPE_CHECKING:
    from emulator.core import Emulator

ARM = r"management\.azure\.com"
KV = r"(?P<vault>[a-z0-9-]+)\.vault\.azure\.net"
GRAPH = r"graph\.microsoft\.com"
LOGIN = r"login\.microsoftonline\.com"

ARM_AUDIENCES = {"https://management.azure.com", "https://management.core.windows.net"}
KV_AUDIENCES = {"https://vault.azure.net"}
GRAPH_AUDIENCES = {"https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"}

_SUBSCRIPTION_IN_PATH = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)
_SLASHES = re.compile(r"//+")


class AzureContext:
    """Handed to every service module's `register`: state access, limits, route registration."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.throttler = Throttler()

    @property
    def limits(self) -> Limits:
        return self.emulator.limits

    @property
    def state(self) -> AzureState:
        return self.emulator.state.azure

    def route(self, host: str, method: str, path: str) -> Callable[[Handler], Handler]:
        """Registers a handler that runs under the state lock (requests arrive on many threads)."""
        lock = self.emulator.state.lock

        def decorate(handler: Handler) -> Handler:
            def locked(request: Request) -> Response:
                with lock:
                    return handler(request)

            self.emulator.router.add(host, method, path, locked, name=handler.__name__)
            return handler

        return decorate


# -- errors ---------------------------------------------------------------------------------------
def arm_error(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> HttpError:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return HttpError(status, code, message, headers=headers, payload={"error": error})


def caller_oid(request: Request) -> str:
    return str((request.caller or {}).get("oid", ""))


def caller_text(request: Request) -> str:
    claims = request.caller or {}
    return f"appid={claims.get('appid', '')};oid={claims.get('oid', '')};iss={claims.get('iss', '')}"


# -- ARM authorization ----------------------------------------------------------------------------
def arm_allowed(state: AzureState, principal_id: str, action: str, scope: str) -> bool:
    for assignment in state.assignments_for(principal_id):
        if not roles.scope_covers(assignment.scope, scope):
            continue
        definition = state.role_definitions.get(assignment.role_definition_id.lower())
        if definition is not None and definition.allows(action, data=False):
            return True
    return False


def require_arm(ctx: AzureContext, request: Request, action: str, scope: str) -> None:
    oid = caller_oid(request)
    if not arm_allowed(ctx.state, oid, action, scope):
        client = (request.caller or {}).get("appid", oid)
        raise arm_error(
            403,
            "AuthorizationFailed",
            f"The client '{client}' with object id '{oid}' does not have authorization to perform action "
            f"'{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, "
            "please refresh your credentials.",
        )


# -- paging ---------------------------------------------------------------------------------------
def page(request: Request, items: list[Any], page_size: int) -> tuple[list[Any], str | None]:
    """A page of `items` from `$skiptoken`, and the nextLink (None on the last page)."""
    try:
        offset = max(0, int(request.query.get("$skiptoken", "0")))
    except ValueError:
        raise arm_error(400, "InvalidSkipToken", "The skip token is invalid.") from None
    chunk = items[offset : offset + page_size]
    if offset + page_size >= len(items):
        return chunk, None
    query = {k: v for k, v in request.query.items() if k != "$skiptoken"}
    query["$skiptoken"] = str(offset + page_size)
    encoded = "&".join(f"{quote(k, safe='$')}={quote(v, safe='')}" for k, v in query.items())
    return chunk, f"https://{request.host}{request.path}?{encoded}"


def body_json(request: Request) -> dict[str, Any]:
    payload = request.json()
    if not isinstance(payload, dict):
        raise arm_error(
            400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
        )
    return payload


# -- middleware -----------------------------------------------------------------------------------
def _audience_ok(claims: dict[str, Any], accepted: set[str]) -> bool:
    return str(claims.get("aud", "")).rstrip("/").lower() in accepted


def make_middleware(ctx: AzureContext) -> Callable[[Request], Response | None]:
    arm_host = re.compile(ARM, re.IGNORECASE)
    kv_host = re.compile(KV, re.IGNORECASE)
    graph_host = re.compile(GRAPH, re.IGNORECASE)

    def middleware(request: Request) -> Response | None:
        host = request.host
        if arm_host.fullmatch(host):
            return _arm(ctx, request)
        match = kv_host.fullmatch(host)
        if match:
            return _keyvault(ctx, request, match.group("vault"))
        if graph_host.fullmatch(host):
            claims = bearer_claims(request.headers.get("authorization"))
            if claims is None or not _audience_ok(claims, GRAPH_AUDIENCES):
                raise HttpError(
                    401,
                    "InvalidAuthenticationToken",
                    "Access token is empty."
                    if claims is None
                    else "Access token validation failure. Invalid audience.",
                )
            request.caller = claims
        return None

    return middleware


def _arm(ctx: AzureContext, request: Request) -> Response | None:
    if "//" in request.path:  # SDKs format "/{scope}/..." with a scope that starts with "/"
        request.path = _SLASHES.sub("/", request.path)
    claims = bearer_claims(request.headers.get("authorization"))
    if claims is None:
        has_header = "authorization" in request.headers
        raise arm_error(
            401,
            "InvalidAuthenticationToken" if has_header else "AuthenticationFailed",
            "The access token is invalid."
            if has_header
            else "Authentication failed. The 'Authorization' header is missing.",
            headers={
                "WWW-Authenticate": 'Bearer authorization_uri="https://login.microsoftonline.com/'
                f'{ctx.state.tenant_id}", error="invalid_token", '
                'error_description="The authentication failed because of missing '
                "'Authorization' header.\""
            },
        )
    if not _audience_ok(claims, ARM_AUDIENCES):
        raise arm_error(
            401,
            "InvalidAuthenticationToken",
            "The access token is invalid. The audience of the token is not accepted.",
        )
    request.caller = claims
    if "api-version" not in request.query:
        raise arm_error(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if not ctx.limits.enabled:
        return None
    kind = (
        "reads"
        if request.method in {"GET", "HEAD"}
        else "deletes"
        if request.method == "DELETE"
        else "writes"
    )
    match = _SUBSCRIPTION_IN_PATH.match(request.path)
    level, scope = ("subscription", match.group(1).lower()) if match else ("tenant", "")
    allowed, remaining, wait = ctx.throttler.take_arm(
        f"{level}:{scope}", str(claims.get("oid", "")), kind, getattr(ctx.limits, f"arm_{kind}")
    )
    header = f"x-ms-ratelimit-remaining-{level}-{kind}"
    if not allowed:
        seconds = retry_after_seconds(wait)
        operation = kind[:-1]
        raise arm_error(
            429,
            "SubscriptionRequestsThrottled" if level == "subscription" else "TenantRequestsThrottled",
            f"Number of '{operation}' requests for {level} '{scope}' actor '{claims.get('oid')}' exceeded. "
            f"Please try again after '{seconds}' seconds after additional tokens are available. "
            "Refer to https://aka.ms/arm-throttling for additional information.",
            headers={"Retry-After": str(seconds), header: "0"},
        )
    request.response_headers[header] = str(remaining)
    return None


def _keyvault(ctx: AzureContext, request: Request, vault_name: str) -> Response | None:
    claims = bearer_claims(request.headers.get("authorization"))
    if claims is None or not _audience_ok(claims, KV_AUDIENCES):
        # The challenge the SDK's ChallengeAuthPolicy expects before it sends a token.
        challenge = (
            f'Bearer authorization="https://login.microsoftonline.com/{ctx.state.tenant_id}", '
            'resource="https://vault.azure.net"'
        )
        message = (
            "AKV10000: Request is missing a Bearer or PoP token."
            if claims is None
            else "AKV10022: Invalid audience."
        )
        raise HttpError(401, "Unauthorized", message, headers={"WWW-Authenticate": challenge})
    request.caller = claims
    if "api-version" not in request.query:
        raise HttpError(400, "BadParameter", "The request URI contains an invalid API version.")
    if not ctx.limits.enabled:
        return None
    vault = ctx.state.vaults.get(vault_name.lower())
    if vault is None:
        return None
    subscription = vault.subscription_id.lower()
    keys = [
        (("vault", vault.name.lower()), ctx.limits.kv_vault),
        (("subscription", subscription), ctx.limits.kv_subscription),
    ]
    if request.method == "PUT" and request.path.lower().startswith("/secrets/"):
        keys += [
            (("vault-secret-create", vault.name.lower()), ctx.limits.kv_vault_secret_creates),
            (("subscription-secret-create", subscription), ctx.limits.kv_subscription_secret_creates),
        ]
    full = ctx.throttler.take_windows(keys)
    if full is not None:
        # No Retry-After: Key Vault's throttling guidance documents none (docs/limits.md 1b).
        raise HttpError(
            429,
            "Throttled",
            f"Request was not processed because too many requests were received. "
            f"Reason: the {full} limit was reached. See https://aka.ms/kv-throttling.",
        )
    return None
