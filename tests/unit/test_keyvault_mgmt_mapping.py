"""The ARM shapes (as the SDK deserialises them) map to our model with casing kept, and our deltas
serialise to exactly the body Key Vault expects."""

from __future__ import annotations

import json

from azure.mgmt.keyvault._utils.model_base import SdkJSONEncoder
from azure.mgmt.keyvault.models import Vault as SdkVault
from azure.mgmt.keyvault.models import VaultAccessPolicyParameters

from remediations.adapters.keyvault_mgmt import (
    change_body,
    vault_from_json,
    vault_from_sdk,
    vault_page_from_json,
)
from remediations.core.model import AccessPolicyChange, Permissions

VAULT_ID = "/subscriptions/s1/resourceGroups/RG-Pay/providers/Microsoft.KeyVault/vaults/kv-pay"
ARM_VAULT = {
    "id": VAULT_ID,
    "name": "kv-pay",
    "type": "Microsoft.KeyVault/vaults",
    "location": "westeurope",
    "tags": {"purpose": "payroll"},
    "properties": {
        "tenantId": "t1",
        "sku": {"family": "A", "name": "standard"},
        "vaultUri": "https://kv-pay.vault.azure.net/",
        "enableRbacAuthorization": False,
        "accessPolicies": [
            {
                "tenantId": "t1",
                "objectId": "o1",
                "permissions": {"secrets": ["Get", "List", "list"], "keys": ["get"]},
            },
            {"tenantId": "t1", "objectId": "o2", "applicationId": "a2", "permissions": {}},
        ],
    },
}


def test_vault_list_item_maps_with_exact_casing() -> None:
    vault = vault_from_sdk(SdkVault(ARM_VAULT), "s1")
    assert vault.resource_group == "RG-Pay" and vault.tags == {"purpose": "payroll"}
    assert vault.vault_uri == "https://kv-pay.vault.azure.net/" and not vault.enable_rbac_authorization
    first, second = vault.access_policies
    assert first.permissions.secrets == ("Get", "List", "list") and first.permissions.keys == ("get",)
    assert second.application_id == "a2" and second.permissions == Permissions()


def test_list_json_maps_exactly_as_the_sdk_model_does() -> None:
    # The inventory maps the list's JSON pages directly (no SDK models): same Vault, casing kept.
    assert vault_from_json(ARM_VAULT, "s1") == vault_from_sdk(SdkVault(ARM_VAULT), "s1")
    bare = {"id": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv", "name": "kv"}
    vault = vault_from_json(bare, "s1")
    assert vault.resource_group == "rg" and vault.access_policies == () and vault.vault_uri == ""


BARE = {"id": "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv", "name": "kv"}


def test_a_page_read_in_one_pass_maps_as_field_by_field() -> None:
    # The list's pages are validated straight from their bytes; the result is the field-by-field one.
    body = json.dumps({"value": [ARM_VAULT, BARE], "nextLink": "https://next"}).encode()
    vaults, link = vault_page_from_json(body, "s1")
    assert vaults == [vault_from_json(ARM_VAULT, "s1"), vault_from_json(BARE, "s1")]
    assert link == "https://next"
    assert vault_page_from_json(json.loads(body), "s1") == (vaults, link)  # a page parsed already
    assert vault_page_from_json(b'{"value": []}', "s1") == ([], None)


def test_a_page_with_nulls_is_mapped_leniently() -> None:
    # Nulls where the spec documents lists or text do not fit the one-pass models: the page is mapped
    # field by field instead, reading them as empty, as before (never an error for the whole list).
    odd = json.loads(json.dumps(ARM_VAULT))
    odd["tags"] = None
    odd["properties"]["accessPolicies"][0]["permissions"]["keys"] = None
    odd["properties"]["vaultUri"] = None
    vaults, link = vault_page_from_json(json.dumps({"value": [odd, BARE]}).encode(), "s1")
    assert vaults == [vault_from_json(odd, "s1"), vault_from_json(BARE, "s1")] and link is None
    assert vaults[0].tags == {} and vaults[0].access_policies[0].permissions.keys == ()


def test_delta_body_is_only_the_changed_permissions_as_given() -> None:
    change = AccessPolicyChange(
        operation="remove", tenant_id="t1", object_id="o1", permissions=Permissions(secrets=("List", "set"))
    )
    body = change_body(change)
    assert body == {
        "properties": {
            "accessPolicies": [
                {"tenantId": "t1", "objectId": "o1", "permissions": {"secrets": ["List", "set"]}}
            ]
        }
    }
    wire = json.loads(json.dumps(VaultAccessPolicyParameters(body), cls=SdkJSONEncoder))
    assert wire == body  # the SDK does not re-case `List`
