"""The function app and its storage: Flex Consumption, identity-based storage, no keys, HTTPS/TLS 1.2, no FTP,
and every app setting the code reads is set by the Bicep."""

from __future__ import annotations

import json

from remediations.shell import settings
from tests.infra.bicep_model import app_settings, body, dotted, only, resolve, resources, template


def _storage() -> dict[str, object]:
    return only(template("app/storage.bicep"), "Microsoft.Storage/storageAccounts")


def test_storage_accepts_entra_id_only_over_tls_1_2() -> None:
    properties = _storage()["properties"]
    assert isinstance(properties, dict)
    assert properties["allowSharedKeyAccess"] is False
    assert properties["defaultToOAuthAuthentication"] is True
    assert properties["allowBlobPublicAccess"] is False
    assert properties["supportsHttpsTrafficOnly"] is True
    assert properties["minimumTlsVersion"] == "TLS1_2"


def test_storage_holds_the_sweep_queue_its_poison_queue_the_audit_table_and_the_containers() -> None:
    storage_tpl = template("app/storage.bicep")
    queues = [
        body(q)["name"]
        for q in resources(storage_tpl, "Microsoft.Storage/storageAccounts/queueServices/queues").values()
    ]
    tables = [
        body(t)["name"]
        for t in resources(storage_tpl, "Microsoft.Storage/storageAccounts/tableServices/tables").values()
    ]
    containers = resources(storage_tpl, "Microsoft.Storage/storageAccounts/blobServices/containers")
    assert sorted(queues) == ["${queueName}-poison", "queueName"]
    assert sorted(tables) == ["auditTableName", "runsTableName"]
    assert sorted(body(c)["name"] for c in containers.values()) == [
        "deadLetterContainerName",
        "deploymentContainerName",
    ]

    # main.bicep passes the names the code defaults to, and the same names reach the app settings.
    main = template("main.bicep")
    storage_params = body(main["modules"]["storage"])["params"]
    api_params = body(main["modules"]["api"])["params"]
    assert resolve(main, storage_params["queueName"]) == settings.DEFAULT_QUEUE_NAME
    assert resolve(main, storage_params["auditTableName"]) == settings.DEFAULT_AUDIT_TABLE
    assert resolve(main, storage_params["runsTableName"]) == settings.DEFAULT_RUNS_TABLE
    assert api_params["runsTableName"] == storage_params["runsTableName"]
    assert api_params["queueName"] == storage_params["queueName"]
    assert api_params["auditTableName"] == storage_params["auditTableName"]
    assert api_params["deploymentContainerName"] == storage_params["deploymentContainerName"]


def test_function_app_is_flex_consumption_python_3_11_with_a_user_assigned_identity() -> None:
    site = only(template("app/api.bicep"), "Microsoft.Web/sites")
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    assert list(site["identity"]["userAssignedIdentities"]) == ["'${identityId}'"]
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    assert set(config["scaleAndConcurrency"]) >= {"maximumInstanceCount", "instanceMemoryMB"}
    deployment = config["deployment"]["storage"]
    assert deployment["type"] == "blobContainer"
    assert deployment["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }
    assert site["tags"]["function"]["type"] == "union"  # azd-service-name: api is merged into the tags
    assert "'azd-service-name'" in json.dumps(site["tags"])


def test_function_app_is_https_only_tls_1_2_without_ftp_or_basic_auth() -> None:
    api = template("app/api.bicep")
    site = only(api, "Microsoft.Web/sites")
    properties = site["properties"]
    assert properties["httpsOnly"] is True
    assert properties["siteConfig"]["minTlsVersion"] == "1.2"
    assert properties["siteConfig"]["scmMinTlsVersion"] == "1.2"
    assert properties["siteConfig"]["ftpsState"] == "Disabled"
    policies = resources(api, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {body(p)["name"]: body(p)["properties"]["allow"] for p in policies.values()} == {
        "ftp": False,
        "scm": False,
    }
    assert all(body(p)["parent"] == "functionApp" for p in policies.values())


def test_host_storage_is_identity_based() -> None:
    values = app_settings(template("app/api.bicep"))
    assert "AzureWebJobsStorage" not in values, "a connection string would need a storage key"
    assert values["AzureWebJobsStorage__credential"] == "managedidentity"
    assert values["AzureWebJobsStorage__clientId"] == "identityClientId"
    for service in ("blob", "queue", "table"):
        uri = values[f"AzureWebJobsStorage__{service}ServiceUri"]
        assert dotted(uri) == f"storage.properties.primaryEndpoints.{service}"
    assert "accountkey" not in json.dumps(template("app/api.bicep")).lower()


def test_telemetry_uses_entra_id_and_the_sdk_uses_the_user_assigned_identity() -> None:
    values = app_settings(template("app/api.bicep"))
    assert values["AZURE_CLIENT_ID"] == "identityClientId"
    assert (
        values["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]
        == "Authorization=AAD;ClientId=${identityClientId}"
    )
    assert (
        dotted(values["APPLICATIONINSIGHTS_CONNECTION_STRING"]) == "appInsights.properties.ConnectionString"
    )
    assert values["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] == "true"


def test_every_setting_the_code_reads_is_set_by_the_bicep() -> None:
    names = set(app_settings(template("app/api.bicep")))
    missing = [name for name in settings.ALL_SETTINGS if name not in names]
    assert not missing, f"settings the code reads but infra/app/api.bicep does not set: {missing}"
    # and the identity-based storage the settings module checks for
    assert {settings.STORAGE_QUEUE_URI, settings.STORAGE_TABLE_URI} <= names


def test_policy_settings_come_from_parameters() -> None:
    api = template("app/api.bicep")
    values = app_settings(api)
    assert values[settings.SWEEP_SCHEDULE] == "sweepSchedule"
    assert values[settings.DEEP_SWEEP_SCHEDULE] == "deepSweepSchedule"
    assert values[settings.QUEUE_NAME] == "queueName"
    assert values[settings.AUDIT_TABLE] == "auditTableName"
    assert values[settings.RUNS_TABLE] == "runsTableName"
    dry_run = values[settings.DRY_RUN]["operator"]
    assert dry_run["type"] == "conditional"
    assert json.dumps(dry_run).count('"dryRun"') == 1
    main = template("main.bicep")
    api_params = body(main["modules"]["api"])["params"]
    for name in (
        "dryRun",
        "maxActionsPerRun",
        "sweepSchedule",
        "deepSweepSchedule",
        "policyFile",
        "policyJson",
    ):
        assert api_params[name] == name, name


def test_entra_auth_is_optional_and_keeps_the_alert_webhook_reachable() -> None:
    api = template("app/api.bicep")
    module = api["modules"]["entraAuth"]
    assert module["config"]["condition"] == "enableEntraAuth"
    assert api["parameters"]["enableEntraAuth"]["default"] is False
    assert template("main.bicep")["parameters"]["enableEntraAuth"]["default"] is False
    auth = only(template("app/entra-auth.bicep"), "Microsoft.Web/sites/config")
    assert auth["name"] == "authsettingsV2"
    validation = auth["properties"]["globalValidation"]
    assert validation["requireAuthentication"] is True
    assert validation["unauthenticatedClientAction"] == "Return401"
    assert "/api/alerts" in validation["excludedPaths"]
    # The API description answers a function key alone (only what a key reaches is left out of Easy Auth).
    assert set(validation["excludedPaths"]) == {"/api/alerts", "/api/health", "/api/openapi.json"}
    assert auth["properties"]["identityProviders"]["azureActiveDirectory"]["enabled"] is True


def test_entra_auth_makes_the_app_require_an_authenticated_caller_for_writes() -> None:
    """Easy Auth is what makes the principal headers trustworthy: infra turns the app's requirement on
    exactly when it deploys Easy Auth, and passes the allowed app roles through from main.bicep."""
    api = template("app/api.bicep")
    values = app_settings(api)
    require = values[settings.REQUIRE_AUTHENTICATED_CALLER]["operator"]
    assert require["type"] == "conditional"
    assert require["operands"] == {
        "condition": "enableEntraAuth",
        "true_value": "true",
        "false_value": "false",
    }
    roles = values[settings.ALLOWED_CALLER_ROLES]["function"]
    assert roles["type"] == "join"
    assert roles["parameters"] == {"input_array": "allowedCallerRoles", "delimiter": ","}
    assert api["parameters"]["allowedCallerRoles"]["default"] == []
    main = template("main.bicep")
    assert main["parameters"]["allowedCallerRoles"]["default"] == []
    assert body(main["modules"]["api"])["params"]["allowedCallerRoles"] == "allowedCallerRoles"
    assert body(main["modules"]["api"])["params"]["enableEntraAuth"] == "enableEntraAuth"
