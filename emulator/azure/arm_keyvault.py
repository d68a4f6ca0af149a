"""ARM Microsoft.KeyVault/vaults: list (subscription, with `nextLink` paging and `$top`; resource
group), get, create/update (PUT), PATCH, delete, and `PUT .../accessPolicies/{add|replace|remove}`.

Access-policy semantics, as the real RP:
- entries match on tenantId + objectId + applicationId;
- `add` unions permissions into the entry (or appends it); `replace` sets the entry's permissions;
- `remove` takes away exactly the listed permissions and drops an entry left empty. Permissions
  are stored with the casing they were given (the portal writes `Get`, `List`) and `remove`
  compares case-sensitively, so removing `list` from a stored `List` answers 200 and changes
  nothing (azure-rest-api-specs #42963, terraform-provider-azurerm #10953);
- the response returns the vault's resulting policies; at most 1,024 entries per vault.

`enableRbacAuthorization` defaults to true for vaults created with api-version 2026-02-01 or later
(learn.microsoft.com/azure/key-vault/general/access-control-default), false before; an explicit
value in the request always wins.

A change of the access policies or of `enableRbacAuthorization` publishes
`Microsoft.KeyVault.VaultAccessPolicyChanged` to the Event Grid subscriptions (emulator/azure/eventgrid.py).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from emulator.azure.arm_resources import RG, SUB, _tags, _top, resource_group_or_404, subscription_or_404
from emulator.azure.common import ARM, AzureContext, arm_error, body_json, page, require_arm
from emulator.azure.state import AccessPolicy, Vault
from emulator.wire import Request, Response

VAULTS = RG + r"/providers/Microsoft\.KeyVault/vaults"
VAULT = VAULTS + r"/(?P<vault>[^/]+)"
MAX_ACCESS_POLICIES = 1024
RBAC_DEFAULT_API_VERSION = "2026-02-01"

PERMISSIONS: dict[str, frozenset[str]] = {
    "keys": frozenset(
        {
            "all",
            "encrypt",
            "decrypt",
            "wrapkey",
            "unwrapkey",
            "sign",
            "verify",
            "get",
            "list",
            "create",
            "update",
            "import",
            "delete",
            "backup",
            "restore",
            "recover",
            "purge",
            "release",
            "rotate",
            "getrotationpolicy",
            "setrotationpolicy",
        }
    ),
    "secrets": frozenset({"all", "get", "list", "set", "delete", "backup", "restore", "recover", "purge"}),
    "certificates": frozenset(
        {
            "all",
            "get",
            "list",
            "delete",
            "create",
            "import",
            "update",
            "managecontacts",
            "getissuers",
            "listissuers",
            "setissuers",
            "deleteissuers",
            "manageissuers",
            "recover",
            "purge",
            "backup",
            "restore",
        }
    ),
    "storage": frozenset(
        {
            "all",
            "get",
            "list",
            "delete",
            "set",
            "update",
            "regeneratekey",
            "recover",
            "purge",
            "backup",
            "restore",
            "setsas",
            "listsas",
            "getsas",
            "deletesas",
        }
    ),
}
_VAULT_NAME = re.compile(r"^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$")


def _is_guid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def parse_access_policies(raw: Any, target: str) -> list[AccessPolicy]:
    """Validates entries like ARM does: 400 `BadRequest` with one detail per invalid field."""
    if not isinstance(raw, list):
        raise arm_error(400, "BadRequest", f"The value of '{target}' must be an array.")
    details: list[dict[str, Any]] = []
    policies: list[AccessPolicy] = []

    def bad(path: str, message: str) -> None:
        details.append({"code": "InvalidParameter", "target": path, "message": message})

    for index, entry in enumerate(raw):
        path = f"{target}[{index}]"
        if not isinstance(entry, dict):
            bad(path, "An access policy entry must be an object.")
            continue
        for name in ("tenantId", "objectId"):
            if not _is_guid(entry.get(name)):
                bad(f"{path}.{name}", f"The value '{entry.get(name)}' of '{name}' is not a valid GUID.")
        application_id = entry.get("applicationId")
        if application_id is not None and not _is_guid(application_id):
            bad(
                f"{path}.applicationId",
                f"The value '{application_id}' of 'applicationId' is not a valid GUID.",
            )
        permissions = entry.get("permissions")
        if not isinstance(permissions, dict):
            bad(f"{path}.permissions", "The 'permissions' property is required.")
            continue
        parsed: dict[str, list[str]] = {}
        for category, values in permissions.items():
            if category not in PERMISSIONS:
                bad(f"{path}.permissions.{category}", f"'{category}' is not a permission category.")
                continue
            if values is None:
                continue
            if not isinstance(values, list):
                bad(f"{path}.permissions.{category}", "Permissions must be an array of strings.")
                continue
            kept: list[str] = []
            for position, value in enumerate(values):
                if not isinstance(value, str) or value.lower() not in PERMISSIONS[category]:
                    bad(
                        f"{path}.permissions.{category}[{position}]",
                        f"The permission '{value}' is not valid for '{category}'. Valid values are: "
                        f"{', '.join(sorted(PERMISSIONS[category]))}.",
                    )
                elif value not in kept:
                    kept.append(value)
            parsed[category] = kept
        policies.append(
            AccessPolicy(
                str(entry.get("tenantId")),
                str(entry.get("objectId")),
                str(application_id) if application_id else None,
                parsed,
            )
        )
    if details:
        raise arm_error(400, "BadRequest", "One or more access policy entries are invalid.", details)
    return policies


def access_model(vault: Vault) -> tuple[bool, str]:
    """What `VaultAccessPolicyChanged` reports a change of: the policies and the permission model."""
    policies = json.dumps([p.to_arm() for p in vault.access_policies], sort_keys=True)
    return vault.enable_rbac_authorization, policies


def apply_policy_update(vault: Vault, kind: str, changes: list[AccessPolicy]) -> None:
    policies = [
        AccessPolicy(
            p.tenant_id, p.object_id, p.application_id, {k: list(v) for k, v in p.permissions.items()}
        )
        for p in vault.access_policies
    ]
    by_key = {p.key(): p for p in policies}
    for change in changes:
        current = by_key.get(change.key())
        if kind == "add":
            if current is None:
                policies.append(change)
                by_key[change.key()] = change
                continue
            for category, values in change.permissions.items():
                stored = current.permissions.setdefault(category, [])
                stored.extend(v for v in values if v not in stored)
        elif kind == "replace":
            if current is None:
                policies.append(change)
                by_key[change.key()] = change
            else:
                current.permissions = {k: list(v) for k, v in change.permissions.items()}
        else:  # remove: exactly the listed permissions, compared case-sensitively
            if current is None:
                continue
            for category, values in change.permissions.items():
                if category in current.permissions:
                    current.permissions[category] = [
                        v for v in current.permissions[category] if v not in values
                    ]
            if not any(current.permissions.values()):
                policies.remove(current)
                del by_key[current.key()]
    if len(policies) > MAX_ACCESS_POLICIES:
        raise arm_error(
            400,
            "AccessPolicyLimitExceeded",
            f"The number of access policies ({len(policies)}) exceeds the maximum of "
            f"{MAX_ACCESS_POLICIES} per vault.",
        )
    vault.access_policies = policies


def vault_scope(subscription_id: str, resource_group: str, name: str) -> str:
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
        f"/providers/Microsoft.KeyVault/vaults/{name}"
    )


def vault_or_404(ctx: AzureContext, request: Request) -> Vault:
    sub, rg, name = request.params["sub"], request.params["rg"], request.params["vault"]
    resource_group_or_404(ctx, sub, rg)
    vault = ctx.state.vaults.get(name.lower())
    if (
        vault is None
        or vault.subscription_id.lower() != sub.lower()
        or vault.resource_group.lower() != rg.lower()
    ):
        raise arm_error(
            404,
            "ResourceNotFound",
            f"The Resource 'Microsoft.KeyVault/vaults/{name}' under resource group '{rg}' was not "
            "found. For more details please go to https://aka.ms/ARMResourceNotFoundFix",
        )
    return vault


def _apply_properties(vault: Vault, props: dict[str, Any], patch: bool) -> None:
    if "sku" in props and isinstance(props["sku"], dict):
        vault.sku = {
            "family": str(props["sku"].get("family", "A")),
            "name": str(props["sku"].get("name", "standard")),
        }
    if "tenantId" in props:
        vault.tenant_id = str(props["tenantId"])
    if props.get("accessPolicies") is not None:
        policies = parse_access_policies(props["accessPolicies"], "properties.accessPolicies")
        if len(policies) > MAX_ACCESS_POLICIES:
            raise arm_error(
                400,
                "AccessPolicyLimitExceeded",
                f"The number of access policies ({len(policies)}) exceeds the maximum of "
                f"{MAX_ACCESS_POLICIES} per vault.",
            )
        vault.access_policies = policies
    if props.get("enableRbacAuthorization") is not None:
        vault.enable_rbac_authorization = bool(props["enableRbacAuthorization"])
    if props.get("enableSoftDelete") is not None:
        if vault.enable_soft_delete and not props["enableSoftDelete"] and patch:
            raise arm_error(
                400,
                "BadRequest",
                'The property "enableSoftDelete" cannot be set to false. '
                "Enabling the 'soft delete' functionality is an irreversible action.",
            )
        vault.enable_soft_delete = bool(props["enableSoftDelete"])
    if props.get("softDeleteRetentionInDays") is not None:
        days = props["softDeleteRetentionInDays"]
        if not isinstance(days, int) or not 7 <= days <= 90:
            raise arm_error(
                400, "BadRequest", 'The property "softDeleteRetentionInDays" must be between 7 and 90.'
            )
        vault.soft_delete_retention_in_days = days
    if props.get("enablePurgeProtection") is not None:
        vault.enable_purge_protection = bool(props["enablePurgeProtection"])
    if props.get("publicNetworkAccess") is not None:
        vault.public_network_access = str(props["publicNetworkAccess"])
    for key in (
        "enabledForDeployment",
        "enabledForDiskEncryption",
        "enabledForTemplateDeployment",
        "networkAcls",
    ):
        if props.get(key) is not None:
            vault.extra_properties[key] = props[key]


def register(ctx: AzureContext) -> None:
    route = ctx.route

    @route(ARM, "GET", SUB + r"/providers/Microsoft\.KeyVault/vaults")
    def list_vaults_by_subscription(request: Request) -> Response:
        sub = subscription_or_404(ctx, request.params["sub"])
        require_arm(ctx, request, "Microsoft.KeyVault/vaults/read", f"/subscriptions/{sub.id}")
        vaults = [v for v in ctx.state.vaults.values() if v.subscription_id.lower() == sub.id.lower()]
        return _list(request, vaults)

    @route(ARM, "GET", VAULTS)
    def list_vaults_by_resource_group(request: Request) -> Response:
        group = resource_group_or_404(ctx, request.params["sub"], request.params["rg"])
        require_arm(ctx, request, "Microsoft.KeyVault/vaults/read", group.arm_id)
        vaults = [
            v
            for v in ctx.state.vaults.values()
            if v.subscription_id.lower() == group.subscription_id.lower()
            and v.resource_group.lower() == group.name.lower()
        ]
        return _list(request, vaults)

    def _list(request: Request, vaults: list[Vault]) -> Response:
        chunk, next_link = page(request, vaults, _top(request, ctx.limits.arm_page_size))
        payload: dict[str, Any] = {"value": [v.to_arm() for v in chunk]}
        if next_link:
            payload["nextLink"] = next_link
        return Response.json(200, payload)

    @route(ARM, "GET", VAULT)
    def get_vault(request: Request) -> Response:
        p = request.params
        require_arm(
            ctx, request, "Microsoft.KeyVault/vaults/read", vault_scope(p["sub"], p["rg"], p["vault"])
        )
        return Response.json(200, vault_or_404(ctx, request).to_arm())

    @route(ARM, "PUT", VAULT)
    def create_or_update_vault(request: Request) -> Response:
        p = request.params
        name = p["vault"]
        require_arm(ctx, request, "Microsoft.KeyVault/vaults/write", vault_scope(p["sub"], p["rg"], name))
        group = resource_group_or_404(ctx, p["sub"], p["rg"])
        body = body_json(request)
        if not _VAULT_NAME.match(name):
            raise arm_error(
                400,
                "VaultNameNotValid",
                f"The vault name '{name}' is invalid. A vault's name must be between 3-24 "
                "alphanumeric characters. The name must begin with a letter, end with a letter or "
                "digit, and not contain consecutive hyphens.",
            )
        props = body.get("properties")
        location = body.get("location")
        details = []
        if not isinstance(location, str) or not location:
            details.append(
                {"code": "InvalidParameter", "target": "location", "message": "'location' is required."}
            )
        if not isinstance(props, dict):
            raise arm_error(
                400,
                "BadRequest",
                "The 'properties' property is required.",
                [
                    *details,
                    {
                        "code": "InvalidParameter",
                        "target": "properties",
                        "message": "'properties' is required.",
                    },
                ],
            )
        for name_required in ("tenantId", "sku"):
            if props.get(name_required) is None:
                details.append(
                    {
                        "code": "InvalidParameter",
                        "target": f"properties.{name_required}",
                        "message": f"'properties.{name_required}' is required.",
                    }
                )
        if details:
            raise arm_error(400, "BadRequest", "The request is invalid.", details)
        state = ctx.state
        existing = state.vaults.get(name.lower())
        if existing is not None and (
            existing.subscription_id.lower() != group.subscription_id.lower()
            or existing.resource_group.lower() != group.name.lower()
        ):
            raise arm_error(
                409,
                "VaultAlreadyExists",
                f"The vault name '{name}' is already in use. Vault names are globally unique so it "
                "is possible that the name is already taken.",
            )
        created = existing is None
        before = None if existing is None else access_model(existing)
        vault = existing or Vault(
            name, group.subscription_id, group.name, str(props["tenantId"]), location=str(location)
        )
        if created:
            api_version = request.query.get("api-version", "")
            vault.enable_rbac_authorization = api_version >= RBAC_DEFAULT_API_VERSION
        _apply_properties(vault, props, patch=False)
        tags = _tags(body)
        if tags is not None or created:
            vault.tags = tags or {}
        state.vaults[name.lower()] = vault
        if before is not None and access_model(vault) != before:
            ctx.emulator.event_grid.publish_access_policy_changed(vault)
        return Response.json(201 if created else 200, vault.to_arm())

    @route(ARM, "PATCH", VAULT)
    def update_vault(request: Request) -> Response:
        p = request.params
        require_arm(
            ctx, request, "Microsoft.KeyVault/vaults/write", vault_scope(p["sub"], p["rg"], p["vault"])
        )
        vault = vault_or_404(ctx, request)
        body = body_json(request)
        props = body.get("properties") or {}
        if not isinstance(props, dict):
            raise arm_error(400, "BadRequest", "'properties' must be an object.")
        before = access_model(vault)
        _apply_properties(vault, props, patch=True)
        tags = _tags(body)
        if tags is not None:
            vault.tags = tags
        if access_model(vault) != before:
            ctx.emulator.event_grid.publish_access_policy_changed(vault)
        return Response.json(200, vault.to_arm())

    @route(ARM, "DELETE", VAULT)
    def delete_vault(request: Request) -> Response:
        p = request.params
        require_arm(
            ctx, request, "Microsoft.KeyVault/vaults/delete", vault_scope(p["sub"], p["rg"], p["vault"])
        )
        resource_group_or_404(ctx, p["sub"], p["rg"])
        vault = ctx.state.vaults.get(p["vault"].lower())
        if vault is None or vault.resource_group.lower() != p["rg"].lower():
            return Response.empty(204)
        del ctx.state.vaults[p["vault"].lower()]
        return Response.empty(200)

    @route(ARM, "PUT", VAULT + r"/accessPolicies/(?P<kind>[^/]+)")
    def update_access_policy(request: Request) -> Response:
        p = request.params
        kind = p["kind"].lower()
        require_arm(
            ctx,
            request,
            "Microsoft.KeyVault/vaults/accessPolicies/write",
            vault_scope(p["sub"], p["rg"], p["vault"]),
        )
        vault = vault_or_404(ctx, request)
        if kind not in {"add", "replace", "remove"}:
            raise arm_error(
                400,
                "BadRequest",
                f"The operation kind '{p['kind']}' is invalid. Valid values are "
                "'add', 'replace' and 'remove'.",
            )
        body = body_json(request)
        props = body.get("properties")
        if not isinstance(props, dict) or "accessPolicies" not in props:
            raise arm_error(
                400,
                "BadRequest",
                "The 'properties.accessPolicies' property is required.",
                [
                    {
                        "code": "InvalidParameter",
                        "target": "properties.accessPolicies",
                        "message": "'properties.accessPolicies' is required.",
                    }
                ],
            )
        changes = parse_access_policies(props["accessPolicies"], "properties.accessPolicies")
        before = access_model(vault)
        apply_policy_update(vault, kind, changes)
        if access_model(vault) != before:
            ctx.emulator.event_grid.publish_access_policy_changed(vault)
        # The response echoes the request's entries, not the vault's resulting policies: every
        # `updateAccessPolicies*.json` example in azure-rest-api-specs (Vaults_UpdateAccessPolicy) does.
        return Response.json(
            200,
            {
                "type": "Microsoft.KeyVault/vaults/accessPolicies",
                "id": f"{vault.arm_id}/accessPolicies/",
                "properties": {"accessPolicies": [a.to_arm() for a in changes]},
            },
        )
