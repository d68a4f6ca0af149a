"""The access-policy -> RBAC migration through the real ticket trigger (in-process function app, Azurite,
the emulator): a dry-run ticket returns the reviewable plan and writes nothing; an applied ticket creates
the role assignments, verifies them, switches the vault and audits the steps; a switch that fails after it
took effect is rolled back (switched back, this run's assignments deleted)."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

from emulator import Emulator
from emulator.azure.state import AccessPolicy
from remediations.core import rbac
from tests.emulator.helpers import Raw, admin_token
from tests.functions.conftest import ADMIN_USER, FLOW_SP, VAULT, VAULT_NAME, Call, ticket_body
from tests.functions.test_jobs import _drain

POLICY = {
    "dryRun": False,
    "allowedSecretNames": {FLOW_SP: ["sql-password"]},
    "rbacMigration": {"enabled": True, "vaults": [VAULT_NAME]},
}


@pytest.fixture
def migrate(app_env: dict[str, str], cloud: Emulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Enforcing deployment whose policy opts the sample vault in, and whose identity may list the vault's
    secret names (so flows' secrets get per-secret scopes); the vault back on access policies with no
    role assignments below it afterwards."""
    with cloud.state.lock:
        az = cloud.state.azure
        az.vaults[VAULT_NAME].access_policies.append(
            AccessPolicy(az.tenant_id, az.admin_object_id, permissions={"secrets": ["List"]})
        )
    monkeypatch.setenv("VAULTGUARD_DRY_RUN", "false")
    monkeypatch.setenv("VAULTGUARD_POLICY_JSON", json.dumps(POLICY))
    yield app_env
    cloud.faults.clear()
    with cloud.state.lock:
        az = cloud.state.azure
        az.vaults[VAULT_NAME].enable_rbac_authorization = False
        for name in [n for n, a in az.role_assignments.items() if a.scope.lower().startswith(VAULT.lower())]:
            del az.role_assignments[name]


def _below_vault(cloud: Emulator) -> list[tuple[str, str, str]]:
    with cloud.state.lock:
        return sorted(
            (a.principal_id, a.role_definition_id.rsplit("/", 1)[-1], a.scope)
            for a in cloud.state.azure.role_assignments.values()
            if a.scope.lower().startswith(VAULT.lower())
        )


def _switched(cloud: Emulator) -> bool:
    with cloud.state.lock:
        return cloud.state.azure.vaults[VAULT_NAME].enable_rbac_authorization


def _writes(cloud: Emulator, mark: int) -> list[str]:
    return [
        f"{r.method} {r.path}" for r in cloud.requests.since(mark) if r.method in {"PUT", "PATCH", "DELETE"}
    ]


def _audit_rows(correlation_id: str) -> list[Any]:
    from remediations.shell.audit import TableAuditSink
    from remediations.shell.settings import AppSettings

    return TableAuditSink.from_settings(AppSettings.from_env()).records(correlation_id)


def _ticket(call: Call, **overrides: object) -> dict[str, object]:
    body = ticket_body(f"CHG-{uuid.uuid4().hex[:10]}", remediations=["migrate_to_rbac"], **overrides)
    response = call("tickets", "POST", "/api/remediations", body=body)
    assert response.status_code in {200, 202}, response.get_body()
    result: dict[str, object] = json.loads(response.get_body())
    return result


def _expected(cloud: Emulator) -> list[tuple[str, str, str]]:
    return sorted(
        [
            (ADMIN_USER, rbac.KEY_VAULT_SECRETS_OFFICER, VAULT),
            (FLOW_SP, rbac.KEY_VAULT_SECRETS_USER, f"{VAULT}/secrets/sql-password"),
            (cloud.state.azure.admin_object_id, rbac.KEY_VAULT_READER, VAULT),  # list only: names, no values
        ]
    )


def test_dry_run_ticket_shows_the_plan_then_the_applied_ticket_migrates_in_order(
    call: Call, migrate: dict[str, str], cloud: Emulator
) -> None:
    from remediations.shell.audit import TableAuditSink
    from remediations.shell.settings import AppSettings

    mark = cloud.requests.mark()
    planned = _ticket(call, dryRun=True)
    [action] = planned["plan"]  # type: ignore[misc]
    assert action["remediation_id"] == "migrate_to_rbac" and action["skip_reason"] is None
    assert action["before"][FLOW_SP] == ["access policy secrets: get, list"]
    assert action["after"][FLOW_SP][0] == f"Key Vault Secrets User at {VAULT}/secrets/sql-password"
    assert action["after"][ADMIN_USER] == [f"Key Vault Secrets Officer at {VAULT}"]
    assert [c["type"] for c in action["changes"]] == ["roleAssignment"] * 3 + ["vaultAuthorization"]
    assert _writes(cloud, mark) == [] and not _switched(cloud)

    mark = cloud.requests.mark()
    applied = _ticket(call, dryRun=False)
    assert [o["status"] for o in applied["outcomes"]] == ["applied"], applied["outcomes"]  # type: ignore[index]
    assert _below_vault(cloud) == _expected(cloud) and _switched(cloud)
    writes = _writes(cloud, mark)
    assert [w.split(" ")[0] for w in writes] == ["PUT"] * 3 + ["PATCH"]  # every create before the switch
    # The data plane now authorizes by RBAC: the app's Key Vault Reader lists names, reads no value.
    data = Raw(cloud, admin_token(cloud, "https://vault.azure.net/.default"))
    base = f"https://{VAULT_NAME}.vault.azure.net/secrets"
    assert data.call("GET", f"{base}?api-version=7.4").status_code == 200
    denied = data.call("GET", f"{base}/sql-password?api-version=7.4")
    assert denied.status_code == 403 and denied.json()["error"]["innererror"]["code"] == "ForbiddenByRbac"
    rows = TableAuditSink.from_settings(AppSettings.from_env()).records(str(applied["correlationId"]))
    # Each step audited on its own, intent before and result after, between the action's two rows.
    assert (rows[0].step, rows[0].state, rows[-1].step, rows[-1].state) == (None, "pending", None, "applied")
    steps = [(r.step, r.sequence, r.state) for r in rows[1:-1]]
    assert steps == [(n, seq, state) for n in range(1, 6) for seq, state in ((0, "pending"), (1, "applied"))]
    made = [r.changes[0] for r in rows[1:-1:2] if r.changes]
    assert [c.type for c in made] == ["roleAssignment"] * 3 + ["vaultAuthorization"]
    assert rows[7].reason == "verify the effective secret rights of 3 assignment(s)" and not rows[7].changes
    assert rows[-1].after["steps"][-1] == "switched and re-read: enableRbacAuthorization=true"


def test_a_switch_that_fails_after_taking_effect_is_rolled_back(
    call: Call, migrate: dict[str, str], cloud: Emulator
) -> None:
    # The PATCH reaches the vault (it is switched) but the app is answered 403: it cannot verify the
    # switch, so it switches back, then deletes the assignments it created.
    cloud.faults.status(403, path=f"/vaults/{VAULT_NAME}$", method="PATCH", count=1, after=True)
    mark = cloud.requests.mark()
    result = _ticket(call, dryRun=False)
    [outcome] = result["outcomes"]  # type: ignore[misc]
    assert outcome["status"] == "failed" and outcome["error"].endswith("; rolled back"), outcome
    assert "switch" in outcome["error"]
    assert not _switched(cloud) and _below_vault(cloud) == []
    methods = [w.split(" ")[0] for w in _writes(cloud, mark)]
    assert methods == ["PUT"] * 3 + ["PATCH", "PATCH"] + ["DELETE"] * 3
    steps = outcome["after"]["steps"]
    assert steps[-4] == "rolled back: enableRbacAuthorization=false"
    # The audit says the same step by step: the switch failed, then four rollback writes, each applied.
    rows = _audit_rows(str(result["correlationId"]))
    results = [(r.reason.split(":")[0], r.state) for r in rows if r.step is not None and r.sequence == 1]
    assert [s for _, s in results] == ["applied"] * 4 + ["failed"] + ["applied"] * 4
    assert [r.split(" ")[0] for r, _ in results] == ["create"] * 3 + ["verify", "switch"] + ["roll"] * 4
    with cloud.state.lock:  # the access policies were never touched: access is as before
        entries = {e.object_id for e in cloud.state.azure.vaults[VAULT_NAME].access_policies}
    assert {FLOW_SP, ADMIN_USER} <= entries


def test_a_create_answered_with_an_error_after_it_took_effect_is_deleted_too_and_nothing_switched(
    call: Call, migrate: dict[str, str], cloud: Emulator
) -> None:
    cloud.faults.status(403, path="/secrets/sql-password/providers/", method="PUT", count=1, after=True)
    mark = cloud.requests.mark()
    [outcome] = _ticket(call, dryRun=False)["outcomes"]  # type: ignore[misc]
    assert outcome["status"] == "failed" and outcome["error"].endswith("; rolled back"), outcome
    assert not _switched(cloud) and _below_vault(cloud) == []
    assert "PATCH" not in {w.split(" ")[0] for w in _writes(cloud, mark)}


def test_a_vault_the_policy_does_not_opt_in_is_planned_for_review_and_never_written(
    call: Call, migrate: dict[str, str], cloud: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "VAULTGUARD_POLICY_JSON", json.dumps({**POLICY, "rbacMigration": {"vaults": [VAULT_NAME]}})
    )
    mark = cloud.requests.mark()
    result = _ticket(call, dryRun=False)
    [outcome] = result["outcomes"]  # type: ignore[misc]
    assert outcome["status"] == "skipped" and "rbacMigration.enabled" in outcome["error"]
    assert _writes(cloud, mark) == [] and not _switched(cloud)


def _sweep_and_work(functions: dict[str, Any]) -> dict[str, Any]:
    from remediations.triggers.messages import ScopeMessage
    from remediations.triggers.runs import RunStore

    functions["sweep"].get_user_function()(TimerRequest())
    [body] = _drain(dict(os.environ))
    functions["remediate_worker"].get_user_function()(func.QueueMessage(id=uuid.uuid4().hex, body=body))
    stored = RunStore.from_env().get("scope", ScopeMessage.model_validate_json(body).idempotency_key())
    assert stored is not None and stored.body is not None
    return stored.body


def test_the_timer_sweep_never_migrates_unless_the_policy_says_in_sweeps(
    functions: dict[str, Any], migrate: dict[str, str], cloud: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    mark = cloud.requests.mark()
    swept = _sweep_and_work(functions)  # enforcing, the vault opted in, but a sweep names no remediation
    assert swept["summary"]["findings"] > 0, swept["summary"]
    assert "migrate_to_rbac" not in {a["remediation_id"] for a in swept["plan"]}
    assert not _switched(cloud) and "PATCH" not in {w.split(" ")[0] for w in _writes(cloud, mark)}

    in_sweeps = {**POLICY, "rbacMigration": {**POLICY["rbacMigration"], "inSweeps": True}}  # type: ignore[dict-item]
    monkeypatch.setenv("VAULTGUARD_POLICY_JSON", json.dumps(in_sweeps))
    swept = _sweep_and_work(functions)
    assert "migrate_to_rbac" in {a["remediation_id"] for a in swept["plan"]}
    # The first sweep enforced remove_list_permission on the flow's identity (it keeps `get`) and left the
    # app's own list-only entry alone, which migrates to Key Vault Reader (names, no values); the sweep
    # reads no secret names, so the flow's identity gets Secrets User on the vault.
    assert _switched(cloud)
    assert {(p, role) for p, role, _ in _below_vault(cloud)} == {
        (FLOW_SP, rbac.KEY_VAULT_SECRETS_USER),
        (ADMIN_USER, rbac.KEY_VAULT_SECRETS_OFFICER),
        (cloud.state.azure.admin_object_id, rbac.KEY_VAULT_READER),
    }
