"""Wire -> model mapping of the Power Platform admin responses (shapes from shared/powerplatform)."""

from __future__ import annotations

from remediations.adapters.powerapps_shapes import connection_from_api, connection_share_from_api
from remediations.core.dlp_shape import dlp_from_api

KV = "/providers/Microsoft.PowerApps/scopes/admin/environments/e1/apis/shared_keyvault"


def _connection(parameter_set: dict[str, object], created_by: str = "U1") -> dict[str, object]:
    return {
        "name": "c1",
        "id": f"{KV}/connections/c1",
        "properties": {
            "apiId": KV,
            "displayName": "kv",
            "connectionParameters": {"vaultName": "kv-a"},
            "connectionParametersSet": parameter_set,
            "createdBy": {"id": created_by, "type": "User"},
        },
    }


def test_connection_identity_for_each_authentication_kind() -> None:
    oauth = connection_from_api(_connection({"name": "oauthDefault", "values": {}}), "e1")
    assert (oauth.identity_principal_id, oauth.identity_kind, oauth.created_by) == ("u1", "user", "u1")
    assert oauth.connector_id == "/providers/Microsoft.PowerApps/apis/shared_keyvault" and oauth.is_keyvault
    sp = connection_from_api(
        _connection({"name": "servicePrincipalAuth", "values": {"token:clientId": {"value": "APP-1"}}}),
        "e1",
        {"app-1": "sp-object"},
    )
    assert (sp.identity_principal_id, sp.identity_kind) == ("sp-object", "servicePrincipal")
    unknown_app = connection_from_api(
        _connection({"name": "servicePrincipalAuth", "values": {"token:clientId": {"value": "APP-2"}}}), "e1"
    )
    assert unknown_app.identity_principal_id is None  # never guessed as the creator
    mi = connection_from_api(
        _connection({"name": "managedIdentityAuth", "values": {"managedIdentity": {"value": "MI-1"}}}), "e1"
    )
    assert (mi.identity_principal_id, mi.identity_kind) == ("mi-1", "managedIdentity")


def test_tenant_wide_connection_share_names_the_tenant() -> None:
    share = connection_share_from_api(
        {
            "name": "p1",
            "id": "/providers/Microsoft.PowerApps/apis/shared_keyvault/connections/c1/permissions/p1",
            "properties": {
                "roleName": "CanView",
                "principal": {"id": "x", "type": "Tenant", "tenantId": "T1"},
            },
        },
        "e1",
        "c1",
    )
    assert (share.principal_id, share.role, share.permission_id) == (
        "t1",
        "CanView",
        "/providers/Microsoft.PowerApps/apis/shared_keyvault/connections/c1/permissions/p1",
    )


def test_dlp_policy_blocked_actions_and_connectors() -> None:
    policy = dlp_from_api(
        {
            "policyDefinition": {
                "name": "p",
                "displayName": "d",
                "environmentType": "ExceptEnvironments",
                "environments": [{"name": "e2"}],
                "connectorGroups": [
                    {
                        "classification": "Blocked",
                        "connectors": [{"id": "/providers/Microsoft.PowerApps/apis/shared_ftp"}],
                    }
                ],
            },
            "connectorConfigurationsDefinition": {
                "connectorActionConfigurations": [
                    {
                        "connectorId": "/providers/Microsoft.PowerApps/apis/shared_keyvault",
                        "defaultConnectorActionRuleBehavior": "Allow",
                        "actionRules": [
                            {"actionId": "ListSecrets", "behavior": "Block"},
                            {"actionId": "GetSecret", "behavior": "Allow"},
                        ],
                    }
                ]
            },
        }
    )
    assert policy.blocked_actions == {"/providers/Microsoft.PowerApps/apis/shared_keyvault": ("ListSecrets",)}
    assert policy.blocked_connectors == ("/providers/Microsoft.PowerApps/apis/shared_ftp",)
    assert policy.covers("e1") and not policy.covers("e2")
