// Alert wiring: activity-log alerts on vault access-policy changes (and, optionally, Microsoft Defender for
// Key Vault security alerts) -> one action group -> webhook to the app's /api/alerts in the common alert schema.
// The function key is read with listKeys at deployment time and goes straight into the receiver: it is
// never a parameter, a variable in the deployment history, or an output.

param resourceToken string
param tags object = {}
@description('Name of the function app (in this resource group) that receives the alerts.')
param functionAppName string
@description('Resource-id prefixes to watch: the subscription, or target resource groups. Empty: no activity-log alert.')
param activityLogScopes array
@description('Also route Defender for Key Vault alerts (activity log, category Security).')
param enableDefenderAlerts bool = true

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-vaultguard-${resourceToken}'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'vaultguard'
    enabled: true
    webhookReceivers: [
      {
        name: 'vaultguard-alerts'
        serviceUri: 'https://${functionApp.properties.defaultHostName}/api/alerts?code=${listKeys('${functionApp.id}/host/default', '2023-12-01').functionKeys.default}'
        useCommonAlertSchema: true
        useAadAuth: false
      }
    ]
  }
}

// Someone changed a vault's access policies or the vault itself (e.g. re-granted `list`, switched
// permission model): the app re-checks that vault.
resource vaultChangeAlert 'Microsoft.Insights/activityLogAlerts@2020-10-01' = if (!empty(activityLogScopes)) {
  name: 'ala-vaultguard-vault-change-${resourceToken}'
  location: 'Global'
  tags: tags
  properties: {
    enabled: true
    description: 'Key Vault access policy or vault configuration changed: vaultguard re-checks the vault.'
    scopes: activityLogScopes
    condition: {
      allOf: [
        {
          field: 'category'
          equals: 'Administrative'
        }
        {
          anyOf: [
            {
              field: 'operationName'
              equals: 'Microsoft.KeyVault/vaults/accessPolicies/write'
            }
            {
              field: 'operationName'
              equals: 'Microsoft.KeyVault/vaults/write'
            }
          ]
        }
        {
          field: 'status'
          equals: 'Succeeded'
        }
      ]
    }
    actions: {
      actionGroups: [
        {
          actionGroupId: actionGroup.id
          webhookProperties: {
            source: 'vaultguard-activity-log'
          }
        }
      ]
    }
  }
}

// Microsoft Defender for Key Vault alerts (unusual secret listing, get after list, access from a TOR exit
// node, ...) land in the activity log with category Security. The app ignores security alerts about
// other resource types. Requires Defender for Key Vault on the subscription (enableDefenderForKeyVault).
resource defenderAlert 'Microsoft.Insights/activityLogAlerts@2020-10-01' = if (enableDefenderAlerts && !empty(activityLogScopes)) {
  name: 'ala-vaultguard-defender-${resourceToken}'
  location: 'Global'
  tags: tags
  properties: {
    enabled: true
    description: 'Microsoft Defender for Key Vault alert: vaultguard revokes and rotates per policy.'
    scopes: activityLogScopes
    condition: {
      allOf: [
        {
          field: 'category'
          equals: 'Security'
        }
      ]
    }
    actions: {
      actionGroups: [
        {
          actionGroupId: actionGroup.id
          webhookProperties: {
            source: 'vaultguard-defender'
          }
        }
      ]
    }
  }
}

output actionGroupId string = actionGroup.id
