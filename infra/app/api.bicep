// The function app: Flex Consumption (FC1), Python 3.11, user-assigned identity for everything,
// identity-based AzureWebJobsStorage, App Insights with Entra ID auth, HTTPS/TLS 1.2 only, no FTP or basic auth.

param name string
param location string = resourceGroup().location
param tags object = {}
param appServicePlanId string
param storageAccountName string
param deploymentContainerName string
param appInsightsName string
@description('Resource id of the user-assigned identity.')
param identityId string
@description('Client id of the user-assigned identity (AZURE_CLIENT_ID, AzureWebJobsStorage__clientId).')
param identityClientId string
param maximumInstanceCount int = 40
param instanceMemoryMB int = 2048

// Remediation policy (remediations/core/settings.py reads these).
param dryRun bool = true
param maxActionsPerRun int = 50
param sweepSchedule string
param deepSweepSchedule string
param sweepSubscriptionIds array
param policyFile string = ''
param policyJson string = ''
param queueName string
param auditTableName string
param runsTableName string

@description('Require Entra ID tokens on the HTTP functions (App Service Authentication); function keys stay required too.')
param enableEntraAuth bool = false
@description('Client id of the Entra app registration that fronts the API (audience api://<clientId>).')
param entraAuthClientId string = ''
@description('App role values (of the API app registration) one of which a caller needs to apply tickets; empty: any authenticated caller. Needs enableEntraAuth.')
param allowedCallerRoles array = []

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  //checkov:skip=CKV_AZURE_17:Callers (Azure Monitor action groups, ticketing systems) cannot present client certificates; requests carry function keys and, optionally, Entra ID tokens (enableEntraAuth).
  //checkov:skip=CKV_AZURE_222:The public endpoint receives Azure Monitor action-group webhooks and ticket calls; every function requires a function key, and Entra ID auth is optional on top (enableEntraAuth).
  //checkov:skip=CKV_AZURE_212:Flex Consumption instances are platform-managed and scale per function (to zero when idle); there is no fixed instance count to raise for failover.
  //checkov:skip=CKV_AZURE_213:App Service health check is not used on Flex Consumption (platform-managed instances); GET /api/health serves external probes and reports misconfigured settings.
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: appServicePlanId
    httpsOnly: true
    clientCertEnabled: false
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      remoteDebuggingEnabled: false
      appSettings: [
        // Identity-based host storage: no connection string, no key.
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        {
          name: 'AzureWebJobsStorage__blobServiceUri'
          value: storage.properties.primaryEndpoints.blob
        }
        {
          name: 'AzureWebJobsStorage__queueServiceUri'
          value: storage.properties.primaryEndpoints.queue
        }
        {
          name: 'AzureWebJobsStorage__tableServiceUri'
          value: storage.properties.primaryEndpoints.table
        }
        // DefaultAzureCredential / ManagedIdentityCredential in the app pick the user-assigned identity.
        {
          name: 'AZURE_CLIENT_ID'
          value: identityClientId
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsights.properties.ConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'Authorization=AAD;ClientId=${identityClientId}'
        }
        {
          name: 'PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY'
          value: 'true'
        }
        // Remediation policy.
        {
          name: 'VAULTGUARD_SWEEP_SCHEDULE'
          value: sweepSchedule
        }
        {
          name: 'VAULTGUARD_DEEP_SWEEP_SCHEDULE'
          value: deepSweepSchedule
        }
        {
          name: 'VAULTGUARD_DRY_RUN'
          value: dryRun ? 'true' : 'false'
        }
        {
          name: 'VAULTGUARD_MAX_ACTIONS_PER_RUN'
          value: string(maxActionsPerRun)
        }
        {
          name: 'VAULTGUARD_SUBSCRIPTION_IDS'
          value: join(sweepSubscriptionIds, ',')
        }
        {
          name: 'VAULTGUARD_POLICY_FILE'
          value: policyFile
        }
        {
          name: 'VAULTGUARD_POLICY_JSON'
          value: policyJson
        }
        {
          name: 'VAULTGUARD_QUEUE_NAME'
          value: queueName
        }
        {
          name: 'VAULTGUARD_AUDIT_TABLE'
          value: auditTableName
        }
        {
          name: 'VAULTGUARD_RUNS_TABLE'
          value: runsTableName
        }
        // Who may apply tickets: with Entra auth in front, the app trusts the principal headers App Service
        // injects and refuses tickets with dryRun false that carry none (401) or lack an allowed role (403).
        {
          name: 'VAULTGUARD_REQUIRE_AUTHENTICATED_CALLER'
          value: enableEntraAuth ? 'true' : 'false'
        }
        {
          name: 'VAULTGUARD_ALLOWED_CALLER_ROLES'
          value: join(allowedCallerRoles, ',')
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No FTP and no basic-auth (publishing profile) deployments: azd and `func` deploy with Entra ID.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: functionApp
  name: 'scm'
  properties: {
    allow: false
  }
}

// Optional Entra ID (App Service Authentication, authsettingsV2) in front of the HTTP functions.
module entraAuth 'entra-auth.bicep' = if (enableEntraAuth) {
  name: 'vaultguard-entra-auth'
  params: {
    functionAppName: functionApp.name
    clientId: entraAuthClientId
  }
}

output name string = functionApp.name
output id string = functionApp.id
output uri string = 'https://${functionApp.properties.defaultHostName}'
