"""Whether a Power Platform change is in place, judged from a fresh inventory (pure).

Reconcile (shell/reconcile.py) settles a flow or connection-reference write a crash left without an
outcome from the next run's snapshot, as it settles an access-policy write from the vault's re-read. A
change is named the way its action and audit row name it: the target's resource id and the `before` /
`after` sets the fix planned, never the flow's definition (which may hold secret values):

- a flow's state (`quarantine_flow`): after `{"state": [...]}` on a flow;
- a flow's secure outputs (`restore_secure_outputs`): before `{"unsecured": [action paths]}`;
- the connection a flow's own clientdata names (`move_to_service_connection`): `{"connection": [...]}`
  on a flow, in place when none of the flow's own references (those no connection reference row
  binds) names the old connection and one names the new;
- a connection reference row's connection (the same fix, solution flows): `{"connection": [...]}` on
  a `connectionReferences` target, read through the flows naming the row (the inventory resolves
  each reference to the row's `connectionid`);
- a flow's or connection's shares (`revoke_flow_shares`, `revoke_connection_shares`): the labels in
  `before["shares"]` missing from `after["shares"]` are the revoked ones; in place when none is held;
- a principal's security roles in an environment (`remove_flow_editing_role`): `{"roles": [...]}` on
  the environment, in place when the principal holds none of the roles `before` has and `after` not;
- a DLP policy (`enforce_keyvault_dlp`): the policy the target names (by id, or by display name for
  one the fix creates) holds what `after` adds to `before`: it covers the environments, blocks the
  connector actions (`connector:action`) and keeps the connectors in its Blocked group. The policy
  list is tenant-wide: a change is judged by the run that read its first added environment (or every
  environment), so the environment workers of one sweep do not each record an outcome for it.

A share revocation on a flow that no longer uses a Key Vault connection is moot: the inventory reads
shares only for Key Vault flows, and nothing is exposed through the others' shares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from remediations.core.connection_references import reference_bindings, reference_key
from remediations.core.dlp_shape import DLP_POLICIES, dlp_state
from remediations.core.flow_secure import unsecured
from remediations.core.model import DlpPolicy, Environment, Flow, Snapshot
from remediations.core.model.scope import arm_name
from remediations.core.pp_detect import keyvault_connections
from remediations.core.shares import share_label


@dataclass(frozen=True)
class Reread:
    """What the fresh read shows of one change: gone (nothing is left to change on the target), moot
    (the change no longer matters, for the reason given), in place (`left` None), or not in place with
    what is `left` to do."""

    gone: bool = False
    left: str | None = None
    moot: str | None = None


Sets = dict[str, list[str]]  # an action's `before` / `after`
GONE = Reread(gone=True)
IN_PLACE = Reread()
NO_KEYVAULT = Reread(
    moot="the flow no longer uses a Key Vault connection; nothing is exposed through its shares"
)


def power_platform_prefixes(environment: str) -> tuple[str, ...]:
    """The resource id prefixes of an environment's flows, connections and connection references."""
    return (
        f"/providers/Microsoft.ProcessSimple/environments/{environment}",
        f"/providers/Microsoft.PowerApps/environments/{environment}",
    )


def _first(values: Sets, key: str) -> str:
    return (values.get(key) or [""])[0]


def _flow(snapshot: Snapshot, environment: str, flow_id: str) -> Flow | None:
    return next(
        (
            f
            for f in snapshot.flows
            if f.id.lower() == flow_id.lower() and f.environment.lower() == environment.lower()
        ),
        None,
    )


def _own_connections(flow: Flow) -> set[str]:
    """Connections the flow's own clientdata names (not through a connection reference row)."""
    return {c.lower() for key, c in flow.reference_keys.items() if key not in flow.solution_references}


def _shares_left(snapshot: Snapshot, kind: str, resource_id: str, before: Sets, after: Sets) -> Reread:
    revoked = {s.lower() for s in before.get("shares", [])} - {s.lower() for s in after.get("shares", [])}
    held = sorted(
        share_label(s)
        for s in snapshot.shares
        if s.resource_kind == kind
        and s.resource_id.lower() == resource_id.lower()
        and share_label(s).lower() in revoked
    )
    return Reread(left=f"still shared: {held}") if held else IN_PLACE


def _flow_change(
    snapshot: Snapshot, environment: str, flow_id: str, before: Sets, after: Sets
) -> Reread | None:
    flow = _flow(snapshot, environment, flow_id)
    if flow is None:
        return GONE
    if "state" in after:
        wanted = _first(after, "state")
        return IN_PLACE if flow.state.lower() == wanted.lower() else Reread(left=f"the flow is {flow.state}")
    if "unsecured" in before:
        still = unsecured(flow.definition, before["unsecured"])
        return Reread(left=f"still unsecured: {list(still)}") if still else IN_PLACE
    if "connection" in after:
        old, new = _first(before, "connection").lower(), _first(after, "connection").lower()
        own = _own_connections(flow)
        if old not in own and new in own:
            return IN_PLACE
        return Reread(left=f"the flow's own connection references name {sorted(own) or 'nothing'}")
    if "shares" in after:
        keyvault = {c.id for c in keyvault_connections(snapshot).values()}
        if set(flow.connection_references) & keyvault:  # the inventory's test: it read the shares
            return _shares_left(snapshot, "flow", flow.id, before, after)
        if not {c.lower() for c in flow.connection_references} & {c.lower() for c in keyvault}:
            return NO_KEYVAULT
        return None  # a Key Vault connection named in another case: shares not read, unknown here
    return None


def _reference_change(
    snapshot: Snapshot, environment: str, logical_name: str, before: Sets, after: Sets
) -> Reread | None:
    if "connection" not in after:
        return None
    binding = reference_bindings(snapshot).get(reference_key(environment, logical_name))
    if binding is None:  # no flow names the row any more: nothing binds through it
        return GONE
    wanted = {_first(after, "connection").lower()}
    if binding.connections == wanted:
        return IN_PLACE
    bound = sorted(binding.connections) or "nothing"
    return Reread(left=f"connection reference {logical_name} binds {bound}")


def _connection_change(snapshot: Snapshot, connection_id: str, before: Sets, after: Sets) -> Reread | None:
    if "shares" not in after:
        return None
    if connection_id.lower() not in keyvault_connections(snapshot):
        return GONE  # every Key Vault connection of a read environment is listed
    return _shares_left(snapshot, "connection", connection_id, before, after)


def _added(before: Sets, after: Sets, key: str) -> list[str]:
    """What the change adds under `key` (case-insensitive)."""
    held = {v.lower() for v in before.get(key, [])}
    return [v for v in after.get(key, []) if v.lower() not in held]


def _dlp_owner(before: Sets, after: Sets) -> str | None:
    """The environment whose run judges a DLP change: the first it adds, else the first it names."""
    added = [e for e in _added(before, after, "environments") if e != "*"]
    named = added or [e for e in after.get("environments", []) if e != "*"]
    return min(named, key=str.lower) if named else None


def _judges_dlp(snapshot: Snapshot, before: Sets, after: Sets) -> bool:
    scope = snapshot.power_platform_scope
    if scope is not None and scope.all_environments:
        return True
    owner = _dlp_owner(before, after)
    return owner is not None and any(e.name.lower() == owner.lower() for e in snapshot.environments)


def _dlp_missing(policy: DlpPolicy, before: Sets, after: Sets) -> list[str]:
    """What `after` adds to `before` that `policy` does not hold, described."""
    held = {k: {v.lower() for v in vs} for k, vs in dlp_state(policy).items()}
    blocked = held["blockedConnectors"]
    missing = [
        f"does not cover {e}"
        for e in _added(before, after, "environments")
        if not (policy.environment_type == "AllEnvironments" if e == "*" else policy.covers(e))
    ]
    for rule in _added(before, after, "blockedActions"):
        connector = rule.split(":", 1)[0].lower()
        if not {rule.lower(), f"{connector}:*"} & held["blockedActions"] and connector not in blocked:
            missing.append(f"does not block {rule}")
    missing += [
        f"does not block {c}" for c in _added(before, after, "blockedConnectors") if c.lower() not in blocked
    ]
    return missing


def _dlp_change(snapshot: Snapshot, name: str, before: Sets, after: Sets) -> Reread | None:
    if not _judges_dlp(snapshot, before, after):
        return None
    policy = next((p for p in snapshot.dlp_policies if p.id.lower() == name.lower()), None) or next(
        (p for p in snapshot.dlp_policies if p.display_name == name), None
    )
    if policy is None:  # a policy the fix updated is gone; one it creates was not made
        return GONE if any(before.values()) else Reread(left=f"no DLP policy named {name}")
    missing = _dlp_missing(policy, before, after)
    return (
        Reread(left=f"DLP policy {policy.display_name or name} {'; '.join(missing)}") if missing else IN_PLACE
    )


class Planned(Protocol):
    """A change as an action or its audit row names it."""

    @property
    def target(self) -> str: ...
    @property
    def before(self) -> Sets: ...
    @property
    def after(self) -> Sets: ...
    @property
    def principal(self) -> str | None: ...


def _roles_change(environment: Environment, change: Planned) -> Reread | None:
    if "roles" not in change.after or not change.principal:
        return None
    taken = {r.lower() for r in change.before.get("roles", [])} - {r.lower() for r in change.after["roles"]}
    held = next((r for p, r in environment.role_holders.items() if p.lower() == change.principal.lower()), ())
    still = sorted(r for r in held if r.lower() in taken)
    return Reread(left=f"{change.principal} still holds {still}") if still else IN_PLACE


def is_dlp_target(target: str) -> bool:
    return target.lower().startswith(DLP_POLICIES.lower() + "/")


def reread_power_platform(snapshot: Snapshot, change: Planned) -> Reread | None:
    """The change to its target from `before` to `after` as the snapshot shows it; None when the
    target is not a Power Platform resource of an environment the snapshot read (a DLP change: not
    this run's to judge), or the change is not one of the kinds above (the caller then has no re-read
    of it)."""
    target, before, after = change.target, change.before, change.after
    if is_dlp_target(target):
        return _dlp_change(snapshot, target[len(DLP_POLICIES) + 1 :], before, after)
    read = next((e for e in snapshot.environments if e.id.lower() == target.rstrip("/").lower()), None)
    if read is not None:
        return _roles_change(read, change)
    environment = arm_name(target, "environments")
    if environment is None or not any(e.name.lower() == environment.lower() for e in snapshot.environments):
        return None
    if target.lower().startswith(power_platform_prefixes(environment)[0].lower() + "/flows/"):
        flow_id = arm_name(target, "flows")
        return None if flow_id is None else _flow_change(snapshot, environment, flow_id, before, after)
    if (logical_name := arm_name(target, "connectionReferences")) is not None:
        return _reference_change(snapshot, environment, logical_name, before, after)
    if (connection_id := arm_name(target, "connections")) is not None:
        return _connection_change(snapshot, connection_id, before, after)
    return None
