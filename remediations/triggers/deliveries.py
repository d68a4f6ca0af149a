"""What an alert's or a Key Vault event's delivery records: `POST /api/alerts` returns an `AlertResult`,
the Event Grid trigger keeps an `EventResult`, and the run store keeps either, keyed by the delivery.
Both go through the same lifecycle (received, then acknowledged, planned, handled or failed) and record
their run the same way (`DeliveryResult`).

Both are received the same way too (`receive_once`): the delivery is reserved in the run store by its
id, a redelivery returns the stored result instead of running again (unless the earlier handling failed
or its worker died and left it unfinished), and the handling (acknowledged when there
is nothing to do or its vault is out of scope, a failure recorded, never raised) is saved over it.

And both run the same way: one pipeline run on the delivery's vault (`run_on_vault`), recorded by
`record_run` (status, summary, plan, outcomes, notes, the run metric)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from remediations.core.policy import Policy
from remediations.core.request import RunRequest
from remediations.shell.policy_file import load_policy
from remediations.shell.settings import AppSettings
from remediations.triggers import observability, scope_guard
from remediations.triggers.alerts import AlertSignal
from remediations.triggers.events import VaultEvent
from remediations.triggers.runs import UNFINISHED, stale_after
from remediations.triggers.service import (
    azure_session,
    closure_notes,
    effective_policy,
    inventory_notes,
    outcomes_json,
    plan_json,
    run,
    run_status,
    summarise,
)
from remediations.triggers.tickets import TicketStatus

if TYPE_CHECKING:
    from remediations.adapters.clients import AzureClients
    from remediations.shell.pipeline import RunResult
    from remediations.triggers.runs import RunStore

DeliveryStatus = Literal["received", "acknowledged", "planned", "handled", "failed"]
DeliveryKind = Literal["alert", "event"]


def delivery_status(run_status: TicketStatus) -> DeliveryStatus:
    """A delivery's status once its run is over: a dry run planned, all applied handled, else failed."""
    if run_status == "planned":
        return "planned"
    return "handled" if run_status == "applied" else "failed"


class DeliveryResult(BaseModel):
    """The lifecycle and the run of one delivery (an alert or a Key Vault event)."""

    model_config = ConfigDict(extra="forbid")

    status: DeliveryStatus
    message: str | None = None
    receivedAt: str
    summary: dict[str, int] = {}
    dryRun: bool | None = None
    dryRunForcedBy: list[str] = []
    plan: list[dict[str, Any]] = []
    outcomes: list[dict[str, Any]] = []
    notes: list[str] = []
    correlationId: str | None = None


class AlertResult(DeliveryResult):
    """What `POST /api/alerts` returns and the run store keeps per alert delivery."""

    alertId: str
    signal: AlertSignal
    ownChange: bool = Field(
        default=False, description="The change the alert reports was made by this app's own identity."
    )
    alreadyCompliant: bool | None = Field(
        default=None, description="The re-check found nothing to change (0 actions planned)."
    )


class EventResult(DeliveryResult):
    """What the run store keeps per Key Vault event."""

    eventId: str
    event: VaultEvent


Result = TypeVar("Result", bound=DeliveryResult)


class Delivered(Protocol):
    """What an alert signal and a Key Vault event both say of themselves."""

    @property
    def vaultId(self) -> str | None: ...

    @property
    def actionable(self) -> bool: ...

    @property
    def reason(self) -> str: ...

    def idempotency_key(self) -> str: ...


@dataclass(frozen=True)
class Replay:
    """The stored result of an earlier delivery with the same id, returned as it was stored."""

    body: dict[str, Any]


@dataclass(frozen=True)
class InScope:
    """A delivery found in scope: its vault, the app settings and the policy its scope was checked
    against, as read (the deployment's rails are applied by `run_on_vault`)."""

    vault_id: str
    settings: AppSettings
    policy: Policy


def receive_once(
    store: RunStore,
    kind: DeliveryKind,
    delivered: Delivered,
    received: Result,
    *,
    correlation_id: str,
    run: Callable[[InScope], Result],
) -> Result | Replay:
    """Reserve the delivery by its idempotency key (recorded `received`), or replay what an earlier
    one stored; otherwise handle it (`_handle_in_scope`) and save the result. A failed earlier handling
    is handled again, as is one left unfinished by a worker that died (stale `received`, re-claimed
    by exactly one redelivery)."""
    key = delivered.idempotency_key()
    existing = store.reserve(kind, key, key, received.model_dump(mode="json"), "received")
    if existing is not None and existing.status != "failed" and existing.body is not None:
        # Only an unfinished record can be stale: a finished one is replayed without another read.
        if existing.status not in UNFINISHED or not store.claim_stale(kind, key, stale_after()):
            observability.logger().info("%s redelivered: returning the stored handling", kind)
            return Replay(existing.body)
        observability.logger().warning("%s handled again: its stored handling was left unfinished", kind)
    result = _handle_in_scope(kind, delivered, received, correlation_id, run)
    store.save(kind, key, key, result.model_dump(mode="json"), result.status)
    return result


def _handle_in_scope(
    kind: DeliveryKind,
    delivered: Delivered,
    received: Result,
    correlation_id: str,
    run: Callable[[InScope], Result],
) -> Result:
    """`run` the delivery on its vault, under the policy its scope was checked against (read once).
    Acknowledged instead (nothing read) when it is not actionable (its reason recorded) or its vault
    is out of scope; a run that raised is recorded failed (logged with its traceback; the body names
    only the correlation id)."""
    vault_id = delivered.vaultId
    if not delivered.actionable or vault_id is None:  # the parsers make no actionable one without a vault
        return received.model_copy(update={"status": "acknowledged", "message": delivered.reason})
    try:
        settings = AppSettings.from_env()
        policy = load_policy(settings)
        ignored = scope_guard.ignored_out_of_scope(vault_id, settings.subscription_ids, policy)
        if ignored is not None:
            observability.logger().warning("%s %s", kind, ignored)
            return received.model_copy(update={"status": "acknowledged", "message": ignored})
        return run(InScope(vault_id, settings, policy))
    except Exception:  # noqa: BLE001 - logged with traceback; the delivery is recorded as failed
        observability.logger().exception("%s handling failed", kind)
        observability.record_run_metric(kind, failures=1, status="failed")
        return received.model_copy(
            update={"status": "failed", "message": f"Handling failed; correlation id {correlation_id}."}
        )


@dataclass(frozen=True)
class VaultRun:
    """A delivery's pipeline run on its vault and the policy it ran under (the deployment's rails on)."""

    result: RunResult
    policy: Policy
    forced: list[str]  # the rails that forced a dry run
    own_change: bool = False  # the delivery reports a change the app's own identity made

    @property
    def compliant(self) -> bool:
        """Nothing to write and no read that stopped the run (a refused secret list is only a note)."""
        return not self.result.plan.writes and self.result.failures == 0


def run_on_vault(
    target: InScope,
    request_for: Callable[[Policy], RunRequest],
    *,
    own_change: Callable[[AzureClients], bool] | None = None,
) -> VaultRun:
    """The one pipeline on the delivery's vault, as `request_for` describes it under the effective
    policy (the target's, with the deployment's rails). Its live secret list refreshes the vault's
    stored deep inventory (what the quick sweep plans from). `own_change` asks, with the run's
    clients, whether the app itself made the change."""
    from remediations.triggers.secret_table import TableSecretInventory  # noqa: PLC0415 - SDK import

    policy, forced = effective_policy(target.settings, target.policy)
    with azure_session(target.settings) as (clients, audit):
        own = own_change(clients) if own_change is not None else False
        result = run(
            request_for(policy), policy, clients, audit, secret_store=TableSecretInventory.from_env()
        )
    return VaultRun(result, policy, forced, own)


def record_run(
    kind: DeliveryKind, received: Result, delivered: Delivered, done: VaultRun, notes: Sequence[str] = ()
) -> Result:
    """`received` with its run: status, summary, plan, outcomes and notes (first whether the vault was
    already compliant or the change was the app's own, then `notes`, failed reads, closure paths);
    the run metric recorded."""
    summary = summarise([done.result])
    status = run_status([done.result], done.policy.dry_run)
    lead = []
    if done.own_change:
        lead.append(
            "recognised the app's own change (the caller is vaultguard's identity); "
            f"re-checked the vault: {summary.actions} action(s) planned"
        )
    elif done.compliant:
        lead.append("the vault is already compliant: re-checked, 0 actions planned")
    observability.record_run_metric(kind, status=status, dry_run=done.policy.dry_run, **summary.metric())
    return received.model_copy(
        update={
            "status": delivery_status(status),
            "message": delivered.reason,
            "summary": summary.model_dump(),
            "dryRun": done.policy.dry_run,
            "dryRunForcedBy": done.forced,
            "plan": plan_json([done.result]),
            "outcomes": outcomes_json([done.result]),
            "notes": [*lead, *notes, *inventory_notes([done.result]), *closure_notes([done.result])],
        }
    )
