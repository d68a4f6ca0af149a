"""Typed failures of calls to Azure. Adapters raise these; callers turn them into Outcomes/InventoryErrors."""

from __future__ import annotations

import json
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError
from azure.core.rest import HttpResponse

from remediations.ports import AzureCallFailed, ResourceGone

# The typed failures live in the ports (the core handles them); adapters raise them from here.
__all__ = ["AzureCallFailed", "ResourceGone", "failure_from_response", "retry_after_seconds", "translate"]


def _retry_after(error: HttpResponseError) -> float | None:
    return retry_after_seconds(getattr(error.response, "headers", None))


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds to wait from `Retry-After` (or `x-ms-retry-after-ms`); None when absent or an HTTP date."""
    if headers is None:
        return None
    raw = headers.get("Retry-After") or headers.get("x-ms-retry-after-ms")
    if raw is None:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        return None  # an HTTP date; fall back to exponential backoff
    if "Retry-After" not in headers:
        seconds /= 1000.0
    return max(0.0, seconds)


def failure_from_response(operation: str, response: HttpResponse) -> AzureCallFailed:
    """A non-2xx answer of our own REST pipelines (Graph, Power Platform) as our failure: 404 is
    ResourceGone; code and message from the `{"error": {...}}` body when there is one; Retry-After kept.
    Error bodies carry no secret values (a Graph `secretText` only comes in a 200)."""
    text = response.text()
    code: str | None = None
    inner: str | None = None
    message = text[:300]
    try:
        error = json.loads(text).get("error") or {}
        code = error.get("code")
        inner = _inner_code(error.get("innererror"))
        message = str(error.get("message") or message)[:300]
    except (ValueError, AttributeError):
        pass
    cls = ResourceGone if response.status_code == 404 else AzureCallFailed
    return cls(
        operation,
        response.status_code,
        code,
        message or f"HTTP {response.status_code}",
        retry_after_seconds(response.headers),
        inner,
    )


def _inner_code(innererror: Any) -> str | None:
    """`error.innererror.code` of an error body, when it has one."""
    code = innererror.get("code") if isinstance(innererror, dict) else None
    return str(code) if code else None


def translate(operation: str, error: Exception) -> AzureCallFailed:
    """Map an azure-core exception to ours, keeping status, error code and Retry-After."""
    if isinstance(error, AzureCallFailed):
        return error
    if isinstance(error, HttpResponseError):
        status = error.status_code
        code = error.error.code if error.error is not None else None
        inner = _inner_code(getattr(error.error, "innererror", None))
        message = (error.error.message if error.error is not None else None) or error.reason or str(error)
        cls = ResourceGone if isinstance(error, ResourceNotFoundError) or status == 404 else AzureCallFailed
        return cls(operation, status, code, str(message), _retry_after(error), inner)
    if isinstance(error, ServiceRequestError):
        return AzureCallFailed(operation, None, None, str(error))
    return AzureCallFailed(operation, None, type(error).__name__, str(error))
