"""Key Vault management plane (ARM): list vaults with their access policies; access-policy deltas.

One list call per page returns `properties.accessPolicies`, so there is never a GET per vault in a sweep.
The lists are read through the SDK client's own pipeline (`send_request`: auth, proxy, TLS) and their
JSON pages are mapped straight to `Vault`: the SDK's generated models cost about 2.5 ms of CPU per vault
to build (measured by `make bench` with py-spy: 13 s of serial CPU before the first secret list at
5,000 vaults), for fields we then copy out again.
Permission strings are kept and sent exactly as Azure returned them: `accessPolicies/remove` matches
case-sensitively and answers 200 without change on a mismatch (azure-rest-api-specs #42963).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from queue import Queue
from typing import Any, Required
from urllib.parse import quote

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from azure.mgmt.keyvault import KeyVaultManagementClient
from azure.mgmt.keyvault.models import VaultAccessPolicyParameters, VaultPatchParameters, VaultPatchProperties
from pydantic import TypeAdapter, ValidationError
from pydantic_core import from_json
from typing_extensions import TypedDict  # pydantic reads TypedDicts only from here on Python < 3.12

from remediations.adapters.errors import ResourceGone
from remediations.adapters.retry import with_retry
from remediations.core.model import AccessPolicy, AccessPolicyChange, Permissions, Scope, Vault, arm_name
from remediations.ports import VaultPage


def _texts(values: Iterable[Any] | None) -> tuple[str, ...]:
    # The SDK turns known lower-case names into enum members and keeps other spellings as str.
    return tuple(v.value if isinstance(v, Enum) else str(v) for v in (values or ()))


def access_policy_from_sdk(entry: Any) -> AccessPolicy:
    perms = entry.permissions
    return AccessPolicy(
        tenant_id=str(entry.tenant_id),
        object_id=str(entry.object_id),
        application_id=str(entry.application_id) if entry.application_id else None,
        permissions=Permissions(
            secrets=_texts(perms.secrets if perms is not None else None),
            keys=_texts(perms.keys_property if perms is not None else None),
            certificates=_texts(perms.certificates if perms is not None else None),
            storage=_texts(perms.storage if perms is not None else None),
        ),
    )


def vault_from_sdk(vault: Any, subscription_id: str) -> Vault:
    props = vault.properties
    return Vault(
        id=str(vault.id),
        name=str(vault.name),
        resource_group=arm_name(str(vault.id), "resourceGroups") or "",
        subscription_id=subscription_id,
        location=str(vault.location or ""),
        tenant_id=str(props.tenant_id or ""),
        vault_uri=str(props.vault_uri or ""),
        enable_rbac_authorization=bool(props.enable_rbac_authorization),
        tags=dict(vault.tags or {}),
        access_policies=tuple(access_policy_from_sdk(e) for e in (props.access_policies or ())),
    )


def _json_texts(values: Any) -> list[str]:
    return [str(v) for v in values] if isinstance(values, list) else []


def _documented_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """One `properties.accessPolicies[]` item with a missing or null field read as empty, strings exactly
    as Azure sent them."""
    perms = entry.get("permissions") or {}
    return {
        "tenantId": str(entry.get("tenantId") or ""),
        "objectId": str(entry.get("objectId") or ""),
        "applicationId": str(entry["applicationId"]) if entry.get("applicationId") else None,
        "permissions": {k: _json_texts(perms.get(k)) for k in ("secrets", "keys", "certificates", "storage")},
    }


def access_policy_from_json(entry: dict[str, Any]) -> AccessPolicy:
    """One `properties.accessPolicies[]` item, permission strings exactly as Azure returned them."""
    return AccessPolicy.model_validate(_documented_entry(entry))


def _documented_item(item: dict[str, Any]) -> dict[str, Any]:
    """One item of the ARM vault list with a missing or null field read as empty (text, list, object),
    in the shape `_ArmVault` reads."""
    props = item.get("properties") or {}
    return {
        "id": str(item.get("id") or ""),
        "name": str(item.get("name") or ""),
        "location": str(item.get("location") or ""),
        "tags": {str(k): str(v) for k, v in (item.get("tags") or {}).items()},
        "properties": {
            "tenantId": str(props.get("tenantId") or ""),
            "vaultUri": str(props.get("vaultUri") or ""),
            "enableRbacAuthorization": bool(props.get("enableRbacAuthorization")),
            "accessPolicies": [_documented_entry(e) for e in (props.get("accessPolicies") or ())],
        },
    }


# The documented shape of a vault list page, as far as a `Vault` reads it (other members are ignored).
# TypedDicts, not models: pydantic-core builds dicts for them, cheaper than model objects that are only
# read once, while the access policies become the model's own objects in the same pass.
class _ArmVaultProperties(TypedDict, total=False):
    tenantId: str
    vaultUri: str
    enableRbacAuthorization: bool
    accessPolicies: tuple[AccessPolicy, ...]


class _ArmVault(TypedDict, total=False):
    id: Required[str]
    name: Required[str]
    location: str
    tags: dict[str, str]
    properties: _ArmVaultProperties


class _ArmVaultPage(TypedDict, total=False):
    value: list[_ArmVault]
    nextLink: str | None


_PAGE = TypeAdapter(_ArmVaultPage)


def _vault(item: _ArmVault, subscription_id: str) -> Vault:
    props = item.get("properties") or _ArmVaultProperties()
    return Vault(
        id=item["id"],
        name=item["name"],
        resource_group=arm_name(item["id"], "resourceGroups") or "",
        subscription_id=subscription_id,
        location=item.get("location", ""),
        tenant_id=props.get("tenantId", ""),
        vault_uri=props.get("vaultUri", ""),
        enable_rbac_authorization=props.get("enableRbacAuthorization", False),
        tags=item.get("tags", {}),
        access_policies=props.get("accessPolicies", ()),
    )


def vault_page_from_json(
    body: bytes | dict[str, Any], subscription_id: str
) -> tuple[list[Vault], str | None]:
    """One page of the ARM vault list (its bytes, or its parsed JSON) as vaults and its `nextLink`.
    A page in the documented shape is read straight into the models in one pydantic-core pass, parsing
    included (about 20 ms of CPU per 1,000 vaults; parsing, then mapping field by field in Python cost
    35); a page that does not fit it (a null where text or a list is documented) is read again with its
    missing or null fields read as empty."""
    try:
        page = _PAGE.validate_json(body) if isinstance(body, bytes) else _PAGE.validate_python(body)
    except ValidationError:
        parsed: dict[str, Any] = from_json(body) if isinstance(body, bytes) else body
        page = _PAGE.validate_python(
            {
                "value": [_documented_item(item) for item in parsed.get("value") or ()],
                "nextLink": parsed.get("nextLink") or None,
            }
        )
    return [_vault(item, subscription_id) for item in page.get("value", ())], page.get("nextLink") or None


def vault_from_json(item: dict[str, Any], subscription_id: str) -> Vault:
    """One item of the ARM vault list (the same fields `vault_from_sdk` reads from the SDK model)."""
    vaults, _ = vault_page_from_json({"value": [_documented_item(item)]}, subscription_id)
    return vaults[0]


def change_body(change: AccessPolicyChange) -> dict[str, Any]:
    """The request body of one delta: only the categories being changed, strings exactly as given."""
    entry: dict[str, Any] = {
        "tenantId": change.tenant_id,
        "objectId": change.object_id,
        "permissions": {k: v for k, v in change.permissions.as_dict().items() if v},
    }
    if change.application_id:
        entry["applicationId"] = change.application_id
    return {"properties": {"accessPolicies": [entry]}}


# A page's `nextLink` as its top-level object's last member, a string without escapes: ARM writes it
# after `value`. A string token right before the brace that ends the body is not inside another string
# (its quotes would be escaped) nor in a nested object (that brace closes the top level), so this reads
# the same link the parser would, without parsing 1 MB first.
_TRAILING_NEXT_LINK = re.compile(rb'"nextLink"\s*:\s*"([^"\\]*)"\s*\}\s*$')
_LINK_TAIL = 16 * 1024  # bytes searched at the end of a page; a longer link is parsed


def next_link_of(body: bytes) -> tuple[str | None, dict[str, Any] | None]:
    """A vault list page's `nextLink` and, when it could not be read off the body's end, the parsed page
    it was taken from (None: the caller parses the body)."""
    trailing = _TRAILING_NEXT_LINK.search(body, max(0, len(body) - _LINK_TAIL))
    if trailing is not None:
        return trailing.group(1).decode() or None, None
    if b'"nextLink"' not in body:
        return None, None
    page: dict[str, Any] = from_json(body)
    link = page.get("nextLink")
    return (str(link) if link else None), page


class _Once:
    """Calls `hook` the first time it is called (a retried list starts its reads beside only once)."""

    def __init__(self, hook: Callable[[], None] | None) -> None:
        self._hook = hook

    def __call__(self) -> None:
        hook, self._hook = self._hook, None
        if hook is not None:
            hook()


class KeyVaultManagement:
    """Thin adapter over `KeyVaultManagementClient` for one subscription."""

    def __init__(self, credential: TokenCredential, subscription_id: str, **client_kwargs: Any) -> None:
        self.subscription_id = subscription_id
        # retry_total=0: retries are ours, around whole operations (adapters/retry.py).
        self._client = KeyVaultManagementClient(credential, subscription_id, retry_total=0, **client_kwargs)
        self._api_version: str = self._client._config.api_version  # the version the SDK's own calls use

    def list_vaults(
        self, scope: Scope, on_page: VaultPage | None = None, on_started: Callable[[], None] | None = None
    ) -> list[Vault]:
        """Vaults in the scope with their access policies (no secrets yet). `on_page` is handed each
        page of a list as it is mapped (not the single vault of a vault scope). `on_started` is called
        once, on this thread, as soon as the list's first page is being read: a caller starts there the
        reads that run beside the list, so they do not hold up its first request (the list binds a
        sweep: a chain of pages)."""
        vaults = self._client.vaults
        started = _Once(on_started)
        if scope.vault_name is not None:
            started()
            rg, name = scope.resource_group or "", scope.vault_name
            try:
                return with_retry(
                    f"get vault {name}", lambda: [vault_from_sdk(vaults.get(rg, name), self.subscription_id)]
                )
            except ResourceGone:
                return []
        base = f"/subscriptions/{quote(self.subscription_id, safe='')}"
        if scope.resource_group is not None:
            rg = scope.resource_group
            return with_retry(
                f"list vaults in {rg}",
                lambda: self._list_pages(
                    f"{base}/resourceGroups/{quote(rg, safe='')}/providers/Microsoft.KeyVault/vaults",
                    on_page,
                    started,
                ),
            )
        return with_retry(
            f"list vaults in subscription {self.subscription_id}",
            lambda: self._list_pages(f"{base}/providers/Microsoft.KeyVault/vaults", on_page, started),
        )

    def _body(self, url: str, asked: Callable[[], None] = lambda: None) -> bytes:
        """The body of one GET. `asked` is called once the request has been through the pipeline's
        policies, right before it is sent (azure-core's `raw_request_hook`)."""
        # stream=True: the pipeline leaves the body alone (otherwise it json.loads every page once more).
        response = self._client.send_request(
            HttpRequest("GET", url), stream=True, raw_request_hook=lambda _request: asked()
        )
        body = response.read()
        if response.status_code != 200:
            raise HttpResponseError(response=response)
        return body

    def _list_pages(
        self, path: str, on_page: VaultPage | None = None, started: Callable[[], None] = lambda: None
    ) -> list[Vault]:
        """Every page of an ARM vault list (`nextLink` followed), mapped from JSON. One thread reads the
        pages back to back, each requested as soon as the last one's `nextLink` is known (read off the
        end of its body, `next_link_of`), and hands the bodies over; this one parses and maps them
        meanwhile, so neither parsing nor mapping a page delays the chain. A page is handed over once
        the next one's request is on its way: its parse is one long call that holds the interpreter,
        and started first it would hold that request back by as long."""
        pages: Queue[tuple[bytes | dict[str, Any], str | None] | Exception | None] = Queue()
        stop = threading.Event()  # the mapping failed: read no further page

        def read_all() -> None:
            url: str | None = f"{path}?api-version={self._api_version}"
            read: list[tuple[bytes | dict[str, Any], str | None]] = []  # the last page, not handed over

            def hand_over() -> None:
                if read:
                    pages.put(read.pop())

            try:
                while url and not stop.is_set():
                    body = self._body(url, asked=hand_over)
                    url, parsed = next_link_of(body)
                    read.append((body if parsed is None else parsed, url))
                hand_over()
            except Exception as error:  # noqa: BLE001 - re-raised where the pages are mapped (and retried)
                hand_over()
                pages.put(error)
                return
            pages.put(None)

        found: list[Vault] = []
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vault-pages") as reader:
            reader.submit(read_all)
            started()
            try:
                while (item := pages.get()) is not None:
                    if isinstance(item, Exception):
                        raise item
                    body, followed = item
                    mapped, link = vault_page_from_json(body, self.subscription_id)
                    if link != followed:  # never, for a valid body: said loudly if it were
                        raise ValueError(f"vault list page: nextLink {link!r}, but {followed!r} followed")
                    if on_page is not None:
                        on_page(mapped, followed is not None)
                    found.extend(mapped)
            finally:
                stop.set()
        return found

    def update_access_policy(self, resource_group: str, vault_name: str, change: AccessPolicyChange) -> None:
        """`PUT .../accessPolicies/{add|remove}`. The PUT answers with the request's entries echoed
        (azure-rest-api-specs `updateAccessPoliciesAdd.json`), not with what the vault now holds, so it
        verifies nothing: the caller reads the vault once after its writes (shell/write_guard.py; the
        Terraform provider re-reads too)."""
        parameters = VaultAccessPolicyParameters(change_body(change))
        vaults = self._client.vaults
        with_retry(
            f"accessPolicies/{change.operation} on {vault_name}",
            lambda: vaults.update_access_policy(resource_group, vault_name, change.operation, parameters),
        )

    def set_rbac_authorization(self, resource_group: str, vault_name: str, enabled: bool) -> bool:
        """`PATCH` the vault with only `properties.enableRbacAuthorization` (other properties untouched,
        spec `Vaults_Update`), then one GET: the value the vault now holds, not the PATCH's echo."""
        parameters = VaultPatchParameters(properties=VaultPatchProperties(enable_rbac_authorization=enabled))
        vaults = self._client.vaults

        def patch() -> None:
            vaults.update(resource_group, vault_name, parameters)

        def read() -> bool:
            return bool(vaults.get(resource_group, vault_name).properties.enable_rbac_authorization)

        with_retry(f"enableRbacAuthorization={enabled} on {vault_name}", patch)
        return with_retry(f"get vault {vault_name}", read)

    def close(self) -> None:
        self._client.close()
