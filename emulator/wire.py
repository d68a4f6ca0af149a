"""HTTP plumbing shared by every emulated service: Request, Response, Router, error envelopes."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Request:
    method: str
    host: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)  # named groups from the route match
    caller: dict[str, Any] | None = None  # decoded token claims, set by services that authenticate

    @classmethod
    def from_target(
        cls, method: str, host: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> Request:
        path, _, raw_query = target.partition("?")
        query = {k: v[-1] for k, v in parse_qs(raw_query, keep_blank_values=True).items()}
        return cls(
            method=method.upper(),
            host=host.lower().split(":")[0],
            path=path,
            query=query,
            headers={k.lower(): v for k, v in headers.items()},
            body=body,
        )

    def json(self) -> Any:
        """The body as JSON; raises BadRequest (400) on anything else."""
        invalid = HttpError(
            400, "InvalidRequestContent", "The request content was invalid and could not be deserialized."
        )
        if not self.body:
            raise invalid
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise invalid from None


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
        merged = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        return cls(status, json.dumps(payload).encode(), merged)

    @classmethod
    def empty(cls, status: int = 204, headers: Mapping[str, str] | None = None) -> Response:
        return cls(status, b"", dict(headers or {}))


class HttpError(Exception):
    """Raised by handlers; rendered in the ARM/Key Vault/Graph error envelope `{"error": {...}}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
        inner: dict[str, Any] | None = None,
        payload: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.inner = inner
        self.payload = payload  # a whole custom body (e.g. AADSTS errors), when set

    def to_response(self) -> Response:
        if self.payload is not None:
            return Response.json(self.status, self.payload, self.headers)
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner is not None:
            error["innererror"] = self.inner
        return Response.json(self.status, {"error": error}, self.headers)


Handler = Callable[[Request], Response]


@dataclass
class Route:
    host: re.Pattern[str]
    method: str
    path: re.Pattern[str]
    handler: Handler
    name: str


class Router:
    """Routes by host regex, method and path regex (both fully matched, case-insensitive paths as ARM)."""

    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, host: str, method: str, path: str, handler: Handler, name: str | None = None) -> None:
        self.routes.append(
            Route(
                host=re.compile(host, re.IGNORECASE),
                method=method.upper(),
                path=re.compile(path, re.IGNORECASE),
                handler=handler,
                name=name or handler.__name__,
            )
        )

    def route(self, host: str, method: str, path: str) -> Callable[[Handler], Handler]:
        def decorate(handler: Handler) -> Handler:
            self.add(host, method, path, handler)
            return handler

        return decorate

    def resolve(self, request: Request) -> tuple[Route, dict[str, str]]:
        path_matched = False
        for route in self.routes:
            host_match = route.host.fullmatch(request.host)
            if host_match is None:
                continue
            path_match = route.path.fullmatch(request.path)
            if path_match is None:
                continue
            path_matched = True
            if route.method != request.method:
                continue
            return route, {**host_match.groupdict(), **path_match.groupdict()}
        if path_matched:
            raise HttpError(405, "MethodNotAllowed", f"The HTTP method '{request.method}' is not supported.")
        raise HttpError(404, "NotFound", f"No route for {request.method} {request.host}{request.path}")
