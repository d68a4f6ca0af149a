"""Role assignments (RBAC vaults, secret scope), Graph identities and passwords, storage keys,
throttling and injected faults, all through the unmodified SDKs or `azure.core` pipelines."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core import PipelineClient
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.core.pipeline.policies import BearerTokenCredentialPolicy, RetryPolicy
from azure.core.rest import HttpRequest
from azure.identity import ClientSecretCredential, DefaultAzureCredential
from azure.keyvault.secrets import SecretClient
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.keyvault import KeyVaultManagementClient
from azure.mgmt.storage import StorageManagementClient

from emulator import Emulator
from emulator.azure import roles
from emulator.azure.throttling import Bucket, Window
from tests.emulator.helpers import Raw, admin_token, create_resource_group


def _credential() -> DefaultAzureCredential:
    return DefaultAzureCredential(exclude_managed_identity_credential=True)


def _graph(credential: Any) -> PipelineClient[HttpRequest, Any]:
    policy = BearerTokenCredentialPolicy(credential, "https://graph.microsoft.com/.default")
    return PipelineClient("https://graph.microsoft.com", policies=[RetryPolicy(), policy])


def _call(client: PipelineClient[HttpRequest, Any], method: str, url: str, json: Any = None) -> Any:
    response = client.send_request(HttpRequest(method, url, json=json))
    response.raise_for_status()
    return response.json() if response.content else None


def _new_service_principal(graph: PipelineClient[HttpRequest, Any], name: str) -> tuple[str, str, str, str]:
    """(application object id, appId, service principal object id, secret) made through Graph."""
    app = _call(graph, "POST", "https://graph.microsoft.com/v1.0/applications", {"displayName": name})
    sp = _call(graph, "POST", "https://graph.microsoft.com/v1.0/servicePrincipals", {"appId": app["appId"]})
    password = _call(
        graph,
        "POST",
        f"https://graph.microsoft.com/v1.0/applications/{app['id']}/addPassword",
        {"passwordCredential": {"displayName": "test"}},
    )
    return app["id"], app["appId"], sp["id"], password["secretText"]


def _vault(
    emu: Emulator, rg: str, name: str, rbac: bool, policies: list[dict[str, Any]] | None = None
) -> None:
    client = KeyVaultManagementClient(_credential(), emu.state.azure.subscription_id)
    client.vaults.begin_create_or_update(
        rg,
        name,
        {
            "location": "eastus",
            "properties": {
                "tenantId": emu.state.azure.tenant_id,
                "sku": {"family": "A", "name": "standard"},
                "accessPolicies": policies or [],
                "enableRbacAuthorization": rbac,
            },
        },
    ).result()


def test_graph_identities_passwords_and_get_by_ids(emu: Emulator, env: dict[str, str]) -> None:
    graph = _graph(_credential())
    app_object_id, app_id, sp_id, secret = _new_service_principal(graph, "graph-made")
    token = ClientSecretCredential(emu.state.azure.tenant_id, app_id, secret).get_token(
        "https://management.azure.com/.default"
    )
    assert token.token
    user = _call(
        graph,
        "POST",
        "https://graph.microsoft.com/v1.0/users",
        {"displayName": "Ada", "userPrincipalName": "ada@contoso.example"},
    )
    missing = str(uuid.uuid4())
    found = _call(
        graph,
        "POST",
        "https://graph.microsoft.com/v1.0/directoryObjects/getByIds",
        {"ids": [sp_id, user["id"], missing]},
    )["value"]
    assert {(o["id"], o["@odata.type"]) for o in found} == {
        (sp_id, "#microsoft.graph.servicePrincipal"),
        (user["id"], "#microsoft.graph.user"),
    }
    with pytest.raises(HttpResponseError) as too_many:
        _call(
            graph,
            "POST",
            "https://graph.microsoft.com/v1.0/directoryObjects/getByIds",
            {"ids": [str(uuid.uuid4()) for _ in range(1001)]},
        )
    assert too_many.value.status_code == 400

    key_id = _call(graph, "GET", f"https://graph.microsoft.com/v1.0/applications/{app_object_id}")[
        "passwordCredentials"
    ][0]["keyId"]
    _call(
        graph,
        "POST",
        f"https://graph.microsoft.com/v1.0/applications/{app_object_id}/removePassword",
        {"keyId": key_id},
    )
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        ClientSecretCredential(emu.state.azure.tenant_id, app_id, secret).get_token(
            "https://vault.azure.net/.default"
        )
    anonymous = Raw(emu).call("GET", "https://graph.microsoft.com/v1.0/users")
    assert anonymous.status_code == 401


def test_deleted_identity_leaves_an_orphaned_access_policy(
    emu: Emulator, env: dict[str, str], arm: Raw
) -> None:
    create_resource_group(arm, emu.state.azure.subscription_id, "rg-orphan")
    graph = _graph(_credential())
    _, _, sp_id, _ = _new_service_principal(graph, "soon-gone")
    _vault(
        emu,
        "rg-orphan",
        "kv-orphan",
        False,
        [{"tenantId": emu.state.azure.tenant_id, "objectId": sp_id, "permissions": {"secrets": ["get"]}}],
    )
    _call(graph, "DELETE", f"https://graph.microsoft.com/v1.0/servicePrincipals/{sp_id}")
    found = _call(
        graph, "POST", "https://graph.microsoft.com/v1.0/directoryObjects/getByIds", {"ids": [sp_id]}
    )
    assert found["value"] == []
    vault = KeyVaultManagementClient(_credential(), emu.state.azure.subscription_id).vaults.get(
        "rg-orphan", "kv-orphan"
    )
    assert [p.object_id for p in vault.properties.access_policies] == [sp_id]


def test_rbac_vault_with_a_secret_scope_assignment(emu: Emulator, env: dict[str, str], arm: Raw) -> None:
    az = emu.state.azure
    create_resource_group(arm, az.subscription_id, "rg-rbac")
    _vault(emu, "rg-rbac", "kv-rbac", True)
    vault_scope = (
        f"/subscriptions/{az.subscription_id}/resourceGroups/rg-rbac"
        "/providers/Microsoft.KeyVault/vaults/kv-rbac"
    )
    auth = AuthorizationManagementClient(_credential(), az.subscription_id)

    def role_id(guid: str) -> str:
        return f"/subscriptions/{az.subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{guid}"

    # The Owner has no dataActions: it must grant itself a data role on an RBAC vault first.
    admin_secrets = SecretClient("https://kv-rbac.vault.azure.net/", _credential())
    with pytest.raises(HttpResponseError) as owner_denied:
        admin_secrets.set_secret("alpha", "a")
    assert owner_denied.value.response.json()["error"]["innererror"]["code"] == "ForbiddenByRbac"
    auth.role_assignments.create(
        vault_scope,
        str(uuid.uuid4()),
        {
            "properties": {
                "roleDefinitionId": role_id(roles.KEY_VAULT_SECRETS_OFFICER),
                "principalId": az.admin_object_id,
            }
        },
    )
    admin_secrets.set_secret("alpha", "a")
    admin_secrets.set_secret("beta", "b")

    _, app_id, sp_id, secret = _new_service_principal(_graph(_credential()), "secret-reader")
    secret_scope = f"{vault_scope}/secrets/alpha"
    created = auth.role_assignments.create(
        secret_scope,
        str(uuid.uuid4()),
        {
            "properties": {
                "roleDefinitionId": role_id(roles.KEY_VAULT_SECRETS_USER),
                "principalId": sp_id,
                "principalType": "ServicePrincipal",
            }
        },
    )
    assert created.scope == secret_scope
    with pytest.raises(HttpResponseError) as duplicate:
        auth.role_assignments.create(
            secret_scope,
            str(uuid.uuid4()),
            {"properties": {"roleDefinitionId": role_id(roles.KEY_VAULT_SECRETS_USER), "principalId": sp_id}},
        )
    assert duplicate.value.status_code == 409

    reader = SecretClient(
        "https://kv-rbac.vault.azure.net/", ClientSecretCredential(az.tenant_id, app_id, secret)
    )
    assert reader.get_secret("alpha").value == "a"
    with pytest.raises(HttpResponseError) as denied:
        reader.get_secret("beta")
    assert denied.value.status_code == 403
    assert denied.value.response.json()["error"]["innererror"]["code"] == "ForbiddenByRbac"

    at_secret = list(auth.role_assignments.list_for_scope(secret_scope, filter="atScope()"))
    assert {a.principal_id for a in at_secret} >= {sp_id, az.admin_object_id}
    mine = list(auth.role_assignments.list_for_subscription(filter=f"principalId eq '{sp_id}'"))
    assert [a.scope for a in mine] == [secret_scope]
    definition = auth.role_definitions.get("/", roles.KEY_VAULT_SECRETS_USER)
    assert definition.role_name == "Key Vault Secrets User"
    assert "Microsoft.KeyVault/vaults/secrets/getSecret/action" in definition.permissions[0].data_actions
    auth.role_assignments.delete(secret_scope, created.name)
    with pytest.raises(HttpResponseError):
        reader.get_secret("alpha")


def test_rbac_propagation_delay(emu: Emulator, env: dict[str, str], arm: Raw) -> None:
    az = emu.state.azure
    create_resource_group(arm, az.subscription_id, "rg-prop")
    _vault(emu, "rg-prop", "kv-prop", True)
    scope = f"/subscriptions/{az.subscription_id}/resourceGroups/rg-prop/providers/Microsoft.KeyVault/vaults/"
    scope += "kv-prop"
    auth = AuthorizationManagementClient(_credential(), az.subscription_id)
    emu.limits.rbac_propagation_s = 60
    try:
        auth.role_assignments.create(
            scope,
            str(uuid.uuid4()),
            {
                "properties": {
                    "roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/"
                    + roles.KEY_VAULT_ADMINISTRATOR,
                    "principalId": az.admin_object_id,
                }
            },
        )
        client = SecretClient("https://kv-prop.vault.azure.net/", _credential())
        with pytest.raises(HttpResponseError):
            client.set_secret("x", "y")
        emu.limits.rbac_propagation_s = 0
        assert client.set_secret("x", "y").value == "y"
    finally:
        emu.limits.rbac_propagation_s = 0


def test_storage_accounts_keys(emu: Emulator, env: dict[str, str], arm: Raw) -> None:
    az = emu.state.azure
    create_resource_group(arm, az.subscription_id, "rg-st")
    created = arm.call(
        "PUT",
        f"https://management.azure.com/subscriptions/{az.subscription_id}/resourceGroups/rg-st"
        "/providers/Microsoft.Storage/storageAccounts/stvaultguard1?api-version=2023-05-01",
        json={"location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}},
    )
    assert created.status_code == 200, created.text
    client = StorageManagementClient(_credential(), az.subscription_id)
    assert [a.name for a in client.storage_accounts.list()] == ["stvaultguard1"]
    assert client.storage_accounts.get_properties("rg-st", "stvaultguard1").name == "stvaultguard1"
    # The models are MutableMappings: `.keys` is the dict method, the field is ["keys"].
    before = {
        k.key_name: k.value for k in client.storage_accounts.list_keys("rg-st", "stvaultguard1")["keys"]
    }
    after = {
        k.key_name: k.value
        for k in client.storage_accounts.regenerate_key("rg-st", "stvaultguard1", {"keyName": "key1"})["keys"]
    }
    assert after["key1"] != before["key1"] and after["key2"] == before["key2"]


def test_subscriptions_are_listed_for_the_admin(emu: Emulator, arm: Raw) -> None:
    listed = arm.call("GET", "https://management.azure.com/subscriptions?api-version=2022-12-01").json()
    assert [s["subscriptionId"] for s in listed["value"]] == [emu.state.azure.subscription_id]


def test_injected_429_is_retried_by_the_sdk_and_logged(emu: Emulator, env: dict[str, str], arm: Raw) -> None:
    create_resource_group(arm, emu.state.azure.subscription_id, "rg-fault")
    _vault(emu, "rg-fault", "kv-fault", False)
    rule = emu.faults.status(
        429, host=r"management\.azure\.com", path="/vaults/kv-fault$", count=1, retry_after=1
    )
    try:
        client = KeyVaultManagementClient(_credential(), emu.state.azure.subscription_id)
        mark = emu.requests.mark()
        assert client.vaults.get("rg-fault", "kv-fault").name == "kv-fault"
        statuses = [(e.status, e.fault) for e in emu.requests.since(mark) if e.path.endswith("/kv-fault")]
        assert statuses == [(429, "status:429"), (200, None)]
        assert rule.fired == 1
    finally:
        emu.faults.clear()


@pytest.fixture
def fresh() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


def test_arm_token_bucket_answers_429_with_retry_after(fresh: Emulator) -> None:
    fresh.limits.arm_reads = Bucket(3, 0.5)
    arm = Raw(fresh, admin_token(fresh))
    url = (
        f"https://management.azure.com/subscriptions/{fresh.state.azure.subscription_id}/resourcegroups"
        "?api-version=2021-04-01"
    )
    answers = [arm.call("GET", url) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers.get("x-ms-ratelimit-remaining-subscription-reads") for a in answers[:3]] == [
        "2",
        "1",
        "0",
    ]
    assert answers[3].json()["error"]["code"] == "SubscriptionRequestsThrottled"
    assert int(answers[3].headers["Retry-After"]) >= 1
    # Writes have their own bucket.
    created = arm.call(
        "PUT", url.replace("resourcegroups?", "resourcegroups/rg-bucket?"), json={"location": "x"}
    )
    assert created.status_code == 201
    fresh.limits.enabled = False
    assert arm.call("GET", url).status_code == 200


def test_key_vault_window_answers_429_without_retry_after(
    fresh: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in fresh.env.items():
        monkeypatch.setenv(name, value)
    arm = Raw(fresh, admin_token(fresh))
    create_resource_group(arm, fresh.state.azure.subscription_id, "rg-kvt")
    _vault(
        fresh,
        "rg-kvt",
        "kv-throttle",
        False,
        [
            {
                "tenantId": fresh.state.azure.tenant_id,
                "objectId": fresh.state.azure.admin_object_id,
                "permissions": {"secrets": ["all"]},
            }
        ],
    )
    fresh.limits.kv_vault = Window(3, 10.0)
    raw = Raw(fresh, admin_token(fresh, "https://vault.azure.net/.default"))
    answers = [
        raw.call("GET", "https://kv-throttle.vault.azure.net/secrets?api-version=7.5") for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].json()["error"]["code"] == "Throttled"
    assert "Retry-After" not in answers[3].headers
