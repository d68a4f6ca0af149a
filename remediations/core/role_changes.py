"""Role-assignment changes, pure: which listed assignment a planned change names, and how to describe it.
The fixes apply them with `fixes/_role_writes.py`."""

from __future__ import annotations

from remediations.core.model import RoleAssignment, RoleAssignmentChange


def norm_scope(scope: str) -> str:
    return scope.rstrip("/").lower()


def assignment_matches(assignment: RoleAssignment, change: RoleAssignmentChange) -> bool:
    """The assignment a change names: same scope, principal and role (ARM compares case-insensitively).
    Also used by the report's simulated "after" graph."""
    return (
        norm_scope(assignment.scope) == norm_scope(change.scope)
        and assignment.principal_id.lower() == change.principal_id.lower()
        and assignment.role_guid == change.role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()
    )


def describe(assignment: RoleAssignment | RoleAssignmentChange) -> str:
    role = assignment.role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()
    return f"{role} at {assignment.scope}"
