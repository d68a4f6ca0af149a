"""Apply access-policy deltas (planned by `core/access_policy.py`) and verify each from the PUT response,
which returns the vault's resulting policies: no re-read needed. Shared by remove_list_permission and
narrow_access_policy; the leading underscore keeps it out of fix discovery."""

from __future__ import annotations

from remediations.core.access_policy import entry_of
from remediations.core.model import AccessPolicy, AccessPolicyChange, Action, Outcome, Permissions, VaultRef
from remediations.ports import AzureCallFailed, Clients, ResourceGone


def _took_effect(change: AccessPolicyChange, result: AccessPolicy | None) -> list[str]:
    """Permissions the response shows were not changed as asked (case-insensitive: `List` is `list`)."""
    held = {p.lower() for p in (result.permissions.secrets if result is not None else ())}
    if change.operation == "remove":
        return [p for p in change.permissions.secrets if p.lower() in held]
    return [p for p in change.permissions.secrets if p.lower() not in held]


def apply_changes(action: Action, clients: Clients) -> Outcome:
    """Send each delta in order; check each response. A change that did not happen is `failed`."""
    vault = VaultRef.parse(action.target)
    api = clients.keyvault_management(vault.subscription_id)
    observed: dict[str, list[str]] | None = None
    total = len(action.changes)
    for step, change in enumerate(action.changes, start=1):
        if not isinstance(change, AccessPolicyChange):
            unexpected = f"step {step}/{total}: not an access-policy change ({change.type})"
            return _failed(action, observed, unexpected)
        try:
            policies = api.update_access_policy(vault.resource_group, vault.name, change)
        except ResourceGone as gone:
            if step == 1:
                return Outcome(action_id=action.id, status="noop", before=action.before, error=str(gone))
            return _failed(action, observed, f"step {step}/{total}: {gone}")
        except AzureCallFailed as error:
            done = f" (steps 1-{step - 1} were applied)" if step > 1 else ""
            return _failed(action, observed, f"step {step}/{total} {change.operation}: {error}{done}")
        mine = entry_of(policies, change)
        observed = (mine.permissions if mine is not None else Permissions()).as_dict()
        unchanged = _took_effect(change, mine)
        if unchanged:
            return _failed(
                action,
                observed,
                f"step {step}/{total}: Key Vault answered success but {change.operation} of {unchanged} "
                "did not take effect (permission names are matched case-sensitively)",
            )
    return Outcome(
        action_id=action.id, status="applied", before=action.before, after=observed or {}, verified=True
    )


def _failed(action: Action, observed: dict[str, list[str]] | None, error: str) -> Outcome:
    return Outcome(
        action_id=action.id, status="failed", before=action.before, after=observed or {}, error=error
    )
