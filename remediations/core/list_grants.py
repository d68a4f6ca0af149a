"""What lets the app's identity list a vault's secret metadata (names, attributes, tags; never a value),
said where a refused list is reported (run notes, the report's inventory errors and its unknown read
paths), so an operator knows exactly what to grant and why (docs/permissions.md, "Manual grants").

RBAC-mode vaults: Key Vault Reader, which infra/ assigns at the target scope, so a refusal means the vault
is outside that scope or the assignment has not propagated yet. Access-policy vaults ignore Azure RBAC data
roles: they need an access policy entry with secret `list`, which the app never writes for itself (a
self-granted access policy is the edge it cuts for everyone else), so an admin adds it by hand, together
with a policy rule that keeps it (the detectors leave a `list`-only entry of the app's own identity alone:
`is_own_list_entry`).

A refusal by the vault's network rules (Key Vault's 403 innererror `ForbiddenByFirewall`: the caller's
address is not in the firewall's rules; `ForbiddenByConnection`: public network access is disabled and
the call did not come through an approved private link) comes before any authorization, so no role or
access policy helps: the remedy names network access instead.
"""

from __future__ import annotations

from remediations.core.model import AccessPolicy, Vault, expand_secret_permissions

UNKNOWN_PRINCIPAL = "<the app's principal id>"

# Key Vault's inner error codes of a 403 refused by the vault's network rules, not by authorization.
FORBIDDEN_BY_FIREWALL = "ForbiddenByFirewall"
FORBIDDEN_BY_CONNECTION = "ForbiddenByConnection"
NETWORK_REFUSALS = frozenset({FORBIDDEN_BY_FIREWALL, FORBIDDEN_BY_CONNECTION})


def secret_list_remedy(vault: Vault, app_object_id: str | None, refusal: str | None) -> str:
    """What would let the app list `vault`'s secrets after a 403 whose inner error code is `refusal`:
    network access for a firewall or private-link refusal, else the grant it lacks."""
    if refusal == FORBIDDEN_BY_FIREWALL:
        return (
            f"allow the app's network access to {vault.name}: its firewall refused the app's address "
            "(innererror ForbiddenByFirewall); add the function app's outbound IP addresses to the vault's "
            "networkAcls.ipRules, or reach it through a private endpoint in a virtual network the app is "
            "integrated with (no role or access policy helps: the refusal comes before authorization)"
        )
    if refusal == FORBIDDEN_BY_CONNECTION:
        return (
            f"allow the app's network access to {vault.name}: public network access is disabled and the "
            "call did not come through an approved private link (innererror ForbiddenByConnection); reach "
            "it through a private endpoint in a virtual network the app is integrated with (no role or "
            "access policy helps: the refusal comes before authorization)"
        )
    return secret_list_grant(vault, app_object_id)


def is_own_list_entry(entry: AccessPolicy, app_object_id: str | None) -> bool:
    """The app's own identity holding secret `list` and nothing else in an access policy: the grant
    `secret_list_grant` asks for, which the deep sweep needs. No flow connection runs as the app's
    managed identity, so it opens no person -> flow -> secret path; any other permission is judged."""
    return (
        app_object_id is not None
        and entry.object_id.lower() == app_object_id.lower()
        and entry.application_id is None
        and expand_secret_permissions(entry.permissions.secrets) == {"list"}
    )


def secret_list_grant(vault: Vault, app_object_id: str | None) -> str:
    """`grant ...`: what would let the app's identity (`app_object_id`, when known) list `vault`'s secrets."""
    if vault.enable_rbac_authorization:
        return (
            f"grant Key Vault Reader for the app's identity on {vault.name}, its resource group or "
            "subscription (infra/ assigns it at the target resource groups or subscription: this vault is "
            "outside them, or the assignment has not propagated yet)"
        )
    principal = app_object_id or UNKNOWN_PRINCIPAL
    return (
        f"grant an access policy entry with secret permission list only, never get: `az keyvault set-policy "
        f"--name {vault.name} --object-id {principal} --secret-permissions list` (the app leaves a "
        "list-only entry of its own identity in place; access-policy vaults ignore Key Vault Reader, "
        "and the app never grants itself data access); or migrate the vault to Azure RBAC (migrate_to_rbac)"
    )
