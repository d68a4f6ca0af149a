"""Role assignments (RBAC) via `AuthorizationManagementClient`."""

from __future__ import annotations

from typing import Any

from azure.core.credentials import TokenCredential
from azure.mgmt.authorization import AuthorizationManagementClient

from remediations.adapters.retry import with_retry
from remediations.core.model import RoleAssignment, Scope


class Authorization:
    def __init__(self, credential: TokenCredential, subscription_id: str, **client_kwargs: Any) -> None:
        self._client = AuthorizationManagementClient(
            credential, subscription_id, retry_total=0, **client_kwargs
        )

    def list_role_assignments(self, scope: Scope) -> list[RoleAssignment]:
        """Assignments at, above and below the scope (one paged list; no per-vault calls)."""

        def list_all() -> list[RoleAssignment]:
            return [
                RoleAssignment(
                    id=str(ra.id),
                    scope=str(ra.scope),
                    role_definition_id=str(ra.role_definition_id),
                    principal_id=str(ra.principal_id),
                    principal_type=str(ra.principal_type) if ra.principal_type else None,
                )
                for ra in self._client.role_assignments.list_for_scope(scope.resource_id)
            ]

        return with_retry(f"list role assignments for {scope.resource_id}", list_all)

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]
