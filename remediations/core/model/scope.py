"""What a run looks at (a subscription, a resource group or one vault) and reading ARM ids."""

from __future__ import annotations

import re
from typing import Literal

from remediations.core.model.base import Frozen

_SCOPE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)"
    r"(?:/resourceGroups/(?P<rg>[^/]+)"
    r"(?:/providers/Microsoft\.KeyVault/vaults/(?P<vault>[^/]+))?)?/?$",
    re.IGNORECASE,
)


class Scope(Frozen):
    """What to look at: a subscription, a resource group, or one vault."""

    subscription_id: str
    resource_group: str | None = None
    vault_name: str | None = None

    @classmethod
    def parse(cls, text: str) -> Scope:
        match = _SCOPE.match(text.strip())
        if match is None:
            raise ValueError(
                f"scope {text!r} is not /subscriptions/<id>, /subscriptions/<id>/resourceGroups/<rg> "
                "or a Key Vault resource id"
            )
        return cls(subscription_id=match["sub"], resource_group=match["rg"], vault_name=match["vault"])

    @property
    def kind(self) -> Literal["subscription", "resource_group", "vault"]:
        if self.vault_name is not None:
            return "vault"
        return "resource_group" if self.resource_group is not None else "subscription"

    @property
    def resource_id(self) -> str:
        rid = f"/subscriptions/{self.subscription_id}"
        if self.resource_group is not None:
            rid += f"/resourceGroups/{self.resource_group}"
        if self.vault_name is not None:
            rid += f"/providers/Microsoft.KeyVault/vaults/{self.vault_name}"
        return rid


def arm_name(resource_id: str, segment: str) -> str | None:
    """The name after `segment` (matched case-insensitively) in an ARM id, or None when absent:
    `arm_name(vault_id, "resourceGroups")`. Lenient, for ids Azure returned or we built; an id a
    caller sends is validated strictly first (triggers/ids.py)."""
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    try:
        return parts[lowered.index(segment.lower()) + 1]
    except (ValueError, IndexError):
        return None


def subscription_of(scope: str) -> str:
    """The subscription of an ARM scope that starts `/subscriptions/{id}` (a role-assignment scope)."""
    parts = scope.strip("/").split("/")
    if len(parts) < 2 or parts[0].lower() != "subscriptions":
        raise ValueError(f"{scope!r} is not an ARM scope under a subscription")
    return parts[1]


class VaultRef(Frozen):
    """The coordinates ARM calls on a vault need, read from its resource id (or the id of something
    in it, e.g. a secret). Lenient like `arm_name`."""

    subscription_id: str
    resource_group: str
    name: str

    @classmethod
    def parse(cls, resource_id: str) -> VaultRef:
        subscription_id = arm_name(resource_id, "subscriptions")
        resource_group = arm_name(resource_id, "resourceGroups")
        name = arm_name(resource_id, "vaults")
        if subscription_id is None or resource_group is None or name is None:
            raise ValueError(f"{resource_id!r} is not a Key Vault resource id")
        return cls(subscription_id=subscription_id, resource_group=resource_group, name=name)
