"""Safety rails against the emulator: break-glass identities are never touched, the last
identity able to manage a vault keeps that ability, a dry run writes nothing (request log: 0 writes on
any host, no audit row), and the per-run cap holds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest

from emulator import Emulator
from emulator.azure.roles import RoleDefinition
from emulator.azure.state import RoleAssignment
from remediations.adapters.clients import AzureClients
from remediations.core.request import RunRequest
from remediations.shell.audit import TableAuditSink
from remediations.shell.pipeline import run
from remediations.shell.settings import AppSettings
from tests.reliability.tenants import SmallTenant, policy_writes


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator() as emulator:
        yield emulator


def _load(emu: Emulator, monkeypatch: pytest.MonkeyPatch, t: SmallTenant) -> SmallTenant:
    t.load(emu)
    for name, value in emu.env.items():
        monkeypatch.setenv(name, value)
    return t


def _principals_written(emu: Emulator, mark: int) -> set[str]:
    return {
        entry["objectId"]
        for request in policy_writes(emu, mark)
        for entry in json.loads(request.body)["properties"]["accessPolicies"]
    }


def test_break_glass_is_never_touched_even_when_named_by_the_policy_as_over_privileged(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, storage_env: dict[str, str]
) -> None:
    t = _load(emu, monkeypatch, SmallTenant())
    # The allow-list says break-glass may only `get`; the break-glass list still wins.
    policy = t.policy_dict()
    policy["secretPermissions"]["byIdentity"][t.break_glass] = ["get"]
    from remediations.core.policy import parse_policy

    audit = TableAuditSink.from_settings(AppSettings.from_env())
    mark = emu.requests.mark()
    with AzureClients() as clients:
        result = run(
            RunRequest(trigger="timer", scope=t.scope, correlation_id="bg"),
            parse_policy(policy),
            clients,
            audit,
        )
    assert result.count("applied") == 2
    assert t.break_glass not in {a.principal for a in result.plan.actions}
    assert t.break_glass not in _principals_written(emu, mark)
    assert t.policies(emu)[t.break_glass] == {"secrets": t.break_glass_permissions}
    assert all(r.principal != t.break_glass for r in audit.records("bg"))


def test_the_last_identity_able_to_manage_the_vault_keeps_it(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, storage_env: dict[str, str]
) -> None:
    """Break-glass can only read here, so the flow identity (`set`) is the vault's last secret manager:
    its `set` must stay; the action is recorded `skipped` with the reason and never sent."""
    t = _load(emu, monkeypatch, SmallTenant(break_glass_permissions=["get"]))
    with emu.state.lock:
        # No Owner/Contributor/Key Vault (Contributor|Administrator) assignment covers the vault: the app
        # holds a custom role that can read vaults and write access policies, nothing more.
        az = emu.state.azure
        custom = RoleDefinition(
            str(uuid.uuid4()),
            "vaultguard remediator (custom)",
            "test",
            role_type="CustomRole",
            actions=(
                "Microsoft.KeyVault/vaults/read",
                "Microsoft.KeyVault/vaults/accessPolicies/write",
                "Microsoft.Authorization/*/read",
            ),
        )
        az.role_definitions[custom.id.lower()] = custom
        for assignment in list(az.role_assignments.values()):
            del az.role_assignments[assignment.name]
        mine = RoleAssignment(str(uuid.uuid4()), f"/subscriptions/{t.sub}", custom.id, az.admin_object_id)
        az.role_assignments[mine.name] = mine
    audit = TableAuditSink.from_settings(AppSettings.from_env())
    mark = emu.requests.mark()
    with AzureClients() as clients:
        result = run(
            RunRequest(trigger="timer", scope=t.scope, correlation_id="last"), t.policy(), clients, audit
        )
    flow_actions = [a for a in result.plan.actions if a.principal == t.flow_sp]
    assert flow_actions and all(a.skip_reason and "last identity" in a.skip_reason for a in flow_actions)
    assert t.flow_sp not in _principals_written(emu, mark)
    assert t.policies(emu)[t.flow_sp] == {"secrets": ["get", "list", "set"]}
    rows = [r for r in audit.records("last") if r.principal == t.flow_sp]
    assert [r.state for r in rows] == ["skipped"] and "last identity" in rows[0].reason
    assert t.policies(emu)[t.portal_sp] == {"secrets": ["Get"]}  # the others are still fixed


def test_a_dry_run_writes_nothing_anywhere(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, storage_env: dict[str, str]
) -> None:
    t = _load(emu, monkeypatch, SmallTenant())
    audit = TableAuditSink.from_settings(AppSettings.from_env())
    mark = emu.requests.mark()
    before = t.policies(emu)
    with AzureClients() as clients:
        result = run(
            RunRequest(trigger="timer", scope=t.scope, correlation_id="dry", reconcile_after=timedelta(0)),
            t.policy(dryRun=True),
            clients,
            audit,
        )
    assert len(result.plan.writes) == 2 and result.plan.dry_run
    assert {o.status for o in result.outcomes} == {"skipped"}
    requests = emu.requests.since(mark)
    writes = [
        r
        for r in requests
        if r.is_write
        and r.host != "login.microsoftonline.com"
        and not (r.host == "graph.microsoft.com" and r.path.endswith("/getByIds"))
    ]
    assert requests and writes == [], [(w.method, w.host, w.path) for w in writes]
    assert t.policies(emu) == before and audit.records("dry") == []


def test_the_cap_defers_what_is_over_it(
    emu: Emulator, monkeypatch: pytest.MonkeyPatch, storage_env: dict[str, str]
) -> None:
    t = _load(emu, monkeypatch, SmallTenant())
    audit = TableAuditSink.from_settings(AppSettings.from_env())
    mark = emu.requests.mark()
    with AzureClients() as clients:
        result = run(
            RunRequest(trigger="timer", scope=t.scope, correlation_id="cap"),
            t.policy(maxActionsPerRun=1),
            clients,
            audit,
        )
    assert result.count("applied") == 1 and result.count("deferred") == 1
    assert len([w for w in policy_writes(emu, mark) if w.status == 200]) == 1
