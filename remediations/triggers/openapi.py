"""Build the OpenAPI 3.1 document of the HTTP API from the pydantic models.

`python -m remediations.triggers.openapi` rewrites `openapi.json` beside this file; a test fails
when the committed file differs from what `build()` returns.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from remediations import __version__
from remediations.triggers.approval import ApprovalRequest
from remediations.triggers.deliveries import AlertResult
from remediations.triggers.tickets import TicketRequest, TicketResult

PATH = Path(__file__).with_name("openapi.json")
_REF = "#/components/schemas/{model}"

_PROBLEM: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details (application/problem+json).",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "correlationId": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["path", "message"],
                "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
_RUNS: dict[str, Any] = {
    "type": "object",
    "required": ["runs"],
    "properties": {
        "runs": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "kind": {"enum": ["ticket", "alert", "scope", "event"]},
                    "id": {"type": "string"},
                    "status": {"type": "string"},
                    "createdAt": {"type": "string", "format": "date-time"},
                    "dryRun": {"type": ["boolean", "null"]},
                },
            },
        }
    },
}


def _problems(*codes: int, **overrides: str) -> dict[str, Any]:
    """Problem responses; `overrides` (`s400="..."`) replace a status's description for one operation."""
    descriptions = {
        400: "Malformed JSON, or an alert of no known schema",
        401: "A ticket that may change things (dryRun not true) without an authenticated caller, where "
        "the deployment requires one (VAULTGUARD_REQUIRE_AUTHENTICATED_CALLER or "
        "VAULTGUARD_ALLOWED_CALLER_ROLES); header WWW-Authenticate: Bearer",
        403: "The authenticated caller holds none of the app roles in VAULTGUARD_ALLOWED_CALLER_ROLES "
        "(only for a ticket that may change things)",
        404: "Not found",
        409: "The ticketId was used with a different body",
        413: "Body larger than 256 KiB",
        415: "Content-Type is not JSON",
        422: "Validation failed; `errors` names each field",
        500: "Internal error; the body carries a correlation id",
        503: "Storage not configured",
    }
    ref = {"$ref": _REF.format(model="Problem")}
    return {
        str(code): {
            "description": overrides.get(f"s{code}", descriptions[code]),
            "content": {"application/problem+json": {"schema": ref}},
        }
        for code in codes
    }


def _json(model: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model=model)}}},
    }


_CALLER = (
    "Behind App Service Authentication (Easy Auth, infra `enableEntraAuth`) callers also send an Entra ID "
    "token for `api://<clientId>` (Authorization: Bearer). App Service then injects "
    "X-MS-CLIENT-PRINCIPAL-ID, -NAME, -IDP and X-MS-CLIENT-PRINCIPAL (base64 JSON of the token's claims) "
    "and strips client-sent copies; clients never send these headers. When the deployment trusts them "
    "(WEBSITE_AUTH_ENABLED, or callers required), the ticket's `requester`, `caller` and its audit rows "
    "name that principal; a body `requester` naming someone else is kept as `declaredRequester` and never "
    "used. Otherwise they are ignored (a note says so) and `requester` is the body's, as declared. With "
    "VAULTGUARD_REQUIRE_AUTHENTICATED_CALLER (or VAULTGUARD_ALLOWED_CALLER_ROLES) a ticket with `dryRun` "
    "other than true needs such a caller (401), holding one of the allowed app roles (403); dry runs "
    "need neither."
)


_APPROVAL = (
    "The body names the dry run's `planHash`. The approver is the caller App Service Authentication "
    "authenticated (401 without one: approvals fail closed), holds one of VAULTGUARD_APPROVER_ROLES when "
    "set (403) and is not the ticket's requester (403). Each action of the plan is written only if its "
    "target still shows the `before` state the plan was made from (re-read before the writes, and for "
    "access policies again under the vault's lease); otherwise it is skipped as drifted. Nothing is "
    "planned anew. Every write is audited before and after, naming the approver."
)
# The problems of an endpoint that may write: bad input, the caller's rights, conflicts, limits, faults.
_WRITE_PROBLEMS = (400, 401, 403, 409, 413, 415, 422, 500, 503)
_TICKET_ID = {
    "name": "ticketId",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
}


def build() -> dict[str, Any]:
    _, schemas = models_json_schema(
        [
            (TicketRequest, "validation"),
            (TicketResult, "serialization"),
            (AlertResult, "serialization"),
            (ApprovalRequest, "validation"),
        ],
        ref_template=_REF,
    )
    components = dict(sorted(schemas.get("$defs", {}).items()))
    components["Problem"] = _PROBLEM
    components["RunList"] = _RUNS
    components["CommonAlert"] = {
        "type": "object",
        "description": "Azure Monitor common alert schema, or a Defender for Cloud SecurityAlert record.",
        "additionalProperties": True,
    }
    key: list[dict[str, list[str]]] = [{"functionKey": []}, {"functionKeyQuery": []}]
    key_and_token = [*key, {"functionKey": [], "entraId": []}, {"functionKeyQuery": [], "entraId": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "vaultguard",
            "version": __version__,
            "description": "Finds and fixes the ways Azure Key Vault secrets leak through Power Automate.",
        },
        "servers": [{"url": "/api"}],
        "security": key,
        "paths": {
            "/remediations": {
                "post": {
                    "operationId": "submitTicket",
                    "summary": "Submit a remediation ticket (idempotent by ticketId)",
                    "description": _CALLER,
                    "security": key_and_token,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": _REF.format(model="TicketRequest")}}
                        },
                    },
                    "responses": {
                        "200": _json(
                            "TicketResult",
                            "A dry run (asked for, or forced by the deployment: see dryRunForcedBy): the "
                            "plan, nothing changed. Also the stored result of an earlier request with the "
                            "same ticketId and body (header Idempotent-Replayed: true): changes nothing",
                        ),
                        "202": _json(
                            "TicketResult",
                            "Changes were applied: plan and outcomes in the body; the result is at Location",
                        ),
                        **_problems(
                            *_WRITE_PROBLEMS,
                            s400="Malformed JSON, or an X-MS-CLIENT-PRINCIPAL header (set by App Service "
                            "Authentication) that cannot be read",
                        ),
                    },
                },
                "get": {
                    "operationId": "listRuns",
                    "summary": "Recent runs, newest first",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                        },
                        {
                            "name": "kind",
                            "in": "query",
                            "schema": {"enum": ["ticket", "alert", "scope", "event", "approval"]},
                        },
                    ],
                    "responses": {"200": _json("RunList", "Runs"), **_problems(422, 503)},
                },
            },
            "/remediations/{ticketId}": {
                "get": {
                    "operationId": "getTicket",
                    "summary": "The stored result of a ticket",
                    "parameters": [_TICKET_ID],
                    "responses": {"200": _json("TicketResult", "The ticket"), **_problems(404, 503)},
                }
            },
            "/remediations/{ticketId}/approve": {
                "post": {
                    "operationId": "approvePlan",
                    "summary": "Apply exactly the plan a dry-run ticket pinned (idempotent by ticketId)",
                    "description": _APPROVAL,
                    "security": [{"functionKey": [], "entraId": []}, {"functionKeyQuery": [], "entraId": []}],
                    "parameters": [_TICKET_ID],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": _REF.format(model="ApprovalRequest")}}
                        },
                    },
                    "responses": {
                        "200": _json(
                            "TicketResult",
                            "This plan was approved before (header Idempotent-Replayed: true): the stored "
                            "result, nothing written again",
                        ),
                        "202": _json(
                            "TicketResult",
                            "The pinned plan was applied: outcomes in the body (a drifted action is "
                            "`skipped` with an error starting `drifted`)",
                        ),
                        **_problems(
                            *_WRITE_PROBLEMS,
                            404,
                            s401="No authenticated approver (App Service Authentication)",
                            s403="The approver holds no VAULTGUARD_APPROVER_ROLES role, or is the requester",
                            s409="planHash is not this ticket's plan, or the ticket is not a planned dry run",
                        ),
                    },
                },
                "get": {
                    "operationId": "getApproval",
                    "summary": "The stored result of a ticket's approval",
                    "parameters": [_TICKET_ID],
                    "responses": {"200": _json("TicketResult", "The approval's run"), **_problems(404, 503)},
                },
            },
            "/alerts": {
                "post": {
                    "operationId": "receiveAlert",
                    "summary": "Azure Monitor common alert schema (action group) or Defender SecurityAlert",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": _REF.format(model="CommonAlert")}}
                        },
                    },
                    "responses": {
                        "200": _json("AlertResult", "Already handled: the stored result"),
                        "202": _json("AlertResult", "Parsed; acknowledged or handed to the engine"),
                        **_problems(400, 413, 415, 422, 500, 503),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": {"description": "OK"}},
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Version and configuration problems (by setting name)",
                    "responses": {"200": {"description": "OK"}, "503": {"description": "Degraded"}},
                }
            },
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
                "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
                "entraId": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "Entra ID token for api://<clientId>, validated by App Service "
                    "Authentication when the deployment enables it (infra enableEntraAuth); in addition to "
                    "the function key.",
                },
            },
        },
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--check"]:
        if PATH.read_text(encoding="utf-8") != render():
            print(f"{PATH} is out of date: run python -m remediations.triggers.openapi", file=sys.stderr)
            return 1
        return 0
    PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
