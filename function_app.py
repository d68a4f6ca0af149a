"""Azure Functions entry points (Python v2 programming model). Triggers only: parse, delegate, shape.

The engine is imported inside each handler so that cold start pays only for azure.functions.
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
    from remediations.core.health import health_report

    report = health_report()
    return _json(report, status=200 if report["status"] == "ok" else 503)
