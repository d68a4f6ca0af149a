"""Builders for Power Platform snapshots and an in-memory Power Platform admin API with the service's
semantics: modifyPermissions answers 200 with no body; a flow's creator and a connection's owner cannot
be removed; an unknown flow/connection is 404; DLP create returns the whole policy."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Sequence
from typing import Any

from remediations.adapters.errors import ResourceGone
from remediations.core.model import (
    KEYVAULT_CONNECTOR_ID,
    Connection,
    ConnectionReference,
    Environment,
    Flow,
    Share,
    Snapshot,
)
from tests.unit.kv_builders import policy_entry, snapshot, vault

ENV = "env-1"
ADMIN, CUSTOMIZER, ANALYST, SVC = "admin", "customizer", "analyst", "svc-flows"


def keyvault_action(
    operation: str, secret: str | None = None, *, secure: bool = True, **extra: Any
) -> dict[str, Any]:
    action: dict[str, Any] = {
        "runAfter": {},
        "type": "OpenApiConnection",
        "inputs": {
            "host": {
                "apiId": KEYVAULT_CONNECTOR_ID,
                "connectionName": "shared_keyvault",
                "operationId": operation,
            },
            "parameters": {"secretName": secret} if secret else {},
        },
        **extra,
    }
    if secure:
        action["runtimeConfiguration"] = {"secureData": {"properties": ["inputs", "outputs"]}}
    return action


def definition(actions: dict[str, Any]) -> dict[str, Any]:
    return {"triggers": {"manual": {"type": "Request", "kind": "Button"}}, "actions": actions}


def flow(
    flow_id: str, creator: str, connection: str, actions: dict[str, Any] | None = None, env: str = ENV
) -> Flow:
    return Flow(
        id=flow_id,
        environment=env,
        display_name=f"flow {flow_id}",
        creator=creator,
        connection_references=(connection,),
        reference_keys={"shared_keyvault": connection},
        definition=definition(
            actions if actions is not None else {"Get_secret": keyvault_action("GetSecret", "db-password")}
        ),
    )


def connection(
    connection_id: str, identity: str, kind: str = "user", vault_name: str = "kv", env: str = ENV
) -> Connection:
    return Connection(
        id=connection_id,
        environment=env,
        connector_id=KEYVAULT_CONNECTOR_ID,
        identity_principal_id=identity,
        identity_kind=kind,  # type: ignore[arg-type]
        parameters={"vaultName": vault_name},
        created_by=identity if kind == "user" else SVC,
    )


def share(kind: str, resource: str, principal: str, role: str, env: str = ENV) -> Share:
    permission = f"/providers/x/{kind}s/{resource}/permissions/{principal}-perm"
    return Share(
        resource_kind=kind,  # type: ignore[arg-type]
        resource_id=resource,
        principal_id=principal,
        role=role,
        environment=env,
        permission_id=permission if kind == "connection" else None,
    )


def seed_like() -> Snapshot:
    """The seed scenario in miniature: the admin's Key Vault connection behind a flow the analyst co-owns."""
    base = snapshot(
        vault("kv", policy_entry(ADMIN, "Get", "List"), secrets=("db-password", "crm-key", "sftp"))
    )
    return base.model_copy(
        update={
            "environments": (
                Environment(
                    id=f"/environments/{ENV}",
                    name=ENV,
                    role_holders={
                        ADMIN: ("System Administrator",),
                        CUSTOMIZER: ("System Customizer",),
                        ANALYST: ("Environment Maker",),
                    },
                ),
            ),
            "flows": (flow("f1", ADMIN, "c-admin"),),
            "connections": (connection("c-admin", ADMIN),),
            "shares": (
                share("flow", "f1", ADMIN, "Owner"),
                share("flow", "f1", ANALYST, "CanEdit"),
                share("connection", "c-admin", ADMIN, "Owner"),
                share("connection", "c-admin", ANALYST, "CanView"),
            ),
        }
    )


class MemoryPowerPlatform:
    def __init__(self, snap: Snapshot) -> None:
        self.flow_shares: dict[str, list[Share]] = {}
        self.connection_shares: dict[str, list[Share]] = {}
        self.creators = {f.id: f.creator for f in snap.flows}
        for s in snap.shares:
            target = self.flow_shares if s.resource_kind == "flow" else self.connection_shares
            target.setdefault(s.resource_id, []).append(s)
        self.policies: list[dict[str, Any]] = []
        self.calls: list[tuple[str, Any]] = []
        self.ignore_deletes = False
        self.flows = {f.id: f for f in snap.flows}
        self.ignore_turn_off = False
        self.roles = {(e.name, p): set(r) for e in snap.environments for p, r in e.role_holders.items()}
        self.ignore_role_removal = False
        self.ignore_updates = False
        # connectionreferences rows by logical name (lower case): a solution flow's binding
        self.references = {
            name.lower(): ConnectionReference(
                id=f"cr-{name.lower()}", logical_name=name, connection_id=f.reference_keys[key]
            )
            for f in snap.flows
            for key, name in f.solution_references.items()
        }

    def get_connection_reference(self, environment: str, logical_name: str) -> ConnectionReference | None:
        self.calls.append(("get_connection_reference", logical_name))
        return self.references.get(logical_name.lower())

    def update_connection_reference(self, environment: str, reference_id: str, connection: str) -> None:
        """PATCH connectionid: every flow naming the row now runs on `connection`."""
        self.calls.append(("update_connection_reference", reference_id))
        if self.ignore_updates:
            return
        name, row = next((n, r) for n, r in self.references.items() if r.id == reference_id)
        self.references[name] = row.model_copy(update={"connection_id": connection})
        for flow_id, found in self.flows.items():
            keys = {
                k: connection if found.solution_references.get(k, "").lower() == name else c
                for k, c in found.reference_keys.items()
            }
            self.flows[flow_id] = found.model_copy(
                update={"reference_keys": keys, "connection_references": tuple(sorted(set(keys.values())))}
            )

    def get_flow_client_data(self, environment: str, flow_id: str) -> dict[str, Any]:
        """`clientdata` as Dataverse holds it: the definition and the connection references."""
        self.calls.append(("get_flow_client_data", flow_id))
        if flow_id not in self.flows:
            raise ResourceGone("get flow", 404, "0x80040217", "no flow")
        found = self.flows[flow_id]
        references = {k: {"connection": {"name": c}} for k, c in found.reference_keys.items()}
        return copy.deepcopy(
            {"properties": {"connectionReferences": references, "definition": found.definition}}
        )

    def update_flow_client_data(self, environment: str, flow_id: str, data: dict[str, Any]) -> None:
        self.calls.append(("update_flow_client_data", flow_id))
        if not self.ignore_updates:
            properties = data["properties"]
            keys = {k: r["connection"]["name"] for k, r in properties.get("connectionReferences", {}).items()}
            self.flows[flow_id] = self.flows[flow_id].model_copy(
                update={
                    "definition": copy.deepcopy(properties["definition"]),
                    "reference_keys": keys,
                    "connection_references": tuple(sorted(set(keys.values()))),
                }
            )

    def security_roles(self, environment: str, principal_id: str) -> tuple[str, ...]:
        self.calls.append(("security_roles", principal_id))
        return tuple(sorted(self.roles.get((environment, principal_id), set())))

    def remove_security_role(self, environment: str, principal_id: str, role: str) -> None:
        """Dataverse disassociate of the user's role association."""
        self.calls.append(("remove_security_role", (principal_id, role)))
        if not self.ignore_role_removal:
            self.roles.get((environment, principal_id), set()).discard(role)

    def get_flow(self, environment: str, flow_id: str) -> Flow:
        self.calls.append(("get_flow", flow_id))
        if flow_id not in self.flows:
            raise ResourceGone("get flow", 404, "0x80040217", "no flow")
        return self.flows[flow_id]

    def turn_off_flow(self, environment: str, flow_id: str) -> None:
        """Dataverse PATCH statecode 0: the flow is Stopped (Draft)."""
        self.calls.append(("turn_off_flow", flow_id))
        if flow_id not in self.flows:
            raise ResourceGone("turn off flow", 404, "0x80040217", "no flow")
        if not self.ignore_turn_off:
            self.flows[flow_id] = self.flows[flow_id].model_copy(update={"state": "Stopped"})

    def flow_permissions(self, environment: str, flow_id: str) -> list[Share]:
        self.calls.append(("flow_permissions", flow_id))
        if flow_id not in self.flow_shares:
            raise ResourceGone("permissions", 404, "FlowNotFound", "no flow")
        return list(self.flow_shares[flow_id])

    def revoke_flow_access(
        self, environment: str, flow_id: str, principals: Sequence[tuple[str, str]]
    ) -> None:
        """Dataverse RevokeAccess per (principal, kind); the owner's own access cannot be revoked."""
        self.calls.append(("revoke_flow_access", (flow_id, [p for p, _ in principals])))
        if flow_id not in self.flow_shares:
            raise ResourceGone("RevokeAccess", 404, "0x80040217", "no flow")
        if not self.ignore_deletes:
            gone = {p for p, _ in principals if p != self.creators.get(flow_id)}
            self.flow_shares[flow_id] = [
                s for s in self.flow_shares[flow_id] if (s.permission_id or s.principal_id) not in gone
            ]

    def connection_permissions(self, environment: str, api: str, connection_id: str) -> list[Share]:
        self.calls.append(("connection_permissions", connection_id))
        return list(self.connection_shares.get(connection_id, []))

    def modify_connection_permissions(
        self, environment: str, api: str, connection_id: str, *, delete: Sequence[str]
    ) -> None:
        self.calls.append(("modify_connection_permissions", (connection_id, api, list(delete))))
        if connection_id not in self.connection_shares:
            raise ResourceGone("modifyPermissions", 404, "ConnectionNotFound", "no connection")
        self.connection_shares[connection_id] = [
            s
            for s in self.connection_shares[connection_id]
            if s.permission_id not in delete or s.role == "Owner"
        ]

    def list_dlp_policies(self) -> list[dict[str, Any]]:
        """As the v2 list answers: the definition only, no connector groups, no action rules."""
        self.calls.append(("list_dlp_policies", None))
        return [
            {"policyDefinition": {k: v for k, v in p["policyDefinition"].items() if k != "connectorGroups"}}
            for p in copy.deepcopy(self.policies)
        ]

    def get_dlp_policy(self, name: str) -> dict[str, Any]:
        self.calls.append(("get_dlp_policy", name))
        for policy in self.policies:
            if policy["policyDefinition"]["name"] == name:
                return copy.deepcopy(policy)
        raise ResourceGone("get DLP policy", 404, "PolicyNotFound", "no policy")

    def create_dlp_policy(self, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create_dlp_policy", copy.deepcopy(body)))
        created = copy.deepcopy(body)
        created["policyDefinition"]["name"] = str(uuid.uuid4())
        self.policies.append(created)
        return copy.deepcopy(created)

    def update_dlp_policy(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("update_dlp_policy", (name, copy.deepcopy(body))))
        self.policies = [p for p in self.policies if p["policyDefinition"]["name"] != name] + [
            copy.deepcopy(body)
        ]
        return copy.deepcopy(body)


class PPClients:
    def __init__(self, api: MemoryPowerPlatform) -> None:
        self.api = api

    def power_platform(self) -> MemoryPowerPlatform:
        return self.api

    def own_object_id(self) -> str | None:
        return None
