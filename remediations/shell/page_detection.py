"""Per-vault detection on the vault list's pages as they arrive (a quick run's), while the next page is
read: after the last page only that page's vaults and the detectors that look across vaults are left.

Only detectors registered `per_vault` run here (core/detect.py); `detect` reuses their findings only on
a snapshot holding exactly the vault objects they were made from, under the same effective policy, and
runs them again otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime

from remediations.core.detect import VaultFindings, detect_vaults
from remediations.core.flow_allow_list import effective_policy
from remediations.core.model import Scope, Snapshot, Vault
from remediations.core.policy import Policy


class PageDetection:
    """Handed each page's vaults as the snapshot will hold them (stored secrets joined); `found` is what
    the per-vault detectors found on all of them, in list order. `taken_at` is the snapshot's time, which
    the inventory must be given, as the expiry detectors judge against it."""

    def __init__(self, scope: Scope, policy: Policy, app_object_id: str | None = None) -> None:
        self.taken_at = datetime.now(UTC)
        self._scope, self._policy, self._app = scope, policy, app_object_id
        self.found: VaultFindings | None = None

    def page(self, vaults: list[Vault]) -> None:
        # The app's object id as the snapshot will hold it: its own list-only entries are left alone.
        page = Snapshot(
            scope=self._scope, taken_at=self.taken_at, vaults=tuple(vaults), app_object_id=self._app
        )
        # A page holds no flow, so this is the policy as configured; `detect` compares it with the
        # whole snapshot's and detects again when flows derived other allow-lists.
        found = detect_vaults(page, effective_policy(self._policy, page))
        self.found = found if self.found is None else self.found.then(found)
