"""The timer sweep end to end: a timer tick over 50 vaults enqueues 50 messages in Azurite; draining them
with the worker fixes every vault; a second drain writes nothing. Also: the sweep's global budget,
throttling answered by re-queueing, failures poisoned with their reason.

The functions are called in-process (`function_app`'s own handlers) against the emulator + Azurite.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest
from azure.storage.queue import QueueClient

from emulator import Emulator
from emulator.azure.generator import Generated, generate

VAULTS = 50


@pytest.fixture(scope="module")
def tenant() -> Generated:
    return generate(vaults=VAULTS, secrets_per_vault=1, identities=10, noncompliant_share=0.5, seed=3)


@pytest.fixture(scope="module")
def cloud(tenant: Generated) -> Iterator[Emulator]:
    with Emulator(tenant.state) as emulator:
        yield emulator


@pytest.fixture
def app(
    cloud: Emulator, tenant: Generated, storage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    env = {**storage_env, **cloud.env}
    env.update(
        {
            "VAULTGUARD_RUNS_TABLE": "runs" + storage_env["VAULTGUARD_AUDIT_TABLE"][5:],
            "VAULTGUARD_SUBSCRIPTION_IDS": tenant.state.azure.subscription_id,
            "VAULTGUARD_DRY_RUN": "false",
            "VAULTGUARD_MAX_ACTIONS_PER_RUN": "1000",
            "VAULTGUARD_POLICY_JSON": json.dumps({"dryRun": False, "maxActionsPerRun": 1000}),
        }
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _queue(env: dict[str, str], suffix: str = "") -> QueueClient:
    return QueueClient.from_connection_string(
        env["AzureWebJobsStorage"], env["VAULTGUARD_QUEUE_NAME"] + suffix
    )


def _receive_all(env: dict[str, str]) -> list[Any]:
    queue = _queue(env)
    messages: list[Any] = []
    while True:
        batch = list(queue.receive_messages(max_messages=32, visibility_timeout=300))
        if not batch:
            return messages
        messages.extend(batch)


def _listing(emu: Emulator) -> dict[str, list[tuple[str, list[str]]]]:
    with emu.state.lock:
        return {
            v.name: [(p.object_id, list(p.permissions.get("secrets", []))) for p in v.access_policies]
            for v in emu.state.azure.vaults.values()
        }


def _writes(emu: Emulator, mark: int) -> list[Any]:
    return [r for r in emu.requests.since(mark) if r.method == "PUT" and "/accessPolicies/" in r.path]


def _run_worker(functions: dict[str, Any], body: bytes, message_id: str) -> None:
    functions["remediate_worker"].get_user_function()(func.QueueMessage(id=message_id, body=body))


def _drain(functions: dict[str, Any], items: list[tuple[bytes, str]]) -> None:
    """Eight invocations at a time, as host.json's queue batchSize lets the host run them."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda item: _run_worker(functions, *item), items))


def test_a_timer_tick_over_50_vaults_enqueues_50_and_the_worker_fixes_every_vault(
    functions: dict[str, Any], app: dict[str, str], cloud: Emulator, tenant: Generated
) -> None:
    assert len(tenant.noncompliant_vaults) > 10
    mark = cloud.requests.mark()
    functions["sweep"].get_user_function()(TimerRequest())
    # One list call per subscription, no GET per vault, and the workers below no data-plane call.
    arm_reads = [r for r in cloud.requests.since(mark) if r.host == "management.azure.com"]
    assert [r.path.rsplit("/", 1)[-1] for r in arm_reads] == ["vaults"]

    received = _receive_all(app)
    assert len(received) == VAULTS
    bodies = [base64.b64decode(m.content) for m in received]
    scopes = [json.loads(b) for b in bodies]
    assert {s["kind"] for s in scopes} == {"vault"} and {s["dryRun"] for s in scopes} == {False}
    with cloud.state.lock:
        all_ids = {v.arm_id.lower() for v in cloud.state.azure.vaults.values()}
    assert {s["id"].lower() for s in scopes} == all_ids
    assert len({s["sweepId"] for s in scopes}) == 1

    mark = cloud.requests.mark()
    _drain(functions, [(body, message.id) for message, body in zip(received, bodies, strict=True)])
    assert not [r for r in cloud.requests.since(mark) if r.host.endswith(".vault.azure.net")]
    queue = _queue(app)
    for message in received:
        queue.delete_message(message)  # what the host does after successful invocations

    # Every vault fixed: nobody can `list` any more; `Get` is kept.
    after = _listing(cloud)
    assert all("list" not in {p.lower() for p in perms} for v in after.values() for _, perms in v)
    for name in tenant.noncompliant_vaults:
        owner_perms = [perms for _, perms in after[name]]
        assert ["Get"] in owner_perms
    # One write per identity that held `list`: the owner of each non-compliant vault, and orphans.
    expected = len(tenant.noncompliant_vaults) + len(tenant.orphaned_object_ids)
    assert len(_writes(cloud, mark)) == expected

    # The same messages again (a redelivery): nothing is written, the run store marks duplicates.
    mark = cloud.requests.mark()
    _drain(functions, [(body, m.id + "-again") for m, body in zip(received, bodies, strict=True)])
    assert _writes(cloud, mark) == []
    assert _listing(cloud) == after
    from remediations.triggers.messages import ScopeMessage
    from remediations.triggers.runs import RunStore

    store = RunStore.from_env()
    records = [store.get("scope", ScopeMessage.model_validate_json(b).idempotency_key()) for b in bodies]
    assert all(r is not None and r.body is not None for r in records)
    assert {(r.body["deliveries"], r.body["duplicate"]) for r in records if r and r.body} == {(2, True)}

    # Audit rows of the workers' writes: trigger timer, caller "sweep", the sweep id as ticket id.
    from azure.data.tables import TableClient

    audit = TableClient.from_connection_string(app["AzureWebJobsStorage"], app["VAULTGUARD_AUDIT_TABLE"])
    rows = list(audit.query_entities("trigger eq 'timer'"))
    written = [r for r in rows if r["state"] != "skipped"]
    assert len(written) == 2 * expected  # pending + applied per write
    assert {(r["caller"], r["ticket_id"]) for r in rows} == {("sweep", scopes[0]["sweepId"])}
    assert {r["state"] for r in written} == {"pending", "applied"}
    # Skipped and audited as such: rotation on every vault in both drains (the app's identity may not
    # list secrets there), and in the first an orphan's `list` removal, covered by the removal of its
    # whole entry (one write per entry).
    skipped = [r for r in rows if r["state"] == "skipped"]
    by_remediation = {
        rid: sorted({r["reason"].split(" failed ")[0] for r in skipped if r["remediation_id"] == rid})
        for rid in {r["remediation_id"] for r in skipped}
    }
    assert sum(r["remediation_id"] == "rotate_secret" for r in skipped) == 2 * VAULTS
    # The tick is a quick sweep: no secret list per vault, and no deep inventory stored yet.
    assert all(
        "no deep secret inventory" in r["reason"] for r in skipped if r["remediation_id"] == "rotate_secret"
    )
    covered = [r for r in skipped if r["remediation_id"] == "remove_list_permission"]
    assert len(covered) == len(tenant.orphaned_object_ids), by_remediation
    assert all(r["reason"].startswith("covered by remove_orphaned_principal") for r in covered)
    # The refused secret list is reported on each scope's run record, and did not fail the scope.
    first = records[0]
    assert first is not None and first.body is not None
    assert first.body["summary"]["readErrors"] == 1 and first.body["summary"]["failures"] == 0
    assert any("list secrets" in n and "no deep secret inventory" in n for n in first.body["notes"])


def test_the_blast_radius_cap_is_one_budget_for_the_whole_sweep(
    functions: dict[str, Any],
    app: dict[str, str],
    cloud: Emulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cap of 3 over a sweep whose vaults need more writes: 3 writes in total across all workers."""
    _reintroduce_list(cloud, count=8)
    monkeypatch.setenv("VAULTGUARD_MAX_ACTIONS_PER_RUN", "3")
    functions["sweep"].get_user_function()(TimerRequest())
    received = _receive_all(app)
    mark = cloud.requests.mark()
    _drain(functions, [(base64.b64decode(m.content), m.id) for m in received])  # concurrent: ETags
    assert len(_writes(cloud, mark)) == 3
    sweep_id = json.loads(base64.b64decode(received[0].content))["sweepId"]
    from remediations.triggers.budget import SweepBudget
    from remediations.triggers.runs import RunStore

    assert SweepBudget(RunStore.from_env().table).remaining(sweep_id) == 0


def _reintroduce_list(emu: Emulator, count: int) -> None:
    with emu.state.lock:
        vaults = [v for v in emu.state.azure.vaults.values() if v.access_policies][:count]
        for vault in vaults:
            entry = vault.access_policies[0]
            secrets = entry.permissions.setdefault("secrets", [])
            if "List" not in secrets:
                secrets.append("List")


def _one_vault_message(cloud: Emulator) -> tuple[bytes, str]:
    from remediations.triggers.messages import ScopeMessage

    with cloud.state.lock:
        vault = next(v for v in cloud.state.azure.vaults.values() if v.access_policies)
    message = ScopeMessage.for_scope("vault", vault.arm_id, "sweep-test-1", dry_run=False)
    return message.model_dump_json().encode(), vault.name


def test_throttling_puts_the_message_back_with_a_delay_and_succeeds(
    functions: dict[str, Any], app: dict[str, str], cloud: Emulator
) -> None:
    body, name = _one_vault_message(cloud)
    # More 429s than the adapters' retries (5 attempts) absorb, with a short Retry-After.
    rule = cloud.faults.status(
        429, host="management.azure.com", path=f"/vaults/{name}$", method="GET", count=5, retry_after=0.01
    )
    try:
        _run_worker(functions, body, "throttled-1")  # no exception: the invocation succeeds
    finally:
        rule.count = 0
    queue = _queue(app)
    assert queue.get_queue_properties().approximate_message_count == 1
    assert list(queue.peek_messages()) == []  # invisible for now: the visibility delay
    from remediations.triggers.messages import ScopeMessage
    from remediations.triggers.runs import RunStore

    key = ScopeMessage.model_validate_json(body).idempotency_key()
    stored = RunStore.from_env().get("scope", key)
    assert stored is not None and stored.status == "throttled-requeued"
    assert stored.body is not None and stored.body["summary"]["throttled"] == 1


def test_a_failing_scope_raises_for_retry_then_is_poisoned_with_its_reason(
    functions: dict[str, Any], app: dict[str, str], cloud: Emulator
) -> None:
    from remediations.triggers import jobs

    body, name = _one_vault_message(cloud)
    rule = cloud.faults.status(403, host="management.azure.com", path=f"/vaults/{name}$", method="GET")
    try:
        with pytest.raises(jobs.ScopeRunFailed, match="HTTP 403"):
            jobs.work(body, message_id="failing", dequeue_count=1)
        jobs.work(body, message_id="failing", dequeue_count=jobs.MAX_DEQUEUE_COUNT)  # last try: no raise
    finally:
        rule.count = 0
    poison = _queue(app, "-poison")
    [record] = [json.loads(base64.b64decode(m.content)) for m in poison.receive_messages()]
    assert record["message"] == body.decode()
    assert record["reason"].startswith("ScopeRunFailed") and "HTTP 403" in record["reason"]
