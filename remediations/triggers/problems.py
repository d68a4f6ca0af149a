"""RFC 9457 problem details: the one shape of every error body the HTTP triggers return.

Status-code conventions (README "HTTP API" repeats them):

| status | `type` suffix | when |
|---|---|---|
| 400 | `malformed-json`, `unknown-alert-schema` | body is not JSON; alert of no known schema |
| 400 | `malformed-principal` | an App Service Authentication principal header that cannot be read |
| 401 | `unauthorized` | local runner only: missing or wrong function key (Azure answers this itself) |
| 401 | `authentication-required` | a ticket that may change things, no authenticated caller, one required |
| 403 | `forbidden` | the authenticated caller holds none of the app roles required for such a ticket |
| 404 | `not-found` | unknown ticket id or route |
| 405 | `method-not-allowed` | local runner only |
| 409 | `idempotency-conflict` | same ticketId with a different body |
| 413 | `payload-too-large` | body over `MAX_BODY_BYTES`, checked before parsing |
| 415 | `unsupported-media-type` | a Content-Type other than JSON |
| 422 | `validation-error` | valid JSON, wrong types / unknown or missing fields / bad ids; `errors[]` |
| 500 | `internal-error` | a fault of ours; the body carries the correlation id only, never a traceback |

Bodies never echo submitted values (they could be secrets pasted into the wrong field): validation
errors carry the field path and a message written by us, not the input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://vaultguard.dev/problems/"
MAX_BODY_BYTES = 256 * 1024

_TITLES: dict[int, str] = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Validation failed",
    500: "Internal error",
}


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


@dataclass(frozen=True)
class Problem:
    status: int
    kind: str
    detail: str
    title: str | None = None
    instance: str | None = None
    errors: tuple[FieldError, ...] = field(default=())
    extra: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # response headers, e.g. WWW-Authenticate

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.kind,
            "title": self.title or _TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
        }
        if self.instance:
            body["instance"] = self.instance
        if self.errors:
            body["errors"] = [e.to_json() for e in self.errors]
        body.update(self.extra)
        return body

    def body(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True).encode()


class ProblemError(Exception):
    """Raised anywhere in request handling; turned into a problem+json response at the edge."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


def bad_request(detail: str, kind: str = "bad-request") -> ProblemError:
    return ProblemError(Problem(400, kind, detail))


def authentication_required(detail: str) -> ProblemError:
    # RFC 9110: a 401 names the scheme; the token is an Entra ID bearer token App Service validates.
    return ProblemError(
        Problem(401, "authentication-required", detail, headers={"WWW-Authenticate": "Bearer"})
    )


def forbidden(detail: str) -> ProblemError:
    return ProblemError(Problem(403, "forbidden", detail))


def not_found(detail: str) -> ProblemError:
    return ProblemError(Problem(404, "not-found", detail))


def conflict(detail: str) -> ProblemError:
    return ProblemError(Problem(409, "idempotency-conflict", detail))


def validation_failed(
    errors: list[FieldError], detail: str = "The request body is not valid."
) -> ProblemError:
    return ProblemError(Problem(422, "validation-error", detail, errors=tuple(errors)))


def too_large(limit: int = MAX_BODY_BYTES) -> ProblemError:
    return ProblemError(Problem(413, "payload-too-large", f"The request body is larger than {limit} bytes."))


def unsupported_media_type(got: str) -> ProblemError:
    # `got` is a media type name we print back; cap and sanitise it so nothing odd is echoed.
    safe = "".join(c for c in got[:60] if c.isalnum() or c in "/+.-")
    return ProblemError(
        Problem(415, "unsupported-media-type", f"Content-Type must be application/json, not '{safe}'.")
    )


def internal_error(correlation_id: str) -> Problem:
    return Problem(
        500,
        "internal-error",
        "The request could not be completed; quote the correlation id when reporting it.",
        extra={"correlationId": correlation_id},
    )


def pydantic_errors(errors: list[Any]) -> list[FieldError]:
    """Map pydantic `ValidationError.errors()` to field errors without echoing the input."""
    out: list[FieldError] = []
    for err in errors:
        loc = [str(part) for part in err.get("loc", ())]
        path = _json_path(loc)
        kind = str(err.get("type", ""))
        message = _MESSAGES.get(kind) or _custom_message(err) or "is not valid"
        out.append(FieldError(path, message))
    return out


def _json_path(loc: list[str]) -> str:
    path = "$"
    for part in loc:
        path += f"[{part}]" if part.isdigit() else f".{part}"
    return path


def _custom_message(err: dict[str, Any]) -> str | None:
    if err.get("type") == "value_error":
        ctx = err.get("ctx") or {}
        error = ctx.get("error")
        if error is not None:
            return str(error)
    msg = err.get("msg")
    return str(msg) if isinstance(msg, str) and "input" not in msg.lower() else None


_MESSAGES: dict[str, str] = {
    "extra_forbidden": "is not a known field",
    "missing": "is required",
    "string_type": "must be a string",
    "bool_type": "must be a boolean",
    "bool_parsing": "must be a boolean",
    "list_type": "must be an array",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "string_too_short": "is too short",
    "string_too_long": "is too long",
    "too_short": "has too few items",
    "too_long": "has too many items",
    "string_pattern_mismatch": "has characters or a shape that is not allowed",
    "int_type": "must be an integer",
    "literal_error": "is not one of the allowed values",
    "uuid_type": "must be a GUID",
    "uuid_parsing": "must be a GUID",
}
