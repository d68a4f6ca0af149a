"""Role assignments and role definitions (RBAC) via `AuthorizationManagementClient`.

Lists are one paged call per scope (role definitions: one per subscription, never a GET per
assignment). Creates use the caller's deterministic assignment name, so a repeated create is a no-op;
a delete of an assignment that is already gone is a no-op too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceExistsError
from azure.mgmt.authorization import AuthorizationManagementClient

from remediations.adapters.errors import ResourceGone
from remediations.adapters.retry import with_retry
from remediations.core.model import RoleAssignment, RoleAssignmentChange, RoleDefinition, Scope


def role_assignment_from_sdk(ra: Any) -> RoleAssignment:
    created = getattr(ra, "created_on", None)
    return RoleAssignment(
        id=str(ra.id),
        scope=str(ra.scope),
        role_definition_id=str(ra.role_definition_id),
        principal_id=str(ra.principal_id),
        principal_type=str(ra.principal_type) if ra.principal_type else None,
        created_on=created if isinstance(created, datetime) else None,
    )


def role_definition_from_sdk(rd: Any) -> RoleDefinition:
    def texts(name: str) -> tuple[str, ...]:
        return tuple(str(a) for p in (rd.permissions or ()) for a in (getattr(p, name, None) or ()))

    return RoleDefinition(
        id=str(rd.id),
        role_name=str(rd.role_name or ""),
        role_type=str(rd.role_type or ""),
        actions=texts("actions"),
        not_actions=texts("not_actions"),
        data_actions=texts("data_actions"),
        not_data_actions=texts("not_data_actions"),
    )


class Authorization:
    def __init__(self, credential: TokenCredential, subscription_id: str, **client_kwargs: Any) -> None:
        self.subscription_id = subscription_id
        self._client = AuthorizationManagementClient(
            credential, subscription_id, retry_total=0, **client_kwargs
        )

    def list_role_assignments(self, scope: Scope) -> list[RoleAssignment]:
        """Assignments at, above and below the scope (one paged list; no per-vault calls)."""
        return self.list_role_assignments_at(scope.resource_id)

    def list_role_assignments_at(self, scope: str) -> list[RoleAssignment]:
        """The same for any ARM scope string (a secret scope included)."""

        def list_all() -> list[RoleAssignment]:
            return [
                role_assignment_from_sdk(ra) for ra in self._client.role_assignments.list_for_scope(scope)
            ]

        return with_retry(f"list role assignments for {scope}", list_all)

    def list_role_definitions(self) -> list[RoleDefinition]:
        """Every role definition usable in the subscription (built-in and custom): one paged list."""
        scope = f"/subscriptions/{self.subscription_id}"

        def list_all() -> list[RoleDefinition]:
            return [role_definition_from_sdk(rd) for rd in self._client.role_definitions.list(scope)]

        return with_retry(f"list role definitions for {scope}", list_all)

    def create_role_assignment(self, change: RoleAssignmentChange) -> RoleAssignment | None:
        """`PUT {scope}/providers/Microsoft.Authorization/roleAssignments/{name}`. Returns None when the
        same principal + role + scope already exists under another name (409 RoleAssignmentExists)."""
        parameters = {
            "properties": {
                "roleDefinitionId": change.role_definition_id,
                "principalId": change.principal_id,
                **({"principalType": change.principal_type} if change.principal_type else {}),
            }
        }

        def put() -> RoleAssignment | None:
            try:
                created = self._client.role_assignments.create(
                    change.scope, change.assignment_name, parameters
                )
            except ResourceExistsError:
                return None
            return role_assignment_from_sdk(created)

        return with_retry(f"create role assignment {change.assignment_name}", put)

    def delete_role_assignment(self, change: RoleAssignmentChange) -> bool:
        """`DELETE .../roleAssignments/{name}`; False when it was already gone."""

        def delete() -> bool:
            return self._client.role_assignments.delete(change.scope, change.assignment_name) is not None

        try:
            return with_retry(f"delete role assignment {change.assignment_name}", delete)
        except ResourceGone:
            return False

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]
