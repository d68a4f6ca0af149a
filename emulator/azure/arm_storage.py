"""ARM Microsoft.Storage/storageAccounts: list (subscription, resource group), get, create (PUT,
answered synchronously), `listKeys` and `regenerateKey` (for the storage-key rotator)."""

from __future__ import annotations

import re

from emulator.azure.arm_resources import RG, SUB, _tags, resource_group_or_404, subscription_or_404
from emulator.azure.common import ARM, AzureContext, arm_error, body_json, require_arm
from emulator.azure.state import StorageAccount, new_storage_key, now
from emulator.wire import Request, Response

ACCOUNTS = RG + r"/providers/Microsoft\.Storage/storageAccounts"
ACCOUNT = ACCOUNTS + r"/(?P<account>[^/]+)"
_NAME = re.compile(r"^[a-z0-9]{3,24}$")


def register(ctx: AzureContext) -> None:
    route = ctx.route

    def account_or_404(request: Request) -> StorageAccount:
        p = request.params
        resource_group_or_404(ctx, p["sub"], p["rg"])
        account = ctx.state.storage_accounts.get(p["account"].lower())
        if account is None or account.resource_group.lower() != p["rg"].lower():
            raise arm_error(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Storage/storageAccounts/{p['account']}' under resource "
                f"group '{p['rg']}' was not found. For more details please go to "
                "https://aka.ms/ARMResourceNotFoundFix",
            )
        return account

    def scope(request: Request) -> str:
        p = request.params
        return (
            f"/subscriptions/{p['sub']}/resourceGroups/{p['rg']}"
            f"/providers/Microsoft.Storage/storageAccounts/{p['account']}"
        )

    @route(ARM, "GET", SUB + r"/providers/Microsoft\.Storage/storageAccounts")
    def list_storage_accounts(request: Request) -> Response:
        sub = subscription_or_404(ctx, request.params["sub"])
        require_arm(ctx, request, "Microsoft.Storage/storageAccounts/read", f"/subscriptions/{sub.id}")
        return Response.json(
            200,
            {
                "value": [
                    a.to_arm()
                    for a in ctx.state.storage_accounts.values()
                    if a.subscription_id.lower() == sub.id.lower()
                ]
            },
        )

    @route(ARM, "GET", ACCOUNTS)
    def list_storage_accounts_by_resource_group(request: Request) -> Response:
        group = resource_group_or_404(ctx, request.params["sub"], request.params["rg"])
        require_arm(ctx, request, "Microsoft.Storage/storageAccounts/read", group.arm_id)
        return Response.json(
            200,
            {
                "value": [
                    a.to_arm()
                    for a in ctx.state.storage_accounts.values()
                    if a.resource_group.lower() == group.name.lower()
                    and a.subscription_id.lower() == group.subscription_id.lower()
                ]
            },
        )

    @route(ARM, "GET", ACCOUNT)
    def get_storage_account(request: Request) -> Response:
        require_arm(ctx, request, "Microsoft.Storage/storageAccounts/read", scope(request))
        return Response.json(200, account_or_404(request).to_arm())

    @route(ARM, "PUT", ACCOUNT)
    def create_storage_account(request: Request) -> Response:
        p = request.params
        require_arm(ctx, request, "Microsoft.Storage/storageAccounts/write", scope(request))
        group = resource_group_or_404(ctx, p["sub"], p["rg"])
        name = p["account"]
        if not _NAME.match(name):
            raise arm_error(
                400,
                "AccountNameInvalid",
                f"{name} is not a valid storage account name. Storage account name must be between 3 "
                "and 24 characters in length and use numbers and lower-case letters only.",
            )
        body = body_json(request)
        existing = ctx.state.storage_accounts.get(name.lower())
        if existing is not None and existing.resource_group.lower() != group.name.lower():
            raise arm_error(
                409, "StorageAccountAlreadyTaken", f"The storage account named {name} is already taken."
            )
        account = existing or StorageAccount(
            name, group.subscription_id, group.name, str(body.get("location") or group.location)
        )
        tags = _tags(body)
        if tags is not None:
            account.tags = tags
        ctx.state.storage_accounts[name.lower()] = account
        return Response.json(200, account.to_arm())

    @route(ARM, "POST", ACCOUNT + r"/listKeys")
    def listnew_storage_keys(request: Request) -> Response:
        require_arm(ctx, request, "Microsoft.Storage/storageAccounts/listkeys/action", scope(request))
        return Response.json(200, account_or_404(request).keys_payload())

    @route(ARM, "POST", ACCOUNT + r"/regenerateKey")
    def regeneratenew_storage_key(request: Request) -> Response:
        require_arm(ctx, request, "Microsoft.Storage/storageAccounts/regeneratekey/action", scope(request))
        account = account_or_404(request)
        key_name = str(body_json(request).get("keyName", ""))
        if key_name.lower() not in {"key1", "key2"}:
            raise arm_error(
                400,
                "InvalidValuesForRequestParameters",
                "Values for request parameters are invalid: keyName.",
            )
        index = int(key_name[-1]) - 1
        account.keys[index] = new_storage_key()
        account.key_created[index] = now()
        return Response.json(200, account.keys_payload())
