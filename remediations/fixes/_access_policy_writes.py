"""Send access-policy deltas (planned by `core/access_policy.py`), one `PUT .../accessPolicies/{add|remove}`
each. The PUT answers with the request's entries echoed, not with what the vault now holds, so the
deltas are verified by the shell's one read of the vault after all its writes under the lease
(shell/write_guard.py `LeasedVault`, rules in core/write_check.py). Shared by remove_list_permission,
narrow_access_policy and remove_orphaned_principal; the leading underscore keeps it out of fix discovery."""

from __future__ import annotations

from remediations.core.model import AccessPolicyChange, Action, Outcome, VaultRef
from remediations.ports import AzureCallFailed, Clients, ResourceGone


def apply_changes(action: Action, clients: Clients) -> Outcome:
    """Send each delta in order. All sent: `applied`, not yet verified (`after` is the plan's); a
    refused one: `failed`, saying which steps went through; a vault gone at the first: `noop`."""
    vault = VaultRef.parse(action.target)
    api = clients.keyvault_management(vault.subscription_id)
    total = len(action.changes)
    for step, change in enumerate(action.changes, start=1):
        if not isinstance(change, AccessPolicyChange):
            return _failed(action, f"step {step}/{total}: not an access-policy change ({change.type})")
        try:
            api.update_access_policy(vault.resource_group, vault.name, change)
        except ResourceGone as gone:
            if step == 1:
                return Outcome(action_id=action.id, status="noop", before=action.before, error=str(gone))
            return _failed(action, f"step {step}/{total}: {gone}")
        except AzureCallFailed as error:
            done = f" (steps 1-{step - 1} were applied)" if step > 1 else ""
            return _failed(action, f"step {step}/{total} {change.operation}: {error}{done}")
    return Outcome(action_id=action.id, status="applied", before=action.before, after=action.after)


def _failed(action: Action, error: str) -> Outcome:
    return Outcome(action_id=action.id, status="failed", before=action.before, error=error)
