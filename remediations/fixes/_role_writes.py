"""Apply role-assignment changes safely: every create first, then verify them in the assignment list,
only then the deletes, then verify those. Verification reads the list, not data-plane access, because
role changes take up to 10 minutes to reach Key Vault (docs/limits.md 1a).

If a create fails or does not show up, nothing is deleted, so an identity is never left without the
access it needs. Creates use deterministic names, so re-running after a partial failure is safe.
Shared by narrow_role_assignment and remove_orphaned_principal; the leading underscore keeps it out of
fix discovery.
"""

from __future__ import annotations

from remediations.core.model import Action, Outcome, RoleAssignment, RoleAssignmentChange, subscription_of
from remediations.core.role_changes import assignment_matches, describe, norm_scope
from remediations.ports import AzureCallFailed, Clients


def _list_scope(scope: str) -> str:
    """Where to list to see an assignment at `scope`: its vault for a secret scope (lists include below)."""
    return scope.split("/secrets/", 1)[0] if "/secrets/" in scope.lower() else scope


def apply_role_changes(action: Action, clients: Clients) -> Outcome:
    changes = [c for c in action.changes if isinstance(c, RoleAssignmentChange)]
    if len(changes) != len(action.changes) or not changes:
        return _failed(action, {}, "not a role-assignment action")
    creates = [c for c in changes if c.operation == "create"]
    deletes = [c for c in changes if c.operation == "delete"]
    api = clients.authorization(subscription_of(changes[0].scope))

    for step, change in enumerate(creates, start=1):
        try:
            api.create_role_assignment(change)
        except AzureCallFailed as error:
            done = f"; {step - 1} earlier create(s) kept, nothing deleted" if step > 1 else ""
            return _failed(action, {}, f"create {describe(change)}: {error}{done}")

    listed: dict[str, list[RoleAssignment]] = {}

    def current(scope: str) -> list[RoleAssignment]:
        key = norm_scope(_list_scope(scope))
        if key not in listed:
            listed[key] = api.list_role_assignments_at(_list_scope(scope))
        return listed[key]

    try:
        missing = [c for c in creates if not any(assignment_matches(a, c) for a in current(c.scope))]
    except AzureCallFailed as error:
        return _failed(action, {}, f"verify creates: {error}; nothing deleted")
    if missing:
        return _failed(
            action,
            {},
            f"created but not in the assignment list: {[describe(c) for c in missing]}; nothing deleted",
        )

    for change in deletes:
        try:
            api.delete_role_assignment(change)
        except AzureCallFailed as error:
            return _failed(action, {}, f"delete {describe(change)}: {error} (new assignments kept)")
    listed.clear()
    try:
        left = [
            c
            for c in deletes
            if any(
                a.name.lower() == c.assignment_name.lower() or assignment_matches(a, c)
                for a in current(c.scope)
            )
        ]
    except AzureCallFailed as error:
        return _failed(action, {}, f"verify deletes: {error}")
    if left:
        return _failed(action, {}, f"deleted but still listed: {[describe(c) for c in left]}")
    # Verified from the list: every create is there, every delete gone; the planned `after` holds.
    return Outcome(
        action_id=action.id, status="applied", before=action.before, after=action.after, verified=True
    )


def _failed(action: Action, after: dict[str, list[str]], error: str) -> Outcome:
    return Outcome(action_id=action.id, status="failed", before=action.before, after=after, error=error)
