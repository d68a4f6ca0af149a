"""The lower-limit model against docs/limits.md section 2's worked example (V=5,000, S=200,000, F=2,000,
C=3,000, one subscription, U=10,000)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from bench.model import (
    Budgets,
    Latency,
    Workload,
    bucket_time,
    latency_time,
    lower_limit,
    minimal_calls,
    window_time,
)

EXAMPLE = Workload(secrets_per_vault=(40,) * 5000, principals=10_000, flows=2000, connections=3000)


def test_token_bucket_and_window_formulas() -> None:
    assert bucket_time(5000, 200, 10) == pytest.approx(480.0)  # every vault needs a write: 8 min
    assert bucket_time(500, 200, 10) == pytest.approx(30.0)  # 10 % need a fix
    assert bucket_time(200, 200, 10) == 0.0
    assert bucket_time(5010, 250, 25) == pytest.approx(190.4)  # a GET per vault (the c7n pattern)
    assert window_time(4000, 4000, 10) == 0.0
    assert window_time(4001, 4000, 10) == 10.0
    assert window_time(7021, 6000, 300) == 300.0
    assert window_time(0, 6000, 300) == 0.0


def test_latency_is_the_longer_of_the_chain_and_the_spread() -> None:
    assert latency_time(15_000, 64, 0.05) == pytest.approx(11.75)
    assert latency_time(15_000, 16, 0.05) == pytest.approx(46.9)
    # one vault with 25,000 secrets: a chain of 1,000 pages + the challenge
    assert latency_time(1001, 64, 0.05, longest_chain=1001) == pytest.approx(50.05)


def test_worked_example_call_counts() -> None:
    calls = minimal_calls(EXAMPLE)
    assert calls.kv == 15_000  # 5,000 challenges + 10,000 pages of 25
    assert calls.kv_max_chain == 3
    assert calls.arm_reads == 5 + 1 + 1  # 5 pages of 1,000 vaults, role assignments, definitions
    assert calls.graph == 10
    # The Dataverse pattern: env list + 1 users page + 1 teams page + 1 workflows page (definitions
    # included, owners too) + 2,000 shares reads + 12 connection pages + 3,000 connection permissions
    # + the DLP list
    assert calls.pp == 1 + 1 + 1 + 1 + 2000 + 12 + 3000 + 1
    assert calls.pp_chain == 5  # env list -> users -> teams -> workflows -> shares
    per_flow = minimal_calls(
        Workload(secrets_per_vault=(40,), flows=2000, connections=3000, dataverse_definitions=False)
    )
    # docs/limits.md's ~7,021 (+1 page rounding of connections at 250, +1 DLP list)
    assert per_flow.pp == 7021 + 2


def test_worked_example_limits() -> None:
    latency = Latency(kv=0.05, arm=0.1, pp=0.2, concurrency=64)
    compliant = lower_limit(EXAMPLE, Budgets(), latency)
    assert compliant.terms["kv_latency"] == pytest.approx(11.75)
    assert compliant.terms["kv_subscription_window"] == 0.0  # 15,000 < 20,000 per 10 s
    assert compliant.terms["arm_read_bucket"] == 0.0
    assert compliant.terms["graph_ru_window"] == 0.0
    assert compliant.write_s == 0.0
    # PP (5,017 calls at 200 ms, K=52 -> 19.4 s) binds: "about half a minute" in docs/limits.md, which
    # counts 7,021 calls (definitions per flow): 136 rounds x 0.2 s = 27.2 s
    assert compliant.binding_read == "pp_latency"
    assert compliant.terms["pp_latency"] == pytest.approx(19.4)
    per_flow = Workload(
        secrets_per_vault=(40,) * 5000, flows=2000, connections=3000, dataverse_definitions=False
    )
    assert lower_limit(per_flow, Budgets(), latency).terms["pp_latency"] == pytest.approx(27.2)
    assert lower_limit(per_flow, Budgets(), latency).terms["pp_window"] == 300.0  # 7,023 > 6,000 per 5 min

    all_fix = lower_limit(
        Workload(secrets_per_vault=(40,) * 5000, access_policy_writes=5000), Budgets(), latency
    )
    assert all_fix.terms["arm_write_bucket"] == pytest.approx(480.0)
    assert all_fix.binding_write == "arm_write_bucket"

    ten_percent = lower_limit(
        Workload(secrets_per_vault=(40,) * 5000, access_policy_writes=500), Budgets(), latency
    )
    assert ten_percent.write_s == pytest.approx(30.0)


def test_subscriptions_divide_the_buckets() -> None:
    spread = lower_limit(
        Workload(secrets_per_vault=(40,) * 5000, access_policy_writes=5000, subscriptions=10)
    )
    assert spread.terms["arm_write_bucket"] == pytest.approx(30.0)  # 500 per subscription


def test_pp_not_in_sweep_has_no_pp_terms() -> None:
    result = lower_limit(Workload(secrets_per_vault=(3,) * 10))
    assert "pp_latency" not in result.terms
    assert result.calls.pp is None
    assert result.calls.kv == 20


def test_pp_pages_are_per_environment_and_permissions_only_for_keyvault_flows() -> None:
    # The bench's large scenario: 20 environments of 100 flows and 150 Key Vault connections each,
    # definitions read per flow (the engine's path).
    large = Workload(
        secrets_per_vault=(40,),
        flows=2000,
        connections=3000,
        environments=20,
        dataverse_definitions=False,
    )
    calls = minimal_calls(large)
    # env list + 20 role lists + 20 flow pages + 2,000 GETs + 2,000 permissions + 20 connection pages
    # + 3,000 connection permissions + DLP list
    assert calls.pp == 1 + 20 + 20 + 2000 + 2000 + 20 + 3000 + 1
    assert calls.pp_chain == 4
    half = minimal_calls(
        Workload(
            secrets_per_vault=(40,),
            flows=2000,
            connections=3000,
            environments=20,
            flows_with_keyvault=1000,
            dataverse_definitions=False,
        )
    )
    assert calls.pp - half.pp == 1000


def test_pp_window_is_an_assumption_that_can_be_left_out() -> None:
    large = Workload(
        secrets_per_vault=(40,) * 5000,
        flows=2000,
        connections=3000,
        environments=20,
        dataverse_definitions=False,
    )
    latency = Latency(arm=0.04, kv=0.015, pp=0.08, concurrency=32)
    with_window = lower_limit(large, Budgets(), latency)
    assert with_window.terms["pp_window"] == 300.0  # 7,062 calls > 6,000 per 300 s
    assert with_window.binding_read == "pp_window"
    emulated = lower_limit(large, Budgets(pp=None), latency)
    assert "pp_window" not in emulated.terms
    # 7,062 calls / 32 at a time = 221 rounds x 80 ms
    assert emulated.terms["pp_latency"] == pytest.approx(17.68)
    assert emulated.binding_read == "pp_latency"
    # K above Dataverse's 52 concurrent requests does not help
    wide = lower_limit(large, Budgets(pp=None), Latency(pp=0.08, concurrency=128))
    assert wide.terms["pp_latency"] == pytest.approx(math.ceil(7062 / 52) * 0.08)


def test_a_quick_sweep_costs_list_pages_not_vaults() -> None:
    """A quick sweep: no data-plane call; its lists run side by side, each a chain of round trips
    under the bucket; the longest chain binds."""
    quick = Workload(secrets_per_vault=(40,) * 5000, principals=3000, role_assignments=6000, data_plane=False)
    calls = minimal_calls(quick)
    assert calls.kv == 0 and calls.kv_max_chain == 0
    # 5 vault pages + 6 role-assignment pages + one more list, well inside the 250 bucket.
    assert calls.arm_reads == 5 + 6 + 1
    limit = lower_limit(quick, lat=Latency(arm=0.040, graph=0.050, concurrency=32))
    assert limit.terms["kv_latency"] == 0.0 and limit.terms["arm_read_bucket"] == 0.0
    assert limit.binding_read == "list_chain_latency"
    assert limit.read_s == pytest.approx(6 * 0.040)  # the 6 role-assignment pages are the longest chain
    fewer = replace(quick, role_assignments=10)
    assert lower_limit(fewer, lat=Latency(arm=0.040, graph=0.050)).read_s == pytest.approx(5 * 0.040)
    # The stored inventory's table pages (1,000 entities each) bind only when Table is slower than ARM.
    slow_table = Latency(arm=0.040, graph=0.050, table=0.070)
    assert lower_limit(fewer, lat=slow_table).read_s == pytest.approx(5 * 0.070)
    deep = lower_limit(replace(quick, data_plane=True), lat=Latency(arm=0.040, graph=0.040, concurrency=32))
    assert deep.read_s > 10 * limit.read_s
