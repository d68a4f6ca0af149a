"""Built-in Azure role definitions (the ones Key Vault scenarios need, with their real actions and
dataActions) and Azure RBAC evaluation: wildcard action matching, scope inheritance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c4a72d9d"
KEY_VAULT_CONTRIBUTOR = "f25e0fa2-a7c8-4377-a976-54943a77a395"
KEY_VAULT_ADMINISTRATOR = "00482a5a-887f-4fb3-b363-3b7fe8e74483"
KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
KEY_VAULT_READER = "21090545-7ca7-4776-b22c-e363652d74d2"


@dataclass(frozen=True)
class RoleDefinition:
    id: str
    role_name: str
    description: str
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()
    role_type: str = "BuiltInRole"
    assignable_scopes: tuple[str, ...] = field(default=("/",))

    def to_arm(self, scope: str) -> dict[str, Any]:
        prefix = "" if scope in {"", "/"} else scope.rstrip("/")
        return {
            "id": f"{prefix}/providers/Microsoft.Authorization/roleDefinitions/{self.id}",
            "name": self.id,
            "type": "Microsoft.Authorization/roleDefinitions",
            "properties": {
                "roleName": self.role_name,
                "type": self.role_type,
                "description": self.description,
                "assignableScopes": list(self.assignable_scopes),
                "permissions": [
                    {
                        "actions": list(self.actions),
                        "notActions": list(self.not_actions),
                        "dataActions": list(self.data_actions),
                        "notDataActions": list(self.not_data_actions),
                    }
                ],
                "createdOn": "2015-02-02T21:55:09.8806423Z",
                "updatedOn": "2021-11-11T20:13:47.8628684Z",
                "createdBy": None,
                "updatedBy": None,
            },
        }

    def allows(self, action: str, data: bool) -> bool:
        allowed, denied = (
            (self.data_actions, self.not_data_actions) if data else (self.actions, self.not_actions)
        )
        return any(action_matches(p, action) for p in allowed) and not any(
            action_matches(p, action) for p in denied
        )


_KV_READ_ACTIONS = (
    "Microsoft.Authorization/*/read",
    "Microsoft.Insights/alertRules/*",
    "Microsoft.Resources/deployments/*",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Support/*",
    "Microsoft.KeyVault/checkNameAvailability/read",
    "Microsoft.KeyVault/deletedVaults/read",
    "Microsoft.KeyVault/locations/*/read",
    "Microsoft.KeyVault/vaults/*/read",
    "Microsoft.KeyVault/operations/read",
)

BUILT_IN: tuple[RoleDefinition, ...] = (
    RoleDefinition(
        OWNER,
        "Owner",
        "Grants full access to manage all resources, including the ability to assign roles in Azure RBAC.",
        actions=("*",),
    ),
    RoleDefinition(
        CONTRIBUTOR,
        "Contributor",
        "Grants full access to manage all resources, but does not "
        "allow you to assign roles in Azure RBAC, manage assignments in Azure Blueprints, or share "
        "image galleries.",
        actions=("*",),
        not_actions=(
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
            "Microsoft.Blueprint/blueprintAssignments/write",
            "Microsoft.Blueprint/blueprintAssignments/delete",
            "Microsoft.Compute/galleries/share/action",
            "Microsoft.Purview/consents/write",
            "Microsoft.Purview/consents/delete",
            "Microsoft.Resources/deploymentStacks/manageDenySetting/action",
            "Microsoft.Subscription/cancel/action",
            "Microsoft.Subscription/enable/action",
        ),
    ),
    RoleDefinition(
        READER,
        "Reader",
        "View all resources, but does not allow you to make any changes.",
        actions=("*/read",),
    ),
    RoleDefinition(
        USER_ACCESS_ADMINISTRATOR,
        "User Access Administrator",
        "Lets you manage user access to Azure resources.",
        actions=("*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"),
    ),
    RoleDefinition(
        KEY_VAULT_CONTRIBUTOR,
        "Key Vault Contributor",
        "Lets you manage key vaults, but not access to them.",
        actions=(
            "Microsoft.Authorization/*/read",
            "Microsoft.Insights/alertRules/*",
            "Microsoft.KeyVault/*",
            "Microsoft.Resources/deployments/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
            "Microsoft.Support/*",
        ),
        not_actions=(
            "Microsoft.KeyVault/locations/deletedVaults/purge/action",
            "Microsoft.KeyVault/hsmPools/*",
            "Microsoft.KeyVault/managedHsms/*",
        ),
    ),
    RoleDefinition(
        KEY_VAULT_ADMINISTRATOR,
        "Key Vault Administrator",
        "Perform all data plane operations on a key vault and all objects in it, including "
        "certificates, keys, and secrets. Cannot manage key vault resources or manage role "
        "assignments. Only works for key vaults that use the 'Azure role-based access control' "
        "permission model.",
        actions=_KV_READ_ACTIONS,
        data_actions=("Microsoft.KeyVault/vaults/*",),
    ),
    RoleDefinition(
        KEY_VAULT_SECRETS_OFFICER,
        "Key Vault Secrets Officer",
        "Perform any action on the secrets of a key vault, except manage permissions. Only works "
        "for key vaults that use the 'Azure role-based access control' permission model.",
        actions=_KV_READ_ACTIONS,
        data_actions=("Microsoft.KeyVault/vaults/secrets/*",),
    ),
    RoleDefinition(
        KEY_VAULT_SECRETS_USER,
        "Key Vault Secrets User",
        "Read secret contents. Only works for key vaults that use the 'Azure role-based access "
        "control' permission model.",
        data_actions=(
            "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        ),
    ),
    RoleDefinition(
        KEY_VAULT_READER,
        "Key Vault Reader",
        "Read metadata of key vaults and its certificates, keys, and secrets. Cannot read "
        "sensitive values such as secret contents or key material. Only works for key vaults "
        "that use the 'Azure role-based access control' permission model.",
        actions=_KV_READ_ACTIONS,
        data_actions=(
            "Microsoft.KeyVault/vaults/*/read",
            "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
        ),
    ),
)

BY_NAME = {d.role_name.lower(): d for d in BUILT_IN}


def action_matches(pattern: str, action: str) -> bool:
    """Azure's action wildcards: `*` matches any run of characters, comparison ignores case."""
    pattern, action = pattern.lower(), action.lower()
    if "*" not in pattern:
        return pattern == action
    parts = pattern.split("*")
    if not action.startswith(parts[0]) or not action.endswith(parts[-1]):
        return False
    position = len(parts[0])
    end = len(action) - len(parts[-1])
    for part in parts[1:-1]:
        found = action.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return position <= end


def scope_covers(assignment_scope: str, target: str) -> bool:
    """An assignment at a scope applies at that scope and everything below it."""
    scope = assignment_scope.rstrip("/").lower()
    target = target.rstrip("/").lower()
    return scope in {"", "/"} or target == scope or target.startswith(scope + "/")
