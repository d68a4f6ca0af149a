// Optional Entra ID (App Service Authentication / Easy Auth) in front of the HTTP functions, deployed when
// main.bicep's enableEntraAuth is true. Callers need a token for api://<clientId> *and* a function key.
// App Service then injects the caller (X-MS-CLIENT-PRINCIPAL*) and strips client-sent copies; the app
// records that principal as a ticket's requester (api.bicep sets VAULTGUARD_REQUIRE_AUTHENTICATED_CALLER).
// The alert webhook and the health probe are excluded: Azure Monitor action groups cannot obtain a token
// for our app registration, so /api/alerts relies on its function key alone.

@description('Name of the function app (in this resource group).')
param functionAppName string
@minLength(1)
@description('Client (application) id of the Entra app registration that fronts the API.')
param clientId string

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  //checkov:skip=CKV_AZURE_13:False positive: the check reads the legacy authsettings (v1) properties.enabled; this is authsettingsV2, enabled by platform.enabled true and azureActiveDirectory.enabled true below.
  //checkov:skip=CKV_AZURE_63:checkov applies Microsoft.Web/sites checks to this sites/config child; the site is checked in api.bicep. Flex Consumption has no HTTP log files; requests go to App Insights.
  //checkov:skip=CKV_AZURE_65:checkov applies Microsoft.Web/sites checks to this sites/config child; detailed error pages are an IIS feature, not on Linux Flex Consumption.
  //checkov:skip=CKV_AZURE_66:checkov applies Microsoft.Web/sites checks to this sites/config child; failed request tracing is an IIS feature, not on Linux Flex Consumption.
  //checkov:skip=CKV_AZURE_80:checkov applies Microsoft.Web/sites checks to this sites/config child; the app runs Python 3.11, no .NET Framework.
  //checkov:skip=CKV_AZURE_88:checkov applies Microsoft.Web/sites checks to this sites/config child; the app mounts no Azure Files share (storage is identity-based blob/queue/table).
  //checkov:skip=CKV_AZURE_222:checkov applies Microsoft.Web/sites checks to this sites/config child; public access is justified on the site in api.bicep.
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'Return401'
      // Reachable with the function key alone: the alert webhook (Azure Monitor sends no Entra token),
      // health, and the API description (public knowledge; without this a key-holder got 401 for it).
      excludedPaths: [
        '/api/alerts'
        '/api/health'
        '/api/openapi.json'
      ]
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: clientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: [
            'api://${clientId}'
          ]
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}
