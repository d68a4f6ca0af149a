"""What one inventory saw (Snapshot), with the reads that failed (InventoryError) and the lookups
detectors make on it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import Field

from remediations.core.model.base import Frozen, derived
from remediations.core.model.keyvault import Identity, RoleAssignment, RoleDefinition, Vault
from remediations.core.model.power_platform import (
    Connection,
    DlpPolicy,
    Environment,
    Flow,
    PowerPlatformScope,
    Share,
)
from remediations.core.model.scope import Scope


class InventoryError(Frozen):
    """A read that failed. Surfaced in the run result; never silently dropped."""

    resource_id: str
    operation: str
    status: int | None = None
    message: str
    retry_after: float | None = None  # seconds the service asked us to wait (throttling), if it said
    # True when the rest of the scope was still inventoried and planned: only the remediations that need
    # this read are skipped for the resource (a refused secret list). False: the run as a whole failed.
    partial: bool = False
    # What would let the read through, when a refusal says what is missing (core/list_grants.py): a
    # phrase that starts with its verb (`grant ...`, `allow the app's network access ...`).
    remedy: str | None = None

    @property
    def label(self) -> str:
        """`HTTP 403` or `no response`: the status as it came back, never a made-up one. A partial
        error with no call behind it (no stored deep inventory for a quick sweep) says why instead."""
        if self.status is not None:
            return f"HTTP {self.status}"
        return self.message if self.partial else "no response"

    @property
    def remedy_note(self) -> str:
        """`; grant ...` (or `; allow ...`) where a failed read is reported, when the refusal said what
        is missing."""
        return f"; {self.remedy}" if self.remedy else ""


class Snapshot(Frozen):
    scope: Scope
    taken_at: datetime
    vaults: tuple[Vault, ...] = ()
    role_assignments: tuple[RoleAssignment, ...] = ()
    role_definitions: tuple[RoleDefinition, ...] = ()
    identities: tuple[Identity, ...] = ()
    environments: tuple[Environment, ...] = ()
    flows: tuple[Flow, ...] = ()
    connections: tuple[Connection, ...] = ()
    shares: tuple[Share, ...] = ()
    dlp_policies: tuple[DlpPolicy, ...] = ()
    errors: tuple[InventoryError, ...] = ()
    power_platform_scope: PowerPlatformScope | None = None
    group_members: dict[str, tuple[str, ...]] = Field(default_factory=dict)  # group id -> member ids
    # False when the inventory did not ask for secret metadata at all: vaults then list no secrets, and
    # a remediation that needs them must not read that as "the vault has none".
    secrets_listed: bool = True
    # The object id the app signs in as, when the run could tell (its token's oid): detectors leave its
    # own list-only access policy entries alone (core/list_grants.py `is_own_list_entry`).
    app_object_id: str | None = None

    def _index(self, name: str, items: tuple[Any, ...], key: Any, keep: Any = None) -> dict[str, Any]:
        """A lower-cased lookup over `items`, built once per tuple (detectors look up every vault and
        identity per access-policy entry: a scan each time is quadratic at 5,000 vaults)."""

        def build() -> dict[str, Any]:
            index: dict[str, Any] = {}
            for item in items:
                if keep is None or keep(item):
                    index.setdefault(key(item).lower(), item)  # the first one wins, as the scans did
            return index

        return derived(name, (items,), build)

    def secret_list_error(self, vault_id: str) -> InventoryError | None:
        """The failed secret list of this vault, if its listing failed."""
        if not self.errors:
            return None
        found: InventoryError | None = self._index(
            "errors", self.errors, lambda e: e.resource_id, lambda e: e.operation == "list secrets"
        ).get(vault_id.lower())
        return found

    def identity(self, object_id: str) -> Identity | None:
        found: Identity | None = self._index("identities", self.identities, lambda i: i.object_id).get(
            object_id.lower()
        )
        return found

    def known_gone(self, object_id: str) -> bool:
        """The directory says the identity no longer exists (not: it could not be asked)."""
        return object_id.lower() in self.gone_identities()

    def gone_identities(self) -> Mapping[str, Identity]:
        """The identities the directory says no longer exist, by lower-cased object id: usually none,
        so a detector that asks about every access-policy entry can stop before the first."""
        gone: Mapping[str, Identity] = self._index(
            "gone",
            self.identities,
            lambda i: i.object_id,
            lambda i: i.exists is False and self.identity(i.object_id) is i,  # the one `identity` finds
        )
        return gone

    def vault(self, vault_id: str) -> Vault | None:
        found: Vault | None = self._index("vaults", self.vaults, lambda v: v.id).get(vault_id.lower())
        return found
