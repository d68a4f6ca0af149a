"""`storage-key`: the secret holds a storage account access key. Tags `storageAccountId` (ARM id) and
`keyName` (key1/key2, the key stored now). The key *not* stored is regenerated and stored, then (after
the cut-over) the stored, exposed key is regenerated so the leaked value dies. The second regeneration
is recorded first as `pendingRegenerateKey`, so a failure there is finished by a later sweep."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar

from remediations.core.policy import RotationRules
from remediations.core.rotation import TAG_KEY_NAME, TAG_PENDING_REGENERATE, TAG_STORAGE_ACCOUNT
from remediations.core.secret_value import SecretValue
from remediations.rotators import Prepared, RotationContext, StepFailed, rotator

CONTENT_TYPE = "application/x-storage-account-key"
_ACCOUNT = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.Storage/storageAccounts/(?P<name>[^/]+)/?$",
    re.IGNORECASE,
)
OTHER = {"key1": "key2", "key2": "key1"}


def account(tags: Mapping[str, str]) -> tuple[str, str, str]:
    match = _ACCOUNT.match(tags.get(TAG_STORAGE_ACCOUNT, ""))
    if match is None:
        raise ValueError(f"tag {TAG_STORAGE_ACCOUNT} is not a storage account resource id")
    return match["sub"], match["rg"], match["name"]


@rotator
class StorageKeyRotator:
    name: ClassVar[str] = "storage-key"
    replaces_value: ClassVar[bool] = True

    def check(self, tags: Mapping[str, str], rules: RotationRules) -> str | None:
        if _ACCOUNT.match(tags.get(TAG_STORAGE_ACCOUNT, "")) is None:
            return f"storage-key rotation needs tag {TAG_STORAGE_ACCOUNT} (a storage account resource id)"
        if tags.get(TAG_KEY_NAME, "").lower() not in OTHER:
            return f"storage-key rotation needs tag {TAG_KEY_NAME} = key1 or key2"
        return None

    def prepare(self, ctx: RotationContext) -> Prepared:
        sub, rg, name = account(ctx.current.tags)
        stored = ctx.current.tags[TAG_KEY_NAME].lower()
        unused = OTHER[stored]
        keys = ctx.step(
            "regenerate-unused-key", lambda: ctx.clients.storage(sub).regenerate_key(rg, name, unused)
        )
        if unused not in keys:
            raise StepFailed("regenerate-unused-key", f"storage account {name} returned no {unused}")
        return Prepared(
            value=keys[unused],
            tags={TAG_KEY_NAME: unused, TAG_PENDING_REGENERATE: stored},
            content_type=ctx.current.content_type or CONTENT_TYPE,
        )

    def verify(self, ctx: RotationContext, new_tags: Mapping[str, str], value: SecretValue | None) -> None:
        if value is None:
            return  # resuming: the key may have been regenerated since; the read-back covers the version
        sub, rg, name = account(new_tags)
        keys = ctx.step("verify-key", lambda: ctx.clients.storage(sub).list_keys(rg, name))
        key_name = new_tags[TAG_KEY_NAME].lower()
        if not value.same_as(keys.get(key_name)):
            raise StepFailed("verify-key", f"storage account {name} {key_name} is not the stored value")

    def complete(self, ctx: RotationContext, tags: Mapping[str, str]) -> None:
        sub, rg, name = account(tags)
        exposed = tags[TAG_PENDING_REGENERATE].lower()
        if exposed not in OTHER or exposed == tags.get(TAG_KEY_NAME, "").lower():
            raise StepFailed("regenerate-old-key", f"refusing to regenerate {exposed}: it is the stored key")
        ctx.step("regenerate-old-key", lambda: ctx.clients.storage(sub).regenerate_key(rg, name, exposed))
