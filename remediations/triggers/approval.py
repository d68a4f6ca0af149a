"""Approval of a pinned plan (`POST /api/remediations/{ticketId}/approve`) and the notice of plans
awaiting one.

A dry-run ticket keeps its plan pinned (`planId`, `planHash`, the plans in the run store under kind
`plan`). An approval names that hash; the approver is the authenticated caller (App Service
Authentication, fail closed: none or untrusted headers -> 401), holds one of `VAULTGUARD_APPROVER_ROLES`
when that is set (403), and is not the requester (403). What is written is that plan, each action
skipped as drifted where its target changed since (remediations/core/pinned.py).

The notice (`VAULTGUARD_APPROVAL_WEBHOOK_URL`) is a Teams-style message holding an adaptive card:
each planned change (fix, target, principal, before -> after) and the approve link (the message shape of
MicrosoftDocs/msteams-docs "Send Adaptive Cards using an Incoming Webhook"). Plans carry permission
names and resource ids only, never a secret value.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Collection, Mapping, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from remediations.triggers.caller import Caller
from remediations.triggers.observability import logger
from remediations.triggers.problems import Problem, ProblemError, authentication_required, forbidden
from remediations.triggers.tickets import TicketResult, printable

HASH_PATTERN = r"^[0-9a-f]{64}$"
MAX_CARD_ACTIONS = 25  # a Teams message holds about 28 KB; the rest is counted, not listed
WEBHOOK_TIMEOUT_SECONDS = 10.0


class ApprovalRequest(BaseModel):
    """Body of `POST /api/remediations/{ticketId}/approve`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    planHash: str = Field(pattern=HASH_PATTERN, description="The dry run's `planHash`, as returned.")
    reason: Annotated[str | None, Field(max_length=2000), AfterValidator(printable)] = None


def authorize_approver(
    approver: Caller | None, requested: Mapping[str, Any], *, approver_roles: Collection[str]
) -> Caller:
    """The approver; 401 without an authenticated one, 403 without an approver role (when set) or when the
    approver is the ticket's requester (authenticated, or declared when nobody was authenticated)."""
    if approver is None:
        raise authentication_required(
            "Approving a plan needs an authenticated caller: call through App Service Authentication "
            "with an Entra ID token for the API (Authorization: Bearer) besides the function key."
        )
    if approver_roles and not set(approver.roles) & set(approver_roles):
        raise forbidden(
            "The caller holds none of the app roles this deployment requires to approve plans: "
            f"{', '.join(sorted(approver_roles))}."
        )
    requester = requested.get("caller")
    declared = requested.get("requester")
    same = (
        isinstance(requester, dict)
        and str(requester.get("objectId", "")).casefold() == approver.objectId.casefold()
    ) or (requester is None and isinstance(declared, str) and approver.is_named_by(declared))
    if same:
        raise forbidden("The approver must be someone other than the ticket's requester.")
    return approver


def wrong_hash(detail: str) -> ProblemError:
    return ProblemError(Problem(409, "plan-mismatch", detail))


# --- notice of a plan awaiting approval -----------------------------------------------------------


def _state(state: Mapping[str, Sequence[str]]) -> str:
    return "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(state.items()) if v) or "-"


def approve_url(base: str | None, ticket_id: str) -> str:
    path = f"/api/remediations/{ticket_id}/approve"
    return f"https://{base}{path}" if base else path


def approval_card(result: TicketResult, base: str | None) -> dict[str, Any]:
    """A Teams incoming-webhook message with one adaptive card: the plan's changes and the approve link."""
    writes = [a for a in result.plan if a.get("skip_reason") is None]
    rows: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "wrap": True,
            "text": f"**{a.get('remediation_id')}** on `{a.get('target')}`"
            + (f" for `{a['principal']}`" if a.get("principal") else "")
            + f": {_state(a.get('before') or {})} → {_state(a.get('after') or {})}",
        }
        for a in writes[:MAX_CARD_ACTIONS]
    ]
    if len(writes) > MAX_CARD_ACTIONS:
        rows.append({"type": "TextBlock", "text": f"... and {len(writes) - MAX_CARD_ACTIONS} more change(s)"})
    link = approve_url(base, result.ticketId)
    card = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "body": [
            {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": "Plan awaiting approval"},
            {
                "type": "FactSet",
                "facts": [
                    {"title": "Ticket", "value": result.ticketId},
                    {"title": "Requester", "value": result.requester or "-"},
                    {"title": "Plan", "value": result.planId or "-"},
                    {"title": "Plan hash", "value": result.planHash or "-"},
                    {"title": "Changes", "value": str(len(writes))},
                ],
            },
            *rows,
            {
                "type": "TextBlock",
                "wrap": True,
                "text": f'Approve: POST {link} with {{"planHash": "{result.planHash}"}}',
            },
        ],
        "actions": [{"type": "Action.OpenUrl", "title": "Approve", "url": link}],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


def notify(url: str | None, result: TicketResult, base: str | None) -> bool:
    """Post the card when a webhook is set and the plan has changes; a failure is logged, never raised
    (the dry run is complete without the notice)."""
    if url is None or not any(a.get("skip_reason") is None for a in result.plan):
        return False
    body = json.dumps(approval_card(result, base)).encode()
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked in settings (https or localhost)
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:  # noqa: S310
            ok = 200 <= int(response.status) < 300
    except OSError as error:
        logger().warning("approval notice not delivered: %s", type(error).__name__)
        return False
    if not ok:
        logger().warning("approval notice refused by the webhook")
    return ok
