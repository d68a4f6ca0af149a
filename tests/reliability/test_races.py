"""Races: two workers on the same vault at once, and a person changing the access policy
between our plan and our write. We send deltas (`accessPolicies/remove`), never the whole list
(`replace` or a vault PUT), so nobody's concurrent change is lost and the final state is right.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from emulator import Emulator
from emulator.wire import Request, Response
from remediations.adapters.clients import AzureClients
from remediations.core.model import Snapshot
from remediations.core.request import RunRequest
from remediations.core.write_check import ALREADY_APPLIED
from remediations.shell.audit import TableAuditSink
from remediations.shell.pipeline import RunResult, run
from remediations.shell.settings import AppSettings
from remediations.shell.write_guard import table_leases
from tests.emulator.helpers import Raw, admin_token
from tests.reliability.tenants import SmallTenant, policy_writes


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def tenant(emu: Emulator, monkeypatch: pytest.MonkeyPatch, storage_env: dict[str, str]) -> SmallTenant:
    t = SmallTenant().load(emu)
    for name, value in emu.env.items():
        monkeypatch.setenv(name, value)
    return t


def _run(
    t: SmallTenant, audit: TableAuditSink, correlation_id: str, snapshot: Snapshot | None = None
) -> RunResult:
    with AzureClients() as clients:
        return run(
            RunRequest(
                trigger="timer",
                scope=t.scope,
                correlation_id=correlation_id,
                reconcile_after=timedelta(minutes=30),
            ),
            t.policy(),
            clients,
            audit,
            snapshot=snapshot,
            leases=table_leases(AppSettings.from_env().storage_connection, None),
        )


def _only_deltas(emu: Emulator, mark: int) -> None:
    """No read-modify-write of whole policy lists: no vault PUT/PATCH, no `replace`."""
    for request in emu.requests.since(mark):
        if request.is_write and request.host == "management.azure.com":
            assert request.path.endswith(("/accessPolicies/remove", "/accessPolicies/add")), request.path


def test_two_workers_on_the_same_vault_at_once_end_in_the_right_state(
    emu: Emulator, tenant: SmallTenant
) -> None:
    """Both workers plan from the same state (one snapshot, read before either writes); the vault's
    lease lets one write at a time, and the second re-reads the vault and finds each change made."""
    t = tenant
    audit = TableAuditSink.from_settings(AppSettings.from_env())
    with AzureClients() as clients:
        before = run(
            RunRequest(trigger="timer", scope=t.scope, correlation_id="look", stop_after="plan"),
            t.policy(),
            clients,
            audit,
        ).snapshot
    assert before is not None
    mark = emu.requests.mark()
    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(lambda cid: _run(t, audit, cid, before), ["worker-a", "worker-b"])
    assert {a.id for a in first.plan.writes} == {a.id for a in second.plan.writes} != set()
    for result in (first, second):
        assert result.count("failed") == 0, [o.error for o in result.outcomes]
        rows = audit.records(result.correlation_id)
        applied = [r.action_id for r in rows if r.state == "applied"]
        assert len(applied) == len(set(applied))  # at most one applied row per action per run
    # Each planned change was sent once: one worker applied it, the other recorded it already applied.
    sent = [r for r in emu.requests.since(mark) if r.is_write and r.host == "management.azure.com"]
    assert len(sent) == sum(len(a.changes) for a in first.plan.writes)
    statuses = sorted(o.status for o in (*first.outcomes, *second.outcomes))
    assert statuses.count("applied") == len(first.plan.writes) == statuses.count("noop")
    assert all(o.error == ALREADY_APPLIED for o in (*first.outcomes, *second.outcomes) if o.status == "noop")
    _only_deltas(emu, mark)
    policies = t.policies(emu)
    assert policies[t.flow_sp] == {"secrets": ["get"]}
    assert policies[t.portal_sp] == {"secrets": ["Get"]}
    assert policies[t.break_glass] == {"secrets": t.break_glass_permissions}
    assert policies[t.admin["objectId"]] == {"secrets": ["list"]}
    # A third run finds nothing to do.
    assert _run(t, audit, "worker-c").plan.writes == ()


def test_a_person_changing_the_policy_during_apply_keeps_their_change(
    emu: Emulator, tenant: SmallTenant
) -> None:
    """Right before our first remove reaches Key Vault, a person adds a new identity and gives the flow
    identity `delete` through ARM. Both survive our writes; only what we planned is removed."""
    t = tenant
    arm = Raw(emu, admin_token(emu))
    newcomer = str(uuid.uuid4())
    done: list[int] = []

    def person_edits_first(request: Request) -> Response | None:
        if request.path.endswith("/accessPolicies/remove") and not done:
            done.append(1)
            for object_id, secrets in ((newcomer, ["get"]), (t.flow_sp, ["delete"])):
                response = arm.call(
                    "PUT",
                    f"https://management.azure.com{t.vault_id}/accessPolicies/add?api-version=2023-07-01",
                    json={
                        "properties": {
                            "accessPolicies": [
                                {
                                    "tenantId": t.tenant,
                                    "objectId": object_id,
                                    "permissions": {"secrets": secrets},
                                }
                            ]
                        }
                    },
                )
                assert response.status_code == 200, response.text
        return None

    audit = TableAuditSink.from_settings(AppSettings.from_env())
    emu.middlewares.append(person_edits_first)
    mark = emu.requests.mark()
    try:
        result = _run(t, audit, "during-edit")
    finally:
        emu.middlewares.remove(person_edits_first)
    assert done, "the concurrent change happened"
    assert result.count("failed") == 0 and result.count("applied") == 2
    ours = [
        r
        for r in policy_writes(emu, mark)
        if r.caller_oid == emu.state.azure.admin_object_id and r.path.endswith("/remove")
    ]
    assert len(ours) == 2
    for request in ours:  # each of our bodies names one principal and only what it removes
        [entry] = json.loads(request.body)["properties"]["accessPolicies"]
        assert entry["objectId"] in {t.flow_sp, t.portal_sp}
    policies = t.policies(emu)
    assert policies[newcomer] == {"secrets": ["get"]}, "the person's new identity survived"
    assert policies[t.flow_sp] == {"secrets": ["get", "delete"]}, "the person's added permission survived"
    assert policies[t.portal_sp] == {"secrets": ["Get"]}
    _only_deltas(emu, mark)
