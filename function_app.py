"""Azure Functions entry points (Python v2 programming model). Triggers only: parse, delegate, shape.

Everything beyond azure.functions is imported inside the handlers, so that indexing and cold start
pay only for azure.functions (a test checks no azure.mgmt/keyvault/identity module loads here).
The logic lives in `remediations.triggers` (api.py for HTTP, jobs.py for timer and queue), where
the local runner (`python -m remediations.serve`) reaches it through these same functions.

`VAULTGUARD_SWEEP_SCHEDULE`, `VAULTGUARD_DEEP_SWEEP_SCHEDULE` and `VAULTGUARD_QUEUE_NAME` are binding
expressions: the host fails to index the app when they are unset, so infra always sets them
(local.settings.example.json too).
"""

from __future__ import annotations

import json

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


def _json(body: object, status: int = 200, mimetype: str = "application/json") -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body, sort_keys=True), status_code=status, mimetype=mimetype)


@app.function_name("health")
@app.route(route="health", methods=["GET"])
def health(req: func.HttpRequest) -> func.HttpResponse:
    from remediations.shell.health import health_report

    report = health_report()
    return _json(report, status=200 if report["status"] == "ok" else 503)


@app.function_name("tickets")
@app.route(route="remediations", methods=["GET", "POST"])
def tickets(req: func.HttpRequest) -> func.HttpResponse:
    """POST: submit a ticket (idempotent by ticketId). GET: recent runs
    (`?limit=&kind=ticket|alert|scope|event`)."""
    from remediations.triggers import api, http

    return http.handle("tickets", req, api.tickets)


@app.function_name("ticket")
@app.route(route="remediations/{ticketId}", methods=["GET"])
def ticket(req: func.HttpRequest) -> func.HttpResponse:
    from remediations.triggers import api, http

    return http.handle("ticket", req, api.get_ticket)


@app.function_name("approve")
@app.route(route="remediations/{ticketId}/approve", methods=["GET", "POST"])
def approve(req: func.HttpRequest) -> func.HttpResponse:
    """POST: apply exactly the plan a dry-run ticket pinned (body: planHash). GET: that approval's result."""
    from remediations.triggers import api, http

    handler = api.get_approval if req.method.upper() == "GET" else api.approve_ticket
    return http.handle("approve", req, handler)


@app.function_name("alerts")
@app.route(route="alerts", methods=["POST"])
def alerts(req: func.HttpRequest) -> func.HttpResponse:
    """Azure Monitor common alert schema (action group webhook / Azure Function receiver)."""
    from remediations.triggers import http, remediate_alert

    return http.handle("alerts", req, remediate_alert.on_alert)


@app.function_name("openapi")
@app.route(route="openapi.json", methods=["GET"])
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    from remediations.triggers import api, http

    return http.handle("openapi", req, api.openapi)


@app.function_name("keyvault_events")
@app.event_grid_trigger(arg_name="event")
def keyvault_events(event: func.EventGridEvent) -> None:
    """Key Vault events from Event Grid (Event Grid schema, or CloudEvents: the worker then hands a
    `func.CloudEvent`). Raises when handling failed, so Event Grid retries, then dead-letters."""
    from remediations.triggers import remediate_event

    remediate_event.on_event(event)


@app.function_name("sweep")
@app.timer_trigger(
    arg_name="timer", schedule="%VAULTGUARD_SWEEP_SCHEDULE%", run_on_startup=False, use_monitor=True
)
def sweep(timer: func.TimerRequest) -> None:
    from remediations.triggers import jobs

    jobs.sweep(past_due=timer.past_due)


@app.function_name("deep_sweep")
@app.timer_trigger(
    arg_name="timer", schedule="%VAULTGUARD_DEEP_SWEEP_SCHEDULE%", run_on_startup=False, use_monitor=True
)
def deep_sweep(timer: func.TimerRequest) -> None:
    """Lists every vault's secrets and stores the inventory the quick sweeps plan from."""
    from remediations.triggers import jobs

    jobs.sweep(past_due=timer.past_due, depth="deep")


@app.function_name("remediate_worker")
@app.queue_trigger(arg_name="msg", queue_name="%VAULTGUARD_QUEUE_NAME%", connection="AzureWebJobsStorage")
def remediate_worker(msg: func.QueueMessage) -> None:
    """One scope per message; a message that fails validation raises, so it is poisoned after
    host.json `maxDequeueCount` tries (never silently dropped)."""
    from remediations.triggers import jobs

    jobs.work(msg.get_body(), message_id=msg.id, dequeue_count=msg.dequeue_count)
