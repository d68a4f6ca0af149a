"""Emulated Power Platform: environments, flows, connections, permissions, DLP, flow runner.
`register(emulator)` adds the routes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulator.core import Emulator


def register(emulator: Emulator) -> None:
    """Adds the Power Platform routes to the emulator's router (filled in by the PP services)."""
