"""Emulated Azure: Entra ID token endpoint, ARM (subscriptions, resource groups, Key Vault vaults and
access policies, role assignments and definitions, storage accounts), the Key Vault data plane and
Microsoft Graph. `register(emulator)` adds the routes and the authentication/throttling middleware."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulator.core import Emulator


def register(emulator: Emulator) -> None:
    """Adds the Azure routes and middleware (bearer auth, api-version, throttling) to the emulator."""
    from emulator.azure import (
        arm_authorization,
        arm_keyvault,
        arm_resources,
        arm_storage,
        entra,
        eventgrid,
        graph,
        keyvault_data,
    )
    from emulator.azure.common import AzureContext, make_middleware

    ctx = AzureContext(emulator)
    emulator.middlewares.append(make_middleware(ctx))
    for module in (entra, arm_resources, arm_keyvault, arm_authorization, arm_storage, keyvault_data, graph):
        module.register(ctx)
    eventgrid.register(ctx)
