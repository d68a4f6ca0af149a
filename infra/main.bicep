// vaultguard: everything the app needs, in one subscription-scope deployment.
//   az deployment sub create -l <location> -f infra/main.bicep -p infra/main.dev.parameters.json
//   azd up   (reads infra/main.parameters.json)
// Subscription scope because the app's remediation roles and the activity-log alert may cover the
// whole subscription, Defender for Key Vault is a subscription setting, and azd creates the resource group.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd AZURE_ENV_NAME); hashed into every resource name.')
param environmentName string

@minLength(1)
@description('Region of the app and its resources (must offer Flex Consumption).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group for the app. Empty: rg-vaultguard-<environmentName>.')
param resourceGroupName string = ''

@allowed([
  'resourceGroups'
  'subscription'
])
@description('Where vaultguard may remediate: only the resource groups in targetResourceGroupNames, or the whole subscription.')
param targetScopeKind string = 'resourceGroups'

@description('Resource groups (in this subscription) whose vaults vaultguard watches and remediates, when targetScopeKind is resourceGroups.')
param targetResourceGroupNames array = []

@description('Resource ids of RBAC-mode vaults whose secrets vaultguard may rotate (Key Vault Secrets Officer). May be empty.')
param rotationVaultResourceIds array = []

@description('Key Vault resource ids whose events (access-policy changes, secrets near expiry or expired) go to the app through an Event Grid system topic each.')
param eventVaultResourceIds array = []

@description('Plan and report only; no change is applied. Keep true until the plans have been reviewed.')
param dryRun bool = true

@minValue(1)
@description('Blast-radius cap: at most this many actions per run.')
param maxActionsPerRun int = 50

@description('Six-field NCRONTAB schedule of the timer sweep.')
param sweepSchedule string = '0 0 */6 * * *'

@description('Six-field NCRONTAB schedule of the deep sweep (every vault\'s secret list, stored for the quick sweeps).')
param deepSweepSchedule string = '0 0 3 * * *'

@description('Subscriptions the sweep lists vaults in. Empty: this subscription.')
param sweepSubscriptionIds array = []

@description('Path (inside the deployed package) of the remediation policy file. Empty: none.')
param policyFile string = ''

@description('Remediation policy as JSON (allow-lists, break-glass identities, exclusions). Configuration, not a secret. Empty: defaults.')
param policyJson string = ''

@description('Maximum instances of the Flex Consumption app.')
param maximumInstanceCount int = 40

@allowed([
  512
  2048
  4096
])
@description('Instance memory of the Flex Consumption app (MB).')
param instanceMemoryMB int = 2048

@description('Require Entra ID tokens (App Service Authentication) on the HTTP functions, in addition to function keys. /api/alerts and /api/health stay key-only.')
param enableEntraAuth bool = false

@description('Client (application) id of the Entra app registration that fronts the API, when enableEntraAuth is true.')
param entraAuthClientId string = ''

@description('App role values (defined on the entraAuthClientId app registration) one of which a caller needs to apply tickets (dryRun false). Empty: any authenticated caller may. Needs enableEntraAuth; without it the app refuses every such ticket.')
param allowedCallerRoles array = []

@description('Route Microsoft Defender for Key Vault alerts (activity log, category Security) to /api/alerts.')
param enableDefenderAlerts bool = true

@description('Turn on Microsoft Defender for Key Vault (Microsoft.Security/pricings KeyVaults, Standard) on this subscription. Billed per transaction.')
param enableDefenderForKeyVault bool = false

@minValue(30)
@description('Log Analytics retention (days).')
param logRetentionInDays int = 30

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  application: 'vaultguard'
}
var functionAppName = '${abbrs.webSitesFunctions}vaultguard-${resourceToken}'
var deploymentStorageContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
var queueName = 'vaultguard-scopes'
var auditTableName = 'vaultguardaudit'
var runsTableName = 'vaultguardruns'
var wholeSubscription = targetScopeKind == 'subscription'
var targetResourceGroups = wholeSubscription ? [] : targetResourceGroupNames
// Resource-id prefixes the activity-log alerts watch: the subscription or each target resource group.
var resourceGroupScopes = [for groupName in targetResourceGroups: '${subscription().id}/resourceGroups/${groupName}']
var activityLogScopes = wholeSubscription ? [
  subscription().id
] : resourceGroupScopes

// Role definitions (Azure built-in roles) granted at subscription scope when targetScopeKind is subscription.
// Key Vault Contributor: manage vaults and their access policies (no data-plane access in RBAC mode).
var keyVaultContributorRoleId = 'f25e0fa2-a7c8-4377-a976-54943a77a395'
// Role Based Access Control Administrator: create/delete role assignments, limited by the condition below.
var rbacAdministratorRoleId = 'f58310d9-a9f6-439a-9e8d-f62e7b41a168'
// Key Vault Secrets User: read secret values; one of the two roles the RBAC administrator may assign or delete.
var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'
// Key Vault Secrets Officer: manage secrets; the other role the RBAC administrator may assign or delete.
var keyVaultSecretsOfficerRoleId = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
// Assigned to the app so the deep sweep lists secret metadata in RBAC-mode vaults; also what a list-only
// access policy becomes when a vault is migrated to RBAC (migrate_to_rbac).
// Key Vault Reader: vault metadata and secret names, never a value.
var keyVaultReaderRoleId = '21090545-7ca7-4776-b22c-e363652d74d2'
// ABAC condition: role assignments may be written or deleted only for the Key Vault data roles (RBAC narrowing,
// access-policy -> RBAC migration).
var keyVaultDataRoles = '${keyVaultSecretsUserRoleId}, ${keyVaultSecretsOfficerRoleId}, ${keyVaultReaderRoleId}'
var rbacNarrowingCondition = '((!(ActionMatches{\'Microsoft.Authorization/roleAssignments/write\'})) OR (@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {${keyVaultDataRoles}})) AND ((!(ActionMatches{\'Microsoft.Authorization/roleAssignments/delete\'})) OR (@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {${keyVaultDataRoles}}))'

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}vaultguard-${environmentName}'
  location: location
  tags: tags
}

// The app's only identity: storage, App Insights and every remediation call authenticate as it.
module identity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = {
  name: 'vaultguard-identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}vaultguard-${resourceToken}'
    location: location
    tags: tags
  }
}

module plan 'br/public:avm/res/web/serverfarm:0.1.1' = {
  name: 'vaultguard-plan'
  scope: rg
  params: {
    name: '${abbrs.webServerFarms}vaultguard-${resourceToken}'
    sku: {
      name: 'FC1'
      tier: 'FlexConsumption'
    }
    reserved: true
    location: location
    tags: tags
  }
}

module logAnalytics 'br/public:avm/res/operational-insights/workspace:0.7.0' = {
  name: 'vaultguard-logs'
  scope: rg
  params: {
    name: '${abbrs.operationalInsightsWorkspaces}vaultguard-${resourceToken}'
    location: location
    tags: tags
    dataRetention: logRetentionInDays
  }
}

module appInsights 'br/public:avm/res/insights/component:0.4.1' = {
  name: 'vaultguard-appinsights'
  scope: rg
  params: {
    name: '${abbrs.insightsComponents}vaultguard-${resourceToken}'
    location: location
    tags: tags
    workspaceResourceId: logAnalytics.outputs.resourceId
    disableLocalAuth: true
  }
}

module storage 'app/storage.bicep' = {
  name: 'vaultguard-storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentStorageContainerName
    queueName: queueName
    auditTableName: auditTableName
    runsTableName: runsTableName
  }
}

// Data-plane roles on the app's own storage and App Insights (identity-based connections).
module appRoles 'app/rbac.bicep' = {
  name: 'vaultguard-app-roles'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    appInsightsName: appInsights.outputs.name
  }
}

module api 'app/api.bicep' = {
  name: 'vaultguard-api'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: tags
    appServicePlanId: plan.outputs.resourceId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentStorageContainerName
    appInsightsName: appInsights.outputs.name
    identityId: identity.outputs.resourceId
    identityClientId: identity.outputs.clientId
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    dryRun: dryRun
    maxActionsPerRun: maxActionsPerRun
    sweepSchedule: sweepSchedule
    deepSweepSchedule: deepSweepSchedule
    sweepSubscriptionIds: empty(sweepSubscriptionIds) ? [
      subscription().subscriptionId
    ] : sweepSubscriptionIds
    policyFile: policyFile
    policyJson: policyJson
    queueName: queueName
    auditTableName: auditTableName
    runsTableName: runsTableName
    enableEntraAuth: enableEntraAuth
    entraAuthClientId: entraAuthClientId
    allowedCallerRoles: allowedCallerRoles
  }
  dependsOn: [
    appRoles
  ]
}

// Remediation roles, target scope = whole subscription.
resource subscriptionKeyVaultContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (wholeSubscription) {
  name: guid(subscription().id, resourceToken, keyVaultContributorRoleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultContributorRoleId)
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    description: 'vaultguard: change Key Vault access policies (remove list, narrow, drop orphans)'
  }
}

resource subscriptionRbacAdministrator 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (wholeSubscription) {
  name: guid(subscription().id, resourceToken, rbacAdministratorRoleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', rbacAdministratorRoleId)
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    condition: rbacNarrowingCondition
    conditionVersion: '2.0'
    description: 'vaultguard: narrow Key Vault Secrets User/Officer assignments to secret scope; no other role'
  }
}

// Secret metadata (never values) in RBAC-mode vaults, for the deep sweep; access-policy vaults ignore it.
resource subscriptionKeyVaultReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (wholeSubscription) {
  name: guid(subscription().id, resourceToken, keyVaultReaderRoleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultReaderRoleId)
    principalId: identity.outputs.principalId
    principalType: 'ServicePrincipal'
    description: 'vaultguard: list secret metadata (never values) in RBAC-mode vaults'
  }
}

// Remediation roles, target scope = each listed resource group.
module targetRoles 'app/target-roles.bicep' = [for groupName in targetResourceGroups: {
  name: 'vaultguard-target-roles-${uniqueString(groupName)}'
  scope: resourceGroup(groupName)
  params: {
    principalId: identity.outputs.principalId
    resourceToken: resourceToken
  }
}]

// Secret rotation: Key Vault Secrets Officer on each listed vault only.
module rotationRoles 'app/vault-roles.bicep' = [for vaultId in rotationVaultResourceIds: {
  name: 'vaultguard-rotate-${uniqueString(vaultId)}'
  scope: resourceGroup(split(vaultId, '/')[2], split(vaultId, '/')[4])
  params: {
    vaultName: last(split(vaultId, '/'))
    principalId: identity.outputs.principalId
  }
}]

// Key Vault events -> Event Grid system topic per vault -> the keyvault_events function (dead-letters to storage).
module vaultEvents 'app/events.bicep' = [for vaultId in eventVaultResourceIds: {
  name: 'vaultguard-events-${uniqueString(vaultId)}'
  scope: resourceGroup(split(vaultId, '/')[2], split(vaultId, '/')[4])
  params: {
    vaultName: last(split(vaultId, '/'))
    functionAppId: api.outputs.id
    identityId: identity.outputs.resourceId
    storageAccountId: storage.outputs.id
    deadLetterContainerName: storage.outputs.deadLetterContainerName
    tags: tags
  }
}]

// Activity-log alerts and Defender alerts -> action group -> /api/alerts (function key fetched at deployment).
module alerts 'app/alerts.bicep' = {
  name: 'vaultguard-alerts'
  scope: rg
  params: {
    resourceToken: resourceToken
    tags: tags
    functionAppName: api.outputs.name
    activityLogScopes: activityLogScopes
    enableDefenderAlerts: enableDefenderAlerts
  }
}

// Defender for Key Vault produces the Security alerts above; it is a per-subscription plan.
resource defenderForKeyVault 'Microsoft.Security/pricings@2024-01-01' = if (enableDefenderForKeyVault) {
  //checkov:skip=CKV_AZURE_19:False positive: checkov does not read the body of a Bicep `if (...)` resource; pricingTier is Standard (the same resource without the condition passes).
  //checkov:skip=CKV_AZURE_87:False positive: checkov does not read the body of a Bicep `if (...)` resource; this is the KeyVaults plan at Standard (the same resource without the condition passes).
  //checkov:skip=CKV_AZURE_84:False positive: this resource is the Key Vault plan, not the Storage plan, and checkov does not read the body of a Bicep `if (...)` resource; Defender for Storage is outside vaultguard's remit.
  name: 'KeyVaults'
  properties: {
    pricingTier: 'Standard'
    subPlan: 'PerTransaction'
  }
}

// azd reads these into the environment; none is a secret.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_SUBSCRIPTION_ID string = subscription().subscriptionId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = api.outputs.name
output AZURE_FUNCTION_URI string = api.outputs.uri
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_ACTION_GROUP_ID string = alerts.outputs.actionGroupId
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
output VAULTGUARD_ALERTS_ENDPOINT string = '${api.outputs.uri}/api/alerts'
output VAULTGUARD_REMEDIATIONS_ENDPOINT string = '${api.outputs.uri}/api/remediations'
output VAULTGUARD_HEALTH_ENDPOINT string = '${api.outputs.uri}/api/health'
