// Secret rotation: Key Vault Secrets Officer for the app's identity on one RBAC-mode vault.

@description('Name of the vault (in this resource group) whose secrets vaultguard may rotate.')
param vaultName string
@description('Principal (object) id of the app\'s user-assigned identity.')
param principalId string

// Key Vault Secrets Officer: set a new secret version, disable the old one, set expiry and tags.
var keyVaultSecretsOfficerRoleId = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource keyVaultSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsOfficerRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficerRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'vaultguard: rotate exposed secrets in this vault'
  }
}
