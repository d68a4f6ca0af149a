"""Builders for RBAC snapshots: role assignments at any scope, connections of flow identities."""

from __future__ import annotations

from datetime import UTC, datetime

from remediations.core import rbac
from remediations.core.model import (
    Connection,
    Identity,
    RoleAssignment,
    RoleDefinition,
    SecretMeta,
    Snapshot,
    Vault,
)
from tests.unit.kv_builders import RG, SUB, snapshot, vault, vault_id

FLOW = "11111111-0000-0000-0000-00000000f10e"
BREAK_GLASS = "22222222-0000-0000-0000-0000000000bb"
RG_SCOPE = f"/subscriptions/{SUB}/resourceGroups/{RG}"
SUB_SCOPE = f"/subscriptions/{SUB}"


def assignment(
    scope: str, role: str, principal: str = FLOW, name: str | None = None, created_on: datetime | None = None
) -> RoleAssignment:
    name = name or rbac.assignment_name(scope, principal, role + "-seed")
    return RoleAssignment(
        id=f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
        scope=scope,
        role_definition_id=rbac.role_id(SUB, role),
        principal_id=principal,
        principal_type="ServicePrincipal",
        created_on=created_on,
    )


def rbac_vault(name: str, *secrets: str, tags: dict[str, dict[str, str]] | None = None) -> Vault:
    base = vault(name, rbac=True, secrets=secrets)
    if tags:
        base = base.model_copy(
            update={
                "secrets": tuple(
                    SecretMeta(name=s.name, id=s.id, tags=tags.get(s.name, {})) for s in base.secrets
                )
            }
        )
    return base


def rbac_snapshot(
    *vaults: Vault,
    assignments: tuple[RoleAssignment, ...] = (),
    definitions: tuple[RoleDefinition, ...] = (),
    identities: tuple[Identity, ...] = (),
    connections: tuple[Connection, ...] = (),
) -> Snapshot:
    snap = snapshot(*vaults, role_assignments=assignments, identities=identities)
    return snap.model_copy(
        update={
            "role_definitions": definitions,
            "connections": connections,
            "taken_at": datetime(2026, 1, 1, tzinfo=UTC),
        }
    )


__all__ = [
    "BREAK_GLASS",
    "FLOW",
    "RG_SCOPE",
    "SUB",
    "SUB_SCOPE",
    "assignment",
    "rbac_snapshot",
    "rbac_vault",
    "vault_id",
]
