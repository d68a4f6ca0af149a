"""Serve recorded response bodies to a real SDK client: an azure-core transport that answers each request
with the next recorded body (200, JSON), so an adapter built on an SDK parses exactly what the recording
holds, through the SDK's own deserialisation."""

from __future__ import annotations

import io
import json
from typing import Any

import requests
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest
from azure.core.rest._requests_basic import RestRequestsTransportResponse


class RecordedTransport(RequestsTransport):
    """Answers with `bodies` in order (the last one again when the client asks for more)."""

    def __init__(self, *bodies: Any) -> None:
        super().__init__()
        self.bodies = list(bodies)
        self.requests: list[tuple[str, str]] = []
        self.sent: list[
            Any
        ] = []  # each request's JSON body (None without one): compared with recorded requests

    def send(self, request: HttpRequest, **kwargs: Any) -> RestRequestsTransportResponse:  # type: ignore[override]
        self.requests.append((request.method, request.url))
        self.sent.append(json.loads(request.body) if request.body else None)
        body = self.bodies.pop(0) if len(self.bodies) > 1 else self.bodies[0]
        return answer(request, 200, body, stream=bool(kwargs.get("stream")))


def answer(
    request: HttpRequest, status: int, body: Any, *, stream: bool = False
) -> RestRequestsTransportResponse:
    """The response a real transport would hand the SDK: `body` as JSON, or no body at all (None)."""
    raw = requests.Response()
    raw.status_code = status
    raw._content = b"" if body is None else json.dumps(body).encode()
    raw.raw = io.BytesIO(raw._content)
    if body is not None:
        raw.headers["content-type"] = "application/json"
    raw.url = request.url
    response = RestRequestsTransportResponse(request=request, internal_response=raw)
    if not stream:
        response.read()  # as RequestsTransport does for a non-streamed call
    return response


class StaticCredential:
    """A token for any scope: the recorded transport does not look at it."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("recorded", 2**31)

    def get_token_info(self, *scopes: str, **kwargs: Any) -> AccessTokenInfo:
        return AccessTokenInfo("recorded", 2**31)
