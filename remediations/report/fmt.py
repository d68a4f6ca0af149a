"""Plain-text helpers shared by the markdown and HTML renderers (no escaping here)."""

from __future__ import annotations

from datetime import UTC, datetime

from remediations.core.model import Action
from remediations.report.model import ReportData

PERMISSION_KINDS = ("secrets", "keys", "certificates", "storage")


def short_resource(resource_id: str) -> str:
    """`/subscriptions/.../vaults/kv-payroll` -> `kv-payroll`; secret scopes keep `vault/secret`."""
    parts = [p for p in resource_id.split("/") if p]
    lowered = [p.lower() for p in parts]
    if "secrets" in lowered and lowered.index("secrets") >= 1 and lowered.index("secrets") + 1 < len(parts):
        i = lowered.index("secrets")
        return f"{parts[i - 1]}/{parts[i + 1]}"
    return parts[-1] if parts else resource_id


def resource_name(report: ReportData, resource_id: str) -> str:
    """A flow, connection, vault or secret by the name a reader knows (`kv-payroll/db-password`)."""
    return report.name_of(resource_id) or short_resource(resource_id)


def principal_name(report: ReportData, principal: str | None) -> str:
    """`Ada Admin (object id)`: the name first, the id kept for a reader who must look it up."""
    if not principal:
        return "-"
    name = report.name_of(principal)
    return f"{name} ({principal})" if name else principal


def permission_sets(perms: dict[str, list[str]]) -> str:
    """`secrets: get, set; keys: get` (empty kinds left out; `none` when nothing is granted)."""
    ordered = sorted(
        perms,
        key=lambda k: (
            k not in PERMISSION_KINDS,
            PERMISSION_KINDS.index(k) if k in PERMISSION_KINDS else 0,
            k,
        ),
    )
    shown = [f"{k}: {', '.join(perms[k])}" for k in ordered if perms[k]]
    return "; ".join(shown) if shown else "none"


def permission_diff(before: dict[str, list[str]], after: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """(removed, added) as `kind:permission` (secrets shown without a prefix), case-sensitive like Azure."""
    removed: list[str] = []
    added: list[str] = []
    for kind in sorted(set(before) | set(after), key=lambda k: (k not in PERMISSION_KINDS, k)):
        old, new = before.get(kind, []), after.get(kind, [])
        prefix = "" if kind == "secrets" else f"{kind}:"
        removed += [f"{prefix}{p}" for p in old if p not in new]
        added += [f"{prefix}{p}" for p in new if p not in old]
    return removed, added


def action_status(report: ReportData, action: Action, deferred: bool = False) -> str:
    outcome = report.outcome_for(action.id)
    if outcome is not None:
        if outcome.status == "skipped" and outcome.error == "dry run":
            return "planned"
        return outcome.status
    if deferred:
        return "deferred"
    return "skipped" if action.skip_reason else "planned"


MIGRATION = "migrate_to_rbac"
MIGRATION_HEADERS = ("Status", "Vault", "Identity", "Access policy today", "Under RBAC (role at scope)")


def migration_rows(report: ReportData) -> list[tuple[str, str, str, str, str]]:
    """The access-policy -> RBAC migration, per vault and identity: what it holds today -> role + scope.
    The vault's own row is its switch (or why it is not switched)."""
    rows = []
    for action in [a for a in (*report.actions, *report.deferred) if a.remediation_id == MIGRATION]:
        status = action_status(report, action, action in report.deferred)
        vault = short_resource(action.target)
        switch = "; ".join(action.after.get("vault", []))
        rows.append((status, vault, "(the vault)", "; ".join(action.before.get("vault", [])), switch))
        for identity in sorted(set(action.before) - {"vault", "steps"}):
            today, later = action.before[identity], action.after.get(identity, [])
            shown = [_short_scope(x) for x in later]
            rows.append((status, vault, identity, "; ".join(today), "; ".join(shown)))
        if action.skip_reason:
            rows.append((status, vault, "(not applied)", "", action.skip_reason))
    return rows


def _short_scope(text: str) -> str:
    """`Key Vault Secrets User at /subscriptions/.../vaults/kv/secrets/a` -> `... at kv/a`."""
    role, at, scope = text.partition(" at /")
    return f"{role} at {short_resource('/' + scope)}" if at else text


def when(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
