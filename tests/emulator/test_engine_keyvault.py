"""The Key Vault half end to end: the pipeline (inventory -> detect -> plan -> apply -> verify -> audit)
against the emulator with the real `AzureClients` and DefaultAzureCredential from `emu.env`.

Every assertion about a write reads the emulator's request log (method, path, exact body) or the
emulator's state; data-plane effects are checked as the identity itself, through `SecretClient`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets._shared import http_challenge_cache  # SDK-private, as in tests/conftest.py

from emulator import Emulator
from emulator.azure import scenario as azure_scenario
from remediations.adapters.clients import AzureClients
from remediations.core.detect import detect
from remediations.core.model import AccessPolicyChange, Action, Permissions, Plan, Scope
from remediations.core.planning import build_plan
from remediations.core.policy import parse_policy
from remediations.core.request import RunRequest
from remediations.shell.apply import RunContext, apply_plan
from remediations.shell.audit import TableAuditSink
from remediations.shell.inventory import inventory
from remediations.shell.pipeline import run
from remediations.shell.settings import AppSettings

ROOT = Path(__file__).resolve().parents[2]
RG = "rg-engine"
FILLER = 30
ALL_SECRETS = {"db-password", "api-key"} | {f"filler-{i:02d}" for i in range(FILLER)}


class Tenant:
    """Fresh ids for one test; the scenario is loaded into the module's emulator."""

    def __init__(self) -> None:
        self.tenant = str(uuid.uuid4())
        self.sub = str(uuid.uuid4())
        self.flow_app, self.flow_sp, self.flow_secret = str(uuid.uuid4()), str(uuid.uuid4()), uuid.uuid4().hex
        self.portal_app, self.portal_sp, self.portal_secret = (
            str(uuid.uuid4()),
            str(uuid.uuid4()),
            uuid.uuid4().hex,
        )
        self.break_glass = str(uuid.uuid4())
        # vaultguard's own identity: it needs `list` to read secret metadata, and the policy allows it.
        self.admin = {
            "clientId": str(uuid.uuid4()),
            "clientSecret": uuid.uuid4().hex,
            "objectId": str(uuid.uuid4()),
        }
        suffix = uuid.uuid4().hex[:6]
        self.vault = f"kv-eng-{suffix}"
        self.trap_vault = f"kv-trap-{suffix}"

    def scenario(self) -> dict[str, Any]:
        return {
            "tenantId": self.tenant,
            "subscriptions": [{"subscriptionId": self.sub}],
            "admin": self.admin,
            "applications": [
                {
                    "appId": self.flow_app,
                    "displayName": "flow-connection",
                    "servicePrincipalId": self.flow_sp,
                    "passwords": [{"secretText": self.flow_secret}],
                },
                {
                    "appId": self.portal_app,
                    "displayName": "portal-made",
                    "servicePrincipalId": self.portal_sp,
                    "passwords": [{"secretText": self.portal_secret}],
                },
            ],
            "servicePrincipals": [{"id": self.break_glass, "displayName": "break-glass"}],
            "vaults": [
                {
                    "name": self.vault,
                    "resourceGroup": RG,
                    "accessPolicies": [
                        {"objectId": self.admin["objectId"], "permissions": {"secrets": ["list"]}},
                        {"objectId": self.flow_sp, "permissions": {"secrets": ["get", "list", "set"]}},
                        # As the portal writes them: capitalised.
                        {"objectId": self.portal_sp, "permissions": {"secrets": ["Get", "List"]}},
                        {
                            "objectId": self.break_glass,
                            "permissions": {"secrets": ["get", "list", "set", "delete"], "keys": ["get"]},
                        },
                    ],
                    "secrets": [
                        {"name": "db-password", "value": "hunter2"},
                        {"name": "api-key", "value": "k-123"},
                        # More than one Key Vault list page (25 per page): inventory must follow nextLink.
                        *({"name": f"filler-{i:02d}", "value": "f"} for i in range(FILLER)),
                    ],
                },
                {
                    "name": self.trap_vault,
                    "resourceGroup": RG,
                    "accessPolicies": [
                        {"objectId": self.admin["objectId"], "permissions": {"secrets": ["list"]}},
                        {"objectId": self.flow_sp, "permissions": {"secrets": ["get", "list"]}},
                    ],
                    "secrets": [{"name": "other", "value": "o"}],
                },
            ],
        }

    @property
    def scope(self) -> Scope:
        return Scope(subscription_id=self.sub, resource_group=RG)

    def vault_id(self, name: str) -> str:
        return f"/subscriptions/{self.sub}/resourceGroups/{RG}/providers/Microsoft.KeyVault/vaults/{name}"

    def policy(self, **extra: Any) -> dict[str, Any]:
        return {
            "secretPermissions": {
                "byIdentity": {
                    self.flow_sp: ["get"],
                    self.portal_sp: ["get"],
                    self.admin["objectId"]: ["list"],
                }
            },
            "breakGlass": [self.break_glass],
            "exclusions": {"vaults": [self.trap_vault]},
            "dryRun": False,
            **extra,
        }


@pytest.fixture
def tenant(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Tenant:
    t = Tenant()
    azure_scenario.load(emu.state, t.scenario())  # a fresh tenant; the state lock stays the same
    for name, value in emu.env.items():
        monkeypatch.setenv(name, value)
    return t


def _secrets_as(emu: Emulator, t: Tenant, app_id: str, secret: str, vault: str) -> SecretClient:
    credential = ClientSecretCredential(t.tenant, app_id, secret)
    return SecretClient(f"https://{vault}.vault.azure.net/", credential)


def _policies(emu: Emulator, vault: str) -> dict[str, dict[str, list[str]]]:
    with emu.state.lock:
        return {p.object_id: dict(p.permissions) for p in emu.state.azure.vaults[vault].access_policies}


def _writes(emu: Emulator, mark: int) -> list[Any]:
    return [r for r in emu.requests.since(mark) if r.is_write and r.host == "management.azure.com"]


def test_plan_then_apply_narrows_through_real_arm_calls_and_is_idempotent(
    emu: Emulator, tenant: Tenant, storage_env: dict[str, str]
) -> None:
    t = tenant
    policy = parse_policy(t.policy())
    emu.limits.arm_page_size = 1  # the vault list pages too: inventory must follow ARM's nextLink
    try:
        with AzureClients() as clients:
            snapshot = inventory(t.scope, clients)
    finally:
        emu.limits.arm_page_size = 1000
    assert snapshot.errors == ()
    assert {v.name for v in snapshot.vaults} == {t.vault, t.trap_vault}
    assert {s.name for s in snapshot.vault(t.vault_id(t.vault)).secrets} == ALL_SECRETS  # type: ignore[union-attr]
    assert {(i.object_id, i.kind, i.exists) for i in snapshot.identities} >= {
        (t.flow_sp, "servicePrincipal", True),
        (t.break_glass, "servicePrincipal", True),
    }
    plan = build_plan(detect(snapshot, policy), snapshot, policy, dry_run=True)
    by_principal = {a.principal: a for a in plan.actions}
    assert set(by_principal) == {t.flow_sp, t.portal_sp}  # break-glass and the excluded vault untouched
    flow = by_principal[t.flow_sp]
    assert flow.before["secrets"] == ["get", "list", "set"] and flow.after["secrets"] == ["get"]
    assert [c.model_dump() for c in flow.changes if isinstance(c, AccessPolicyChange)] == [
        AccessPolicyChange(
            operation="remove",
            tenant_id=t.tenant,
            object_id=t.flow_sp,
            permissions=Permissions(secrets=("list", "set")),
        ).model_dump()
    ]
    assert by_principal[t.portal_sp].changes[0].permissions.secrets == ("List",)  # type: ignore[union-attr]

    # Before: the flow identity enumerates the vault.
    flow_client = _secrets_as(emu, t, t.flow_app, t.flow_secret, t.vault)
    assert {s.name for s in flow_client.list_properties_of_secrets()} == ALL_SECRETS

    mark = emu.requests.mark()
    audit = TableAuditSink.from_settings(AppSettings.from_env())
    with AzureClients() as clients:
        result = run(RunRequest(trigger="cli", scope=t.scope, correlation_id="run-1"), policy, clients, audit)
    assert [o.status for o in result.outcomes] == ["applied", "applied"] and result.failures == 0
    assert all(o.verified for o in result.outcomes)
    writes = _writes(emu, mark)
    assert sorted(
        (w.method, w.path, json.loads(w.body)["properties"]["accessPolicies"][0]["objectId"]) for w in writes
    ) == sorted(
        [
            ("PUT", f"{t.vault_id(t.vault)}/accessPolicies/remove", t.flow_sp),
            ("PUT", f"{t.vault_id(t.vault)}/accessPolicies/remove", t.portal_sp),
        ]
    )
    bodies = {
        json.loads(w.body)["properties"]["accessPolicies"][0]["objectId"]: json.loads(w.body) for w in writes
    }
    assert bodies[t.flow_sp] == {
        "properties": {
            "accessPolicies": [
                {"tenantId": t.tenant, "objectId": t.flow_sp, "permissions": {"secrets": ["list", "set"]}}
            ]
        }
    }
    # Exact casing: the portal's `List` is sent as `List` (a lower-case `list` would be ignored by Azure).
    assert bodies[t.portal_sp]["properties"]["accessPolicies"][0]["permissions"] == {"secrets": ["List"]}

    policies = _policies(emu, t.vault)
    assert policies[t.flow_sp] == {"secrets": ["get"]}
    assert policies[t.portal_sp] == {"secrets": ["Get"]}
    assert policies[t.break_glass] == {"secrets": ["get", "list", "set", "delete"], "keys": ["get"]}
    assert _policies(emu, t.trap_vault)[t.flow_sp] == {"secrets": ["get", "list"]}

    # After: enumeration is 403, reading an allowed secret by name still works.
    flow_client = _secrets_as(emu, t, t.flow_app, t.flow_secret, t.vault)
    with pytest.raises(HttpResponseError) as denied:
        list(flow_client.list_properties_of_secrets())
    assert denied.value.status_code == 403
    assert denied.value.response.json()["error"]["innererror"]["code"] == "ForbiddenByPolicy"
    assert flow_client.get_secret("db-password").value == "hunter2"
    with pytest.raises(HttpResponseError) as set_denied:
        flow_client.set_secret("db-password", "attacker")
    assert set_denied.value.status_code == 403
    portal_client = _secrets_as(emu, t, t.portal_app, t.portal_secret, t.vault)
    with pytest.raises(HttpResponseError):
        list(portal_client.list_properties_of_secrets())
    assert portal_client.get_secret("api-key").value == "k-123"

    # Audit rows in Azurite: pending then applied, before/after sets, never a secret value.
    rows = audit.records("run-1")
    assert sorted((r.principal, r.state) for r in rows) == sorted(
        [(t.flow_sp, "pending"), (t.flow_sp, "applied"), (t.portal_sp, "pending"), (t.portal_sp, "applied")]
    )
    applied = next(r for r in rows if r.principal == t.flow_sp and r.state == "applied")
    assert applied.before["secrets"] == ["get", "list", "set"] and applied.after["secrets"] == ["get"]
    assert all("hunter2" not in r.model_dump_json() and "k-123" not in r.model_dump_json() for r in rows)

    # A second apply finds nothing to do: zero writes.
    mark = emu.requests.mark()
    with AzureClients() as clients:
        again = run(RunRequest(trigger="cli", scope=t.scope, correlation_id="run-2"), policy, clients, audit)
    assert again.plan.actions == () and again.failures == 0
    assert _writes(emu, mark) == [] and audit.records("run-2") == []


def test_a_remove_the_vault_ignores_is_failed_never_applied(
    emu: Emulator, tenant: Tenant, storage_env: dict[str, str]
) -> None:
    """Key Vault matches `remove` case-sensitively and answers 200 with nothing changed on a mismatch.
    A crafted action that sends `LIST` for a stored `list` must be reported failed."""
    t = tenant
    crafted = Action.create(
        remediation_id="remove_list_permission",
        target=t.vault_id(t.trap_vault),
        principal=t.flow_sp,
        changes=(
            AccessPolicyChange(
                operation="remove",
                tenant_id=t.tenant,
                object_id=t.flow_sp,
                permissions=Permissions(secrets=("LIST",)),
            ),
        ),
        before={"secrets": ["get", "list"]},
        after={"secrets": ["get"]},
        reason="crafted: wrong casing on purpose",
        finding_ids=(),
    )
    plan = Plan(id="crafted", actions=(crafted,), created_at=datetime.now(UTC), dry_run=False)
    audit = TableAuditSink.from_settings(AppSettings.from_env())
    mark = emu.requests.mark()
    context = RunContext(correlation_id="crafted-run", trigger="cli")
    with AzureClients() as clients:
        [outcome] = apply_plan(plan, clients, audit, context)
    assert outcome.status == "failed" and not outcome.verified
    assert "did not take effect" in (outcome.error or "")
    [write] = _writes(emu, mark)
    assert write.status == 200 and json.loads(write.body)["properties"]["accessPolicies"][0][
        "permissions"
    ] == {"secrets": ["LIST"]}
    assert _policies(emu, t.trap_vault)[t.flow_sp] == {"secrets": ["get", "list"]}
    assert [r.state for r in audit.records("crafted-run")] == ["pending", "failed"]

    # A server fault on the write is failed too, after our retries, and nothing changed.
    # Retry-After: 0 keeps the retries (ours, honouring it) fast.
    emu.faults.status(
        500, host=r"management\.azure\.com", path=r"/accessPolicies/remove$", method="PUT", retry_after=0
    )
    try:
        real = crafted.model_copy(
            update={
                "changes": (
                    crafted.changes[0].model_copy(update={"permissions": Permissions(secrets=("list",))}),
                )
            }
        )
        with AzureClients() as clients:
            [faulted] = apply_plan(
                plan.model_copy(update={"actions": (real,)}),
                clients,
                audit,
                RunContext(correlation_id="fault-run", trigger="cli"),
            )
    finally:
        emu.faults.clear()
    assert faulted.status == "failed" and "HTTP 500" in (faulted.error or "")
    assert _policies(emu, t.trap_vault)[t.flow_sp] == {"secrets": ["get", "list"]}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "remediations", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_plan_and_apply_end_to_end_in_a_subprocess(
    emu: Emulator, tenant: Tenant, storage_env: dict[str, str], tmp_path: Path
) -> None:
    t = tenant
    policy_file = tmp_path / "policy.json"
    policy_file.write_text(json.dumps(t.policy()))
    env = {**os.environ, **emu.env, **storage_env}
    scope = f"/subscriptions/{t.sub}/resourceGroups/{RG}"

    mark = emu.requests.mark()
    planned = _cli(env, "plan", "--scope", scope, "--policy", str(policy_file), "--json")
    assert planned.returncode == 0, planned.stderr
    actions = json.loads(planned.stdout)["plan"]["actions"]
    assert sorted(
        (a["principal"], tuple(a["changes"][0]["permissions"]["secrets"])) for a in actions
    ) == sorted([(t.flow_sp, ("list", "set")), (t.portal_sp, ("List",))])
    assert _writes(emu, mark) == []  # plan is a dry run

    applied = _cli(env, "apply", "--scope", scope, "--policy", str(policy_file), "--json")
    assert applied.returncode == 0, applied.stderr
    result = json.loads(applied.stdout)
    assert [o["status"] for o in result["outcomes"]] == ["applied", "applied"]
    assert sorted(w.path for w in _writes(emu, mark)) == [f"{t.vault_id(t.vault)}/accessPolicies/remove"] * 2
    assert _policies(emu, t.vault)[t.flow_sp] == {"secrets": ["get"]}

    rows = TableAuditSink.from_settings(AppSettings.from_env()).records(result["correlation_id"])
    assert sorted(r.state for r in rows) == ["applied", "applied", "pending", "pending"]

    mark = emu.requests.mark()
    again = _cli(env, "apply", "--scope", scope, "--policy", str(policy_file), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["outcomes"] == [] and _writes(emu, mark) == []


def test_count_mode_reads_the_same_pages_and_counts_every_secret(emu: Emulator, tenant: Tenant) -> None:
    """`keep_secrets=False` (the memory-bounded sweep) makes the same Key Vault calls as a full read and
    records the same counts, without keeping (or building) one model per secret."""
    t = tenant
    reads: dict[bool, tuple[dict[str, int | None], list[str]]] = {}
    for keep in (True, False):
        http_challenge_cache.clear()  # both reads pay the per-host 401 challenge
        mark = emu.requests.mark()
        with AzureClients() as clients:
            snapshot = inventory(t.scope, clients, keep_secrets=keep)
        assert snapshot.errors == ()
        requests = emu.requests.since(mark)
        calls = sorted(f"{r.status} {r.method} {r.host}{r.path}" for r in requests if ".vault." in r.host)
        reads[keep] = ({v.name: v.secret_count for v in snapshot.vaults}, calls)
        assert all(bool(v.secrets) is keep for v in snapshot.vaults)
    assert reads[False] == reads[True]
    assert reads[False][0] == {t.vault: len(ALL_SECRETS), t.trap_vault: 1}
    # a 401 challenge per vault host, two pages for the vault with 32 secrets (25 a page), one for the other
    assert [c.split(" ")[0] for c in reads[False][1]] == ["200"] * 3 + ["401"] * 2
