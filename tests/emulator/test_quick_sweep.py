"""The quick sweep (lists only, secret metadata from the last deep inventory) finds and plans
what today's full sweep does, on the same emulator tenant, without a data-plane call per vault."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest
from azure.storage.queue import QueueClient

from emulator import Emulator
from emulator.azure.generator import Generated, generate
from emulator.azure.state import AccessPolicy

VAULTS = 24
NEAR_EXPIRY_S = 5 * 24 * 3600  # inside the policy's default 30-day window


@pytest.fixture(scope="module")
def tenant() -> Generated:
    generated = generate(
        vaults=VAULTS, secrets_per_vault=3, identities=8, noncompliant_share=0.5, rbac_share=0.25, seed=24
    )
    az = generated.state.azure
    for index, vault in enumerate(sorted(az.vaults.values(), key=lambda v: v.name)):
        if vault.enable_rbac_authorization or index % 3 == 0:
            continue  # these refuse the app's secret list (403), as many real vaults do
        # The app's identity may list here: secret metadata, with one secret near expiry.
        vault.access_policies.append(
            AccessPolicy(az.tenant_id, az.admin_object_id, None, {"secrets": ["List"]})
        )
        vault.secrets["secret-00001"].versions[-1].exp = int(time.time()) + NEAR_EXPIRY_S
    return generated


@pytest.fixture(scope="module")
def cloud(tenant: Generated) -> Iterator[Emulator]:
    with Emulator(tenant.state) as emulator:
        yield emulator


def _data_plane(cloud: Emulator, mark: int) -> list[Any]:
    return [r for r in cloud.requests.since(mark) if r.host.endswith(".vault.azure.net")]


def _actions(result: Any) -> list[dict[str, Any]]:
    return [a.model_dump(mode="json") for a in result.plan.actions]


def test_quick_with_the_stored_deep_inventory_finds_and_plans_what_the_full_sweep_does(
    cloud: Emulator, tenant: Generated, monkeypatch: pytest.MonkeyPatch
) -> None:
    from remediations.adapters.clients import AzureClients
    from remediations.core.model import Scope
    from remediations.core.policy import parse_policy
    from remediations.core.request import RunRequest
    from remediations.shell.audit import MemoryAuditSink
    from remediations.shell.pipeline import run
    from remediations.shell.secret_inventory import MemorySecretInventory, inventory_ages

    for name, value in cloud.env.items():
        monkeypatch.setenv(name, value)
    scope = Scope(subscription_id=tenant.state.azure.subscription_id)
    policy = parse_policy({"dryRun": True})
    request = RunRequest(trigger="timer", scope=scope, stop_after="plan", correlation_id="issue24")
    quick_request = request.model_copy(update={"secrets_from": "store"})
    store = MemorySecretInventory()
    with AzureClients() as clients:
        full = run(request, policy, clients, MemoryAuditSink())
        deep = run(request, policy, clients, MemoryAuditSink(), secret_store=store)
        mark = cloud.requests.mark()
        quick = run(quick_request, policy, clients, MemoryAuditSink(), secret_store=store)
        assert _data_plane(cloud, mark) == []
        # Without a stored inventory the quick sweep plans no secret fix: it skips with a reason.
        empty = run(quick_request, policy, clients, MemoryAuditSink(), secret_store=MemorySecretInventory())

    # The tenant exercises both halves: listed vaults with a near-expiry secret, refused ones.
    assert full.snapshot is not None and quick.snapshot is not None
    listed = [v for v in full.snapshot.vaults if v.secrets]
    assert listed and any(e.status == 403 for e in full.inventory_errors)
    assert any(f.detector_id != "list_permission" for f in full.findings)
    assert any(a.remediation_id == "rotate_secret" and a.skip_reason is None for a in full.plan.actions)

    assert deep.findings == full.findings and _actions(deep) == _actions(full)
    # The same findings (ids hash detector, resource, principal and evidence) and the same plan; a
    # finding made from a stored secret list also says when that list was read.
    assert [f.id for f in quick.findings] == [f.id for f in full.findings]
    from_store = [f for f in quick.findings if f.detector_id == "secret_near_expiry"]
    assert from_store
    for finding in from_store:
        vault = next(v for v in quick.snapshot.vaults if finding.resource_id.startswith(v.id + "/"))
        assert vault.secrets_as_of is not None
        assert finding.evidence["secretsAsOf"] == vault.secrets_as_of.isoformat(timespec="seconds")
        assert "from the deep inventory of" in finding.message and "old)" in finding.message
    assert all("secretsAsOf" not in f.evidence and "deep inventory" not in f.message for f in full.findings)
    assert _actions(quick) == _actions(full)
    assert quick.inventory_errors == full.inventory_errors
    # Each vault planned from stored metadata says how old it is.
    ages = inventory_ages(quick.snapshot)
    assert len(ages) == len(listed) and all("deep inventory of" in a and "old)" in a for a in ages)

    skipped = [a for a in empty.plan.actions if a.remediation_id == "rotate_secret"]
    assert skipped and all("no deep secret inventory" in (a.skip_reason or "") for a in skipped)
    assert _actions(empty) != _actions(full)


@pytest.fixture
def app(
    cloud: Emulator, tenant: Generated, storage_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    env = {**storage_env, **cloud.env}
    env.update(
        {
            "VAULTGUARD_RUNS_TABLE": "runs" + storage_env["VAULTGUARD_AUDIT_TABLE"][5:],
            "VAULTGUARD_SUBSCRIPTION_IDS": tenant.state.azure.subscription_id,
            "VAULTGUARD_DRY_RUN": "true",
        }
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def _tick_and_drain(functions: dict[str, Any], env: dict[str, str], timer: str) -> dict[str, Any]:
    """One timer tick, then every enqueued message through the worker; the plan stored per vault."""
    functions[timer].get_user_function()(TimerRequest())
    queue = QueueClient.from_connection_string(env["AzureWebJobsStorage"], env["VAULTGUARD_QUEUE_NAME"])
    bodies: list[bytes] = []
    while batch := list(queue.receive_messages(max_messages=32, visibility_timeout=300)):
        for message in batch:
            bodies.append(base64.b64decode(message.content))
            queue.delete_message(message)
    worker = functions["remediate_worker"].get_user_function()
    for number, body in enumerate(bodies):
        worker(func.QueueMessage(id=f"{timer}-{number}", body=body))
    from remediations.triggers.messages import ScopeMessage
    from remediations.triggers.runs import RunStore

    store = RunStore.from_env()
    plans: dict[str, Any] = {}
    for body in bodies:
        message = ScopeMessage.model_validate_json(body)
        record = store.get("scope", message.idempotency_key())
        assert record is not None and record.body is not None
        plans[message.id.lower()] = (message.depth, record.body["plan"], record.body["notes"])
    return plans


def test_the_timers_deep_then_quick_plan_alike_and_the_quick_one_reads_no_vault(
    functions: dict[str, Any], app: dict[str, str], cloud: Emulator
) -> None:
    mark = cloud.requests.mark()
    deep = _tick_and_drain(functions, app, "deep_sweep")
    assert len(_data_plane(cloud, mark)) >= VAULTS  # every vault's secret list (stored in the run table)
    mark = cloud.requests.mark()
    quick = _tick_and_drain(functions, app, "sweep")
    assert _data_plane(cloud, mark) == []
    assert set(quick) == set(deep) and len(deep) == VAULTS
    assert {d for d, _, _ in deep.values()} == {"deep"} and {d for d, _, _ in quick.values()} == {"quick"}
    for vault_id, (_, plan, _) in deep.items():
        assert json.dumps(quick[vault_id][1], sort_keys=True) == json.dumps(plan, sort_keys=True), vault_id
    assert any("deep inventory of" in note for _, _, notes in quick.values() for note in notes)
