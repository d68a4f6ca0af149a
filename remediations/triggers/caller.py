"""Who called: the principal App Service Authentication (Easy Auth) puts in front of the ticket API.

Easy Auth validates the caller's token, strips any client-sent copies of these headers and injects:

| header | what |
|---|---|
| `X-MS-CLIENT-PRINCIPAL-ID` | the identity provider's id of the caller (Entra ID: the object id) |
| `X-MS-CLIENT-PRINCIPAL-NAME` | a readable name (UPN, e-mail; absent for an app calling as itself) |
| `X-MS-CLIENT-PRINCIPAL-IDP` | the identity provider (`aad`) |
| `X-MS-CLIENT-PRINCIPAL` | base64 JSON `{auth_typ, claims: [{typ, val}], name_typ, role_typ}` |

Everything here is pure: `parse_caller` turns headers into a `Caller` (or None when there are none,
400 `malformed-principal` when they cannot be read), `authorize_write` decides 401/403 for a ticket
that may change things, `attribute` decides what the run records as its requester. Whether the headers
can be trusted at all is the deployment's to say (`AppSettings.trusts_principal_headers`): without Easy
Auth in front anyone can send them, so they are then ignored, never believed.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from remediations.triggers.problems import ProblemError, authentication_required, bad_request, forbidden

PRINCIPAL = "x-ms-client-principal"
PRINCIPAL_ID = "x-ms-client-principal-id"
PRINCIPAL_NAME = "x-ms-client-principal-name"
PRINCIPAL_IDP = "x-ms-client-principal-idp"
PRINCIPAL_HEADERS = (PRINCIPAL, PRINCIPAL_ID, PRINCIPAL_NAME, PRINCIPAL_IDP)

ANONYMOUS = "anonymous (function key)"
# Entra ID puts the object id in either claim type, depending on the token version and claim mapping.
OBJECT_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
DEFAULT_ROLE_TYPE = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
# Entra ID v2 tokens carry app roles as `roles` claims while role_typ still names the long type.
ROLES_CLAIM = "roles"
NAME_CLAIMS = ("preferred_username", "name", "upn")
MAX_PRINCIPAL_BYTES = 64 * 1024  # Easy Auth's header with a large group list stays well below this
MAX_TEXT = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class Caller(BaseModel):
    """The authenticated caller, as App Service Authentication named it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    objectId: str = Field(description="The identity provider's id of the caller (Entra ID: object id).")
    name: str | None = Field(default=None, description="X-MS-CLIENT-PRINCIPAL-NAME (UPN, e-mail).")
    identityProvider: str | None = Field(default=None, description="X-MS-CLIENT-PRINCIPAL-IDP, e.g. aad.")
    authType: str | None = Field(default=None, description="`auth_typ` of X-MS-CLIENT-PRINCIPAL.")
    roles: list[str] = Field(
        default_factory=list, description="App roles: the principal's claims of its `role_typ` (or `roles`)."
    )

    @property
    def display(self) -> str:
        """How audit rows and results name the caller: `name (object id)`, or the id alone."""
        if self.name and self.name.casefold() != self.objectId.casefold():
            return f"{self.name} ({self.objectId})"
        return self.objectId

    def is_named_by(self, declared: str) -> bool:
        """Whether a self-declared requester names this caller (its name, id or display form)."""
        wanted = declared.strip().casefold()
        return wanted in {v.casefold() for v in (self.objectId, self.name, self.display) if v}


def has_principal_headers(headers: Mapping[str, str]) -> bool:
    return any(k.lower() in PRINCIPAL_HEADERS for k in headers)


def parse_caller(headers: Mapping[str, str]) -> Caller | None:
    """The caller the principal headers name; None without any. Header names in any case.

    The object id comes from the principal's object-id claim when it has one, else
    X-MS-CLIENT-PRINCIPAL-ID; the name from X-MS-CLIENT-PRINCIPAL-NAME, else the claim of `name_typ`."""
    lowered = {k.lower(): v for k, v in headers.items() if k.lower() in PRINCIPAL_HEADERS}
    if not lowered:
        return None
    id_header, name_header, provider_header = (
        _header(lowered, h) for h in (PRINCIPAL_ID, PRINCIPAL_NAME, PRINCIPAL_IDP)
    )
    principal = _decode(lowered[PRINCIPAL]) if PRINCIPAL in lowered else {}
    claims = _claims(principal)
    name_type = _optional_text(principal.get("name_typ"), "name_typ")
    role_type = _optional_text(principal.get("role_typ"), "role_typ") or DEFAULT_ROLE_TYPE
    auth_type = _optional_text(principal.get("auth_typ"), "auth_typ")
    object_id = next((v for t, v in claims if t in OBJECT_ID_CLAIMS), None) or id_header
    if not object_id:
        raise _malformed("The principal headers name no caller id (X-MS-CLIENT-PRINCIPAL-ID).")
    name = name_header or next(
        (v for t, v in claims if t == name_type or (name_type is None and t in NAME_CLAIMS)), None
    )
    provider = provider_header or auth_type
    roles = sorted({v for t, v in claims if t in (role_type, ROLES_CLAIM)})
    return Caller(
        objectId=_text(object_id, "the caller id"),
        name=_text(name, "the caller name") if name else None,
        identityProvider=_text(provider, "the identity provider") if provider else None,
        authType=_text(auth_type, "auth_typ") if auth_type else None,
        roles=[_text(r, "a role claim") for r in roles],
    )


def caller_from(headers: Mapping[str, str], *, trusted: bool) -> tuple[Caller | None, tuple[str, ...]]:
    """The caller when the deployment trusts the headers; else None and a note that they were ignored."""
    if trusted:
        return parse_caller(headers), ()
    if has_principal_headers(headers):
        return None, (
            "X-MS-CLIENT-PRINCIPAL headers were ignored: App Service Authentication is not known to be "
            "in front of this app (WEBSITE_AUTH_ENABLED unset, VAULTGUARD_REQUIRE_AUTHENTICATED_CALLER "
            "false), so anyone could have sent them; the requester is as declared",
        )
    return None, ()


def asks_for_changes(payload: object) -> bool:
    """Whether a ticket body may lead to writes. `dryRun` defaults to true, so only a body that sets it
    to anything but true may; this is judged before validation, so a wrong type counts as a write."""
    return isinstance(payload, dict) and "dryRun" in payload and payload["dryRun"] is not True


def authorize_write(caller: Caller | None, *, required: bool, allowed_roles: Collection[str]) -> None:
    """401 without a caller where one is required (allowed roles imply it); 403 without an allowed role."""
    if caller is None:
        if required or allowed_roles:
            raise authentication_required(
                "This deployment applies tickets (dryRun false) only for an authenticated caller: call "
                "through App Service Authentication with an Entra ID token for the API "
                "(Authorization: Bearer) besides the function key. A dry run needs no caller."
            )
        return
    if allowed_roles and not set(caller.roles) & set(allowed_roles):
        raise forbidden(
            "The caller holds none of the app roles this deployment requires to apply tickets "
            f"(dryRun false): {', '.join(sorted(allowed_roles))}. A dry run needs no role."
        )


@dataclass(frozen=True)
class Attribution:
    """Who a ticket's run is recorded as. With an authenticated caller the requester is the caller;
    a body `requester` naming someone else is kept, never believed, as `declared_requester`."""

    caller: Caller | None = None
    requester: str | None = None
    declared_requester: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def audit_caller(self) -> str:
        return self.requester or ANONYMOUS


def attribute(caller: Caller | None, declared: str | None, notes: tuple[str, ...] = ()) -> Attribution:
    if caller is None:
        return Attribution(requester=declared, notes=notes)
    disagrees = declared is not None and declared.strip() != "" and not caller.is_named_by(declared)
    return Attribution(
        caller=caller,
        requester=caller.display,
        declared_requester=declared if disagrees else None,
        notes=notes,
    )


# --- parsing helpers -----------------------------------------------------------------------------


def _malformed(detail: str) -> ProblemError:
    return bad_request(detail, kind="malformed-principal")


def _decode(value: str) -> dict[str, Any]:
    raw = value.strip()
    if len(raw) > MAX_PRINCIPAL_BYTES:
        raise _malformed(f"X-MS-CLIENT-PRINCIPAL is longer than {MAX_PRINCIPAL_BYTES} bytes.")
    try:
        # Easy Auth sends standard base64; a URL-safe or unpadded form is read the same way.
        padded = raw.replace("-", "+").replace("_", "/") + "=" * (-len(raw) % 4)
        decoded: object = json.loads(base64.b64decode(padded, validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError):
        raise _malformed("X-MS-CLIENT-PRINCIPAL is not base64-encoded UTF-8 JSON.") from None
    if not isinstance(decoded, dict):
        raise _malformed("X-MS-CLIENT-PRINCIPAL must decode to a JSON object.")
    return decoded


def _claims(principal: dict[str, Any]) -> list[tuple[str, str]]:
    raw = principal.get("claims", [])
    if not isinstance(raw, list):
        raise _malformed("X-MS-CLIENT-PRINCIPAL `claims` must be an array.")
    claims: list[tuple[str, str]] = []
    for item in raw:
        if not (
            isinstance(item, dict) and isinstance(item.get("typ"), str) and isinstance(item.get("val"), str)
        ):
            raise _malformed(
                "Each X-MS-CLIENT-PRINCIPAL claim must be an object with string `typ` and `val`."
            )
        claims.append((item["typ"], item["val"]))
    return claims


def _optional_text(value: object, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _malformed(f"X-MS-CLIENT-PRINCIPAL `{what}` must be a string.")
    return value or None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # Checked even when a claim wins over it: a bad injected header is a reason to stop, not to skip.
    value = headers.get(name, "").strip()
    return _text(value, name.upper()) if value else None


def _text(value: str, what: str) -> str:
    # These land in audit rows and logs: nothing that could forge a line, nothing unbounded.
    if len(value) > MAX_TEXT or _CONTROL.search(value):
        raise _malformed(f"{what[0].upper()}{what[1:]} is too long or holds control characters.")
    return value
