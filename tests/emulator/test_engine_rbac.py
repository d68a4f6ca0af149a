"""RBAC-mode vaults on the emulator, with the real `AzureClients`: an RBAC vault's vault-scope Secrets
User of a flow identity becomes per-secret assignments for its allowed secrets only; orphaned
entries and assignments of a deleted identity go while live ones stay; a Graph failure leaves them
and is reported; the propagation grace keeps the wide assignment while the new ones propagate."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from emulator import Emulator
from emulator.azure import roles
from emulator.azure import scenario as azure_scenario
from remediations.adapters.clients import AzureClients
from remediations.core import rbac
from remediations.core.model import Scope
from remediations.core.policy import parse_policy
from remediations.core.request import RunRequest
from remediations.shell.audit import TableAuditSink
from remediations.shell.pipeline import run
from remediations.shell.settings import AppSettings

RG = "rg-rbac-engine"


class Tenant:
    def __init__(self) -> None:
        self.tenant, self.sub = str(uuid.uuid4()), str(uuid.uuid4())
        self.admin = {
            "clientId": str(uuid.uuid4()),
            "clientSecret": uuid.uuid4().hex,
            "objectId": str(uuid.uuid4()),
        }
        self.flow_app, self.flow_sp, self.flow_secret = str(uuid.uuid4()), str(uuid.uuid4()), uuid.uuid4().hex
        self.break_glass, self.live, self.dead = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
        self.wide_name, self.dead_ra_name = str(uuid.uuid4()), str(uuid.uuid4())
        suffix = uuid.uuid4().hex[:6]
        self.rbac_vault, self.ap_vault = f"kv-rbac-{suffix}", f"kv-ap-{suffix}"

    def vault_id(self, name: str) -> str:
        return f"/subscriptions/{self.sub}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/{name}"

    def scenario(self) -> dict[str, Any]:
        kv = self.vault_id(self.rbac_vault)
        return {
            "tenantId": self.tenant,
            "subscriptions": [{"subscriptionId": self.sub}],
            "admin": self.admin,
            "applications": [
                {
                    "appId": self.flow_app,
                    "displayName": "flow-connection",
                    "servicePrincipalId": self.flow_sp,
                    "passwords": [{"secretText": self.flow_secret}],
                }
            ],
            "servicePrincipals": [
                {"id": self.break_glass, "displayName": "break-glass"},
                {"id": self.live, "displayName": "live-app"},
            ],
            "vaults": [
                {
                    "name": self.rbac_vault,
                    "resourceGroup": RG,
                    "enableRbacAuthorization": True,
                    "secrets": [{"name": n, "value": f"value-of-{n}"} for n in ("alpha", "beta", "gamma")],
                },
                {
                    "name": self.ap_vault,
                    "resourceGroup": RG,
                    "accessPolicies": [
                        {"objectId": self.admin["objectId"], "permissions": {"secrets": ["list"]}},
                        {"objectId": self.live, "permissions": {"secrets": ["get"]}},
                        # a deleted identity, as the portal wrote it, with keys too
                        {"objectId": self.dead, "permissions": {"secrets": ["Get", "List"], "keys": ["get"]}},
                    ],
                    "secrets": [{"name": "x", "value": "x"}],
                },
            ],
            "roleAssignments": [
                {
                    "id": self.wide_name,
                    "scope": kv,
                    "roleName": "Key Vault Secrets User",
                    "principalId": self.flow_sp,
                },
                {"scope": kv, "roleName": "Key Vault Reader", "principalId": self.admin["objectId"]},
                {"scope": kv, "roleName": "Key Vault Secrets Officer", "principalId": self.break_glass},
                {
                    "id": self.dead_ra_name,
                    "scope": kv,
                    "roleName": "Key Vault Secrets User",
                    "principalId": self.dead,
                    "principalType": "ServicePrincipal",
                },
            ],
        }

    def policy(self, **extra: Any) -> Any:
        return parse_policy(
            {
                "allowedSecretNames": {self.flow_sp: ["alpha", "beta"]},
                "secretPermissions": {"default": ["get", "list"]},
                "breakGlass": [self.break_glass],
                "dryRun": False,
                **extra,
            }
        )

    @property
    def scope(self) -> Scope:
        return Scope(subscription_id=self.sub, resource_group=RG)


@pytest.fixture
def tenant(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Tenant:
    t = Tenant()
    azure_scenario.load(emu.state, t.scenario())
    for name, value in emu.env.items():
        monkeypatch.setenv(name, value)
    return t


def _assignments(emu: Emulator, principal: str) -> list[tuple[str, str]]:
    with emu.state.lock:
        return sorted((a.scope, a.role_definition_id) for a in emu.state.azure.assignments_for(principal))


def _flow_client(t: Tenant) -> SecretClient:
    return SecretClient(
        f"https://{t.rbac_vault}.vault.azure.net/",
        ClientSecretCredential(t.tenant, t.flow_app, t.flow_secret),
    )


def _arm_writes(emu: Emulator, mark: int) -> list[Any]:
    return [r for r in emu.requests.since(mark) if r.is_write and r.host == "management.azure.com"]


def test_flow_identity_ends_with_per_secret_assignments_and_orphans_go(
    emu: Emulator, tenant: Tenant, storage_env: dict[str, str]
) -> None:
    t = tenant
    kv = t.vault_id(t.rbac_vault)
    assert {s.name for s in _flow_client(t).list_properties_of_secrets()} == {"alpha", "beta", "gamma"}
    mark = emu.requests.mark()
    audit = TableAuditSink.from_settings(AppSettings.from_env())
    with AzureClients() as clients:
        result = run(
            RunRequest(trigger="cli", scope=t.scope, correlation_id="rbac-run"), t.policy(), clients, audit
        )
    assert result.failures == 0, result.inventory_errors
    statuses = sorted(
        (a.remediation_id, o.status) for a, o in zip(result.plan.actions, result.outcomes, strict=True)
    )
    assert statuses == [
        ("narrow_role_assignment", "applied"),
        ("remove_orphaned_principal", "applied"),
        ("remove_orphaned_principal", "applied"),
    ]

    writes = [(w.method, w.path) for w in _arm_writes(emu, mark)]
    ra = "/providers/Microsoft.Authorization/roleAssignments/"
    name = {
        s: rbac.assignment_name(f"{kv}/secrets/{s}", t.flow_sp, roles.KEY_VAULT_SECRETS_USER)
        for s in ("alpha", "beta")
    }
    create_alpha = ("PUT", f"{kv}/secrets/alpha{ra}{name['alpha']}")
    create_beta = ("PUT", f"{kv}/secrets/beta{ra}{name['beta']}")
    delete_wide = ("DELETE", f"{kv}{ra}{t.wide_name}")
    assert writes.index(create_alpha) < writes.index(delete_wide) and writes.index(
        create_beta
    ) < writes.index(delete_wide)
    assert ("DELETE", f"{kv}{ra}{t.dead_ra_name}") in writes
    remove = [w for w in _arm_writes(emu, mark) if w.path.endswith("/accessPolicies/remove")]
    assert [json.loads(w.body) for w in remove] == [
        {
            "properties": {
                "accessPolicies": [
                    {
                        "tenantId": t.tenant,
                        "objectId": t.dead,
                        "permissions": {"secrets": ["Get", "List"], "keys": ["get"]},
                    }
                ]
            }
        }
    ]
    assert len(writes) == 5  # 2 creates, 2 deletes, 1 access-policy remove: nothing else
    create_body = json.loads(next(w.body for w in _arm_writes(emu, mark) if w.path == create_alpha[1]))
    assert create_body["properties"]["principalId"] == t.flow_sp
    assert create_body["properties"]["roleDefinitionId"].endswith(roles.KEY_VAULT_SECRETS_USER)

    # Reads: role definitions once per subscription, getByIds in one batch, no per-assignment GET.
    reads = emu.requests.since(mark)
    assert sum(1 for r in reads if r.method == "GET" and r.path.endswith("/roleDefinitions")) == 1
    assert sum(1 for r in reads if r.path.endswith("/directoryObjects/getByIds")) == 1
    assert not [r for r in reads if r.method == "GET" and "/roleDefinitions/" in r.path]

    with emu.state.lock:
        flow_scopes = sorted(a.scope for a in emu.state.azure.assignments_for(t.flow_sp))
        roles_of_flow = {a.role_definition_id for a in emu.state.azure.assignments_for(t.flow_sp)}
        dead_left = emu.state.azure.assignments_for(t.dead)
        policies = {p.object_id: p.permissions for p in emu.state.azure.vaults[t.ap_vault].access_policies}
    assert flow_scopes == [f"{kv}/secrets/alpha", f"{kv}/secrets/beta"]
    assert roles_of_flow == {roles.KEY_VAULT_SECRETS_USER}
    assert dead_left == [] and t.dead not in policies
    assert policies[t.live] == {"secrets": ["get"]}
    assert _assignments(emu, t.break_glass) == [(kv, roles.KEY_VAULT_SECRETS_OFFICER)]

    client = _flow_client(t)
    assert (
        client.get_secret("alpha").value == "value-of-alpha"
        and client.get_secret("beta").value == "value-of-beta"
    )
    for denied_call in (
        lambda: client.get_secret("gamma"),
        lambda: list(client.list_properties_of_secrets()),
    ):
        with pytest.raises(HttpResponseError) as denied:
            denied_call()
        assert denied.value.status_code == 403
        assert denied.value.response.json()["error"]["innererror"]["code"] == "ForbiddenByRbac"

    rows = audit.records("rbac-run")
    assert sorted((r.remediation_id, r.state) for r in rows) == sorted(
        [("narrow_role_assignment", s) for s in ("pending", "applied")]
        + [("remove_orphaned_principal", s) for s in ("pending", "applied", "pending", "applied")]
    )
    assert all("value-of-" not in r.model_dump_json() for r in rows)

    mark = emu.requests.mark()
    with AzureClients() as clients:
        again = run(RunRequest(trigger="cli", scope=t.scope), t.policy(), clients, audit)
    assert again.plan.actions == () and _arm_writes(emu, mark) == []


def test_a_graph_failure_leaves_orphans_untouched_and_is_reported(
    emu: Emulator, tenant: Tenant, storage_env: dict[str, str]
) -> None:
    t = tenant
    emu.faults.status(503, host=r"graph\.microsoft\.com", path=r"/directoryObjects/getByIds$", retry_after=0)
    try:
        mark = emu.requests.mark()
        with AzureClients() as clients:
            result = run(
                RunRequest(trigger="cli", scope=t.scope, remediations={"remove_orphaned_principal"}),
                t.policy(),
                clients,
                TableAuditSink.from_settings(AppSettings.from_env()),
            )
    finally:
        emu.faults.clear()
    assert [e.operation for e in result.inventory_errors] == ["resolve identities"] and result.failures == 1
    unresolved = {f.principal for f in result.findings if f.detector_id == "unresolved_principal"}
    assert t.dead in unresolved and t.live in unresolved
    assert result.plan.actions == () and _arm_writes(emu, mark) == []
    with emu.state.lock:
        assert emu.state.azure.assignments_for(t.dead) != []
        assert t.dead in {p.object_id for p in emu.state.azure.vaults[t.ap_vault].access_policies}


def test_propagation_grace_keeps_the_wide_assignment_while_new_ones_propagate(
    emu: Emulator, tenant: Tenant, storage_env: dict[str, str]
) -> None:
    t = tenant
    kv = t.vault_id(t.rbac_vault)
    policy = t.policy(rbac={"propagationGraceSeconds": 600})
    emu.limits.rbac_propagation_s = 600  # new assignments are not effective on the data plane yet
    try:
        with AzureClients() as clients:
            first = run(
                RunRequest(trigger="cli", scope=t.scope, remediations={"narrow_role_assignment"}),
                policy,
                clients,
                TableAuditSink.from_settings(AppSettings.from_env()),
            )
        assert [o.status for o in first.outcomes] == ["applied"]
        assert _assignments(emu, t.flow_sp) == sorted(
            [(kv, roles.KEY_VAULT_SECRETS_USER)]
            + [(f"{kv}/secrets/{s}", roles.KEY_VAULT_SECRETS_USER) for s in ("alpha", "beta")]
        )
        # Never left without access: the wide one still works while the new ones propagate.
        assert _flow_client(t).get_secret("alpha").value == "value-of-alpha"
        mark = emu.requests.mark()
        with AzureClients() as clients:
            second = run(
                RunRequest(trigger="cli", scope=t.scope, remediations={"narrow_role_assignment"}),
                policy,
                clients,
                TableAuditSink.from_settings(AppSettings.from_env()),
            )
        assert [o.status for o in second.outcomes] == ["skipped"]
        assert "propagate" in (second.plan.actions[0].skip_reason or "") and _arm_writes(emu, mark) == []
    finally:
        emu.limits.rbac_propagation_s = 0.0
