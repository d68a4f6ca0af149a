// Remediation roles for the app's identity on one target resource group (targetScopeKind = resourceGroups).
// main.bicep grants the same three roles at subscription scope when targetScopeKind = subscription.

@description('Principal (object) id of the app\'s user-assigned identity.')
param principalId string
@description('Hash of the environment, so two vaultguard environments get distinct assignments.')
param resourceToken string

// Key Vault Contributor: change vault access policies (remove list, narrow, drop orphaned principals).
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

resource keyVaultContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, resourceToken, keyVaultContributorRoleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultContributorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vaultguard: change Key Vault access policies (remove list, narrow, drop orphans)'
  }
}

resource rbacAdministrator 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, resourceToken, rbacAdministratorRoleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', rbacAdministratorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
    condition: rbacNarrowingCondition
    conditionVersion: '2.0'
    description: 'vaultguard: narrow Key Vault Secrets User/Officer assignments to secret scope; no other role'
  }
}

// Secret metadata (names, attributes, tags; never a value) in RBAC-mode vaults: the deep sweep's secret lists.
// Access-policy vaults ignore it (docs/permissions.md says what they need).
resource keyVaultReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, resourceToken, keyVaultReaderRoleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultReaderRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vaultguard: list secret metadata (never values) in RBAC-mode vaults'
  }
}
