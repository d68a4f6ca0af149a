"""Optimistic concurrency on Azure Table storage, written once for every table the app shares between
workers (the sweep's write budget, run records, vault leases): write a row only if it still has the
ETag it was read with (`If-Match`), and tell the caller when another writer changed it first
(HTTP 412 Precondition Failed, https://learn.microsoft.com/rest/api/storageservices/update-entity2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError, ResourceModifiedError
from azure.data.tables import UpdateMode

if TYPE_CHECKING:
    from azure.data.tables import TableClient


def update_if_unchanged(
    table: TableClient, entity: Mapping[str, Any], etag: str | None, *, mode: UpdateMode = UpdateMode.MERGE
) -> str | None:
    """Write `entity` if its row still has `etag`: the row's new ETag, or None when another writer
    changed the row since it was read (read it again). Any other error is raised."""
    try:
        written = table.update_entity(
            entity, mode=mode, etag=etag, match_condition=MatchConditions.IfNotModified
        )
    except HttpResponseError as error:
        if isinstance(error, ResourceModifiedError) or error.status_code == 412:
            return None
        raise
    return str(written["etag"])
