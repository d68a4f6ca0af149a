"""(a) The adapters parse every recorded public response they would get in a real tenant (sources in
fixtures/SOURCES.md). Each test feeds the recorded body through the adapter's own mapping and checks what
the app would see."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from azure.mgmt.authorization.models import RoleAssignment as SdkRoleAssignment
from azure.mgmt.authorization.models import RoleDefinition as SdkRoleDefinition
from azure.mgmt.keyvault.models import Vault as SdkVault

from remediations.adapters.authorization import (
    Authorization,
    role_assignment_from_sdk,
    role_definition_from_sdk,
)
from remediations.adapters.dataverse import (
    OFF,
    ROLE_COLUMNS,
    connection_references_from_api,
    flow_from_workflow,
    flow_shares_from_api,
    instance_from_environment,
    needs_connection_references,
    principals_from_api,
    revoke_body,
)
from remediations.adapters.graph_api import Directory, identity_from_graph
from remediations.adapters.graph_applications import Applications
from remediations.adapters.keyvault_data import KeyVaultSecrets, secret_meta_from_item
from remediations.adapters.keyvault_mgmt import (
    KeyVaultManagement,
    access_policy_from_json,
    vault_from_json,
    vault_from_sdk,
    vault_page_from_json,
)
from remediations.adapters.powerapps_shapes import (
    connection_from_api,
    connection_share_from_api,
    environment_from_api,
)
from remediations.adapters.powerplatform import PowerPlatform
from remediations.adapters.storage_keys import StorageKeys
from remediations.core.dlp_shape import dlp_from_api
from remediations.core.model import AccessPolicyChange, Permissions, RoleAssignmentChange, Scope
from remediations.core.secret_value import SecretValue
from tests.contract.calls import CONNECTION_REFERENCE_ID, RoutedTransport, team_page
from tests.contract.recorded import RecordedTransport, StaticCredential
from tests.contract.shapes import fixture, values_at

KEYVAULT = "/providers/Microsoft.PowerApps/apis/shared_keyvault"
ENVIRONMENT = "00000000-0000-0000-0000-000000000001"  # the recorded environment with a Dataverse database


def test_bap_environment_lists_give_names_and_the_dataverse_url() -> None:
    for name in (
        "bap-environments-list-admin.response.json",
        "bap-environments-list-admin.tf-provider.response.json",
    ):
        items = fixture(name)["value"]
        environments = [environment_from_api(i, {}) for i in items]
        assert environments and all(e.name and e.id for e in environments)
    tf = fixture("bap-environments-list-admin.tf-provider.response.json")["value"]
    with_database = [
        i for i in tf if (i["properties"].get("linkedEnvironmentMetadata") or {}).get("instanceUrl")
    ]
    assert with_database
    for item in with_database:
        instance = instance_from_environment(item)
        meta = item["properties"]["linkedEnvironmentMetadata"]
        assert instance is not None and instance.api_url == (
            meta.get("instanceApiUrl") or meta["instanceUrl"]
        ).rstrip("/")
        assert instance.scope.startswith("https://") and instance.scope.endswith(".dynamics.com/.default")


def test_dataverse_workflows_page_maps_id_owner_and_state() -> None:
    page = fixture("dataverse-workflows-list.docs.json")
    (row,) = page["value"]
    user = fixture("dataverse-systemuser.tf-provider.json") | {"systemuserid": row["_ownerid_value"]}
    principals = principals_from_api([user], [])
    flow = flow_from_workflow(row, "env", principals)
    assert flow.id == "d9e875bf-1c9b-ea11-a811-000d3a122b89" and flow.state == "Started"
    assert flow.creator == user["azureactivedirectoryobjectid"]  # owner mapped to its Entra object id
    assert flow.display_name == "When an account is updated -> Create a new activity"


def test_dataverse_clientdata_gives_the_definition_and_connection_references() -> None:
    row = {"workflowid": "W1", "statecode": 0} | fixture("dataverse-workflow-clientdata.docs.json")
    flow = flow_from_workflow(row, "env", principals_from_api([], []))
    assert flow.state == "Stopped" and flow.id == "w1"
    assert flow.reference_keys == {
        "shared_commondataserviceforapps": "shared-commondataser-114efb88-a991-40c7-b75f-2693-b1ca6a0c"
    }
    action = flow.definition["actions"]["List_rows"]
    assert action["inputs"]["host"]["operationId"] == "ListRecords"
    # A solution flow as deployed names only the connection reference: resolved through its row.
    data = json.loads(row["clientdata"])
    del data["properties"]["connectionReferences"]["shared_commondataserviceforapps"]["connection"]["name"]
    solution_row = row | {"clientdata": json.dumps(data)}
    assert needs_connection_references(solution_row)
    logical_names = connection_references_from_api(
        [
            {
                "connectionreferencelogicalname": "crdcb_sharedcommondataserviceforapps_109ea",
                "connectionid": "c-9",
            }
        ]
    )
    resolved = flow_from_workflow(solution_row, "env", principals_from_api([], []), logical_names)
    assert resolved.reference_keys == {"shared_commondataserviceforapps": "c-9"}


def test_dataverse_users_give_entra_ids_and_security_roles() -> None:
    row = fixture("dataverse-systemuser.tf-provider.json")
    principals = principals_from_api([row], [])
    oid = row["azureactivedirectoryobjectid"]
    assert principals.roles == {oid: ("Role 2", "Role 3", "Role 4")}
    assert principals.resolve(row["systemuserid"]) == (oid, "user")
    app = principals_from_api([row | {"applicationid": "11111111-1111-1111-1111-111111111111"}], [])
    assert app.resolve(row["systemuserid"])[1] == "servicePrincipal"  # an application user


def test_shared_principals_become_run_only_shares_with_the_dataverse_id_to_revoke() -> None:
    access = fixture("dataverse-RetrieveSharedPrincipalsAndAccess.docs.json")
    shares = flow_shares_from_api(
        "env", "flow", "00000000-0000-0000-0000-0000000000aa", access, principals_from_api([], [])
    )
    owner, shared = shares
    assert owner.role == "Owner"
    assert (shared.role, shared.principal_kind) == ("CanView", "user")  # ReadAccess only: run-only
    assert shared.permission_id == "00000000-0000-0000-0000-000000000005"


def test_revoke_access_body_has_the_documented_shape() -> None:
    recorded = fixture("dataverse-RevokeAccess.request.docs.json")
    ours = revoke_body(recorded["Target"]["workflowid"], recorded["Revokee"]["ownerid"], "user")
    assert ours == recorded
    assert revoke_body("w", "t", "group")["Revokee"]["@odata.type"] == "Microsoft.Dynamics.CRM.team"


def test_connections_list_maps_identity_parameters_and_parameter_set_only_connections() -> None:
    items = fixture("connections-list.tf-provider.response.json")["value"]
    connections = [connection_from_api(i, "env") for i in items]
    assert [c.connector_id.rsplit("/", 1)[-1] for c in connections] == [
        "shared_commondataserviceforapps",
        "shared_flowmanagement",
    ]
    parameter_set_only = next(i for i in items if i["properties"].get("connectionParameters") is None)
    assert connection_from_api(parameter_set_only, "env").parameters == {}  # read, not crashed
    # A Key Vault connection whose vault name sits only in the parameter set (certificate auth).
    keyvault = parameter_set_only | {
        "properties": parameter_set_only["properties"]
        | {
            "apiId": KEYVAULT,
            "connectionParametersSet": {
                "name": "certOauth",
                "values": {"vaultName": {"value": "kv-a"}, "token:clientCertificateSecret": {"value": "x"}},
            },
        }
    }
    parsed = connection_from_api(keyvault, "env")
    assert parsed.parameters == {"vaultName": "kv-a"}  # never the credential values


def test_connection_permissions_keep_service_principal_shares_typed() -> None:
    items = fixture("connection-permissions-list.tf-provider.response.json")["value"]
    shares = [connection_share_from_api(i, "env", "c1") for i in items]
    kinds = {(s.role, s.principal_kind) for s in shares}
    assert ("CanViewWithShare", "servicePrincipal") in kinds and ("Owner", "user") in kinds
    assert all(
        s.permission_id and s.permission_id.endswith(s.permission_id.rsplit("/", 1)[-1]) for s in shares
    )


def test_dlp_list_items_have_no_rules_and_the_policy_get_has_them() -> None:
    listed = [dlp_from_api(i) for i in fixture("dlp-list.tf-provider.json")["value"]]
    assert [p.display_name for p in listed] == ["a1", "a2"]
    assert all(not p.blocked_actions and not p.blocked_connectors for p in listed)  # nothing to see in a list
    whole = dlp_from_api(fixture("dlp-get.tf-provider.json"))
    assert whole.environment_type == "ExceptEnvironments" and whole.environments == (
        "be0eb809-e58a-ec1b-8fce-ea40b0e53442",
    )
    assert whole.blocked_actions == {"/providers/Microsoft.PowerApps/apis/shared_azureblob": ("*",)}


def test_keyvault_list_and_access_policy_put_parse() -> None:
    page = fixture("keyvault-listVaultByResourceGroup.json")["responses"]["200"]["body"]
    (vault,) = [vault_from_json(i, "00000000-0000-0000-0000-000000000000") for i in page["value"]]
    assert vault.name == "sample-vault" and vault.access_policies[0].permissions.secrets[:2] == (
        "get",
        "list",
    )
    assert page["nextLink"]  # the adapter follows `nextLink` (keyvault_mgmt._list_pages)
    # The inventory reads each page's bytes in one pass: the same vaults and link.
    one_pass = vault_page_from_json(json.dumps(page).encode(), "00000000-0000-0000-0000-000000000000")
    assert one_pass == ([vault], page["nextLink"])
    example = fixture("keyvault-updateAccessPoliciesAdd.json")
    sent = example["parameters"]["parameters"]["properties"]["accessPolicies"]
    echoed = example["responses"]["200"]["body"]["properties"]["accessPolicies"]
    # The PUT answers with the request's entry, not the vault's policies: the adapter re-reads the vault.
    assert echoed == sent
    assert [access_policy_from_json(e).permissions.keys for e in echoed] == [("encrypt",)]
    assert values_at(example, "responses/200/body/properties/accessPolicies[]/objectId")


def test_keyvault_vault_patch_then_get_gives_the_permission_model_the_vault_now_has() -> None:
    example = fixture("keyvault-updateVault-2023-07-01.json")
    patched = example["responses"]["200"]["body"]  # no enableRbacAuthorization: an access-policy vault
    switched = {**patched, "properties": {**patched["properties"], "enableRbacAuthorization": True}}
    sub = example["parameters"]["subscriptionId"]
    for read_back, expected in ((patched, False), (switched, True)):
        transport = RecordedTransport(patched, read_back)
        vaults = KeyVaultManagement(StaticCredential(), sub, transport=transport)
        assert vaults.set_rbac_authorization("sample-resource-group", "sample-vault", True) is expected
        assert [method for method, _ in transport.requests] == ["PATCH", "GET"]  # the answer is the re-read


def test_keyvault_secret_list_items_give_names_without_values() -> None:
    page = fixture("keyvault-data-GetSecrets.json")["responses"]["200"]["body"]
    (meta,) = [secret_meta_from_item(i) for i in page["value"]]
    assert (meta.name, meta.enabled, meta.content_type) == ("listsecrettest0", True, "plainText")
    assert page["nextLink"]  # followed as given (keyvault_data._pages)


def test_graph_directory_objects_and_members() -> None:
    identities = [identity_from_graph(i) for i in fixture("graph-getByIds.docs.json")["value"]]
    assert {(i.kind, i.display_name) for i in identities} == {
        ("user", "Trevor Jones"),
        ("user", "Billy Smith"),
    }
    members = fixture("graph-transitiveMembers.docs.json")["value"]
    assert [m["id"] for m in members] == ["11111111-2222-3333-4444-555555555555"]  # what group_members keeps


def test_role_assignments_and_definitions_deserialize_and_map() -> None:
    listed = fixture("authorization-RoleAssignments_ListForScope.json")["responses"]["200"]["body"]["value"]
    (assignment,) = [role_assignment_from_sdk(SdkRoleAssignment.deserialize(i)) for i in listed]
    assert (assignment.principal_id, assignment.principal_type) == (
        "ce2ce14e-85d7-4629-bdbc-454d0519d987",
        "User",
    )
    assert assignment.role_definition_id.endswith("/0b5fe924-9a61-425c-96af-cfe6e287ca2d")
    body = fixture("authorization-GetRoleDefinitionByName.json")["responses"]["200"]["body"]
    definition = role_definition_from_sdk(SdkRoleDefinition.deserialize(body))
    assert (definition.role_name, definition.actions, definition.data_actions) == (
        "Role name",
        ("action",),
        ("dataAction",),
    )


def _example(name: str) -> Any:
    return fixture(name)["responses"]["200"]["body"]


def test_keyvault_versions_set_and_update_through_the_sdk() -> None:
    page = _example("keyvault-data-GetSecretVersions.json")
    last = {k: v for k, v in page.items() if k != "nextLink"}
    transport = RecordedTransport(page, last)
    secrets = KeyVaultSecrets(StaticCredential(), "https://myvault.vault.azure.net/", transport=transport)
    versions = secrets.list_versions("listsecretversionstest")
    assert [v.version for v in versions] == ["11a536561da34d6b8b452d880df58f3a"] * 2  # nextLink followed
    assert all(v.enabled for v in versions)

    transport = RecordedTransport(_example("keyvault-data-SetSecret.json"))
    secrets = KeyVaultSecrets(StaticCredential(), "https://myvault.vault.azure.net/", transport=transport)
    created = secrets.set_secret("crpsecret", SecretValue("new"), content_type=None, expires=None, tags={})
    assert (created.name, created.version) == ("crpsecret", "03bcccc7c8cf4546a0e3e21e52560441")
    assert "mysecretvalue" not in repr(created)  # the value in the answer is dropped

    transport = RecordedTransport(_example("keyvault-data-UpdateSecret.json"))
    secrets = KeyVaultSecrets(StaticCredential(), "https://myvault.vault.azure.net/", transport=transport)
    updated = secrets.update_version("crpsecret", "03bcccc7c8cf4546a0e3e21e52560441", enabled=True)
    assert updated.tags == {"mytag": "myvalue"} and updated.content_type == "myContentType"


def test_graph_add_password_answer_gives_the_key_id_and_a_wrapped_secret() -> None:
    recorded = fixture("graph-addPassword.docs.json")
    transport = RecordedTransport(recorded)
    applications = Applications(StaticCredential(), transport=transport)
    key_id, secret = applications.add_password("app-object-id", "rotated", datetime(2030, 1, 1, tzinfo=UTC))
    assert key_id == "f0b0b335-1d71-4883-8f98-567911bfdca6"
    assert secret.same_as(recorded["secretText"]) and recorded["secretText"] not in repr(secret)
    assert transport.requests == [
        ("POST", "https://graph.microsoft.com/v1.0/applications/app-object-id/addPassword")
    ]


def test_graph_directory_lookups_through_the_adapter() -> None:
    directory = Directory(
        StaticCredential(), transport=RecordedTransport(fixture("graph-getByIds.docs.json"))
    )
    (identity,) = directory.resolve(["84b80893-8749-40a3-97b7-68513b600544"])
    assert identity.exists and identity.kind == "user"
    members = Directory(
        StaticCredential(), transport=RecordedTransport(fixture("graph-transitiveMembers.docs.json"))
    )
    assert members.group_members("02bd9fd6-8f93-4758-87c3-1fb73740a315") == [
        "11111111-2222-3333-4444-555555555555"
    ]


def test_role_assignment_create_and_delete_through_the_sdk() -> None:
    example = fixture("authorization-RoleAssignments_CreateForSubscription.json")
    sent = example["parameters"]["parameters"]["properties"]
    change = RoleAssignmentChange(
        operation="create",
        scope="/subscriptions/a925f2f7-5c63-4b7b-8799-25a5f97bc3b2",
        role_definition_id=sent["roleDefinitionId"],
        principal_id=sent["principalId"],
        principal_type=sent["principalType"],
        assignment_name=example["parameters"]["roleAssignmentName"],
    )
    transport = RecordedTransport(example["responses"]["201"]["body"])
    authorization = Authorization(
        StaticCredential(), "a925f2f7-5c63-4b7b-8799-25a5f97bc3b2", transport=transport
    )
    created = authorization.create_role_assignment(change)
    assert created is not None and created.id.endswith("/05c5a614-a7d6-4502-b150-c2fb455033ff")
    assert transport.requests[0][0] == "PUT"
    deleted = fixture("authorization-RoleAssignments_Delete.json")["responses"]["200"]["body"]
    authorization = Authorization(
        StaticCredential(), "a925f2f7-5c63-4b7b-8799-25a5f97bc3b2", transport=RecordedTransport(deleted)
    )
    assert authorization.delete_role_assignment(change.model_copy(update={"operation": "delete"})) is True


def test_storage_keys_list_and_regenerate_through_the_sdk() -> None:
    for name in ("storage-StorageAccountListKeys.json", "storage-StorageAccountRegenerateKey.json"):
        transport = RecordedTransport(fixture(name)["responses"]["200"]["body"])
        storage = StorageKeys(StaticCredential(), "00000000-0000-0000-0000-000000000000", transport=transport)
        keys = (
            storage.list_keys("rg", "sto2220")
            if "List" in name
            else storage.regenerate_key("rg", "sto3539", "key2")
        )
        assert sorted(keys) == ["key1", "key2"] and all(k.same_as("<value>") for k in keys.values())


def test_keyvault_get_secret_value_is_only_compared() -> None:
    body = _example("keyvault-data-GetSecret.json")
    secrets = KeyVaultSecrets(
        StaticCredential(), "https://myvault.vault.azure.net/", transport=RecordedTransport(body)
    )
    assert secrets.value_matches(
        "mysecretname", "4387e9f3d6e14c459867679a90fd0f79", SecretValue("mysecretvalue")
    )
    assert not secrets.value_matches("mysecretname", "4387e9f3d6e14c459867679a90fd0f79", SecretValue("other"))
    assert secrets.is_readable("mysecretname", "4387e9f3d6e14c459867679a90fd0f79")


def test_graph_service_principal_lookup_maps_app_ids_to_object_ids() -> None:
    listed = fixture("graph-servicePrincipals-list.docs.json")
    directory = Directory(StaticCredential(), transport=RecordedTransport(listed))
    found = directory.object_ids_for_app_ids(["65415BB1-9267-4313-BBF5-AE259732EE12"])
    assert found == {"65415bb1-9267-4313-bbf5-ae259732ee12": "59e617e5-e447-4adc-8b88-00af644d7c92"}


def test_access_policy_put_sends_the_spec_request_and_the_vault_get_shows_the_result() -> None:
    put = fixture("keyvault-updateAccessPoliciesAdd.json")
    vault = _example("keyvault-getVault.json")
    transport = RecordedTransport(put["responses"]["200"]["body"])
    management = KeyVaultManagement(
        StaticCredential(), "00000000-0000-0000-0000-000000000000", transport=transport
    )
    sent = put["parameters"]["parameters"]["properties"]["accessPolicies"][0]
    change = AccessPolicyChange(
        operation="add",
        tenant_id=sent["tenantId"],
        object_id=sent["objectId"],
        permissions=Permissions(**{k: tuple(v) for k, v in sent["permissions"].items()}),
    )
    # The recorded response (an echo of the request) is accepted; it is not read as the vault's state:
    # the one GET after the vault's writes is (shell/write_guard.py).
    management.update_access_policy("sample-resource-group", "sample-vault", change)
    assert [method for method, _ in transport.requests] == ["PUT"]
    assert transport.sent[0] == put["parameters"]["parameters"]  # our PUT body is the spec's request
    single = KeyVaultManagement(
        StaticCredential(), "00000000-0000-0000-0000-000000000000", transport=RecordedTransport(vault)
    )
    scope = Scope(
        subscription_id="00000000-0000-0000-0000-000000000000",
        resource_group="sample-resource-group",
        vault_name="sample-vault",
    )
    (listed,) = single.list_vaults(scope)
    assert (listed.name, listed.vault_uri, listed.enable_rbac_authorization) == (
        "sample-vault",
        "https://sample-vault.vault.azure.net",
        False,
    )
    assert listed.access_policies[0].permissions.secrets == tuple(
        vault["properties"]["accessPolicies"][0]["permissions"]["secrets"]
    )


def test_vault_patch_answers_with_the_whole_vault() -> None:
    """`PATCH .../vaults/{name}` (Vaults_Update, the call that switches a vault to RBAC) answers with the
    vault as it now is, in the shape a GET has."""
    example = fixture("keyvault-updateVault.json")
    answered = vault_from_sdk(SdkVault(example["responses"]["200"]["body"]), "sub")
    got = vault_from_sdk(SdkVault(_example("keyvault-getVault.json")), "sub")
    assert answered.model_dump(exclude={"tags"}) == got.model_dump(exclude={"tags"})


def test_dlp_create_and_update_answer_with_the_whole_policy() -> None:
    """The app checks the POST / PATCH answer holds the rule (enforce_keyvault_dlp.apply_dlp); the
    provider's tests serve the whole policy (groups and action rules) for both."""
    for name in ("dlp-post.tf-provider.json", "dlp-patch.tf-provider.json"):
        recorded = fixture(name)
        transport = RecordedTransport(recorded)
        api = PowerPlatform(StaticCredential(), transport=transport)
        answer = (
            api.create_dlp_policy({"policyDefinition": {}})
            if "post" in name
            else api.update_dlp_policy("p1", recorded)
        )
        policy = dlp_from_api(answer)
        assert policy.blocked_actions == {
            "/providers/Microsoft.PowerApps/apis/shared_sql": (
                "DeleteItem_V2",
                "ExecutePassThroughNativeQuery_V2",
            )
        }
        assert "/providers/Microsoft.PowerApps/apis/shared_azureblob" in policy.blocked_connectors
        assert transport.requests[0][0] == ("POST" if "post" in name else "PATCH")


def test_connection_share_delete_body_is_the_providers() -> None:
    recorded = fixture("connection-modifyPermissions-delete.request.tf-provider.json")
    transport = RecordedTransport({})  # the provider's test answers 200 with an empty body
    api = PowerPlatform(StaticCredential(), transport=transport)
    (permission,) = [d["id"] for d in recorded["delete"]]
    connection = permission.split("/connections/")[1].split("/")[0]
    api.modify_connection_permissions(
        "env", "shared_commondataserviceforapps", connection, delete=[permission]
    )
    assert transport.sent == [recorded]
    assert transport.requests[0][1].endswith(
        f"/connections/{connection}/modifyPermissions?api-version=2017-06-01"
    )


def test_dataverse_roles_have_the_columns_the_adapter_selects() -> None:
    rows = fixture("dataverse-roles-list.tf-provider.json")["value"]
    assert all(set(ROLE_COLUMNS.split(",")) <= set(row) for row in rows)
    user = fixture("dataverse-systemuser.tf-provider.json") | {
        "systemuserroles_association": [{k: r[k] for k in ROLE_COLUMNS.split(",")} for r in rows]
    }
    principals = principals_from_api([user], [])
    assert principals.roles[user["azureactivedirectoryobjectid"]] == (
        "Basic User",
        "System Administrator",
        "System Customizer",
    )


def test_turn_off_body_uses_the_documented_column() -> None:
    documented = fixture("dataverse-workflow-statecode.request.docs.json")
    assert set(documented) <= set(OFF) and all(type(OFF[k]) is type(v) for k, v in documented.items())
    transport = RecordedTransport({})
    api = PowerPlatform(StaticCredential(), transport=transport)
    environment = fixture("bap-environments-list-admin.tf-provider.response.json")["value"]
    with_database = next(
        i for i in environment if (i["properties"].get("linkedEnvironmentMetadata") or {}).get("instanceUrl")
    )
    transport.bodies = [with_database, {}]
    api.turn_off_flow(with_database["name"], "00000000-0000-0000-0000-000000000002")
    method, url = transport.requests[-1]
    assert method == "PATCH" and url.endswith(
        "/api/data/v9.2/workflows(00000000-0000-0000-0000-000000000002)"
    )
    assert transport.sent[-1] == OFF


def test_graph_application_password_key_ids_and_remove_password() -> None:
    application = fixture("graph-application-get.docs.json")
    credential = {k: v for k, v in fixture("graph-addPassword.docs.json").items() if k != "secretText"}
    for listed, expected in (([], []), ([credential | {"secretText": None}], [credential["keyId"]])):
        body = application | {"passwordCredentials": listed}
        transport = RecordedTransport(body)
        assert (
            Applications(StaticCredential(), transport=transport).password_key_ids(application["id"])
            == expected
        )
    transport = RecordedTransport({})
    Applications(StaticCredential(), transport=transport).remove_password(
        application["id"], credential["keyId"]
    )
    assert transport.requests == [
        ("POST", f"https://graph.microsoft.com/v1.0/applications/{application['id']}/removePassword")
    ]
    assert transport.sent == [fixture("graph-removePassword.request.docs.json")]


def test_dataverse_teams_map_group_teams_and_their_roles() -> None:
    """The team and role columns of the recorded `RetrieveAadUserRoles` answer, as a `teams` row with
    `teamroles_association` (tests/contract/calls.py `team_page`): the team is a group, by its Entra id."""
    recorded = fixture("dataverse-RetrieveAadUserRoles.docs.json")
    (row,) = recorded["value"]
    principals = principals_from_api([], team_page(recorded)["value"])
    group = row["t_x002e_azureactivedirectoryobjectid"]
    assert principals.resolve(row["t_x002e_teamid"]) == (group, "group")
    assert principals.roles == {group: ("System Administrator",)}
    assert principals.role_ids[group] == {"System Administrator": row["roleid"]}
    assert principals.names[group] == "testgroup"


def _dataverse_api(transport: RoutedTransport) -> PowerPlatform:
    return PowerPlatform(StaticCredential(), transport=transport)


def test_role_disassociation_deletes_the_documented_ref_of_the_role_the_principal_holds() -> None:
    """`DELETE <set>(<id>)/<navigation>(<related id>)/$ref`, the second form the Web API docs give for a
    collection-valued navigation property (204); the role id is the one on the user's own row."""
    documented = fixture("dataverse-disassociate.docs.json")
    form = r"/api/data/v9\.\d/\w+\([^)]+\)/\w+\([^)]+\)/\$ref"
    assert re.search(rf"^DELETE .+{form} HTTP/1\.1$", documented["request"])
    user = fixture("dataverse-systemuser.tf-provider.json")
    transport = RoutedTransport()
    api = _dataverse_api(transport)
    api.remove_security_role(ENVIRONMENT, user["azureactivedirectoryobjectid"], "Role 3")
    (url,) = [u for m, u in transport.requests if m == "DELETE"]
    assert re.search(rf"{form}$", url)
    assert url.endswith(
        f"/systemusers({user['systemuserid']})/systemuserroles_association(00000000-0000-0000-0000-000000000003)/$ref"
    )
    assert transport.served[-1] == "Dataverse DELETE {principal}/{roles association}({role})/$ref"


def test_clientdata_update_sends_the_documented_column_as_a_json_string() -> None:
    """restore_secure_outputs / move_to_service_connection write `clientdata` only, a string holding
    JSON of the documented shape (the docs' create body and their "set only the properties you
    change" update, 204)."""
    documented = fixture("dataverse-workflow-clientdata.docs.json")
    data = json.loads(documented["clientdata"])
    transport = RoutedTransport()
    _dataverse_api(transport).update_flow_client_data(ENVIRONMENT, "w1", data)
    (sent,) = [b for (m, _), b in zip(transport.requests, transport.sent, strict=True) if m == "PATCH"]
    assert set(sent) == {"clientdata"} and isinstance(sent["clientdata"], str)
    assert json.loads(sent["clientdata"]) == data


def test_connection_reference_rebind_reads_the_row_and_patches_only_its_connection() -> None:
    """move_to_service_connection on a solution flow: the row of the logical name the recorded clientdata
    names (a filtered `connectionreferences` list: its id, its `connectionid`), then a PATCH of only
    `connectionid` on `connectionreferences(<id>)` ("Update and delete table rows using the Web API":
    the columns to change, `If-Match: *`, 204)."""
    recorded = json.loads(fixture("dataverse-workflow-clientdata.docs.json")["clientdata"])
    (reference,) = recorded["properties"]["connectionReferences"].values()
    logical_name = reference["connection"]["connectionReferenceLogicalName"]
    transport = RoutedTransport()
    api = _dataverse_api(transport)
    row = api.get_connection_reference(ENVIRONMENT, logical_name)
    assert row is not None and row.logical_name == logical_name
    assert row.connection_id == reference["connection"]["name"] and row.id == CONNECTION_REFERENCE_ID
    (listed,) = [u for m, u in transport.requests if "connectionreferences" in u]
    assert "$filter=connectionreferencelogicalname%20eq%20%27crdcb_" in listed
    api.update_connection_reference(ENVIRONMENT, row.id, "shared-keyvault-service")
    (url,) = [u for m, u in transport.requests if m == "PATCH"]
    assert url.endswith(f"/api/data/v9.2/connectionreferences({CONNECTION_REFERENCE_ID})")
    assert transport.sent[-1] == {"connectionid": "shared-keyvault-service"}
    assert transport.served[-1] == "Dataverse PATCH connectionreferences({id})"
