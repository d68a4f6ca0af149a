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

    def principals_of(self, object_id: str) -> set[str]:
        """The caller and every group it belongs to (nested groups included), from the one directory
        (the Azure state): Power Platform authorizes shares to a group exactly as Graph lists its
        `transitiveMembers`. Ids come both as given and lower-cased (shares keep the scenario's case)."""
        groups = {g for gid in self.azure.groups_of(object_id) for g in (gid, self.azure.principals[gid].id)}
        return {object_id, object_id.lower(), *groups}
