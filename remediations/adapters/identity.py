"""Who the app is: the object id (and application id) of the identity its credential signs in as.

Read from the claims of an ARM access token the credential issues (the token is cached by the
credential, so the ARM clients reuse it). The claims are only read, never trusted for
authorization: they tell the alert handler whether a Key Vault change was made by this app.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError

ARM_SCOPE = "https://management.azure.com/.default"


@dataclass(frozen=True)
class OwnIdentity:
    object_id: str | None
    application_id: str | None

    def is_caller(self, *callers: str | None) -> bool:
        """True when any of the given caller ids / names is this identity (case-insensitive)."""
        mine = {v.lower() for v in (self.object_id, self.application_id) if v}
        return any(c is not None and c.strip().lower() in mine for c in callers)


def token_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified; {} when it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    padded = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except ValueError:
        return {}
    return claims if isinstance(claims, dict) else {}


def own_identity(credential: TokenCredential) -> OwnIdentity:
    """The app's identity; both ids None when no token could be had (the caller then cannot match)."""
    try:
        token = credential.get_token(ARM_SCOPE).token
    except AzureError:
        return OwnIdentity(None, None)
    claims = token_claims(token)
    oid = claims.get("oid")
    app = claims.get("appid") or claims.get("azp")
    return OwnIdentity(
        str(oid).lower() if isinstance(oid, str) else None,
        str(app).lower() if isinstance(app, str) else None,
    )
