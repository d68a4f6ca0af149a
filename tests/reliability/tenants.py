"""A small access-policy tenant for crash, race and safety-rail tests: fresh ids per test, loaded into
the module's emulator with the Azure scenario loader."""

from __future__ import annotations

import uuid
from typing import Any

from emulator import Emulator
from emulator.azure import scenario as azure_scenario
from remediations.core.model import Scope
from remediations.core.policy import Policy, parse_policy

RG = "rg-reliab"


def _app(name: str) -> dict[str, str]:
    return {
        "appId": str(uuid.uuid4()),
        "displayName": name,
        "servicePrincipalId": str(uuid.uuid4()),
        "secretText": uuid.uuid4().hex,
    }


class SmallTenant:
    """One vault: the app's identity (`list`), two over-privileged identities (`get, list, set` and the
    portal's `Get, List`), a break-glass identity (everything) and a secret value to never leak."""

    def __init__(
        self,
        *,
        extra_policies: list[dict[str, Any]] | None = None,
        break_glass_permissions: list[str] | None = None,
    ) -> None:
        self.tenant = str(uuid.uuid4())
        self.sub = str(uuid.uuid4())
        self.flow = _app("flow-connection")
        self.portal = _app("portal-made")
        self.break_glass = str(uuid.uuid4())
        self.admin = {
            "clientId": str(uuid.uuid4()),
            "clientSecret": uuid.uuid4().hex,
            "objectId": str(uuid.uuid4()),
        }
        self.vault = f"kv-rel-{uuid.uuid4().hex[:8]}"
        self.secret_value = f"s3cr3t-{uuid.uuid4().hex}"
        self.extra_policies = extra_policies or []
        self.break_glass_permissions = break_glass_permissions or ["get", "list", "set", "delete"]

    def scenario(self) -> dict[str, Any]:
        return {
            "tenantId": self.tenant,
            "subscriptions": [{"subscriptionId": self.sub}],
            "admin": self.admin,
            "applications": [
                {
                    "appId": a["appId"],
                    "displayName": a["displayName"],
                    "servicePrincipalId": a["servicePrincipalId"],
                    "passwords": [{"secretText": a["secretText"]}],
                }
                for a in (self.flow, self.portal)
            ],
            "servicePrincipals": [{"id": self.break_glass, "displayName": "break-glass"}],
            "vaults": [
                {
                    "name": self.vault,
                    "resourceGroup": RG,
                    "accessPolicies": [
                        {"objectId": self.admin["objectId"], "permissions": {"secrets": ["list"]}},
                        {
                            "objectId": self.flow["servicePrincipalId"],
                            "permissions": {"secrets": ["get", "list", "set"]},
                        },
                        {
                            "objectId": self.portal["servicePrincipalId"],
                            "permissions": {"secrets": ["Get", "List"]},
                        },
                        {
                            "objectId": self.break_glass,
                            "permissions": {"secrets": self.break_glass_permissions},
                        },
                        *self.extra_policies,
                    ],
                    "secrets": [{"name": "db-password", "value": self.secret_value}],
                }
            ],
        }

    def load(self, emu: Emulator) -> SmallTenant:
        azure_scenario.load(emu.state, self.scenario())
        return self

    @property
    def flow_sp(self) -> str:
        return self.flow["servicePrincipalId"]

    @property
    def portal_sp(self) -> str:
        return self.portal["servicePrincipalId"]

    @property
    def scope(self) -> Scope:
        return Scope(subscription_id=self.sub, resource_group=RG)

    @property
    def vault_id(self) -> str:
        return (
            f"/subscriptions/{self.sub}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/{self.vault}"
        )

    def policy_dict(self, **extra: Any) -> dict[str, Any]:
        return {
            "secretPermissions": {
                "byIdentity": {
                    self.flow_sp: ["get"],
                    self.portal_sp: ["get"],
                    self.admin["objectId"]: ["list"],
                }
            },
            "breakGlass": [self.break_glass],
            "dryRun": False,
            **extra,
        }

    def policy(self, **extra: Any) -> Policy:
        return parse_policy(self.policy_dict(**extra))

    def policies(self, emu: Emulator) -> dict[str, dict[str, list[str]]]:
        with emu.state.lock:
            return {
                p.object_id: dict(p.permissions) for p in emu.state.azure.vaults[self.vault].access_policies
            }


def policy_writes(emu: Emulator, mark: int) -> list[Any]:
    return [r for r in emu.requests.since(mark) if r.is_write and "/accessPolicies/" in r.path]
