"""Unsigned but well-formed JWTs (alg "none" is not accepted by real clients for validation, but
clients never validate access tokens: they only carry them). The emulator decodes the claims to
know the caller (`oid`, `tid`, `appid`, `aud`)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(claims: dict[str, Any], lifetime: int = 3600) -> str:
    now = int(time.time())
    body = {"iat": now, "nbf": now, "exp": now + lifetime, "uti": uuid.uuid4().hex, **claims}
    header = {"typ": "JWT", "alg": "RS256", "kid": "vaultguard-emulator"}
    signature = _b64(b"emulator-signature")
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}.{signature}"


def decode(token: str) -> dict[str, Any] | None:
    """Claims of a token this emulator issued, or None when malformed or expired."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(claims, dict) or int(claims.get("exp", 0)) < time.time():
        return None
    return claims


def bearer_claims(authorization: str | None) -> dict[str, Any] | None:
    if not authorization or not authorization.lower().startswith("bearer "):
        return None
    return decode(authorization[7:].strip())
