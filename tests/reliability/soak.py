"""The soak summary: what the chaos runs did, printed at the end of the session (`make soak`)."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulator import Emulator
    from tests.reliability.chaos import Convergence


@dataclass
class Summary:
    tenants: int = 0
    sweeps: int = 0
    faults: int = 0
    applied: int = 0
    duplicates: int = 0  # an action applied (written) by more than one run or sweep
    lost: int = 0  # differences from the fault-free end state: changes that never landed
    out_of_scope: int = 0  # ARM writes outside the swept subscription
    # 5xx answered by the app's HTTP functions: the soak drives the engine, not HTTP, so this stays 0 here;
    # tests/security/test_hostile_input.py proves it over >= 1,000 generated requests in `make test`.
    server_errors: int = 0
    leaks: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, done: Convergence, emu: Emulator, *, lost: int = 0, leaks: int = 0) -> None:
        applied = Counter(r.action_id for r in done.rows if r.state == "applied")
        inside = f"/subscriptions/{emu.state.azure.subscription_id}/".lower()
        outside = [
            r
            for r in emu.requests.since(0)
            if r.is_write and r.host == "management.azure.com" and not r.path.lower().startswith(inside)
        ]
        with self._lock:
            self.tenants += 1
            self.sweeps += done.sweeps
            self.faults += emu.faults.injected
            self.applied += sum(applied.values())
            self.duplicates += sum(n - 1 for n in applied.values() if n > 1)
            self.lost += lost
            self.out_of_scope += len(outside)
            self.leaks += leaks

    def line(self) -> str:
        return (
            f"soak: tenants {self.tenants}, sweeps run {self.sweeps}, faults injected {self.faults}, "
            f"actions applied {self.applied}, out-of-scope writes {self.out_of_scope}, "
            f"lost changes {self.lost}, duplicate writes {self.duplicates}, "
            f"5xx {self.server_errors}, leaks {self.leaks}"
        )


SOAK = Summary()
