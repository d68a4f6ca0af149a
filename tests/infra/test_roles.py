"""Least privilege: exactly these role assignments exist, each with the right built-in role GUID, scope and
principal, and the RBAC administrator role can only touch the Key Vault data roles."""

from __future__ import annotations

import json
import re

import pytest

from tests.infra.bicep_model import (
    INFRA,
    bicep_files,
    body,
    condition,
    resolve,
    role_definition_guid,
    template,
)

KEY_VAULT_CONTRIBUTOR = "f25e0fa2-a7c8-4377-a976-54943a77a395"
RBAC_ADMINISTRATOR = "f58310d9-a9f6-439a-9e8d-f62e7b41a168"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
KEY_VAULT_READER = "21090545-7ca7-4776-b22c-e363652d74d2"
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
STORAGE_QUEUE_DATA_CONTRIBUTOR = "974c5e8b-45b9-4653-ba55-5f855dd0fb88"
STORAGE_TABLE_DATA_CONTRIBUTOR = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"
MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"

# (file, symbolic name) -> (role, scope): `scope` is the resource the assignment is scoped to, or None for
# the deployment's own scope (the target resource group, or the subscription in main.bicep).
EXPECTED: dict[tuple[str, str], tuple[str, str | None]] = {
    ("app/rbac.bicep", "storageBlobDataOwner"): (STORAGE_BLOB_DATA_OWNER, "storage"),
    ("app/rbac.bicep", "storageQueueDataContributor"): (STORAGE_QUEUE_DATA_CONTRIBUTOR, "storage"),
    ("app/rbac.bicep", "storageTableDataContributor"): (STORAGE_TABLE_DATA_CONTRIBUTOR, "storage"),
    ("app/rbac.bicep", "monitoringMetricsPublisher"): (MONITORING_METRICS_PUBLISHER, "appInsights"),
    ("app/target-roles.bicep", "keyVaultContributor"): (KEY_VAULT_CONTRIBUTOR, None),
    ("app/target-roles.bicep", "rbacAdministrator"): (RBAC_ADMINISTRATOR, None),
    ("app/target-roles.bicep", "keyVaultReader"): (KEY_VAULT_READER, None),
    ("app/vault-roles.bicep", "keyVaultSecretsOfficer"): (KEY_VAULT_SECRETS_OFFICER, "vault"),
    ("main.bicep", "subscriptionKeyVaultContributor"): (KEY_VAULT_CONTRIBUTOR, None),
    ("main.bicep", "subscriptionRbacAdministrator"): (RBAC_ADMINISTRATOR, None),
    ("main.bicep", "subscriptionKeyVaultReader"): (KEY_VAULT_READER, None),
}

ROLE_ASSIGNMENT = "Microsoft.Authorization/roleAssignments"


def _all_assignments() -> dict[tuple[str, str], dict[str, object]]:
    found: dict[tuple[str, str], dict[str, object]] = {}
    for path in bicep_files():
        relative = str(path.relative_to(INFRA))
        for name, entry in template(relative).get("resources", {}).items():
            if entry["type"] == ROLE_ASSIGNMENT and not entry["existing"]:
                found[(relative, name)] = entry
    return found


def test_exactly_the_expected_role_assignments_exist() -> None:
    assert sorted(_all_assignments()) == sorted(EXPECTED)


@pytest.mark.parametrize("key", sorted(EXPECTED), ids=lambda k: f"{k[0]}:{k[1]}")
def test_role_assignment_has_the_right_role_scope_and_principal(key: tuple[str, str]) -> None:
    relative, name = key
    tpl = template(relative)
    assert name in tpl["resources"], f"role assignment {name} is missing from infra/{relative}"
    entry = tpl["resources"][name]
    assert entry["api_version"] == "2022-04-01"
    assignment = body(entry)
    role, scope = EXPECTED[key]
    assert role_definition_guid(tpl, assignment) == role
    assert assignment.get("scope") == scope
    properties = assignment["properties"]
    assert properties["principalType"] == "ServicePrincipal"
    principal = json.dumps(properties["principalId"])
    assert "principalId" in principal  # the app identity's principal id (parameter or module output)
    assert assignment["name"]["function"]["type"] == "guid"  # deterministic, idempotent name


def test_role_guid_variables_are_commented_with_the_role_name() -> None:
    names = {
        KEY_VAULT_CONTRIBUTOR: "Key Vault Contributor",
        RBAC_ADMINISTRATOR: "Role Based Access Control Administrator",
        KEY_VAULT_SECRETS_OFFICER: "Key Vault Secrets Officer",
        KEY_VAULT_SECRETS_USER: "Key Vault Secrets User",
        KEY_VAULT_READER: "Key Vault Reader",
        STORAGE_BLOB_DATA_OWNER: "Storage Blob Data Owner",
        STORAGE_QUEUE_DATA_CONTRIBUTOR: "Storage Queue Data Contributor",
        STORAGE_TABLE_DATA_CONTRIBUTOR: "Storage Table Data Contributor",
        MONITORING_METRICS_PUBLISHER: "Monitoring Metrics Publisher",
    }
    for path in bicep_files():
        lines = path.read_text().splitlines()
        for index, line in enumerate(lines):
            match = re.match(r"^var (\w+) = '([0-9a-f-]{36})'$", line)
            if match and match.group(2) in names:
                comment = lines[index - 1]
                assert comment.startswith("//") and names[match.group(2)] in comment, (path.name, line)


@pytest.mark.parametrize(
    "key",
    [("app/target-roles.bicep", "rbacAdministrator"), ("main.bicep", "subscriptionRbacAdministrator")],
    ids=lambda k: k[0],
)
def test_rbac_administrator_may_only_assign_and_delete_key_vault_data_roles(key: tuple[str, str]) -> None:
    relative, name = key
    tpl = template(relative)
    properties = body(tpl["resources"][name])["properties"]
    assert properties["conditionVersion"] == "2.0"
    expression = resolve(tpl, properties["condition"])
    write, delete = expression.split(" AND ")
    assert "ActionMatches{'Microsoft.Authorization/roleAssignments/write'}" in write
    assert "@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId]" in write
    assert "ActionMatches{'Microsoft.Authorization/roleAssignments/delete'}" in delete
    assert "@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId]" in delete
    for part in (write, delete):
        allowed = re.search(r"ForAnyOfAnyValues:GuidEquals \{([^}]*)\}", part)
        assert allowed is not None, part
        assert {g.strip() for g in allowed.group(1).split(",")} == {
            KEY_VAULT_SECRETS_USER,
            KEY_VAULT_SECRETS_OFFICER,
            KEY_VAULT_READER,  # metadata only: what migrate_to_rbac gives a list-only identity
        }


def test_subscription_wide_roles_only_when_the_target_is_the_subscription() -> None:
    main = template("main.bicep")
    for name in (
        "subscriptionKeyVaultContributor",
        "subscriptionRbacAdministrator",
        "subscriptionKeyVaultReader",
    ):
        assert condition(main["resources"][name]) == "wholeSubscription"
    assert "subscription" in json.dumps(main["variables"]["wholeSubscription"]["value"])
    assert main["parameters"]["targetScopeKind"]["default"] == "resourceGroups"


def test_app_roles_module_gets_the_identity_and_its_own_resources() -> None:
    params = body(template("main.bicep")["modules"]["appRoles"])["params"]
    assert json.dumps(params["principalId"]).count("identity") == 1
    assert set(params) == {"principalId", "storageAccountName", "appInsightsName"}


def _assignments_of(role: str) -> dict[tuple[str, str], dict[str, object]]:
    return {
        key: entry
        for key, entry in _all_assignments().items()
        if role_definition_guid(template(key[0]), body(entry)) == role
    }


def test_key_vault_reader_goes_wherever_key_vault_contributor_goes() -> None:
    """The deep sweep lists secret metadata in every RBAC-mode vault the inventory reads: Key Vault
    Reader at the same scopes (files, conditions) as Key Vault Contributor, each with its own
    deterministic name (a second assignment of the same role and principal at a scope is refused)."""
    readers, contributors = _assignments_of(KEY_VAULT_READER), _assignments_of(KEY_VAULT_CONTRIBUTOR)
    scopes = {key[0]: (condition(entry), body(entry).get("scope")) for key, entry in contributors.items()}
    assert {key[0]: (condition(entry), body(entry).get("scope")) for key, entry in readers.items()} == scopes
    for relative in scopes:
        [reader] = [body(e) for k, e in readers.items() if k[0] == relative]
        [contributor] = [body(e) for k, e in contributors.items() if k[0] == relative]
        reader_name, contributor_name = json.dumps(reader["name"]), json.dumps(contributor["name"])
        assert (
            "keyVaultReaderRoleId" in reader_name
            and reader_name.replace("keyVaultReaderRoleId", "keyVaultContributorRoleId") == contributor_name
        )
