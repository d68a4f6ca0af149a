// The app's own storage: host state, the deployment package, the sweep queue and the audit table.
// Identity-only: shared keys are off, so every client (host, app, deploy) authenticates with Entra ID.

@minLength(3)
@maxLength(24)
param name string
param location string = resourceGroup().location
param tags object = {}
@description('Blob container Flex Consumption deploys the app package from.')
param deploymentContainerName string
@description('Queue the timer sweep fans out to (one message per vault / environment).')
param queueName string
@description('Blob container Event Grid dead-letters undeliverable Key Vault events to.')
param deadLetterContainerName string = 'eventgrid-deadletter'
@description('Table the audit log is written to.')
param auditTableName string
@description('Table that stores ticket and alert results (idempotency by ticket id / alert id).')
param runsTableName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  //checkov:skip=CKV_AZURE_35:Flex Consumption without VNet integration reaches its storage over the public endpoint; access is Entra-ID-only (allowSharedKeyAccess false) and RBAC-scoped to the app identity.
  //checkov:skip=CKV_AZURE_59:Same reason as CKV_AZURE_35: Flex Consumption without VNet integration needs the public endpoint; no anonymous or key access is possible (allowBlobPublicAccess false, allowSharedKeyAccess false).
  //checkov:skip=CKV_AZURE_206:Host state, a transient work queue and an audit table that is also exported to Log Analytics; LRS is enough and the app can rebuild its queue from a sweep.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    dnsEndpointType: 'Standard'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        file: {
          enabled: true
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
        table: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobServices 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobServices
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// Key Vault events whose delivery to the function failed after every retry (infra/app/events.bicep).
resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobServices
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueServices 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource scopesQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueServices
  name: queueName
}

// The Functions host moves a message here after maxDequeueCount (host.json) failed attempts.
resource scopesPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueServices
  name: '${queueName}-poison'
}

resource tableServices 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource auditTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableServices
  name: auditTableName
}

resource runsTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableServices
  name: runsTableName
}

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
output tableEndpoint string = storage.properties.primaryEndpoints.table
output deadLetterContainerName string = deadLetterContainer.name
