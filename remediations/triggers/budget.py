"""The blast-radius budget of one sweep, shared by every worker of that sweep (Table Storage).

The cap on writes (`maxActionsPerRun`, `VAULTGUARD_MAX_ACTIONS_PER_RUN`) is meant per sweep, not
per worker: a sweep fans out to one message per vault, so a per-worker cap would allow
cap x vaults writes. The sweep creates one entity `(PartitionKey "budget", RowKey sweepId)` with
`Remaining = cap`; a worker takes what its plan needs before applying, with optimistic concurrency
(`If-Match: <etag>`, re-read and retry on 412), so concurrent workers never overspend. Writes a
worker could not get budget for are deferred to the next sweep.

Budget taken and then not used (a write that failed) is not given back: erring on fewer writes.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from remediations.shell.tables import update_if_unchanged
from remediations.triggers.observability import logger

if TYPE_CHECKING:
    from azure.data.tables import TableClient

PARTITION = "budget"
MAX_CONFLICT_RETRIES = 50


class SweepBudget:
    def __init__(self, table: TableClient) -> None:
        self._table = table

    def open(self, sweep_id: str, total: int) -> None:
        """Create the sweep's budget; a second open of the same sweep keeps the first."""
        entity = {"PartitionKey": PARTITION, "RowKey": sweep_id, "Total": total, "Remaining": total}
        with contextlib.suppress(ResourceExistsError):
            self._table.create_entity(entity)

    def remaining(self, sweep_id: str) -> int | None:
        try:
            entity = self._table.get_entity(PARTITION, sweep_id)
        except ResourceNotFoundError:
            return None
        return int(entity["Remaining"])

    def take(self, sweep_id: str, wanted: int) -> int | None:
        """Take up to `wanted` writes; returns how many were granted, None when the sweep has no budget."""
        if wanted <= 0:
            return 0
        for _ in range(MAX_CONFLICT_RETRIES):
            try:
                entity = self._table.get_entity(PARTITION, sweep_id)
            except ResourceNotFoundError:
                return None
            remaining = int(entity["Remaining"])
            granted = min(wanted, max(remaining, 0))
            if granted == 0:
                return 0
            update = {"PartitionKey": PARTITION, "RowKey": sweep_id, "Remaining": remaining - granted}
            if update_if_unchanged(self._table, update, entity.metadata["etag"]) is None:
                continue  # another worker took budget in between: read again
            return granted
        logger().warning(
            "sweep budget %s: too many concurrent updates; deferring this run's writes", sweep_id
        )
        return 0
