"""Emulated Azure: Entra ID token endpoint, ARM (Key Vault, role assignments, storage), Key Vault
data plane, Microsoft Graph. `register(emulator)` adds the routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulator.core import Emulator


def register(emulator: Emulator) -> None:
    """Adds the Azure routes to the emulator's router (filled in by the Azure services)."""
