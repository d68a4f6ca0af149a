"""azure-core exceptions become typed failures: 404 is ResourceGone (a no-op for us), others carry status."""

from __future__ import annotations

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError
from azure.core.pipeline.transport import HttpResponse

from remediations.adapters.errors import ResourceGone, translate


class _Response(HttpResponse):
    def __init__(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        super().__init__(request=None, internal_response=None)  # type: ignore[arg-type]
        self.status_code = status
        self.headers = headers
        self.reason = "reason"
        self._body = body

    def body(self) -> bytes:
        return self._body


def test_not_found_is_resource_gone() -> None:
    error = translate("get vault", ResourceNotFoundError(response=_Response(404, {})))
    assert isinstance(error, ResourceGone) and error.status == 404


def test_throttling_keeps_retry_after_and_is_transient() -> None:
    error = translate("list", HttpResponseError(response=_Response(429, {"Retry-After": "12"})))
    assert error.status == 429 and error.retry_after == 12 and error.transient


def test_forbidden_is_not_transient_and_no_response_is() -> None:
    assert not translate("put", HttpResponseError(response=_Response(403, {}))).transient
    assert translate("put", ServiceRequestError("connection reset")).transient


class _RestResponse:
    """The part of azure.core.rest.HttpResponse that failure_from_response reads."""

    def __init__(self, status: int, text: str, headers: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.headers = headers or {}
        self._text = text

    def text(self) -> str:
        return self._text


def test_failure_from_response_of_our_rest_pipelines() -> None:
    """Graph and Power Platform answers share one mapping (it was written three times)."""
    from remediations.adapters.errors import AzureCallFailed, failure_from_response

    throttled = failure_from_response(
        "list flows",
        _RestResponse(
            429, '{"error": {"code": "TooManyRequests", "message": "slow down"}}', {"Retry-After": "2.5"}
        ),  # type: ignore[arg-type]
    )
    assert type(throttled) is AzureCallFailed and throttled.transient
    assert (throttled.status, throttled.code, throttled.message, throttled.retry_after) == (
        429,
        "TooManyRequests",
        "slow down",
        2.5,
    )
    gone = failure_from_response("get application x", _RestResponse(404, "not json"))  # type: ignore[arg-type]
    assert isinstance(gone, ResourceGone) and gone.message == "not json" and gone.code is None
    empty = failure_from_response(
        "getByIds",
        _RestResponse(503, "", {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),  # type: ignore[arg-type]
    )
    assert empty.message == "HTTP 503" and empty.retry_after is None
    millis = failure_from_response("x", _RestResponse(429, "{}", {"x-ms-retry-after-ms": "1500"}))  # type: ignore[arg-type]
    assert millis.retry_after == 1.5
