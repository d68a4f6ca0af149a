"""HTTP plumbing shared by the HTTP functions: body limits, JSON parsing, responses, the error edge."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import azure.functions as func

from remediations.triggers import observability
from remediations.triggers.problems import (
    MAX_BODY_BYTES,
    PROBLEM_MEDIA_TYPE,
    Problem,
    ProblemError,
    bad_request,
    internal_error,
    too_large,
    unsupported_media_type,
)
from remediations.triggers.runs import RunStore
from remediations.triggers.storage import StorageNotConfigured

_JSON_TYPES = ("application/json",)

Handler = Callable[[func.HttpRequest, observability.InvocationContext], func.HttpResponse]


def read_json(req: func.HttpRequest, max_bytes: int = MAX_BODY_BYTES) -> object:
    """The decoded JSON body. 413 over the limit (checked before parsing), 415, 400 malformed."""
    length = req.headers.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > max_bytes:
        raise too_large(max_bytes)
    body = req.get_body() or b""
    if len(body) > max_bytes:
        raise too_large(max_bytes)
    content_type = (req.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    if content_type and content_type not in _JSON_TYPES and not content_type.endswith("+json"):
        raise unsupported_media_type(content_type)
    if not body.strip():
        raise bad_request("The request body is empty; send a JSON object.", kind="malformed-json")
    try:
        text = body.decode("utf-8-sig")
        return json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        position = (
            f" (line {error.lineno}, column {error.colno})" if isinstance(error, json.JSONDecodeError) else ""
        )
        raise bad_request(
            f"The request body is not valid UTF-8 JSON{position}.", kind="malformed-json"
        ) from None


def run_store() -> RunStore:
    """The run store, or a 503 problem pointing at the health check when storage is not configured."""
    try:
        return RunStore.from_env()
    except StorageNotConfigured as error:
        observability.logger().error("run store not configured: %s", error)
        raise ProblemError(
            Problem(
                503, "not-configured", "Storage for the run store is not configured; see GET /api/health."
            )
        ) from None


def _reject_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None, correlation_id: str | None = None
) -> func.HttpResponse:
    all_headers = dict(headers or {})
    if correlation_id:
        all_headers["x-correlation-id"] = correlation_id
    return func.HttpResponse(
        json.dumps(body, sort_keys=True, default=str),
        status_code=status,
        headers=all_headers,
        mimetype="application/json",
        charset="utf-8",
    )


def problem_response(
    problem: Problem, correlation_id: str | None = None, instance: str | None = None
) -> func.HttpResponse:
    if instance and not problem.instance:
        problem = dataclasses.replace(problem, instance=instance)
    headers = dict(problem.headers)
    if correlation_id:
        headers["x-correlation-id"] = correlation_id
    return func.HttpResponse(
        problem.body(),
        status_code=problem.status,
        headers=headers,
        mimetype=PROBLEM_MEDIA_TYPE,
        charset="utf-8",
    )


def _path_of(url: str) -> str:
    path = url.split("://", 1)[-1]
    path = "/" + path.split("/", 1)[1] if "/" in path else "/"
    return path.split("?", 1)[0][:300]


def handle(trigger: str, req: func.HttpRequest, handler: Handler) -> func.HttpResponse:
    """Run a handler in an invocation context: ProblemError -> problem+json, anything else -> bare 500."""
    correlation_id = observability.correlation_id_from(dict(req.headers))
    with observability.invocation(trigger, correlation_id) as context:
        instance = _path_of(req.url)
        try:
            return handler(req, context)
        except ProblemError as error:
            level = 40 if error.problem.status >= 500 else 20
            observability.logger().log(
                level,
                "%s %s -> %d %s",
                req.method,
                instance,
                error.problem.status,
                error.problem.kind,
                extra={"http_status": error.problem.status, "problem_type": error.problem.kind},
            )
            return problem_response(error.problem, context.correlation_id, instance)
        except Exception:  # noqa: BLE001 - the error edge: logged with traceback, answered as a bare 500
            # A fault of ours: logged with the traceback (server side only), answered without it.
            observability.logger().exception("%s %s failed", req.method, instance)
            return problem_response(internal_error(context.correlation_id), context.correlation_id, instance)
