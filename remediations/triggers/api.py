"""The HTTP endpoints' logic (function_app.py only routes here): tickets, runs, approvals, OpenAPI.
Alerts are received in remediate_alert.py, as Key Vault events are in remediate_event.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
from pydantic import ValidationError

from remediations.core.pinned import PinnedPlan, refusal
from remediations.shell.policy_file import load_policy
from remediations.shell.settings import AppSettings
from remediations.triggers import approval, observability, remediate_ticket, scope_guard
from remediations.triggers.caller import (
    Attribution,
    asks_for_changes,
    attribute,
    authorize_write,
    caller_from,
)
from remediations.triggers.http import json_response, read_json, run_store
from remediations.triggers.observability import InvocationContext
from remediations.triggers.problems import (
    FieldError,
    Problem,
    ProblemError,
    conflict,
    internal_error,
    not_found,
    pydantic_errors,
    validation_failed,
)
from remediations.triggers.runs import RunKind, stale_after
from remediations.triggers.service import effective_policy
from remediations.triggers.tickets import TicketRequest, TicketResult, valid_ticket_id

OPENAPI_PATH = Path(__file__).with_name("openapi.json")
MAX_LIST = 200
RUN_KINDS: tuple[RunKind, ...] = ("ticket", "alert", "scope", "event", "approval")


def parse_ticket(payload: object) -> TicketRequest:
    try:
        request = TicketRequest.model_validate(payload, strict=True)
    except ValidationError as error:
        raise validation_failed(pydantic_errors(error.errors())) from None
    if not remediate_ticket.actionable_targets(request):
        raise validation_failed(
            [FieldError("$.targets", "name a vault, a secret or a principal for these remediations")],
            detail="None of the targets is one the registered remediations act on.",
        )
    return request


# --- tickets -------------------------------------------------------------------------------------


def tickets(req: func.HttpRequest, context: InvocationContext) -> func.HttpResponse:
    if req.method.upper() == "GET":
        return list_runs(req, context)
    return submit_ticket(req, context)


def submit_ticket(req: func.HttpRequest, context: InvocationContext) -> func.HttpResponse:
    settings = AppSettings.from_env()
    # Who called comes first: a malformed principal is a 400 before the body is read, and a ticket that
    # may change things is refused (401/403) before it is validated, stored or replayed.
    caller, notes = caller_from(dict(req.headers), trusted=settings.trusts_principal_headers)
    payload = read_json(req)
    if asks_for_changes(payload):
        if (why := settings.cannot_check_callers) is not None:
            # Fail closed: forged principal headers must not pass for a caller; see GET /api/health.
            raise ProblemError(Problem(503, "not-configured", f"{why}; see GET /api/health."))
        authorize_write(
            caller, required=settings.callers_required, allowed_roles=settings.allowed_caller_roles
        )
    request = parse_ticket(payload)
    observability.bind_ticket(request.ticketId)
    who = attribute(caller, request.requester, notes)
    _log_attribution(who)
    fingerprint = request.fingerprint()
    store = run_store()
    scope_guard.check_ticket(request, settings.subscription_ids, load_policy(settings))
    placeholder = TicketResult.accepted(request, status="running", attribution=who)
    existing = store.reserve(
        "ticket",
        request.ticketId,
        fingerprint,
        placeholder.model_dump(mode="json"),
        "running",
        request.dryRun,
    )
    if existing is not None:
        if existing.fingerprint != fingerprint:
            raise conflict(
                "A ticket with this ticketId was already submitted with a different body; "
                "use a new ticketId for a new request."
            )
        if not store.claim_stale("ticket", request.ticketId, stale_after()):
            observability.logger().info("ticket replayed: returning the stored result")
            return json_response(existing.body, 200, {"Idempotent-Replayed": "true"}, context.correlation_id)
        # Its worker died mid-run: run it again, reconciling the writes it left pending first.
        observability.logger().warning("ticket re-run: its stored run was left unfinished")

    result = _run_recorded(
        RunRecord("ticket", request.ticketId, fingerprint, placeholder), request, settings, who, context
    )
    if result.status == "planned":
        approval.notify(settings.approval_webhook_url, result, settings.hostname)
    # 200: a dry run, complete with its plan. 202: changes were applied (outcomes in the body; the
    # result stays at Location).
    status = 200 if result.dryRun else 202
    location = f"/api/remediations/{request.ticketId}"
    return json_response(
        result.model_dump(mode="json"), status, {"Location": location}, context.correlation_id
    )


@dataclass(frozen=True)
class RunRecord:
    """Where a ticket's (or an approval's) run is recorded, and what it showed while running."""

    kind: RunKind
    key: str
    fingerprint: str
    placeholder: TicketResult


def _run_recorded(
    record: RunRecord,
    request: TicketRequest,
    settings: AppSettings,
    who: Attribution,
    context: InvocationContext,
    *,
    pinned: PinnedPlan | None = None,
    stamp: dict[str, Any] | None = None,
) -> TicketResult:
    """Run a ticket (with `pinned`: apply that plan) and record the result, `stamp` fields set; a run
    that raised is recorded failed and answered 500. A dry run's plan is kept for its approval."""
    store = run_store()
    try:
        result = remediate_ticket.run_ticket(
            request,
            settings=settings,
            correlation_id=context.correlation_id,
            attribution=who,
            reconcile_after=stale_after(),
            pinned=pinned,
        )
        result = result.model_copy(update=stamp or {})
        if result.status == "planned" and result.pinned is not None and pinned is None:
            # Kept before the result is saved: a ticket that shows a planHash can always be approved.
            store.keep("plan", record.key, result.pinned.model_dump(mode="json"))
        body = result.model_dump(mode="json")
        store.save(record.kind, record.key, record.fingerprint, body, result.status, request.dryRun)
    except Exception:  # noqa: BLE001 - any engine/storage fault: logged with traceback, run failed, 500
        observability.logger().exception("%s run failed", record.kind)
        failed = record.placeholder.model_copy(
            update={
                "status": "failed",
                "message": f"The run failed; correlation id {context.correlation_id}.",
                "completedAt": datetime.now(UTC),
            }
        )
        body = failed.model_dump(mode="json")
        store.save(record.kind, record.key, record.fingerprint, body, "failed", request.dryRun)
        observability.record_run_metric("ticket", failures=1, dry_run=request.dryRun, status="failed")
        raise ProblemError(internal_error(context.correlation_id)) from None
    observability.record_run_metric(
        "ticket", dry_run=result.dryRun, status=result.status, **result.summary.metric()
    )
    return result


# --- approval of a pinned plan ----------------------------------------------------------------------


def parse_approval(payload: object) -> approval.ApprovalRequest:
    try:
        return approval.ApprovalRequest.model_validate(payload, strict=True)
    except ValidationError as error:
        raise validation_failed(pydantic_errors(error.errors())) from None


def approve_ticket(req: func.HttpRequest, context: InvocationContext) -> func.HttpResponse:
    """Apply the plan a dry-run ticket pinned, exactly: the body names its planHash."""
    settings = AppSettings.from_env()
    ticket_id = req.route_params.get("ticketId", "")
    if not valid_ticket_id(ticket_id):
        raise not_found("No ticket with that id (ticket ids are 1-64 of A-Z a-z 0-9 . _ -).")
    observability.bind_ticket(ticket_id)
    # Who approves comes first, as for tickets that apply: never a write for a caller nobody proved.
    if (why := settings.cannot_check_callers) is not None:
        raise ProblemError(Problem(503, "not-configured", f"{why}; see GET /api/health."))
    authenticated, _ = caller_from(dict(req.headers), trusted=settings.trusts_principal_headers)
    body = parse_approval(read_json(req))
    store = run_store()
    ticket = store.get("ticket", ticket_id)
    if ticket is None or ticket.body is None:
        raise not_found("No ticket with that id.")
    approver = approval.authorize_approver(authenticated, ticket.body, approver_roles=settings.approver_roles)
    if ticket.status != "planned":
        raise approval.wrong_hash(
            f"Ticket {ticket_id} is {ticket.status}, not a dry run awaiting approval: only a planned "
            "dry-run ticket has a plan to approve."
        )
    stored = store.get("plan", ticket_id)
    pinned = PinnedPlan.model_validate(stored.body) if stored is not None and stored.body else None
    if pinned is None or not pinned.verified or pinned.hash != ticket.body.get("planHash"):
        raise approval.wrong_hash(f"Ticket {ticket_id} has no pinned plan to approve; send a new dry run.")
    if refusal(pinned, body.planHash) is not None:
        raise approval.wrong_hash(
            "planHash is not the hash of this ticket's plan: approve the plan you reviewed "
            "(GET /api/remediations/{ticketId} shows its planHash)."
        )
    _, forced = effective_policy(settings, load_policy(settings), requested_dry_run=False)
    if forced:
        raise ProblemError(
            Problem(
                409,
                "dry-run-deployment",
                f"{' and '.join(forced)} keep this deployment in dry run: an approval would write "
                "nothing. Approve again once the deployment applies changes.",
            )
        )
    request = parse_ticket({**_ticket_fields(ticket.body), "dryRun": False})
    who = Attribution(caller=approver, requester=approver.display)
    placeholder = TicketResult.accepted(request, status="running", attribution=who)
    existing = store.reserve(
        "approval", ticket_id, pinned.hash, placeholder.model_dump(mode="json"), "running"
    )
    # A failed approval, or one whose worker died (stale `running`), may be sent again.
    rerun = existing is not None and (
        existing.status == "failed" or store.claim_stale("approval", ticket_id, stale_after())
    )
    if existing is not None and not rerun:
        observability.logger().info("approval replayed: returning the stored result")
        return json_response(existing.body, 200, {"Idempotent-Replayed": "true"}, context.correlation_id)
    approved = {
        "planId": pinned.id,
        "planHash": pinned.hash,
        "approvedBy": approver.display,
        "approvalReason": body.reason,
        "requester": ticket.body.get("requester"),
    }
    record = RunRecord("approval", ticket_id, pinned.hash, placeholder)
    result = _run_recorded(record, request, settings, who, context, pinned=pinned, stamp=approved)
    location = f"/api/remediations/{ticket_id}/approve"
    return json_response(result.model_dump(mode="json"), 202, {"Location": location}, context.correlation_id)


def _ticket_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The stored ticket's request fields, to run it again."""
    fields = ("ticketId", "remediations", "targets", "reason")
    request = {k: body[k] for k in fields if body.get(k) is not None}
    request["targets"] = {k: v for k, v in body["targets"].items() if v}
    return request


def get_approval(req: func.HttpRequest, context: InvocationContext) -> func.HttpResponse:
    ticket_id = req.route_params.get("ticketId", "")
    if not valid_ticket_id(ticket_id):
        raise not_found("No ticket with that id (ticket ids are 1-64 of A-Z a-z 0-9 . _ -).")
    stored = run_store().get("approval", ticket_id)
    if stored is None or stored.body is None:
        raise not_found("This ticket's plan has not been approved.")
    return json_response(stored.body, 200, correlation_id=context.correlation_id)


def _log_attribution(who: Attribution) -> None:
    if who.notes:
        observability.logger().warning("principal headers ignored: App Service Authentication not known")
    if who.declared_requester is not None:
        # Worth a look: the body named someone else than the token did.
        observability.logger().warning(
            "ticket requester declared in the body differs from the authenticated caller",
            extra={"caller_object_id": who.caller.objectId if who.caller else None},
        )


def get_ticket(req: func.HttpRequest, context: InvocationContext) -> func.HttpResponse:
    ticket_id = req.route_params.get("ticketId", "")
    if not valid_ticket_id(ticket_id):
        raise not_found("No ticket with that id (ticket ids are 1-64 of A-Z a-z 0-9 . _ -).")
    observability.bind_ticket(ticket_id)
    stored = run_store().get("ticket", ticket_id)
    if stored is None or stored.body is None:
        raise not_found("No ticket with that id.")
    return json_response(stored.body, 200, correlation_id=context.correlation_id)


def list_runs(req: func.HttpRequest, context: InvocationContext) -> func.HttpResponse:
    errors: list[FieldError] = []
    raw_limit = req.params.get("limit", "50")
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    digits = raw_limit.isascii() and raw_limit.isdigit() and len(raw_limit) <= 6
    limit = int(raw_limit) if digits and 0 < int(raw_limit) <= MAX_LIST else 0
    if not limit:
        errors.append(FieldError("query.limit", f"must be an integer from 1 to {MAX_LIST}"))
    kind = req.params.get("kind")
    if kind is not None and kind not in RUN_KINDS:
        errors.append(FieldError("query.kind", "must be ticket, alert, scope, event or approval"))
    if errors:
        raise validation_failed(errors, "The query is not valid.")
    rows = run_store().recent(limit, next((k for k in RUN_KINDS if k == kind), None))
    return json_response(
        {"runs": [row.to_json() for row in rows]}, 200, correlation_id=context.correlation_id
    )


# --- OpenAPI -------------------------------------------------------------------------------------


def openapi(req: func.HttpRequest, context: InvocationContext) -> func.HttpResponse:
    document: Any = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    return json_response(document, 200, correlation_id=context.correlation_id)
