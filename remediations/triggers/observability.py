"""Structured logs with a correlation id on every line, OpenTelemetry when configured, run metrics.

- `invocation(trigger=..., correlation_id=..., ticket_id=...)` sets a context (contextvars, so it is
  per invocation even with threads/async); a log-record factory copies `correlation_id`, `trigger`
  and `ticket_id` onto every record, from any logger (ours and the SDKs'). The Functions worker and
  the Azure Monitor exporter send record attributes as custom dimensions.
- `configure()` runs once: installs the factory and, only when `APPLICATIONINSIGHTS_CONNECTION_STRING`
  is set, calls `azure.monitor.opentelemetry.configure_azure_monitor()` (imported lazily; a missing
  package or a failure is logged at ERROR, not raised: telemetry must not take the app down).
- `record_run_metric(...)` logs one record named `vaultguard.run` with fixed fields
  (`vaultguard_findings`, `vaultguard_actions`, `vaultguard_failures`, `vaultguard_throttled`,
  `vaultguard_read_errors`) and
  adds the same numbers to OTel counters when OpenTelemetry is configured.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import re
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

LOGGER_NAME = "vaultguard"
APPINSIGHTS = "APPLICATIONINSIGHTS_CONNECTION_STRING"
# "Authorization=AAD;ClientId=<user-assigned identity>" when the component has disableLocalAuth.
APPINSIGHTS_AUTH = "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"
METRIC_EVENT = "vaultguard.run"
METRIC_FIELDS = ("findings", "actions", "failures", "throttled", "read_errors")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass(frozen=True)
class InvocationContext:
    correlation_id: str
    trigger: str
    ticket_id: str | None = None


_current: contextvars.ContextVar[InvocationContext | None] = contextvars.ContextVar(
    "vaultguard_invocation", default=None
)
_configured = False
_lock = threading.Lock()
_counters: dict[str, Any] = {}


def logger() -> logging.Logger:
    return logging.getLogger(LOGGER_NAME)


def current() -> InvocationContext | None:
    return _current.get()


def correlation_id_from(headers: Mapping[str, str] | None) -> str:
    """Reuse a caller's id (x-correlation-id, x-ms-client-request-id, W3C traceparent) if it is safe."""
    if headers:
        lowered = {k.lower(): v for k, v in headers.items()}
        for name in ("x-correlation-id", "x-ms-client-request-id", "x-request-id"):
            value = lowered.get(name, "").strip()
            if _SAFE_ID.match(value):
                return value
        parts = lowered.get("traceparent", "").split("-")
        if len(parts) == 4 and re.fullmatch(r"[0-9a-f]{32}", parts[1]):
            return parts[1]
    return uuid.uuid4().hex


@contextlib.contextmanager
def invocation(
    trigger: str, correlation_id: str | None = None, ticket_id: str | None = None
) -> Iterator[InvocationContext]:
    configure()
    context = InvocationContext(correlation_id or uuid.uuid4().hex, trigger, ticket_id)
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def bind_ticket(ticket_id: str) -> None:
    """Add the ticket id to the current context once the body is validated."""
    context = _current.get()
    if context is not None:
        _current.set(InvocationContext(context.correlation_id, context.trigger, ticket_id))


def _install_record_factory() -> None:
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_vaultguard", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        context = _current.get()
        record.correlation_id = context.correlation_id if context else None
        record.trigger = context.trigger if context else None
        record.ticket_id = context.ticket_id if context else None
        return record

    factory._vaultguard = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def configure(env: Mapping[str, str] | None = None) -> None:
    global _configured  # noqa: PLW0603 - process-wide, once
    with _lock:
        if _configured:
            return
        _install_record_factory()
        source = os.environ if env is None else env
        if source.get(APPINSIGHTS, "").strip():
            _configure_azure_monitor(source.get(APPINSIGHTS_AUTH, ""))
        _configured = True


def _aad_client_id(auth: str) -> str | None:
    fields = dict(part.split("=", 1) for part in auth.split(";") if "=" in part)
    if fields.get("Authorization", "").upper() != "AAD":
        return None
    return fields.get("ClientId", "").strip() or ""


def _configure_azure_monitor(auth: str) -> None:
    try:
        from azure.monitor.opentelemetry import configure_azure_monitor  # noqa: PLC0415 - optional, heavy
    except ImportError:
        logger().error(
            "%s is set but azure-monitor-opentelemetry is not installed; no telemetry", APPINSIGHTS
        )
        return
    try:
        options: dict[str, Any] = {"logger_name": LOGGER_NAME}
        client_id = _aad_client_id(auth)
        if client_id is not None:
            from azure.identity import ManagedIdentityCredential  # noqa: PLC0415 - only with AAD auth

            options["credential"] = ManagedIdentityCredential(client_id=client_id or None)
        configure_azure_monitor(**options)
        from opentelemetry import metrics  # noqa: PLC0415 - present only with the distro

        meter = metrics.get_meter(LOGGER_NAME)
        for name in METRIC_FIELDS:
            _counters[name] = meter.create_counter(f"vaultguard.{name}", unit="1")
    except Exception:  # noqa: BLE001 - telemetry setup must never stop the functions; logged at ERROR
        logger().exception("configure_azure_monitor failed; continuing without OpenTelemetry export")


def record_run_metric(
    run_kind: str,
    *,
    findings: int = 0,
    actions: int = 0,
    failures: int = 0,
    throttled: int = 0,
    read_errors: int = 0,
    dry_run: bool | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    values = {
        "findings": findings,
        "actions": actions,
        "failures": failures,
        "throttled": throttled,
        "read_errors": read_errors,
    }
    extra: dict[str, Any] = {f"vaultguard_{k}": v for k, v in values.items()}
    extra.update({"vaultguard_event": METRIC_EVENT, "vaultguard_run_kind": run_kind})
    if dry_run is not None:
        extra["vaultguard_dry_run"] = dry_run
    if status is not None:
        extra["vaultguard_status"] = status
    logger().info(
        "%s kind=%s findings=%d actions=%d failures=%d throttled=%d read_errors=%d",
        METRIC_EVENT,
        run_kind,
        findings,
        actions,
        failures,
        throttled,
        read_errors,
        extra=extra,
    )
    for name, value in values.items():
        counter = _counters.get(name)
        if counter is not None and value:
            counter.add(value, {"run_kind": run_kind})
    return extra


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line (local runner, CLI): message, level, logger, context and extras."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                body[key] = value
        if record.exc_info:
            body["exception"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)
