"""Scope guard: what a ticket, an alert or a Defender record names must lie in the configured scope
before anything is read or written.

In scope: a vault whose subscription is one of `VAULTGUARD_SUBSCRIPTION_IDS` and that the policy does not
exclude (`exclusions.vaults`, by resource id or name). With no subscription configured nothing is in
scope (fail closed): a request cannot widen the app's reach by naming a vault it was never given.

Pure functions over the request, the settings and the policy; the triggers call them first and answer
403 (tickets) or record "ignored: out of scope" (alerts and Key Vault events).
"""

from __future__ import annotations

from collections.abc import Collection

from remediations.core.model import Scope
from remediations.core.policy import Policy
from remediations.shell import settings as names
from remediations.triggers import ids
from remediations.triggers.problems import FieldError, Problem, ProblemError
from remediations.triggers.tickets import TicketRequest


def vault_out_of_scope(vault_id: str, subscriptions: Collection[str], policy: Policy) -> str | None:
    """Why the vault is out of scope, or None when it is in scope."""
    scope = Scope.parse(vault_id)
    if scope.subscription_id.lower() not in {s.lower() for s in subscriptions}:
        return f"its subscription is not in {names.SUBSCRIPTION_IDS}"
    excluded = {v.lower() for v in policy.exclusions.vaults}
    if vault_id.lower() in excluded or (scope.vault_name or "").lower() in excluded:
        return "the policy excludes this vault (exclusions.vaults)"
    return None


def ticket_out_of_scope(
    request: TicketRequest, subscriptions: Collection[str], policy: Policy
) -> list[FieldError]:
    """One error per named vault, or vault of a named secret (by ARM id), that is out of scope. Secret
    URLs name a vault by host: they are looked up only in the configured subscriptions (service)."""
    errors: list[FieldError] = []
    for index, vault in enumerate(request.targets.vaults):
        reason = vault_out_of_scope(vault, subscriptions, policy)
        if reason is not None:
            errors.append(FieldError(f"$.targets.vaults[{index}]", f"out of scope: {reason}"))
    for index, secret in enumerate(request.targets.secrets):
        secret_vault = ids.vault_id_in(secret)
        reason = None if secret_vault is None else vault_out_of_scope(secret_vault, subscriptions, policy)
        if reason is not None:
            errors.append(FieldError(f"$.targets.secrets[{index}]", f"out of scope: {reason}"))
    return errors


def check_ticket(request: TicketRequest, subscriptions: Collection[str], policy: Policy) -> None:
    """403 problem naming every out-of-scope target; nothing of the ticket is read, run or stored."""
    errors = ticket_out_of_scope(request, subscriptions, policy)
    if errors:
        detail = "The ticket names targets outside the configured scope; nothing was read or changed."
        raise ProblemError(Problem(403, "out-of-scope", detail, errors=tuple(errors)))


def ignored_out_of_scope(vault_id: str, subscriptions: Collection[str], policy: Policy) -> str | None:
    """The note an out-of-scope alert or event is acknowledged with ("ignored: out of scope ..."), or
    None when its vault is in scope."""
    reason = vault_out_of_scope(vault_id, subscriptions, policy)
    return None if reason is None else f"ignored: out of scope ({reason}); nothing was read or changed"


def in_scope(scopes: list[Scope], subscriptions: Collection[str], policy: Policy) -> list[Scope]:
    """The vault scopes a run may read and write (vaults found by host name included)."""
    return [
        s
        for s in scopes
        if s.kind != "vault" or vault_out_of_scope(s.resource_id, subscriptions, policy) is None
    ]
