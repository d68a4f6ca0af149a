"""ARM basics: subscriptions (list/get), resource groups (create/get/list/delete) and the generic
resource list `GET /subscriptions/{s}/resources?$filter=resourceType eq '...'` that
`KeyVaultManagementClient.vaults.list()` uses."""

from __future__ import annotations

import re
from typing import Any

from emulator.azure.common import ARM, AzureContext, arm_error, body_json, page, require_arm
from emulator.azure.state import ResourceGroup, Subscription
from emulator.wire import Request, Response

SUB = r"/subscriptions/(?P<sub>[^/]+)"
RG = SUB + r"/resourcegroups/(?P<rg>[^/]+)"
_RG_NAME = re.compile(r"^[-\w._()]{1,90}$")
_RESOURCE_TYPE_FILTER = re.compile(r"resourceType\s+eq\s+'([^']+)'", re.IGNORECASE)


def subscription_or_404(ctx: AzureContext, subscription_id: str) -> Subscription:
    sub = ctx.state.subscriptions.get(subscription_id.lower())
    if sub is None:
        raise arm_error(
            404, "SubscriptionNotFound", f"The subscription '{subscription_id}' could not be found."
        )
    return sub


def resource_group_or_404(ctx: AzureContext, subscription_id: str, name: str) -> ResourceGroup:
    subscription_or_404(ctx, subscription_id)
    group = ctx.state.resource_group(subscription_id, name)
    if group is None:
        raise arm_error(404, "ResourceGroupNotFound", f"Resource group '{name}' could not be found.")
    return group


def register(ctx: AzureContext) -> None:
    route = ctx.route

    @route(ARM, "GET", r"/subscriptions")
    def list_subscriptions(request: Request) -> Response:
        oid = str((request.caller or {}).get("oid", ""))
        # Like ARM: the subscriptions in which the caller holds some role assignment.
        visible = [
            s.to_arm()
            for s in ctx.state.subscriptions.values()
            if any(
                a.scope.lower().startswith(f"/subscriptions/{s.id.lower()}")
                for a in ctx.state.assignments_for(oid)
            )
        ]
        return Response.json(200, {"value": visible, "count": {"type": "Total", "value": len(visible)}})

    @route(ARM, "GET", SUB)
    def get_subscription(request: Request) -> Response:
        sub = subscription_or_404(ctx, request.params["sub"])
        oid = str((request.caller or {}).get("oid", ""))
        if not any(
            a.scope.lower().startswith(f"/subscriptions/{sub.id.lower()}")
            for a in ctx.state.assignments_for(oid)
        ):
            raise arm_error(404, "SubscriptionNotFound", f"The subscription '{sub.id}' could not be found.")
        return Response.json(200, sub.to_arm())

    @route(ARM, "GET", SUB + r"/resourcegroups")
    def list_resource_groups(request: Request) -> Response:
        sub = subscription_or_404(ctx, request.params["sub"])
        require_arm(
            ctx, request, "Microsoft.Resources/subscriptions/resourceGroups/read", f"/subscriptions/{sub.id}"
        )
        groups = [
            g.to_arm() for (s, _), g in sorted(ctx.state.resource_groups.items()) if s == sub.id.lower()
        ]
        return Response.json(200, {"value": groups})

    @route(ARM, "GET", RG)
    def get_resource_group(request: Request) -> Response:
        sub = subscription_or_404(ctx, request.params["sub"])
        scope = f"/subscriptions/{sub.id}/resourceGroups/{request.params['rg']}"
        require_arm(ctx, request, "Microsoft.Resources/subscriptions/resourceGroups/read", scope)
        return Response.json(200, resource_group_or_404(ctx, sub.id, request.params["rg"]).to_arm())

    @route(ARM, "PUT", RG)
    def create_resource_group(request: Request) -> Response:
        sub = subscription_or_404(ctx, request.params["sub"])
        name = request.params["rg"]
        scope = f"/subscriptions/{sub.id}/resourceGroups/{name}"
        require_arm(ctx, request, "Microsoft.Resources/subscriptions/resourceGroups/write", scope)
        body = body_json(request)
        if not _RG_NAME.match(name) or name.endswith("."):
            raise arm_error(
                400,
                "InvalidResourceGroup",
                f"The provided resource group name '{name}' has these "
                "invalid characters: '...'. The name can only be a letter, digit, '-', '.', '(', "
                "')' or '_'.",
            )
        location = body.get("location")
        if not isinstance(location, str) or not location:
            raise arm_error(400, "LocationRequired", "The location property is required for this definition.")
        existing = ctx.state.resource_group(sub.id, name)
        tags = _tags(body)
        if existing is not None:
            existing.tags = tags if tags is not None else existing.tags
            return Response.json(200, existing.to_arm())
        group = ResourceGroup(sub.id, name, location, tags or {})
        ctx.state.resource_groups[(sub.id.lower(), name.lower())] = group
        return Response.json(201, group.to_arm())

    @route(ARM, "DELETE", RG)
    def delete_resource_group(request: Request) -> Response:
        sub = subscription_or_404(ctx, request.params["sub"])
        name = request.params["rg"]
        require_arm(
            ctx,
            request,
            "Microsoft.Resources/subscriptions/resourceGroups/delete",
            f"/subscriptions/{sub.id}/resourceGroups/{name}",
        )
        group = resource_group_or_404(ctx, sub.id, name)
        state = ctx.state
        for vault_name, vault in list(state.vaults.items()):
            if (
                vault.subscription_id.lower() == sub.id.lower()
                and vault.resource_group.lower() == name.lower()
            ):
                del state.vaults[vault_name]
        for account_name, account in list(state.storage_accounts.items()):
            if (
                account.subscription_id.lower() == sub.id.lower()
                and account.resource_group.lower() == name.lower()
            ):
                del state.storage_accounts[account_name]
        del state.resource_groups[(sub.id.lower(), group.name.lower())]
        return Response.empty(200)

    @route(ARM, "GET", SUB + r"/resources")
    def list_resources(request: Request) -> Response:
        sub = subscription_or_404(ctx, request.params["sub"])
        require_arm(
            ctx, request, "Microsoft.Resources/subscriptions/resources/read", f"/subscriptions/{sub.id}"
        )
        match = _RESOURCE_TYPE_FILTER.search(request.query.get("$filter", ""))
        wanted = match.group(1).lower() if match else None
        items: list[dict[str, Any]] = []
        if wanted in {None, "microsoft.keyvault/vaults"}:
            items += [
                _generic(v.to_arm())
                for v in ctx.state.vaults.values()
                if v.subscription_id.lower() == sub.id.lower()
            ]
        if wanted in {None, "microsoft.storage/storageaccounts"}:
            items += [
                _generic(a.to_arm())
                for a in ctx.state.storage_accounts.values()
                if a.subscription_id.lower() == sub.id.lower()
            ]
        size = _top(request, ctx.limits.arm_page_size)
        chunk, next_link = page(request, items, size)
        payload: dict[str, Any] = {"value": chunk}
        if next_link:
            payload["nextLink"] = next_link
        return Response.json(200, payload)


def _generic(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: resource[k] for k in ("id", "name", "type", "location", "tags") if k in resource}


def _tags(body: dict[str, Any]) -> dict[str, str] | None:
    tags = body.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise arm_error(400, "InvalidTag", "The tags must be an object of string values.")
    return dict(tags)


def _top(request: Request, default: int) -> int:
    """`$top` as the page size (the real page size of these lists is not documented)."""
    raw = request.query.get("$top")
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise arm_error(400, "InvalidParameter", f"The value '{raw}' of '$top' is invalid.") from None
    if value < 1:
        raise arm_error(400, "InvalidParameter", f"The value '{raw}' of '$top' is invalid.")
    return value
