"""The lower-limit model of docs/limits.md section 2, as pure functions.

A sweep cannot be faster than the slowest of: each service's throttle budget for the calls it must
make (token buckets and windows), and the latency critical path at the client concurrency used.
`lower_limit(workload, budgets, latency)` gives every term and the maximum, so the benchmark can
print the ratio of a measured wall time to it and name which term binds.

The latencies are assumptions (no published source gives them); the budgets are Azure's documented
ones (ARM: token buckets per subscription x principal; Key Vault: 4,000 per 10 s per vault and 5x
per subscription; Graph: resource units; Power Platform modelled as Dataverse service protection).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


def bucket_time(calls: int, capacity: float, refill_per_s: float) -> float:
    """Token bucket (B, r): T = max(0, (N - B) / r)."""
    if calls <= capacity:
        return 0.0
    return (calls - capacity) / refill_per_s


def window_time(calls: int, cap: int, window_s: float) -> float:
    """Fixed/sliding window (c per w): T = floor((N - 1) / c) * w, 0 when N <= c."""
    if calls <= 0:
        return 0.0
    return ((calls - 1) // cap) * window_s


def latency_time(calls: int, concurrency: int, latency_s: float, longest_chain: int = 1) -> float:
    """T >= max(longest sequential chain, ceil(N / K) * L)."""
    if calls <= 0:
        return 0.0
    return max(longest_chain * latency_s, math.ceil(calls / max(1, concurrency)) * latency_s)


@dataclass(frozen=True)
class Budgets:
    """Azure's documented limits (docs/limits.md section 1); per subscription x principal unless stated."""

    arm_read: tuple[float, float] = (250, 25)  # bucket, refill/s
    arm_write: tuple[float, float] = (200, 10)
    arm_delete: tuple[float, float] = (200, 10)
    kv_vault: tuple[int, float] = (4000, 10.0)  # calls per window (s), per vault
    kv_subscription: tuple[int, float] = (20000, 10.0)
    graph_ru: tuple[int, float] = (3500, 10.0)  # resource units per 10 s, small tenant
    # Assumption: no numeric limit is published for the PP admin REST APIs (docs/limits.md 1d); modelled as
    # Dataverse service protection, 6,000 requests / 300 s per user. None: left out (the emulator has
    # no PP throttling, so a limit "as emulated" must not count it).
    pp: tuple[int, float] | None = (6000, 300.0)
    pp_concurrent: int = 52  # Dataverse: 52 concurrent requests per user


@dataclass(frozen=True)
class Latency:
    """Per-call latencies in seconds (assumptions, configurable) and the client concurrency K."""

    arm: float = 0.040
    kv: float = 0.015
    graph: float = 0.040
    pp: float = 0.080
    concurrency: int = 32  # K for reads
    write_concurrency: int = 16  # K for ARM writes
    pp_concurrency: int | None = None  # K for Power Platform reads (None: K), capped at 52
    # Table storage (the stored deep inventory a quick sweep reads). None: not part of the run as
    # emulated (the bench keeps that inventory in a local file; the app queries its run table).
    table: float | None = None


@dataclass(frozen=True)
class Workload:
    """What one sweep must read and write. `secrets_per_vault` holds S_v for every vault."""

    secrets_per_vault: tuple[int, ...] = ()
    subscriptions: int = 1
    role_assignments: int = 0
    principals: int = 0  # U: unique object ids to resolve
    arm_page_vaults: int = 1000  # P_kv (not documented; the emulator's page size)
    arm_page_role_assignments: int = 1000  # P_ra
    kv_page: int = 25  # Key Vault maxresults ceiling
    access_policy_writes: int = 0  # W_ap
    writes_per_vault_max: int = 1  # the longest chain of writes on one vault (sent sequentially)
    role_assignment_writes: int = 0  # W_ra
    role_assignment_deletes: int = 0  # D_ra
    # Power Platform; None: not part of this sweep.
    flows: int | None = None
    connections: int | None = None  # Key Vault connections (the only ones the engine lists)
    # Flows that reference a Key Vault connection: only they need a permissions GET. None: all flows.
    flows_with_keyvault: int | None = None
    environments: int = 1  # each environment has its own flow and connection lists (pages per env)
    pp_page_flows: int = 250
    pp_page_connections: int = 250
    # The app's call pattern: flows with their definitions from each environment's Dataverse
    # `workflows` pages (5,000 a page), role holders from its users and teams, owner + shares per Key
    # Vault flow. False: the old Flow admin pattern (a flow list, then one GET per flow).
    dataverse_definitions: bool = True
    users_per_environment: int = 0  # Dataverse systemusers rows (5,000 a page)
    dlp_policies: int = 0  # the DLP list has no rules: one GET per policy
    # False: a quick sweep, secret metadata from the stored deep inventory: no Key Vault
    # data-plane call, so the limit is the list pages x latency within the ARM read bucket.
    data_plane: bool = True
    # Table storage returns at most 1,000 entities a query page (docs/limits.md 1f): the stored deep
    # inventory of V vaults is ceil(V / 1000) pages, each asked with the last one's continuation.
    table_page: int = 1000

    @property
    def vaults(self) -> int:
        return len(self.secrets_per_vault)


@dataclass
class Calls:
    """Minimal call counts per service (docs/limits.md section 2 table)."""

    arm_reads: int
    arm_writes: int
    arm_deletes: int
    kv: int
    kv_max_chain: int
    kv_max_per_vault: int
    graph: int
    pp: int | None
    pp_chain: int = 0


def minimal_calls(w: Workload) -> Calls:
    per_sub_vaults = math.ceil(w.vaults / max(1, w.subscriptions))
    per_sub_ras = math.ceil(w.role_assignments / max(1, w.subscriptions))
    arm_reads = w.subscriptions * (
        max(1, math.ceil(per_sub_vaults / w.arm_page_vaults))
        + max(1, math.ceil(per_sub_ras / w.arm_page_role_assignments))
        + 1
    )
    chains = [1 + max(1, math.ceil(s / w.kv_page)) for s in w.secrets_per_vault] if w.data_plane else []
    pp: int | None = None
    pp_chain = 0
    if w.flows is not None:
        envs = max(1, w.environments)
        connections = w.connections or 0
        keyvault_flows = w.flows if w.flows_with_keyvault is None else w.flows_with_keyvault
        common = (
            1  # environment list
            + envs * max(1, math.ceil(connections / envs / w.pp_page_connections))
            + connections  # permission GET per connection
            + 1  # DLP list
            + w.dlp_policies  # GET per DLP policy
        )
        if w.dataverse_definitions:
            pp = (
                common
                + envs * max(1, math.ceil(w.users_per_environment / 5000))  # systemusers + their roles
                + envs  # teams + their roles
                + envs * max(1, math.ceil(w.flows / envs / 5000))  # workflows pages, definitions included
                + keyvault_flows  # RetrieveSharedPrincipalsAndAccess per Key Vault flow (owner: listed)
            )
            # env list -> users -> teams -> workflows page -> shares
            pp_chain = (5 if keyvault_flows else 4) if w.flows else 2
        else:
            pp = (
                common
                + envs  # role holders per environment (who can edit flows)
                + envs * max(1, math.ceil(w.flows / envs / w.pp_page_flows))
                + w.flows  # one GET per flow: the admin list has no definition
                + keyvault_flows  # permission GET per flow that can reach a Key Vault connection
            )
            # env list -> flow list -> flow GET -> its permissions
            pp_chain = (4 if keyvault_flows else 3) if w.flows else 2
    return Calls(
        arm_reads=arm_reads,
        arm_writes=w.access_policy_writes + w.role_assignment_writes,
        arm_deletes=w.role_assignment_deletes,
        kv=sum(chains),
        kv_max_chain=max(chains, default=0),
        kv_max_per_vault=max(chains, default=0),
        graph=math.ceil(w.principals / 1000),
        pp=pp,
        pp_chain=pp_chain,
    )


@dataclass
class LowerLimit:
    calls: Calls
    terms: dict[str, float] = field(default_factory=dict)  # seconds per term
    read_s: float = 0.0  # inventory + plan
    write_s: float = 0.0  # apply
    binding_read: str = ""
    binding_write: str = ""

    @property
    def total_s(self) -> float:
        return self.read_s + self.write_s

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": asdict(self.calls),
            "terms_s": {k: round(v, 3) for k, v in self.terms.items()},
            "read_s": round(self.read_s, 3),
            "write_s": round(self.write_s, 3),
            "total_s": round(self.total_s, 3),
            "binding_read": self.binding_read,
            "binding_write": self.binding_write,
        }


def list_chain(w: Workload, lat: Latency) -> float:
    """A quick sweep's critical path: its paged lists run side by side, each a chain of round trips
    (a page's `nextLink` or continuation is known only when it arrives): the vault pages and the
    role-assignment pages (ARM), and the stored inventory's table pages when Table storage is part
    of the run. Not counted, as this is a lower bound: a directory lookup after the lists, which the
    app makes only when the last vault page or the role assignments name ids no earlier page named
    (it looks up each earlier page's ids while the next one is read)."""
    per_sub_vaults = math.ceil(w.vaults / max(1, w.subscriptions))
    per_sub_ras = math.ceil(w.role_assignments / max(1, w.subscriptions))
    chains = [
        max(1, math.ceil(per_sub_vaults / w.arm_page_vaults)) * lat.arm,
        max(1, math.ceil(per_sub_ras / w.arm_page_role_assignments)) * lat.arm,
    ]
    if lat.table is not None:
        chains.append(max(1, math.ceil(w.vaults / w.table_page)) * lat.table)
    return max(chains)


def lower_limit(w: Workload, b: Budgets | None = None, lat: Latency | None = None) -> LowerLimit:
    """Every term of the model, the read (inventory+plan) limit and the write (apply) limit.

    Reads: max(throttle terms, latency) + a pipeline fill of one ARM round trip (the vault list must
    arrive before any vault host is read). Buckets and windows are per subscription, so the ARM and
    Key Vault subscription terms are divided by N_sub. Writes: max(ARM write bucket, write latency).
    """
    b = b or Budgets()
    lat = lat or Latency()
    c = minimal_calls(w)
    n_sub = max(1, w.subscriptions)
    k = lat.concurrency
    terms: dict[str, float] = {
        "arm_read_bucket": bucket_time(math.ceil(c.arm_reads / n_sub), *b.arm_read),
        "kv_vault_window": window_time(c.kv_max_per_vault, *b.kv_vault),
        "kv_subscription_window": window_time(math.ceil(c.kv / n_sub), *b.kv_subscription),
        "graph_ru_window": window_time(3 * c.graph, *b.graph_ru),
        # The vault list pages are a chain; role assignments and Graph run beside the Key Vault reads.
        "arm_read_latency": latency_time(c.arm_reads, k, lat.arm, math.ceil(w.vaults / w.arm_page_vaults)),
        "kv_latency": latency_time(c.kv, k, lat.kv, c.kv_max_chain),
        "graph_latency": latency_time(c.graph, k, lat.graph, c.graph),
    }
    if not w.data_plane:
        terms["list_chain_latency"] = list_chain(w, lat)
    if c.pp is not None:
        if b.pp is not None:
            terms["pp_window"] = window_time(c.pp, *b.pp)
        terms["pp_latency"] = latency_time(
            c.pp, min(lat.pp_concurrency or k, b.pp_concurrent), lat.pp, c.pp_chain
        )
    terms["arm_write_bucket"] = bucket_time(math.ceil(c.arm_writes / n_sub), *b.arm_write)
    terms["arm_delete_bucket"] = bucket_time(math.ceil(c.arm_deletes / n_sub), *b.arm_delete)
    terms["arm_write_latency"] = latency_time(
        c.arm_writes + c.arm_deletes, lat.write_concurrency, lat.arm, w.writes_per_vault_max
    )
    read_terms = {
        key: value for key, value in terms.items() if not key.startswith(("arm_write", "arm_delete"))
    }
    binding_read = max(read_terms, key=lambda key: read_terms[key])
    fill = lat.arm if c.kv else 0.0
    write_terms = {key: terms[key] for key in ("arm_write_bucket", "arm_delete_bucket", "arm_write_latency")}
    binding_write = max(write_terms, key=lambda key: write_terms[key])
    return LowerLimit(
        calls=c,
        terms=terms,
        read_s=read_terms[binding_read] + fill,
        write_s=write_terms[binding_write],
        binding_read=binding_read,
        binding_write=binding_write if write_terms[binding_write] > 0 else "",
    )
