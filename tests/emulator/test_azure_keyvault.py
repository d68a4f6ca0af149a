"""Entra tokens, ARM Key Vault (vaults, access policies) and the Key Vault data plane, driven by the
unmodified SDKs (azure-identity, azure-mgmt-keyvault, azure-keyvault-secrets)."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ResourceNotFoundError
from azure.identity import ClientSecretCredential, DefaultAzureCredential
from azure.keyvault.secrets import SecretClient
from azure.mgmt.keyvault import KeyVaultManagementClient

from emulator import Emulator, tokens
from tests.emulator.helpers import Raw, create_resource_group


def _vault_body(
    emu: Emulator, policies: list[dict[str, object]] | None = None, rbac: bool = False
) -> dict[str, object]:
    return {
        "location": "eastus",
        "properties": {
            "tenantId": emu.state.azure.tenant_id,
            "sku": {"family": "A", "name": "standard"},
            "accessPolicies": policies or [],
            "enableRbacAuthorization": rbac,
        },
    }


def _policy(emu: Emulator, object_id: str, secrets: list[str]) -> dict[str, object]:
    return {"tenantId": emu.state.azure.tenant_id, "objectId": object_id, "permissions": {"secrets": secrets}}


def _second_principal(emu: Emulator) -> tuple[str, str, str]:
    """A service principal without any access: (client id, secret, object id)."""
    client_id, secret, object_id = str(uuid.uuid4()), uuid.uuid4().hex, str(uuid.uuid4())
    with emu.state.lock:
        emu.state.azure.add_application(client_id, "reader-app", sp_object_id=object_id, password=secret)
    return client_id, secret, object_id


def test_default_azure_credential_gets_a_token_with_the_admin_claims(
    emu: Emulator, env: dict[str, str]
) -> None:
    credential = DefaultAzureCredential(exclude_managed_identity_credential=True)
    token = credential.get_token("https://management.azure.com/.default")
    claims = tokens.decode(token.token)
    assert claims is not None
    az = emu.state.azure
    assert claims["oid"] == az.admin_object_id
    assert claims["tid"] == az.tenant_id
    assert claims["appid"] == az.admin_client_id
    assert claims["aud"] == "https://management.azure.com"
    assert claims["iss"] == f"https://sts.windows.net/{az.tenant_id}/"


def test_token_errors_have_the_aadsts_shape(emu: Emulator, env: dict[str, str]) -> None:
    az = emu.state.azure
    raw = Raw(emu)
    url = f"https://login.microsoftonline.com/{az.tenant_id}/oauth2/v2.0/token"
    form = {"grant_type": "client_credentials", "scope": "https://management.azure.com/.default"}
    unknown = raw.call("POST", url, data={**form, "client_id": str(uuid.uuid4()), "client_secret": "x"})
    assert unknown.status_code == 400
    assert unknown.json()["error_codes"] == [700016]
    assert set(unknown.json()) >= {
        "error",
        "error_description",
        "error_codes",
        "timestamp",
        "trace_id",
        "correlation_id",
    }
    bad = raw.call("POST", url, data={**form, "client_id": az.admin_client_id, "client_secret": "wrong"})
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_client"
    assert bad.json()["error_codes"] == [7000215]
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        ClientSecretCredential(az.tenant_id, az.admin_client_id, "wrong").get_token(
            "https://management.azure.com/.default"
        )


def test_arm_needs_a_token_and_an_api_version(emu: Emulator, arm: Raw) -> None:
    sub = emu.state.azure.subscription_id
    anonymous = Raw(emu).call(
        "GET", f"https://management.azure.com/subscriptions/{sub}/resourcegroups?api-version=2021-04-01"
    )
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "AuthenticationFailed"
    missing = arm.call("GET", f"https://management.azure.com/subscriptions/{sub}/resourcegroups")
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "MissingApiVersionParameter"
    ok = arm.call(
        "GET", f"https://management.azure.com/subscriptions/{sub}/resourcegroups?api-version=2021-04-01"
    )
    assert ok.status_code == 200
    assert int(ok.headers["x-ms-ratelimit-remaining-subscription-reads"]) < 250


def test_vaults_list_pages_get_and_missing_group(emu: Emulator, env: dict[str, str], arm: Raw) -> None:
    sub = emu.state.azure.subscription_id
    create_resource_group(arm, sub, "rg-list")
    client = KeyVaultManagementClient(DefaultAzureCredential(exclude_managed_identity_credential=True), sub)
    names = [f"kv-list-{i}" for i in range(5)]
    for name in names:
        vault = client.vaults.begin_create_or_update("rg-list", name, _vault_body(emu)).result()
        assert vault.properties.vault_uri == f"https://{name}.vault.azure.net/"
    mark = emu.requests.mark()
    listed = [v.name for v in client.vaults.list_by_subscription(top=2)]
    assert set(names) <= set(listed)
    pages = [e for e in emu.requests.since(mark) if e.path.endswith("/vaults")]
    assert len(pages) >= 3 and any("$skiptoken" in e.query for e in pages)
    assert {v.name for v in client.vaults.list_by_resource_group("rg-list")} == set(names)
    assert client.vaults.get("rg-list", "kv-list-0").properties.enable_rbac_authorization is False
    with pytest.raises(ResourceNotFoundError) as missing_group:
        client.vaults.begin_create_or_update("rg-missing", "kv-nowhere", _vault_body(emu)).result()
    assert missing_group.value.error is not None
    assert missing_group.value.error.code == "ResourceGroupNotFound"
    with pytest.raises(ResourceNotFoundError) as missing_vault:
        client.vaults.get("rg-list", "kv-not-there")
    assert missing_vault.value.error is not None
    assert missing_vault.value.error.code == "ResourceNotFound"


def test_rbac_is_the_default_from_api_version_2026_02_01(emu: Emulator, arm: Raw) -> None:
    sub = emu.state.azure.subscription_id
    create_resource_group(arm, sub, "rg-default")
    base = f"https://management.azure.com/subscriptions/{sub}/resourceGroups/rg-default/providers/Microsoft.KeyVault/vaults"
    body = _vault_body(emu)
    del body["properties"]["enableRbacAuthorization"]  # type: ignore[attr-defined]
    old = arm.call("PUT", f"{base}/kv-old-api?api-version=2023-07-01", json=body)
    new = arm.call("PUT", f"{base}/kv-new-api?api-version=2026-02-01", json=body)
    assert old.status_code == new.status_code == 201
    assert old.json()["properties"]["enableRbacAuthorization"] is False
    assert new.json()["properties"]["enableRbacAuthorization"] is True


def test_access_policy_add_replace_remove_and_the_case_sensitive_remove_trap(
    emu: Emulator, env: dict[str, str], arm: Raw
) -> None:
    sub = emu.state.azure.subscription_id
    create_resource_group(arm, sub, "rg-ap")
    client = KeyVaultManagementClient(DefaultAzureCredential(exclude_managed_identity_credential=True), sub)
    member = str(uuid.uuid4())
    client.vaults.begin_create_or_update(
        "rg-ap", "kv-ap", _vault_body(emu, [_policy(emu, member, ["Get", "List"])])
    ).result()

    def update(kind: str, secrets: list[str], object_id: str = member) -> list[dict[str, object]]:
        """The PUT echoes the request's entry (azure-rest-api-specs updateAccessPoliciesAdd.json); the
        vault's resulting policies come from a GET."""
        result = client.vaults.update_access_policy(
            "rg-ap", "kv-ap", kind, {"properties": {"accessPolicies": [_policy(emu, object_id, secrets)]}}
        )
        echoed = result.properties.access_policies
        assert [(p.object_id, list(p.permissions.secrets or [])) for p in echoed] == [(object_id, secrets)]
        return [
            {"object_id": p.object_id, "secrets": list(p.permissions.secrets or [])}
            for p in client.vaults.get("rg-ap", "kv-ap").properties.access_policies
        ]

    # The trap: `list` does not match the stored `List`; 200 and nothing changes.
    after = update("remove", ["list"])
    assert after[0]["secrets"] == ["Get", "List"]
    assert update("remove", ["List"])[0]["secrets"] == ["Get"]
    assert update("add", ["set", "Get"])[0]["secrets"] == ["Get", "set"]
    assert update("replace", ["get"])[0]["secrets"] == ["get"]
    other = str(uuid.uuid4())
    assert len(update("add", ["list"], other)) == 2
    # Removing the last permission drops the entry.
    remaining = update("remove", ["get"])
    assert [p["object_id"] for p in remaining] == [other]
    stored = client.vaults.get("rg-ap", "kv-ap").properties.access_policies
    assert [p.object_id for p in stored] == [other]

    with pytest.raises(HttpResponseError) as invalid:
        update("add", ["get", "readall"])
    assert invalid.value.status_code == 400
    assert invalid.value.error is not None
    assert "secrets[1]" in str(invalid.value.response.json()["error"]["details"])


def test_access_policy_writes_need_an_arm_role(emu: Emulator, env: dict[str, str], arm: Raw) -> None:
    sub = emu.state.azure.subscription_id
    create_resource_group(arm, sub, "rg-authz")
    admin = KeyVaultManagementClient(DefaultAzureCredential(exclude_managed_identity_credential=True), sub)
    admin.vaults.begin_create_or_update("rg-authz", "kv-authz", _vault_body(emu)).result()
    client_id, secret, object_id = _second_principal(emu)
    outsider = KeyVaultManagementClient(
        ClientSecretCredential(emu.state.azure.tenant_id, client_id, secret), sub
    )
    with pytest.raises(HttpResponseError) as denied:
        outsider.vaults.update_access_policy(
            "rg-authz",
            "kv-authz",
            "add",
            {"properties": {"accessPolicies": [_policy(emu, object_id, ["all"])]}},
        )
    assert denied.value.status_code == 403
    assert denied.value.error is not None
    assert denied.value.error.code == "AuthorizationFailed"


def test_secrets_paging_get_set_update_and_access_policies(
    emu: Emulator, env: dict[str, str], arm: Raw
) -> None:
    sub = emu.state.azure.subscription_id
    az = emu.state.azure
    create_resource_group(arm, sub, "rg-data")
    mgmt = KeyVaultManagementClient(DefaultAzureCredential(exclude_managed_identity_credential=True), sub)
    mgmt.vaults.begin_create_or_update(
        "rg-data", "kv-data", _vault_body(emu, [_policy(emu, az.admin_object_id, ["Get", "List", "Set"])])
    ).result()
    secrets = SecretClient(
        "https://kv-data.vault.azure.net/", DefaultAzureCredential(exclude_managed_identity_credential=True)
    )
    for i in range(30):
        secrets.set_secret(f"s{i:02d}", f"value-{i}", tags={"n": str(i)})
    mark = emu.requests.mark()
    listed = list(secrets.list_properties_of_secrets())
    assert sorted(p.name for p in listed) == [f"s{i:02d}" for i in range(30)]
    pages = [
        e for e in emu.requests.since(mark) if e.host == "kv-data.vault.azure.net" and e.path == "/secrets"
    ]
    assert [e.status for e in pages] == [200, 200]
    assert all(e.caller_oid == az.admin_object_id for e in pages)

    secrets.set_secret("s00", "rotated")
    assert secrets.get_secret("s00").value == "rotated"
    first = list(secrets.list_properties_of_secret_versions("s00"))
    assert len(first) == 2
    old_version = next(v.version for v in first if v.version != secrets.get_secret("s00").properties.version)
    assert secrets.get_secret("s00", old_version).value == "value-0"
    updated = secrets.update_secret_properties(
        "s00", old_version, enabled=False, tags={"state": "retired"}, content_type="text/plain"
    )
    assert updated.enabled is False and updated.tags == {"state": "retired"}
    with pytest.raises(HttpResponseError) as disabled:
        secrets.get_secret("s00", old_version)
    assert disabled.value.status_code == 403
    assert "not allowed on a disabled secret" in str(disabled.value.message)
    with pytest.raises(ResourceNotFoundError) as missing:
        secrets.get_secret("nope")
    assert missing.value.error is not None and missing.value.error.code == "SecretNotFound"

    # A second service principal: 403 ForbiddenByPolicy, then allowed once ARM adds a policy.
    client_id, secret, object_id = _second_principal(emu)
    reader = SecretClient(
        "https://kv-data.vault.azure.net/", ClientSecretCredential(az.tenant_id, client_id, secret)
    )
    with pytest.raises(HttpResponseError) as denied:
        reader.get_secret("s01")
    assert denied.value.status_code == 403
    body = denied.value.response.json()
    assert body["error"]["code"] == "Forbidden"
    assert body["error"]["innererror"]["code"] == "ForbiddenByPolicy"
    assert "does not have secrets get permission on key vault 'kv-data" in body["error"]["message"]
    mgmt.vaults.update_access_policy(
        "rg-data", "kv-data", "add", {"properties": {"accessPolicies": [_policy(emu, object_id, ["Get"])]}}
    )
    assert reader.get_secret("s01").value == "value-1"  # `Get` (portal casing) allows the data plane's get
    with pytest.raises(HttpResponseError):
        next(iter(reader.list_properties_of_secrets()))


def test_delete_and_recover_a_secret(emu: Emulator, env: dict[str, str], arm: Raw) -> None:
    sub = emu.state.azure.subscription_id
    az = emu.state.azure
    create_resource_group(arm, sub, "rg-del")
    mgmt = KeyVaultManagementClient(DefaultAzureCredential(exclude_managed_identity_credential=True), sub)
    mgmt.vaults.begin_create_or_update(
        "rg-del", "kv-del", _vault_body(emu, [_policy(emu, az.admin_object_id, ["all"])])
    ).result()
    secrets = SecretClient(
        "https://kv-del.vault.azure.net/", DefaultAzureCredential(exclude_managed_identity_credential=True)
    )
    secrets.set_secret("gone", "v")
    deleted = secrets.begin_delete_secret("gone").result()
    assert deleted.recovery_id == "https://kv-del.vault.azure.net/deletedsecrets/gone"
    assert [d.name for d in secrets.list_deleted_secrets()] == ["gone"]
    with pytest.raises(ResourceNotFoundError):
        secrets.get_secret("gone")
    secrets.begin_recover_deleted_secret("gone").result()
    assert secrets.get_secret("gone").value == "v"


def test_network_rules_refuse_before_authorization_with_the_documented_inner_codes(
    emu: Emulator, env: dict[str, str], arm: Raw
) -> None:
    """A vault whose firewall denies by default refuses even a caller its access policy allows (403
    innererror ForbiddenByFirewall) until an ipRules entry holds the caller's address; with public
    network access disabled, ForbiddenByConnection. The app's adapter keeps the inner code."""
    from remediations.adapters.errors import AzureCallFailed, translate
    from remediations.adapters.keyvault_data import KeyVaultSecrets

    sub = emu.state.azure.subscription_id
    az = emu.state.azure
    create_resource_group(arm, sub, "rg-net")
    credential = DefaultAzureCredential(exclude_managed_identity_credential=True)
    mgmt = KeyVaultManagementClient(credential, sub)
    body = _vault_body(emu, [_policy(emu, az.admin_object_id, ["List"])])

    def network(**properties: object) -> None:
        update = {**body, "properties": {**body["properties"], **properties}}  # type: ignore[dict-item]
        mgmt.vaults.begin_create_or_update("rg-net", "kv-net", update).result()  # type: ignore[arg-type]

    def refusal() -> HttpResponseError:
        with pytest.raises(HttpResponseError) as refused:
            next(
                iter(SecretClient("https://kv-net.vault.azure.net/", credential).list_properties_of_secrets())
            )
        return refused.value

    network(networkAcls={"defaultAction": "Deny", "bypass": "AzureServices", "ipRules": []})
    denied = refusal()
    error = denied.response.json()["error"]
    assert (denied.status_code, error["code"], error["innererror"]["code"]) == (
        403,
        "Forbidden",
        "ForbiddenByFirewall",
    )
    assert error["message"].startswith(
        "Client address is not authorized and caller is not a trusted service."
    )
    assert f"oid={az.admin_object_id}" in error["message"] and "Vault: kv-net;location=" in error["message"]
    failed = translate("list secrets", denied)
    assert (failed.status, failed.code, failed.inner_code) == (403, "Forbidden", "ForbiddenByFirewall")
    with pytest.raises(AzureCallFailed) as through_adapter:  # the adapter's own page reads
        KeyVaultSecrets(credential, "https://kv-net.vault.azure.net/").list_secret_metadata()
    assert through_adapter.value.inner_code == "ForbiddenByFirewall"

    network(networkAcls={"defaultAction": "Deny", "ipRules": [{"value": "203.0.113.0/24"}]})
    assert (
        list(SecretClient("https://kv-net.vault.azure.net/", credential).list_properties_of_secrets()) == []
    )

    network(publicNetworkAccess="Disabled")
    closed = refusal().response.json()["error"]
    assert closed["innererror"]["code"] == "ForbiddenByConnection"
    assert closed["message"].startswith("Public network access is disabled and request is not from a trusted")
