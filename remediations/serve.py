"""Local runner: serve the app's HTTP functions at their /api routes without the Functions host.

    python -m remediations serve --port 7071 [--host 127.0.0.1]   (or python -m remediations.serve)

The routes, methods and handlers come from `function_app.app.get_functions()` (the binding JSON of
each HTTP-triggered function), so this is the same code Azure runs, not a second implementation.
Each real request becomes an `azure.functions.HttpRequest` (method, url, headers, query params,
route params from the route template, body) and the returned `HttpResponse` is written back.

Function keys, as Azure does for AuthLevel FUNCTION: when `VAULTGUARD_LOCAL_FUNCTION_KEY` is set,
a request must carry it in `x-functions-key` or `?code=`, else 401. Unset, no key is asked (bind to
127.0.0.1, the default, when so).

Timer and queue functions: `POST /admin/functions/{name}` with `{"input": "..."}` runs one, as the
Functions host's admin API does (Core Tools offers the same for non-HTTP triggers). It is served only
when `VAULTGUARD_LOCAL_MASTER_KEY` is set, and requires that key in `x-functions-key` (the host's
master key). The timer gets `past_due: false`; a queue function gets `input` as the message body.
Unlike the host, which answers 202 at once and runs in the background, this runner answers 202 after
the function returned, and a problem+json 500 (the exception type, no traceback) when it raised, so
a caller can drive a sweep and drain its queue step by step.

Event Grid functions: `POST /runtime/webhooks/eventgrid?functionName={name}&code={key}`, the host's
Event Grid extension endpoint (learn.microsoft.com/azure/azure-functions/functions-bindings-event-grid-
trigger, "Local testing with viewer web app"), served when the master key is set and requiring it (the
host accepts its master key there as well as the extension's system key). Each event of the body (an
Event Grid schema array, or a CloudEvent / CloudEvents batch) is decoded by azure.functions' own
converter and handed to the function: 200 when all returned, a problem+json 500 when one raised (Event
Grid then retries). The validation handshakes are answered: `aeg-event-type: SubscriptionValidation`
with `{"validationResponse": code}`, a CloudEvents `OPTIONS` with `WebHook-Allowed-Origin`.
"""

from __future__ import annotations

import argparse
import hmac
import json
import logging
import os
import re
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from remediations.cli import serve_options
from remediations.shell.settings import LOCAL_FUNCTION_KEY, LOCAL_MASTER_KEY
from remediations.triggers.observability import JsonFormatter
from remediations.triggers.problems import MAX_BODY_BYTES, Problem

ROUTE_PREFIX = "/api"
ADMIN_PATH = re.compile(r"^/admin/functions/(?P<name>[A-Za-z_][A-Za-z0-9_-]*)/?$")
NON_HTTP_TRIGGERS = ("timerTrigger", "queueTrigger", "eventGridTrigger")
EVENT_GRID_PATH = "/runtime/webhooks/eventgrid"
BODY_READ_SECONDS = 30.0  # how long a connection may go quiet before its request is dropped
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?\??\}")


@dataclass(frozen=True)
class Route:
    name: str
    template: str
    methods: frozenset[str]
    auth_level: str
    pattern: re.Pattern[str]
    handler: Callable[[func.HttpRequest], func.HttpResponse]


def _compile(template: str) -> re.Pattern[str]:
    regex, last = "", 0
    for match in _PARAM.finditer(template):
        regex += re.escape(template[last : match.start()]) + f"(?P<{match.group(1)}>[^/]+)"
        last = match.end()
    regex += re.escape(template[last:])
    return re.compile(f"^{ROUTE_PREFIX}/{regex}/?$")


def discover_routes(functions: Iterable[Any]) -> list[Route]:
    """Routes of the HTTP-triggered functions among `app.get_functions()` (callable once per app)."""
    routes: list[Route] = []
    for function in functions:
        bindings = json.loads(function.get_function_json())["bindings"]
        trigger = next((b for b in bindings if b.get("type") == "httpTrigger"), None)
        if trigger is None:
            continue
        template = str(trigger.get("route") or function.get_function_name())
        methods = frozenset(m.upper() for m in (trigger.get("methods") or ["GET", "POST"]))
        routes.append(
            Route(
                name=function.get_function_name(),
                template=template,
                methods=methods,
                auth_level=str(trigger.get("authLevel", "FUNCTION")).upper(),
                pattern=_compile(template),
                handler=function.get_user_function(),
            )
        )
    # Literal routes before parameterised ones, as ASP.NET routing prefers them.
    routes.sort(key=lambda r: (r.template.count("{"), -len(r.template)))
    return routes


@dataclass(frozen=True)
class Job:
    """A timer-, queue- or Event Grid-triggered function, run through the admin API or the Event Grid
    webhook."""

    name: str
    trigger: str  # timerTrigger | queueTrigger | eventGridTrigger
    handler: Callable[..., Any]

    def invoke(self, text: str) -> None:
        if self.trigger == "timerTrigger":
            from azure.functions.timer import TimerRequest  # noqa: PLC0415 - only the admin API needs it

            self.handler(TimerRequest(past_due=False))
        elif self.trigger == "eventGridTrigger":
            from azure.functions import meta  # noqa: PLC0415
            from azure.functions.eventgrid import EventGridEventInConverter  # noqa: PLC0415

            event = EventGridEventInConverter.decode(meta.Datum(text, "json"), trigger_metadata=None)
            self.handler(event)
        else:
            self.handler(func.QueueMessage(id=f"admin-{uuid.uuid4()}", body=text.encode()))


def discover_jobs(functions: Iterable[Any]) -> dict[str, Job]:
    jobs: dict[str, Job] = {}
    for function in functions:
        bindings = json.loads(function.get_function_json())["bindings"]
        trigger = next((b["type"] for b in bindings if b.get("type") in NON_HTTP_TRIGGERS), None)
        if trigger is not None:
            name = function.get_function_name()
            jobs[name] = Job(name, trigger, function.get_user_function())
    return jobs


def _problem(status: int, kind: str, detail: str) -> tuple[int, dict[str, str], bytes]:
    body = Problem(status, kind, detail).body()
    return status, {"Content-Type": "application/problem+json; charset=utf-8"}, body


class Runner:
    """Dispatches (method, target, headers, body) to the functions; usable without a socket."""

    def __init__(
        self,
        routes: Sequence[Route],
        function_key: str | None,
        jobs: dict[str, Job] | None = None,
        master_key: str | None = None,
    ) -> None:
        self.routes = list(routes)
        self.function_key = function_key or None
        self.jobs = jobs or {}
        self.master_key = master_key or None

    def run_job(self, name: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """`POST /admin/functions/{name}` `{"input": "..."}`: the host's admin API for non-HTTP triggers."""
        given = headers.get("x-functions-key") or ""
        if self.master_key is None or not hmac.compare_digest(given.encode(), self.master_key.encode()):
            return _problem(401, "unauthorized", "The master key is required (x-functions-key).")
        job = self.jobs.get(name)
        if job is None:
            return _problem(404, "not-found", "No timer or queue function has this name.")
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return _problem(400, "bad-request", 'The body must be JSON: {"input": "..."}.')
        text = payload.get("input", "") if isinstance(payload, dict) else None
        if not isinstance(text, str):
            return _problem(400, "bad-request", "`input` must be a string.")
        try:
            job.invoke(text)
        except Exception as error:  # reported to the caller by type; the log has the traceback
            logging.getLogger("vaultguard.serve").exception("function %s failed", name)
            return _problem(500, "function-failed", f"{name} raised {type(error).__name__}.")
        return 202, {"Content-Type": "text/plain; charset=utf-8"}, b""

    def run_event_grid(
        self, method: str, headers: dict[str, str], params: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """The Event Grid extension's webhook: handshakes, then each event to the named function."""
        given = headers.get("x-functions-key") or params.get("code") or ""
        if self.master_key is None or not hmac.compare_digest(given.encode(), self.master_key.encode()):
            return _problem(401, "unauthorized", "The master key is required (code or x-functions-key).")
        job = self.jobs.get(params.get("functionName", ""))
        if job is None or job.trigger != "eventGridTrigger":
            return _problem(404, "not-found", "No Event Grid function has this name (functionName).")
        if method == "OPTIONS":  # CloudEvents abuse protection handshake
            origin = headers.get("webhook-request-origin", "")
            return 200, {"WebHook-Allowed-Origin": origin, "Content-Type": "text/plain"}, b""
        if method != "POST":
            return _problem(405, "method-not-allowed", "Use POST.")
        try:
            payload = json.loads(body or b"null")
        except ValueError:
            return _problem(400, "bad-request", "The body must be JSON events.")
        events = payload if isinstance(payload, list) else [payload]
        if not events or not all(isinstance(e, dict) for e in events):
            return _problem(400, "bad-request", "The body must be an event or an array of events.")
        if headers.get("aeg-event-type") == "SubscriptionValidation":
            answer = {"validationResponse": (events[0].get("data") or {}).get("validationCode")}
            return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()
        for event in events:
            try:
                job.invoke(json.dumps(event))
            except Exception as error:  # Event Grid retries the delivery; the log has the traceback
                logging.getLogger("vaultguard.serve").exception("function %s failed", job.name)
                return _problem(500, "function-failed", f"{job.name} raised {type(error).__name__}.")
        return 200, {"Content-Type": "text/plain; charset=utf-8"}, b""

    def authorised(self, headers: dict[str, str], params: dict[str, str]) -> bool:
        if self.function_key is None:
            return True
        given = headers.get("x-functions-key") or params.get("code") or ""
        return hmac.compare_digest(given.encode(), self.function_key.encode())

    def dispatch(
        self, method: str, target: str, headers: dict[str, str], body: bytes, host: str = "localhost"
    ) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(target)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        lowered = {k.lower(): v for k, v in headers.items()}
        admin = ADMIN_PATH.match(parts.path) if self.master_key is not None else None
        if admin is not None:
            if method.upper() != "POST":
                status, out_headers, out = _problem(405, "method-not-allowed", "Use POST.")
                out_headers["Allow"] = "POST"
                return status, out_headers, out
            return self.run_job(admin.group("name"), lowered, body)
        if parts.path == EVENT_GRID_PATH and self.master_key is not None:
            return self.run_event_grid(method.upper(), lowered, params, body)
        matched = [(route, m) for route in self.routes if (m := route.pattern.match(parts.path))]
        if not matched:
            return _problem(404, "not-found", "No function serves this path.")
        allowed = [(route, m) for route, m in matched if method.upper() in route.methods]
        if not allowed:
            methods = sorted({m for route, _ in matched for m in route.methods})
            status, out_headers, out = _problem(
                405, "method-not-allowed", "This path does not accept the method."
            )
            out_headers["Allow"] = ", ".join(methods)
            return status, out_headers, out
        route, match = allowed[0]
        if route.auth_level != "ANONYMOUS" and not self.authorised(lowered, params):
            return _problem(
                401, "unauthorized", "A valid function key is required (x-functions-key or ?code=)."
            )
        params.pop("code", None)
        request = func.HttpRequest(
            method=method.upper(),
            url=f"http://{host}{target}",
            headers=lowered,
            params=params,
            route_params=match.groupdict(),
            body=body,
        )
        response = route.handler(request)
        out_headers = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
        mimetype = response.mimetype or "text/plain"
        out_headers["Content-Type"] = f"{mimetype}; charset={response.charset or 'utf-8'}"
        return response.status_code, out_headers, response.get_body() or b""


def _handler_class(runner: Runner) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "vaultguard-local"
        protocol_version = "HTTP/1.1"
        # Socket reads time out, so a client that sends less than its Content-Length (or goes quiet)
        # cannot hold a server thread forever.
        timeout = BODY_READ_SECONDS

        def _serve(self) -> None:
            raw_length = self.headers.get("Content-Length", "0") or "0"
            length = int(raw_length) if raw_length.isdigit() else -1
            if length < 0:
                self._write(*_problem(400, "bad-request", "Content-Length is not valid."))
                return
            if length > MAX_BODY_BYTES:
                # Do not read it: answer as the function would, and close the connection.
                self.close_connection = True
                self._write(
                    *_problem(
                        413, "payload-too-large", f"The request body is larger than {MAX_BODY_BYTES} bytes."
                    )
                )
                self._linger()
                return
            try:
                body = self.rfile.read(length) if length else b""
            except TimeoutError:
                body = b""
            if len(body) < length:
                self.close_connection = True
                message = "The request body was shorter than its Content-Length."
                self._write(*_problem(408, "request-timeout", message))
                return
            headers = {k: v for k, v in self.headers.items()}
            try:
                result = runner.dispatch(
                    self.command, self.path, headers, body, self.headers.get("Host", "localhost")
                )
            except Exception:
                logging.getLogger("vaultguard.serve").exception("handler failed")
                result = _problem(500, "internal-error", "The request could not be completed.")
            self._write(*result)

        def _linger(self, seconds: float = 2.0, limit: int = 8 * MAX_BODY_BYTES) -> None:
            """Close as web servers do after answering before the body was read (a "lingering close"):
            stop sending, then drain what the client is still sending for a moment. Closing at once,
            with unread data queued, resets the connection, and the client may lose the 413 it was sent
            while it is still writing the body."""
            try:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_WR)
                self.connection.settimeout(seconds)
                drained = 0
                while drained < limit and (chunk := self.connection.recv(65536)):
                    drained += len(chunk)
            except OSError:
                pass  # the client went away or stopped sending: nothing more to protect

        def _write(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

        def __getattr__(self, name: str) -> Any:
            # Any other method (TRACE, QUERY, made-up ones) reaches the router, which answers 405 with
            # Allow as the Functions host does, instead of the stdlib's HTML 501 page.
            if name.startswith("do_"):
                return self._serve
            raise AttributeError(name)

        def log_message(self, format: str, *args: Any) -> None:
            logging.getLogger("vaultguard.serve").info(format, *args)

    return Handler


def make_server(
    host: str,
    port: int,
    function_key: str | None = None,
    functions: Iterable[Any] | None = None,
    master_key: str | None = None,
) -> ThreadingHTTPServer:
    """`functions`: the indexed functions, when the caller already ran `app.get_functions()`."""
    if functions is None:
        import function_app  # noqa: PLC0415 - the app module lives at the repo root, loaded on demand

        functions = function_app.app.get_functions()
    functions = list(functions)
    key = function_key if function_key is not None else os.environ.get(LOCAL_FUNCTION_KEY, "").strip() or None
    master = master_key if master_key is not None else os.environ.get(LOCAL_MASTER_KEY, "").strip() or None
    runner = Runner(discover_routes(functions), key, discover_jobs(functions), master)
    server = ThreadingHTTPServer((host, port), _handler_class(runner))
    server.daemon_threads = True
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, name="vaultguard-serve", daemon=True)
    thread.start()
    return thread


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m remediations serve", description=serve_options.DESCRIPTION
    )
    serve_options.add_arguments(parser)
    args = parser.parse_args(list(argv) if argv is not None else None)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    server = make_server(args.host, args.port)
    key_note = "function key required" if os.environ.get(LOCAL_FUNCTION_KEY) else "no function key required"
    if os.environ.get(LOCAL_MASTER_KEY):
        key_note += "; admin API at /admin/functions/{name} (master key)"
    print(
        f"serving on http://{args.host}:{server.server_address[1]}{ROUTE_PREFIX}/ ({key_note})",
        file=sys.stderr,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
