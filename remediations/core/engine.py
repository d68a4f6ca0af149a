"""The imperative shell: inventory -> detect -> plan -> apply -> verify -> audit.

`detect` and `build_plan` are pure; `inventory` and `apply_plan` do I/O only through `Clients`, and
every write is audited `pending` before and with its outcome after.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from remediations.adapters.clients import Clients
from remediations.adapters.errors import AzureCallFailed
from remediations.core.audit import AuditRecord, AuditSink, AuditState, Trigger
from remediations.core.detect import detect
from remediations.core.flow_allow_list import effective_policy
from remediations.core.model import (
    Action,
    Finding,
    Identity,
    InventoryError,
    Outcome,
    Plan,
    PowerPlatformScope,
    RoleDefinition,
    Scope,
    Snapshot,
    Vault,
    stable_id,
)
from remediations.core.policy import Policy
from remediations.core.pp_inventory import inventory_powerplatform
from remediations.core.registry import all_remediations, get_remediation

Progress = Callable[[str, int, int], None]  # (stage, done, total)
SECRET_LIST_CONCURRENCY = 8  # vault hosts are independent; LIMITS.md: latency-bound, not throttle-bound


def _noop_progress(stage: str, done: int, total: int) -> None:
    return None


def _error(resource_id: str, operation: str, error: AzureCallFailed) -> InventoryError:
    return InventoryError(
        resource_id=resource_id,
        operation=operation,
        status=error.status,
        message=str(error),
        retry_after=error.retry_after,
    )


def inventory(
    scope: Scope,
    clients: Clients,
    *,
    progress: Progress = _noop_progress,
    include_secrets: bool = True,
    pp_scope: PowerPlatformScope | None = None,
) -> Snapshot:
    """Read-only: vaults (with access policies), role assignments, secret metadata, identities, and,
    when `pp_scope` names environments, their flows, Key Vault connections, shares and DLP policies.

    A failed read becomes an InventoryError in the snapshot; nothing is silently dropped.
    """
    snapshot = _inventory_azure(scope, clients, progress=progress, include_secrets=include_secrets)
    if pp_scope is None or pp_scope.empty:
        return snapshot
    pp = inventory_powerplatform(pp_scope, clients, progress=progress)
    return snapshot.model_copy(
        update={
            "environments": tuple(pp.environments),
            "flows": tuple(pp.flows),
            "connections": tuple(pp.connections),
            "shares": tuple(pp.shares),
            "dlp_policies": tuple(pp.dlp_policies),
            "errors": snapshot.errors + tuple(pp.errors),
            "power_platform_scope": pp_scope,
        }
    )


def _inventory_azure(
    scope: Scope, clients: Clients, *, progress: Progress = _noop_progress, include_secrets: bool = True
) -> Snapshot:
    taken_at = datetime.now(UTC)
    errors: list[InventoryError] = []
    try:
        vaults = clients.keyvault_management(scope.subscription_id).list_vaults(scope)
    except AzureCallFailed as error:
        return Snapshot(
            scope=scope, taken_at=taken_at, errors=(_error(scope.resource_id, "list vaults", error),)
        )

    # Subscription-wide: one paged list gives every assignment at, above and below any vault in it,
    # and the count the 4,000-per-subscription budget of RBAC narrowing needs.
    subscription = Scope(subscription_id=scope.subscription_id)
    try:
        role_assignments = clients.authorization(scope.subscription_id).list_role_assignments(subscription)
    except AzureCallFailed as error:
        role_assignments = []
        errors.append(_error(subscription.resource_id, "list role assignments", error))
    role_definitions = _role_definitions(vaults, clients, scope, errors)

    if include_secrets:
        vaults = _with_secrets(vaults, clients, errors, progress)

    object_ids = sorted(
        {p.object_id.lower() for v in vaults for p in v.access_policies}
        | {ra.principal_id.lower() for ra in role_assignments}
    )
    identities: list[Identity] = []
    if object_ids:
        try:
            identities = clients.directory().resolve(object_ids)
        except AzureCallFailed as error:
            identities = [Identity(object_id=oid, exists=None) for oid in object_ids]
            errors.append(_error("directoryObjects/getByIds", "resolve identities", error))

    return Snapshot(
        scope=scope,
        taken_at=taken_at,
        vaults=tuple(vaults),
        role_assignments=tuple(role_assignments),
        role_definitions=tuple(role_definitions),
        identities=tuple(identities),
        errors=tuple(errors),
    )


def _role_definitions(
    vaults: list[Vault], clients: Clients, scope: Scope, errors: list[InventoryError]
) -> list[RoleDefinition]:
    """Once per subscription, only when an RBAC vault needs them (no GET per assignment)."""
    if not any(v.enable_rbac_authorization for v in vaults):
        return []
    try:
        return clients.authorization(scope.subscription_id).list_role_definitions()
    except AzureCallFailed as error:
        errors.append(_error(f"/subscriptions/{scope.subscription_id}", "list role definitions", error))
        return []


def _with_secrets(
    vaults: list[Vault], clients: Clients, errors: list[InventoryError], progress: Progress
) -> list[Vault]:
    def read(vault: Vault) -> Vault | InventoryError:
        if not vault.vault_uri:
            return InventoryError(
                resource_id=vault.id, operation="list secrets", message="vault has no vaultUri"
            )
        try:
            secrets = clients.keyvault_secrets(vault.vault_uri).list_secret_metadata()
        except AzureCallFailed as error:
            return _error(vault.id, "list secrets", error)
        return vault.model_copy(update={"secrets": tuple(secrets)})

    result: list[Vault] = []
    with ThreadPoolExecutor(max_workers=SECRET_LIST_CONCURRENCY) as pool:
        for done, (vault, read_result) in enumerate(
            zip(vaults, pool.map(read, vaults), strict=True), start=1
        ):
            if isinstance(read_result, InventoryError):
                errors.append(read_result)
                result.append(vault)
            else:
                result.append(read_result)
            progress("secrets", done, len(vaults))
    return result


def build_plan(
    findings: list[Finding],
    snapshot: Snapshot,
    policy: Policy,
    *,
    remediation_ids: Collection[str] | None = None,
    dry_run: bool | None = None,
) -> Plan:
    """Pure: actions from every remediation, de-duplicated, in a stable order, capped per run."""
    policy = effective_policy(policy, snapshot)  # the same derived allow-lists `detect` used
    actions: dict[str, Action] = {}
    for remediation in all_remediations():
        if remediation_ids is not None and remediation.id not in remediation_ids:
            continue
        mine = [f for f in findings if f.detector_id in remediation.handles]
        if not mine:
            continue
        for action in remediation.plan(snapshot, mine, policy):
            actions.setdefault(action.id, action)
    ordered = sorted(actions.values(), key=lambda a: (a.target.lower(), a.principal or "", a.remediation_id))
    kept: list[Action] = []
    deferred: list[Action] = []
    writes = 0
    for action in ordered:
        if action.skip_reason is None:
            if writes >= policy.max_actions_per_run:
                deferred.append(action)
                continue
            writes += 1
        kept.append(action)
    return Plan(
        id=stable_id("plan", [a.id for a in kept], [a.id for a in deferred]),
        actions=tuple(kept),
        deferred=tuple(deferred),
        created_at=snapshot.taken_at,
        dry_run=policy.dry_run if dry_run is None else dry_run,
    )


class RunContext(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    correlation_id: str
    trigger: Trigger
    ticket_id: str | None = None
    caller: str | None = None


def _audit(
    sink: AuditSink,
    context: RunContext,
    action: Action,
    *,
    sequence: int,
    state: AuditState,
    outcome: Outcome | None = None,
) -> None:
    sink.record(
        AuditRecord(
            correlation_id=context.correlation_id,
            action_id=action.id,
            sequence=sequence,
            state=state,
            remediation_id=action.remediation_id,
            target=action.target,
            principal=action.principal,
            before=outcome.before if outcome is not None and outcome.before else action.before,
            after=outcome.after if outcome is not None and outcome.after else action.after,
            reason=action.skip_reason or action.reason,
            error=outcome.error if outcome is not None else None,
            trigger=context.trigger,
            ticket_id=context.ticket_id,
            caller=context.caller,
        )
    )


def apply_plan(
    plan: Plan,
    clients: Clients,
    audit: AuditSink,
    context: RunContext,
    *,
    progress: Progress = _noop_progress,
) -> list[Outcome]:
    """Apply each action (never in a dry run). An audit failure stops the run before the next write."""
    outcomes: list[Outcome] = []
    total = len(plan.actions) + len(plan.deferred)
    for done, action in enumerate(plan.actions, start=1):
        if action.skip_reason is not None:
            outcome = Outcome(
                action_id=action.id, status="skipped", before=action.before, error=action.skip_reason
            )
            _audit(audit, context, action, sequence=1, state="skipped", outcome=outcome)
        elif plan.dry_run:
            outcome = Outcome(
                action_id=action.id,
                status="skipped",
                before=action.before,
                after=action.after,
                error="dry run",
            )
        else:
            _audit(audit, context, action, sequence=0, state="pending")
            outcome = get_remediation(action.remediation_id).apply(action, clients)
            _audit(audit, context, action, sequence=1, state=outcome.status, outcome=outcome)
        outcomes.append(outcome)
        progress("apply", done, total)
    for action in plan.deferred:
        outcome = Outcome(
            action_id=action.id,
            status="deferred",
            before=action.before,
            error="over the cap of actions per run; planned again next run",
        )
        if not plan.dry_run:
            _audit(audit, context, action, sequence=1, state="deferred", outcome=outcome)
        outcomes.append(outcome)
    return outcomes


class RunResult(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    correlation_id: str
    scope: Scope
    findings: tuple[Finding, ...]
    plan: Plan
    outcomes: tuple[Outcome, ...]
    inventory_errors: tuple[InventoryError, ...]

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def failures(self) -> int:
        """Failed writes plus failed reads: a run with any is not a success."""
        return self.count("failed") + len(self.inventory_errors)


def run(
    scope: Scope,
    policy: Policy,
    clients: Clients,
    audit: AuditSink,
    *,
    trigger: Trigger,
    dry_run: bool | None = None,
    remediation_ids: Collection[str] | None = None,
    correlation_id: str | None = None,
    ticket_id: str | None = None,
    caller: str | None = None,
    progress: Progress = _noop_progress,
    pp_scope: PowerPlatformScope | None = None,
) -> RunResult:
    """One pass over a scope. A dry run (default: the policy's `dryRun`) writes nothing, audit included."""
    context = RunContext(
        correlation_id=correlation_id or str(uuid.uuid4()),
        trigger=trigger,
        ticket_id=ticket_id,
        caller=caller,
    )
    snapshot = inventory(scope, clients, progress=progress, pp_scope=pp_scope)
    findings = detect(snapshot, policy)
    plan = build_plan(findings, snapshot, policy, remediation_ids=remediation_ids, dry_run=dry_run)
    outcomes = apply_plan(plan, clients, audit, context, progress=progress)
    return RunResult(
        correlation_id=context.correlation_id,
        scope=scope,
        findings=tuple(findings),
        plan=plan,
        outcomes=tuple(outcomes),
        inventory_errors=snapshot.errors,
    )
