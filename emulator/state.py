"""The emulator's whole state: one lock, the Azure part and the Power Platform part."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from emulator.azure.state import AzureState
from emulator.powerplatform.state import PowerPlatformState


@dataclass
class State:
    azure: AzureState = field(default_factory=AzureState)
    powerplatform: PowerPlatformState = field(default_factory=PowerPlatformState)
    # One re-entrant lock for every mutation and multi-step read: requests are served on threads.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
