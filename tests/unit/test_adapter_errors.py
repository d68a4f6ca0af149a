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
