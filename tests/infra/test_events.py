"""Key Vault events wiring: a system topic per listed vault, one event subscription delivering the event
types the app acts on to the `keyvault_events` function (AzureFunction endpoint, no key), CloudEvents,
one event per delivery, dead-lettered with the app's identity to a container of its own storage."""

from __future__ import annotations

from typing import Any

from remediations.triggers import events
from tests.infra.bicep_model import body, dotted, loop, only, template

SYSTEM_TOPIC = "Microsoft.EventGrid/systemTopics"
SUBSCRIPTION = "Microsoft.EventGrid/systemTopics/eventSubscriptions"


def _events() -> dict[str, Any]:
    return template("app/events.bicep")


def test_the_system_topic_watches_the_vault_with_the_apps_identity() -> None:
    topic = only(_events(), SYSTEM_TOPIC)
    assert topic["properties"]["topicType"] == "Microsoft.KeyVault.vaults"
    assert dotted(topic["properties"]["source"]) == "vault.id"
    assert dotted(topic["location"]) == "vault.location"
    assert topic["identity"]["type"] == "UserAssigned"
    vault = _events()["resources"]["vault"]
    assert vault["existing"] is True and vault["type"] == "Microsoft.KeyVault/vaults"


def test_the_subscription_delivers_the_acted_on_types_to_the_function_without_a_key() -> None:
    properties = only(_events(), SUBSCRIPTION)["properties"]
    destination = properties["destination"]
    assert destination["endpointType"] == "AzureFunction"
    assert destination["properties"]["resourceId"] == "${functionAppId}/functions/keyvault_events"
    assert destination["properties"]["maxEventsPerBatch"] == 1
    assert properties["eventDeliverySchema"] == "CloudEventSchemaV1_0"
    assert set(properties["filter"]["includedEventTypes"]) == {
        events.ACCESS_POLICY_CHANGED,
        events.SECRET_NEAR_EXPIRY,
        events.SECRET_EXPIRED,
        events.SECRET_NEW_VERSION,  # refreshes the vault's stored secret inventory
    }
    assert not any("key" in name.lower() for name in _events()["parameters"])


def test_undeliverable_events_are_dead_lettered_to_the_apps_storage_with_its_identity() -> None:
    properties = only(_events(), SUBSCRIPTION)["properties"]
    assert properties["retryPolicy"]["maxDeliveryAttempts"] <= 30
    dead_letter = properties["deadLetterWithResourceIdentity"]
    assert dead_letter["identity"] == {"type": "UserAssigned", "userAssignedIdentity": "identityId"}
    destination = dead_letter["deadLetterDestination"]
    assert destination["endpointType"] == "StorageBlob"
    assert destination["properties"] == {
        "resourceId": "storageAccountId",
        "blobContainerName": "deadLetterContainerName",
    }
    assert "deadLetterDestination" not in properties  # never a key-based (SAS) dead-letter target
    storage = template("app/storage.bicep")
    assert dotted(body(storage["resources"]["deadLetterContainer"])["parent"]) == "blobServices"


def test_main_deploys_one_topic_per_listed_vault_in_the_vaults_resource_group() -> None:
    main = template("main.bicep")
    entry = main["modules"]["vaultEvents"]
    assert loop(entry) == {"item_name": "vaultId", "array_name": "eventVaultResourceIds"}
    params = body(entry)["params"]
    assert dotted(params["functionAppId"]) == "api.outputs.id"
    assert dotted(params["identityId"]) == "identity.outputs.resourceId"
    assert dotted(params["storageAccountId"]) == "storage.outputs.id"
    assert dotted(params["deadLetterContainerName"]) == "storage.outputs.deadLetterContainerName"
    assert main["parameters"]["eventVaultResourceIds"]["default"] == []
