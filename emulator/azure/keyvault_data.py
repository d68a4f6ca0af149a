"""The Key Vault data plane (`https://{vault}.vault.azure.net`, api-version 7.x): secrets list
(`maxresults` 1..25, default 25, `nextLink` paging), versions, get (latest or by version), set,
update properties, delete (soft delete), deleted secrets list/get/recover/purge.

Authentication: the 401 challenge comes from `common._keyvault`. Authorization uses the caller's
`oid`: access-policy vaults check the vault's policies (permission names compared
case-insensitively, `all` included) and answer 403 `Forbidden` / innererror `ForbiddenByPolicy`;
RBAC vaults check role assignments at subscription, resource group, vault or secret scope against
the role definitions' dataActions (403 innererror `ForbiddenByRbac`). Assignments younger than
`limits.rbac_propagation_s` are not effective yet.

Network rules come first, before any authorization: `publicNetworkAccess: Disabled` answers 403
`Forbidden` / innererror `ForbiddenByConnection` (no private link exists here), and
`networkAcls.defaultAction: Deny` answers 403 innererror `ForbiddenByFirewall` unless an `ipRules`
entry holds `CLIENT_ADDRESS`, the public address the emulated vault sees its callers come from (the
app's outbound address); trusted-service bypass never applies (the app is not a trusted service).
Bodies as recorded in public issues (docs/fidelity.md).
"""

from __future__ import annotations

import ipaddress
import re
import time
from typing import Any

from emulator.azure import roles
from emulator.azure.common import KV, AzureContext, caller_oid, caller_text
from emulator.azure.eventgrid import SECRET_NEW_VERSION
from emulator.azure.state import Secret, SecretVersion, Vault, new_id, now
from emulator.wire import HttpError, Request, Response

_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
MAX_RESULTS = 25
DATA_ACTION = "Microsoft.KeyVault/vaults/secrets/{}"
# The caller's public address as the emulated vault's firewall sees it (a documentation range address).
CLIENT_ADDRESS = "203.0.113.10"


def _allowed_by(ip_rules: Any) -> bool:
    """Whether a firewall `ipRules` entry (`{"value": address or CIDR range}`) holds CLIENT_ADDRESS."""
    client = ipaddress.ip_address(CLIENT_ADDRESS)
    for rule in ip_rules or ():
        try:
            if client in ipaddress.ip_network(str(rule.get("value", "")), strict=False):
                return True
        except (ValueError, AttributeError):
            continue
    return False


def network_refusal(request: Request, vault: Vault) -> HttpError | None:
    """The vault's network rules refusing the call, checked before authorization."""
    where = f"Caller: {caller_text(request)}\r\nVault: {vault.name};location={vault.location}"
    if vault.public_network_access.lower() == "disabled":
        return HttpError(
            403,
            "Forbidden",
            "Public network access is disabled and request is not from a trusted service nor via an "
            f"approved private link.\r\n{where}",
            inner={"code": "ForbiddenByConnection"},
        )
    acls = vault.extra_properties.get("networkAcls") or {}
    if str(acls.get("defaultAction", "Allow")).lower() == "deny" and not _allowed_by(acls.get("ipRules")):
        return HttpError(
            403,
            "Forbidden",
            "Client address is not authorized and caller is not a trusted service.\r\n"
            f"Client address: {CLIENT_ADDRESS}\r\n{where}",
            inner={"code": "ForbiddenByFirewall"},
        )
    return None


def _secret_not_found(name: str) -> HttpError:
    return HttpError(
        404,
        "SecretNotFound",
        f"A secret with (name/id) {name} was not found in this key vault. If you recently deleted "
        "this secret you may be able to recover it using the correct recovery command. For help "
        "resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
    )


def _deleted_not_found(name: str) -> HttpError:
    return HttpError(404, "SecretNotFound", f"Deleted Secret not found: {name}")


class KeyVaultData:
    def __init__(self, ctx: AzureContext) -> None:
        self.ctx = ctx

    # -- lookups and authorization ----------------------------------------------------------------
    def vault(self, request: Request) -> Vault:
        name = request.params["vault"]
        vault = self.ctx.state.vaults.get(name.lower())
        if vault is None:
            raise HttpError(404, "VaultNotFound", f"The vault '{name}' does not exist.")
        return vault

    def authorize(
        self, request: Request, vault: Vault, permission: str, action: str, secret: str | None = None
    ) -> None:
        refused = network_refusal(request, vault)
        if refused is not None:
            raise refused
        oid = caller_oid(request)
        if vault.enable_rbac_authorization:
            target = vault.arm_id + (f"/secrets/{secret}" if secret else "")
            data_action = DATA_ACTION.format(action)
            horizon = time.time() - self.ctx.limits.rbac_propagation_s
            for assignment in self.ctx.state.assignments_for(oid):
                if assignment.created > horizon or not roles.scope_covers(assignment.scope, target):
                    continue
                definition = self.ctx.state.role_definitions.get(assignment.role_definition_id.lower())
                if definition is not None and definition.allows(data_action, data=True):
                    return
            raise HttpError(
                403,
                "Forbidden",
                "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny "
                "assignments or role definitions were changed recently, please observe propagation time.\r\n"
                f"Caller: {caller_text(request)}\r\nAction: '{data_action}'\r\n"
                f"Resource: '{target.lower()}'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\n"
                "DecisionReason: 'DeniedWithNoValidRBAC' \r\n"
                f"Vault: {vault.name};location={vault.location}\r\n",
                inner={"code": "ForbiddenByRbac"},
            )
        appid = str((request.caller or {}).get("appid", "")).lower()
        for policy in vault.access_policies:
            if policy.object_id.lower() != oid.lower():
                continue
            if policy.application_id and policy.application_id.lower() != appid:
                continue  # compound identity: this entry needs the user *through* that application
            if policy.allows_secret(permission):
                return
        raise HttpError(
            403,
            "Forbidden",
            f"The user, group or application '{caller_text(request)}' does not have secrets {permission} "
            f"permission on key vault '{vault.name};location={vault.location}'. For help resolving this "
            "issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
            inner={"code": "ForbiddenByPolicy"},
        )

    # -- rendering --------------------------------------------------------------------------------
    @staticmethod
    def base(vault: Vault) -> str:
        return f"https://{vault.name.lower()}.vault.azure.net"

    @staticmethod
    def attributes(vault: Vault, item: SecretVersion) -> dict[str, Any]:
        attrs: dict[str, Any] = {"enabled": item.enabled, "created": item.created, "updated": item.updated}
        if item.nbf is not None:
            attrs["nbf"] = item.nbf
        if item.exp is not None:
            attrs["exp"] = item.exp
        if vault.enable_soft_delete:
            attrs["recoverableDays"] = vault.soft_delete_retention_in_days
            attrs["recoveryLevel"] = (
                "Recoverable" if vault.enable_purge_protection else "Recoverable+Purgeable"
            )
        else:
            attrs["recoveryLevel"] = "Purgeable"
        return attrs

    def bundle(self, vault: Vault, secret: Secret, item: SecretVersion, value: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if value:
            out["value"] = item.value
        out["id"] = f"{self.base(vault)}/secrets/{secret.name}/{item.version}"
        out["attributes"] = self.attributes(vault, item)
        out["tags"] = item.tags or {}
        if item.content_type is not None:
            out["contentType"] = item.content_type
        return out

    @staticmethod
    def list_item(vault: Vault, secret: Secret, item: SecretVersion, versioned: bool) -> dict[str, Any]:
        """One item of `GET /secrets` (SecretItem: no value) or of a secret's versions list."""
        out: dict[str, Any] = {
            "id": f"{KeyVaultData.base(vault)}/secrets/{secret.name}"
            + (f"/{item.version}" if versioned else ""),
            "attributes": KeyVaultData.attributes(vault, item),
            "tags": item.tags or {},
        }
        if item.content_type is not None:
            out["contentType"] = item.content_type
        return out

    def deleted(self, vault: Vault, secret: Secret, item: SecretVersion, full: bool) -> dict[str, Any]:
        deleted = secret.deleted_date or now()
        out = (
            self.bundle(vault, secret, item, value=False)
            if full
            else self.list_item(vault, secret, item, False)
        )
        out.update(
            {
                "recoveryId": f"{self.base(vault)}/deletedsecrets/{secret.name}",
                "deletedDate": deleted,
                "scheduledPurgeDate": deleted + vault.soft_delete_retention_in_days * 86400,
            }
        )
        return out

    def paged(self, request: Request, items: list[Any]) -> tuple[list[Any], str | None]:
        raw = request.query.get("maxresults")
        try:
            size = MAX_RESULTS if raw in {None, ""} else int(str(raw))
        except ValueError:
            size = 0
        if not 1 <= size <= MAX_RESULTS:
            raise HttpError(
                400, "BadParameter", f"The value of maxresults must be between 1 and {MAX_RESULTS}."
            )
        try:
            offset = max(0, int(request.query.get("$skiptoken", "0")))
        except ValueError:
            raise HttpError(400, "BadParameter", "The skip token is invalid.") from None
        chunk = items[offset : offset + size]
        if offset + size >= len(items):
            return chunk, None
        api_version = request.query.get("api-version", "")
        return chunk, (
            f"https://{request.host}:443{request.path}?api-version={api_version}"
            f"&$skiptoken={offset + size}&maxresults={size}"
        )

    def secret(self, vault: Vault, name: str) -> Secret:
        secret = vault.secrets.get(name.lower())
        if secret is None or secret.deleted_date is not None or not secret.versions:
            raise _secret_not_found(name)
        return secret

    def deleted_secret(self, vault: Vault, name: str) -> Secret:
        secret = vault.secrets.get(name.lower())
        if secret is None or secret.deleted_date is None:
            raise _deleted_not_found(name)
        return secret


def _attributes_from(body: dict[str, Any], item: SecretVersion) -> None:
    attrs = body.get("attributes")
    if attrs is None:
        return
    if not isinstance(attrs, dict):
        raise HttpError(400, "BadParameter", "The attributes must be an object.")
    if attrs.get("enabled") is not None:
        item.enabled = bool(attrs["enabled"])
    for key in ("exp", "nbf"):
        if key in attrs:
            value = attrs[key]
            if value is not None and not isinstance(value, int):
                raise HttpError(
                    400, "BadParameter", f"Property attributes.{key} must be a Unix time in seconds."
                )
            setattr(item, key, value)


def _tags_from(body: dict[str, Any]) -> dict[str, str] | None:
    tags = body.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise HttpError(400, "BadParameter", "Tags must be an object with string values.")
    if len(tags) > 15:
        raise HttpError(400, "BadParameter", "The number of tags exceeds the maximum of 15.")
    return dict(tags)


def _body(request: Request) -> dict[str, Any]:
    payload = request.json()
    if not isinstance(payload, dict):
        raise HttpError(400, "BadParameter", "The request body must be a JSON object.")
    return payload


def register(ctx: AzureContext) -> None:
    kv = KeyVaultData(ctx)
    route = ctx.route

    @route(KV, "GET", r"/secrets/?")
    def list_secrets(request: Request) -> Response:
        vault = kv.vault(request)
        kv.authorize(request, vault, "list", "readMetadata/action")
        live = [s for s in vault.secrets.values() if s.deleted_date is None and s.versions]
        chunk, next_link = kv.paged(request, live)
        return Response.json(
            200, {"value": [kv.list_item(vault, s, s.latest, False) for s in chunk], "nextLink": next_link}
        )

    @route(KV, "GET", r"/secrets/(?P<name>[^/]+)/versions/?")
    def list_secret_versions(request: Request) -> Response:
        vault = kv.vault(request)
        kv.authorize(request, vault, "list", "readMetadata/action", request.params["name"])
        secret = kv.secret(vault, request.params["name"])
        chunk, next_link = kv.paged(request, secret.versions)
        return Response.json(
            200, {"value": [kv.list_item(vault, secret, v, True) for v in chunk], "nextLink": next_link}
        )

    @route(KV, "GET", r"/secrets/(?P<name>[^/]+)(?:/(?P<version>[^/]*))?")
    def get_secret(request: Request) -> Response:
        vault = kv.vault(request)
        name = request.params["name"]
        kv.authorize(request, vault, "get", "getSecret/action", name)
        secret = kv.secret(vault, name)
        item = secret.version(request.params.get("version") or "")
        if item is None:
            raise _secret_not_found(f"{name}/{request.params.get('version')}")
        if not item.enabled:
            raise HttpError(
                403,
                "Forbidden",
                "Operation get is not allowed on a disabled secret.",
                inner={"code": "SecretDisabled"},
            )
        return Response.json(200, kv.bundle(vault, secret, item, value=True))

    @route(KV, "PUT", r"/secrets/(?P<name>[^/]+)/?")
    def set_secret(request: Request) -> Response:
        vault = kv.vault(request)
        name = request.params["name"]
        kv.authorize(request, vault, "set", "setSecret/action", name)
        if not _NAME.match(name):
            raise HttpError(400, "BadParameter", "The request URI contains an invalid name: " + name)
        body = _body(request)
        value = body.get("value")
        if not isinstance(value, str):
            raise HttpError(400, "BadParameter", "Property value is required.")
        if len(value.encode()) > 25 * 1024:
            raise HttpError(400, "BadParameter", "Secret value size exceeds the maximum of 25 KB.")
        secret = vault.secrets.get(name.lower())
        if secret is not None and secret.deleted_date is not None:
            raise HttpError(
                409,
                "Conflict",
                f"Secret {name} is currently in a deleted but recoverable state, and its name cannot "
                "be reused; in this state, the secret can only be recovered or purged.",
                inner={"code": "ObjectIsDeletedButRecoverable"},
            )
        stamp = now()
        item = SecretVersion(
            new_id().replace("-", ""),
            value,
            body.get("contentType"),
            True,
            None,
            None,
            _tags_from(body),
            stamp,
            stamp,
        )
        _attributes_from(body, item)
        if secret is None:
            secret = vault.secrets[name.lower()] = Secret(name)
        secret.versions.append(item)
        # Event Grid: "a new secret or secret version is created" (event-schema-key-vault).
        ctx.emulator.event_grid.publish_secret_event(
            vault, SECRET_NEW_VERSION, secret.name, item.version, item.nbf, item.exp
        )
        return Response.json(200, kv.bundle(vault, secret, item, value=True))

    @route(KV, "PATCH", r"/secrets/(?P<name>[^/]+)(?:/(?P<version>[^/]*))?")
    def update_secret(request: Request) -> Response:
        vault = kv.vault(request)
        name = request.params["name"]
        kv.authorize(request, vault, "set", "update/action", name)
        secret = kv.secret(vault, name)
        item = secret.version(request.params.get("version") or "")
        if item is None:
            raise _secret_not_found(f"{name}/{request.params.get('version')}")
        body = _body(request)
        _attributes_from(body, item)
        if "contentType" in body:
            item.content_type = body["contentType"]
        tags = _tags_from(body)
        if tags is not None:
            item.tags = tags
        item.updated = now()
        return Response.json(200, kv.bundle(vault, secret, item, value=False))

    @route(KV, "DELETE", r"/secrets/(?P<name>[^/]+)/?")
    def delete_secret(request: Request) -> Response:
        vault = kv.vault(request)
        name = request.params["name"]
        kv.authorize(request, vault, "delete", "delete", name)
        secret = kv.secret(vault, name)
        if not vault.enable_soft_delete:
            del vault.secrets[name.lower()]
            return Response.json(200, kv.bundle(vault, secret, secret.latest, value=False))
        secret.deleted_date = now()
        return Response.json(200, kv.deleted(vault, secret, secret.latest, full=True))

    @route(KV, "GET", r"/deletedsecrets/?")
    def list_deleted_secrets(request: Request) -> Response:
        vault = kv.vault(request)
        kv.authorize(request, vault, "list", "readMetadata/action")
        deleted = [s for s in vault.secrets.values() if s.deleted_date is not None]
        chunk, next_link = kv.paged(request, deleted)
        return Response.json(
            200, {"value": [kv.deleted(vault, s, s.latest, full=False) for s in chunk], "nextLink": next_link}
        )

    @route(KV, "GET", r"/deletedsecrets/(?P<name>[^/]+)/?")
    def get_deleted_secret(request: Request) -> Response:
        vault = kv.vault(request)
        name = request.params["name"]
        kv.authorize(request, vault, "list", "readMetadata/action", name)
        secret = kv.deleted_secret(vault, name)
        return Response.json(200, kv.deleted(vault, secret, secret.latest, full=True))

    @route(KV, "POST", r"/deletedsecrets/(?P<name>[^/]+)/recover/?")
    def recover_deleted_secret(request: Request) -> Response:
        vault = kv.vault(request)
        name = request.params["name"]
        kv.authorize(request, vault, "recover", "recover/action", name)
        secret = kv.deleted_secret(vault, name)
        secret.deleted_date = None
        return Response.json(200, kv.bundle(vault, secret, secret.latest, value=False))

    @route(KV, "DELETE", r"/deletedsecrets/(?P<name>[^/]+)/?")
    def purge_deleted_secret(request: Request) -> Response:
        vault = kv.vault(request)
        name = request.params["name"]
        kv.authorize(request, vault, "purge", "purge/action", name)
        kv.deleted_secret(vault, name)
        if vault.enable_purge_protection:
            raise HttpError(
                403,
                "Forbidden",
                'Operation "purge" is not enabled for this vault.',
                inner={"code": "PurgeProtectionEnabled"},
            )
        del vault.secrets[name.lower()]
        return Response.empty(204)
