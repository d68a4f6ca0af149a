// Key Vault events -> the app's Event Grid function: an Event Grid system topic on one vault (Key Vault
// publishes per vault; there is no subscription-wide Key Vault source) with one event subscription.
// Deployed once per vault listed in `eventVaultResourceIds`, in that vault's resource group.
// - Delivery: endpoint type AzureFunction (Event Grid calls the function through the Functions
//   resource provider: no function key in the template or the deployment history, nothing public).
// - CloudEvents 1.0 schema, one event per delivery (the function binds one event per invocation).
// - Retries: up to 10 attempts within 24 h, then the event is dead-lettered to a blob container of the
//   app's storage, written with the app's user-assigned identity (the account allows no shared key).

@description('Name of the vault (in this resource group) whose events the app reacts to.')
param vaultName string
@description('Resource id of the function app that hosts `keyvault_events`.')
param functionAppId string
@description('Resource id of the app\'s user-assigned identity (the topic dead-letters with it).')
param identityId string
@description('Resource id of the app\'s storage account (the dead-letter container lives there).')
param storageAccountId string
@description('Blob container that receives events whose delivery failed after every retry.')
param deadLetterContainerName string
param tags object = {}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: 'egst-vaultguard-${vaultName}'
  location: vault.location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    source: vault.id
    topicType: 'Microsoft.KeyVault.vaults'
  }
}

resource subscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'vaultguard-keyvault-events'
  properties: {
    destination: {
      endpointType: 'AzureFunction'
      properties: {
        resourceId: '${functionAppId}/functions/keyvault_events'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'CloudEventSchemaV1_0'
    filter: {
      includedEventTypes: [
        'Microsoft.KeyVault.VaultAccessPolicyChanged'
        'Microsoft.KeyVault.SecretNearExpiry'
        'Microsoft.KeyVault.SecretExpired'
        // Refreshes the vault's stored secret inventory (the quick sweep plans from it).
        'Microsoft.KeyVault.SecretNewVersionCreated'
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 10
      eventTimeToLiveInMinutes: 1440
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'UserAssigned'
        userAssignedIdentity: identityId
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storageAccountId
          blobContainerName: deadLetterContainerName
        }
      }
    }
  }
}

output topicId string = topic.id
