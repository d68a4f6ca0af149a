"""`app-credential`: the secret is an Entra application's client secret. Tags `appObjectId` (the
application object) and `keyId` (the credential this version holds). Graph `addPassword` makes the new
credential; after the cut-over the old one is removed with `removePassword`, at once when the policy's
overlap is 0, otherwise by a later sweep (tags `pendingRemoveKeyId` + `removeAfter` on the new version).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import ClassVar

from remediations.core.policy import RotationRules
from remediations.core.rotation import (
    TAG_APP_OBJECT_ID,
    TAG_KEY_ID,
    TAG_PENDING_REMOVE,
    TAG_REMOVE_AFTER,
    iso,
)
from remediations.core.secret_value import SecretValue
from remediations.rotators import Prepared, RotationContext, StepFailed, rotator

CONTENT_TYPE = "application/x-client-secret"


@rotator
class AppCredentialRotator:
    name: ClassVar[str] = "app-credential"
    replaces_value: ClassVar[bool] = True

    def check(self, tags: Mapping[str, str], rules: RotationRules) -> str | None:
        missing = [t for t in (TAG_APP_OBJECT_ID, TAG_KEY_ID) if not tags.get(t)]
        if missing:
            return f"app-credential rotation needs the tags {missing} on the secret"
        return None

    def prepare(self, ctx: RotationContext) -> Prepared:
        app = ctx.current.tags[TAG_APP_OBJECT_ID]
        graph = ctx.clients.applications()
        key_id, value = ctx.step(
            "add-credential",
            lambda: graph.add_password(app, f"vaultguard rotation {iso(ctx.now)}", ctx.expires),
        )
        remove_after = ctx.now + timedelta(hours=ctx.change.overlap_hours)
        return Prepared(
            value=value,
            tags={
                TAG_KEY_ID: key_id,
                TAG_PENDING_REMOVE: ctx.current.tags[TAG_KEY_ID].lower(),
                TAG_REMOVE_AFTER: iso(remove_after),
            },
            content_type=ctx.current.content_type or CONTENT_TYPE,
            rollback=lambda: graph.remove_password(app, key_id),
            rollback_step="remove-new-credential",
        )

    def verify(self, ctx: RotationContext, new_tags: Mapping[str, str], value: SecretValue | None) -> None:
        app = new_tags[TAG_APP_OBJECT_ID]
        key_ids = ctx.step("verify-credential", lambda: ctx.clients.applications().password_key_ids(app))
        if new_tags[TAG_KEY_ID].lower() not in key_ids:
            raise StepFailed("verify-credential", f"application {app} does not list the new credential")

    def complete(self, ctx: RotationContext, tags: Mapping[str, str]) -> None:
        app, old = tags[TAG_APP_OBJECT_ID], tags[TAG_PENDING_REMOVE].lower()
        graph = ctx.clients.applications()

        def remove() -> None:
            if old in graph.password_key_ids(app):  # already gone: a re-run is a no-op
                graph.remove_password(app, old)
            if old in graph.password_key_ids(app):
                raise StepFailed("remove-old-credential", f"application {app} still lists credential {old}")

        ctx.step("remove-old-credential", remove)
