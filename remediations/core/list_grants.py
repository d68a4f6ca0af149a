"""What lets the app's identity list a vault's secret metadata (names, attributes, tags; never a value),
said where a refused list is reported (run notes, the report's inventory errors and its unknown read
paths), so an operator knows exactly what to grant and why (docs/permissions.md, "Manual grants").

RBAC-mode vaults: Key Vault Reader, which infra/ assigns at the target scope, so a refusal means the vault
is outside that scope or the assignment has not propagated yet. Access-policy vaults ignore Azure RBAC data
roles: they need an access policy entry with secret `list`, which the app never writes for itself (a
self-granted access policy is the edge it cuts for everyone else), so an admin adds it by hand, together
with a policy rule that keeps it.
"""

from __future__ import annotations

from remediations.core.model import Vault

UNKNOWN_PRINCIPAL = "<the app's principal id>"


def secret_list_grant(vault: Vault, app_object_id: str | None) -> str:
    """The grant that would let the app's identity (`app_object_id`, when known) list `vault`'s secrets."""
    if vault.enable_rbac_authorization:
        return (
            f"Key Vault Reader for the app's identity on {vault.name}, its resource group or subscription "
            "(infra/ assigns it at the target resource groups or subscription: this vault is outside them, "
            "or the assignment has not propagated yet)"
        )
    principal = app_object_id or UNKNOWN_PRINCIPAL
    return (
        f"an access policy entry with secret permission list only, never get: `az keyvault set-policy "
        f"--name {vault.name} --object-id {principal} --secret-permissions list`, and {principal} in the "
        'policy\'s secretPermissions.byIdentity as ["list"] so the app keeps it (access-policy vaults '
        "ignore Key Vault Reader, and the app never grants itself data access); or migrate the vault to "
        "Azure RBAC (migrate_to_rbac)"
    )
