"""Emulated Power Platform: environments (BAP), flows and the flow runner (Flow), connections
(Power Apps), DLP policies (governance API), and each environment's Dataverse Web API (flows as
`workflows` rows, their shares, users, teams and security roles). `register(emulator)` adds the routes.

Tokens for these hosts: `emulator.powerplatform.token_for(object_id, audience)` mints one in-process
(audiences `FLOW_AUDIENCE` for api.flow.microsoft.com, `POWERAPPS_AUDIENCE` for api.powerapps.com and
api.bap.microsoft.com), as a test or the demo would get one from Entra for a user.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emulator import tokens

if TYPE_CHECKING:
    from emulator.core import Emulator
    from emulator.state import State

FLOW_AUDIENCE = "https://service.flow.microsoft.com/"
POWERAPPS_AUDIENCE = "https://service.powerapps.com/"


def token_for(state: State, object_id: str, audience: str, **claims: Any) -> str:
    """An access token for `object_id` in the emulated tenant (users: add `upn`; apps: add `appid`)."""
    return tokens.issue(
        {
            "oid": object_id,
            "sub": object_id,
            "tid": state.azure.tenant_id,
            "aud": audience,
            "iss": f"https://sts.windows.net/{state.azure.tenant_id}/",
            **claims,
        }
    )


def register(emulator: Emulator) -> None:
    """Adds the Power Platform routes to the emulator's router."""
    from emulator.powerplatform import bap, connections, dataverse, dlp, egress, flows

    bap.register(emulator)
    dataverse.register(emulator)
    dlp.register(emulator)
    connections.register(emulator)
    flows.register(emulator)
    egress.register(emulator)
