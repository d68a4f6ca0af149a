"""In-memory state of the emulated Power Platform tenant."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PowerPlatformState:
    pass
