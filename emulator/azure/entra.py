"""Entra ID (login.microsoftonline.com): the v2.0 token endpoint for the client-credentials grant,
plus the instance discovery and OpenID configuration documents msal reads first.

Tokens carry `oid` (the service principal's object id), `tid`, `appid`, `aud` (from the scope:
`https://management.azure.com/.default` -> `https://management.azure.com`) and `iss`. Errors use
the real AADSTS JSON (error, error_description, error_codes, timestamp, trace_id, correlation_id):
unknown client -> 400 AADSTS700016, bad secret -> 401 AADSTS7000215.

Users need no password flow: in-process code (the Power Platform flow runner) mints their tokens
with `user_token(state, user_oid, audience)`.
"""

from __future__ import annotations

import hmac
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

from emulator import tokens
from emulator.azure.common import LOGIN, AzureContext
from emulator.azure.state import AzureState
from emulator.wire import HttpError, Request, Response

TOKEN_LIFETIME = 3600


def _aadsts(status: int, error: str, code: int, description: str) -> HttpError:
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    payload = {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} "
        f"Timestamp: {stamp}",
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
    return HttpError(status, error, description, payload=payload)


def audience_from_scope(scope: str) -> str:
    """The resource of the first `.default` scope (msal sends "scope offline_access openid ...")."""
    for item in scope.split():
        if item.endswith("/.default"):
            return item[: -len("/.default")]
    first = scope.split(maxsplit=1)[0] if scope.split() else ""
    return first.rsplit("/", 1)[0] if "/" in first else first


def issuer(tenant_id: str) -> str:
    return f"https://sts.windows.net/{tenant_id}/"


def app_token(state: AzureState, app_id: str, object_id: str, audience: str) -> str:
    return tokens.issue(
        {
            "aud": audience,
            "iss": issuer(state.tenant_id),
            "tid": state.tenant_id,
            "oid": object_id,
            "sub": object_id,
            "appid": app_id,
            "azp": app_id,
            "appidacr": "1",
            "idtyp": "app",
            "ver": "1.0",
        },
        TOKEN_LIFETIME,
    )


def user_token(
    state: AzureState, user_oid: str, audience: str, app_id: str = "7ab7862c-4c57-491e-8a45-d52a7e023983"
) -> str:
    """A delegated token for a user (no password flow): for in-process callers such as the flow runner."""
    principal = state.principals.get(user_oid.lower())
    upn = principal.user_principal_name if principal is not None else None
    return tokens.issue(
        {
            "aud": audience,
            "iss": issuer(state.tenant_id),
            "tid": state.tenant_id,
            "oid": user_oid,
            "sub": user_oid,
            "appid": app_id,
            "idtyp": "user",
            "upn": upn,
            "unique_name": upn,
            "ver": "1.0",
        },
        TOKEN_LIFETIME,
    )


def register(ctx: AzureContext) -> None:
    route = ctx.route

    def tenant_known(tenant: str) -> bool:
        return tenant.lower() in {ctx.state.tenant_id.lower(), "common", "organizations"}

    def openid_configuration(tenant: str) -> dict[str, Any]:
        base = f"https://login.microsoftonline.com/{tenant}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"https://login.microsoftonline.com/{ctx.state.tenant_id}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "oid", "tid", "appid"],
            "kerberos_endpoint": f"{base}/kerberos",
            "tenant_region_scope": "NA",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
            "rbac_url": "https://pas.windows.net",
        }

    @route(LOGIN, "GET", r"/common/discovery/instance")
    def instance_discovery(request: Request) -> Response:
        return Response.json(
            200,
            {
                "tenant_discovery_endpoint": "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration",
                "api-version": "1.1",
                "metadata": [
                    {
                        "preferred_network": "login.microsoftonline.com",
                        "preferred_cache": "login.windows.net",
                        "aliases": [
                            "login.microsoftonline.com",
                            "login.windows.net",
                            "login.microsoft.com",
                            "sts.windows.net",
                        ],
                    }
                ],
            },
        )

    @route(LOGIN, "GET", r"/(?P<tenant>[^/]+)(?:/v2\.0)?/\.well-known/openid-configuration")
    def openid(request: Request) -> Response:
        tenant = request.params["tenant"]
        if not tenant_known(tenant):
            raise _aadsts(
                400,
                "invalid_tenant",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
            )
        return Response.json(200, openid_configuration(tenant))

    @route(LOGIN, "POST", r"/(?P<tenant>[^/]+)/oauth2(?P<v2>/v2\.0)?/token")
    def token(request: Request) -> Response:
        tenant = request.params["tenant"]
        form = {k: v[-1] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        if not tenant_known(tenant) or (
            tenant.lower() in {"common", "organizations"} and form.get("grant_type") == "client_credentials"
        ):
            raise _aadsts(
                400,
                "invalid_request",
                90002,
                f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
            )
        if form.get("grant_type") != "client_credentials":
            raise _aadsts(
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type "
                f"'{form.get('grant_type', '')}'. The emulator supports client_credentials only.",
            )
        client_id = form.get("client_id", "")
        if not client_id:
            raise _aadsts(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        if request.params.get("v2"):
            scope = form.get("scope", "")
            if not scope:
                raise _aadsts(
                    400,
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'scope'.",
                )
            audience = audience_from_scope(scope)
        else:
            audience = form.get("resource", "").rstrip("/")
        state = ctx.state
        application = state.application_by_app_id(client_id)
        principal = state.service_principal_by_app_id(client_id)
        if application is None or principal is None:
            raise _aadsts(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{state.tenant_id}'. This can happen if the application has not been installed "
                "by the administrator of the tenant or consented to by any user in the tenant. You "
                "may have sent your authentication request to the wrong tenant.",
            )
        secret = form.get("client_secret", "")
        now = time.time()
        valid = any(
            hmac.compare_digest(p.secret_text, secret) and p.start - 300 <= now <= p.end
            for p in application.passwords
        )
        if not valid:
            raise _aadsts(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the "
                "client secret value, not the client secret ID, for a secret added to app "
                f"'{client_id}'.",
            )
        access_token = app_token(state, application.app_id, principal.id, audience)
        body: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME,
            "ext_expires_in": TOKEN_LIFETIME,
            "access_token": access_token,
        }
        if not request.params.get("v2"):
            body.update({"expires_on": str(int(now) + TOKEN_LIFETIME), "resource": audience})
        return Response.json(200, body, {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})
