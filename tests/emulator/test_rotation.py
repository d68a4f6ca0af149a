"""rotate_secret against the emulator, through the real SDKs: each rotator, the pending follow-up, the
sweep's near-expiry case, and a 503 from Key Vault mid-way. Every test scans the logs, the audit rows,
the outcomes and the emulator's request log for every secret value the emulator holds (old and new)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential

from emulator import Emulator
from emulator.azure.state import (
    AccessPolicy,
    ResourceGroup,
    Secret,
    SecretVersion,
    StorageAccount,
    Vault,
)
from remediations.adapters.clients import AzureClients
from remediations.core.model import Outcome, Plan, Scope
from remediations.core.policy import Policy, parse_policy
from remediations.core.request import RunRequest
from remediations.fixes.rotate_secret import plan_for_targets
from remediations.shell.apply import RunContext, apply_plan
from remediations.shell.audit import MemoryAuditSink
from remediations.shell.inventory import inventory
from remediations.shell.pipeline import run

RG = "rg-rotation"


@pytest.fixture
def clients(env: dict[str, str]) -> Iterator[AzureClients]:
    with AzureClients() as built:
        yield built


@pytest.fixture
def values_seen(emu: Emulator) -> Iterator[set[str]]:
    """Every secret value the emulator holds before and after the test (filled in at the end too)."""
    seen: set[str] = set()
    yield seen


def _all_values(emu: Emulator) -> set[str]:
    az = emu.state.azure
    with emu.state.lock:
        values = {v.value for vault in az.vaults.values() for s in vault.secrets.values() for v in s.versions}
        values |= {p.secret_text for app in az.applications.values() for p in app.passwords}
        values |= {k for account in az.storage_accounts.values() for k in account.keys}
    # The admin's own client secret goes to the token endpoint by design; it is no rotated value.
    return {v for v in values if len(v) >= 8 and v != az.admin_client_secret}


def _seed_vault(emu: Emulator, name: str, secrets: dict[str, list[SecretVersion]]) -> str:
    az = emu.state.azure
    with emu.state.lock:
        az.resource_groups.setdefault(
            (az.subscription_id.lower(), RG.lower()), ResourceGroup(az.subscription_id, RG)
        )
        vault = Vault(name, az.subscription_id, RG, az.tenant_id)
        vault.access_policies.append(
            AccessPolicy(az.tenant_id, az.admin_object_id, permissions={"secrets": ["get", "list", "set"]})
        )
        for secret_name, versions in secrets.items():
            vault.secrets[secret_name.lower()] = Secret(secret_name, list(versions))
        az.vaults[name.lower()] = vault
    return vault.uri


def _version(value: str, tags: dict[str, str], age_s: int = 1000, **kwargs: object) -> SecretVersion:
    stamp = int(time.time()) - age_s
    return SecretVersion(
        uuid.uuid4().hex,
        value,
        kwargs.pop("content_type", None),
        True,
        kwargs.pop("exp", None),
        None,  # type: ignore[arg-type]
        tags,
        stamp,
        stamp,
    )


def _versions(emu: Emulator, vault: str, name: str) -> list[SecretVersion]:
    with emu.state.lock:
        return list(emu.state.azure.vaults[vault].secrets[name].versions)


def _rotate(
    emu: Emulator, clients: AzureClients, vault: str, names: list[str], policy: Policy, ticket: str = "T-42"
) -> tuple[Plan, list[Outcome], MemoryAuditSink, int]:
    az = emu.state.azure
    scope = Scope(subscription_id=az.subscription_id, resource_group=RG, vault_name=vault)
    snapshot = inventory(scope, clients)
    assert snapshot.errors == ()
    uri = f"https://{vault}.vault.azure.net/"
    actions = plan_for_targets(snapshot, policy, [(uri, n) for n in names], "leaked in a flow run", ticket)
    plan = Plan(id="p", actions=tuple(actions), created_at=snapshot.taken_at, dry_run=False)
    audit = MemoryAuditSink()
    mark = emu.requests.mark()
    outcomes = apply_plan(plan, clients, audit, RunContext(correlation_id="c-" + vault, trigger="ticket"))
    return plan, outcomes, audit, mark


def _scan(
    emu: Emulator,
    values: set[str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    *outputs: object,
) -> None:
    """No value anywhere but in the body of a Key Vault `set secret` request (where it must go)."""
    values = values | _all_values(emu)
    captured = capsys.readouterr()
    texts = [caplog.text, captured.out, captured.err]
    for output in outputs:
        texts.append(json.dumps(output, default=lambda o: o.model_dump(mode="json")))
    for value in values:
        for text in texts:
            assert value not in text, "a secret value leaked into a log, an audit row or an outcome"
    for entry in emu.requests:
        sent = entry.body.decode(errors="replace") + entry.path + json.dumps(entry.query)
        hits = [v for v in values if v in sent]
        if hits:
            assert entry.method == "PUT" and entry.host.endswith(".vault.azure.net"), (
                f"a secret value was sent to {entry.method} {entry.host}{entry.path}"
            )
            assert "/secrets/" in entry.path


def _since(emu: Emulator, mark: int) -> list[tuple[str, str, str]]:
    return [(e.method, e.host, e.path) for e in emu.requests.since(mark) if e.status != 401]


@pytest.fixture(autouse=True)
def _log_everything(caplog: pytest.LogCaptureFixture, emu: Emulator) -> Iterator[None]:
    caplog.set_level(logging.DEBUG)
    emu.requests.clear()  # each test scans only its own requests
    yield
    emu.faults.clear()


# -- random -----------------------------------------------------------------------------------------


def test_random_rotation_cut_over_tags_audit_and_idempotent_rerun(
    emu: Emulator, clients: AzureClients, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    older = _version("older-value-0000", {"rotator": "random"}, age_s=5000)
    exposed = _version(
        "exposed-value-1111",
        {"rotator": "random", "rotationLength": "48", "team": "pay"},
        content_type="password",
    )
    _seed_vault(emu, "kv-rot-random", {"db-password": [older, exposed]})
    before_values = _all_values(emu)
    policy = parse_policy({"rotation": {"expiryDays": 30}})

    plan, outcomes, audit, mark = _rotate(emu, clients, "kv-rot-random", ["db-password"], policy)

    [outcome] = outcomes
    assert outcome.status == "applied", outcome.error
    versions = _versions(emu, "kv-rot-random", "db-password")
    new = versions[-1]
    assert len(versions) == 3 and new.version == outcome.after["newVersion"][0]
    assert len(new.value) == 48 and new.value.isalnum() and new.value not in before_values
    assert new.enabled and new.content_type == "password"
    assert new.exp is not None and abs(new.exp - (time.time() + 30 * 86400)) < 120
    assert new.tags is not None
    assert new.tags["rotatedBy"] == "vaultguard" and new.tags["ticketId"] == "T-42"
    assert new.tags["team"] == "pay" and new.tags["rotator"] == "random"
    assert new.tags["rotationId"] == plan.actions[0].id and "ticket T-42" in new.tags["reason"]
    assert datetime.fromisoformat(new.tags["rotatedAt"].replace("Z", "+00:00")) > datetime.now(
        UTC
    ) - timedelta(minutes=5)
    for old in versions[:2]:  # the exposed version and the older one an attacker could name: disabled
        assert old.enabled is False and old.tags is not None
        assert old.tags["compromised"] == "true" and old.tags["supersededBy"] == new.version
    assert outcome.after["steps"] == [
        "generate-value",
        "set-new-version",
        "verify",
        "disable-old",
        "disable-old",
    ]
    assert sorted(outcome.after["disabledVersions"]) == sorted([older.version, exposed.version])
    calls = _since(emu, mark)
    host = "kv-rot-random.vault.azure.net"
    assert ("PUT", host, "/secrets/db-password") in calls
    assert ("GET", host, f"/secrets/db-password/{new.version}") in calls
    assert ("PATCH", host, f"/secrets/db-password/{exposed.version}") in calls
    assert not any(m == "DELETE" for m, _, _ in calls)  # never purge, never delete
    rows = audit.records("c-kv-rot-random")
    assert [r.state for r in rows] == ["pending", "applied"]
    assert rows[1].after["newVersion"] == [new.version] and rows[1].ticket_id is None

    # The same action again resumes from the rotationId tag: nothing to do, no new version.
    mark = emu.requests.mark()
    again = apply_plan(plan, clients, audit, RunContext(correlation_id="c-again", trigger="ticket"))
    assert again[0].status == "noop"
    assert len(_versions(emu, "kv-rot-random", "db-password")) == 3
    assert not [c for c in _since(emu, mark) if c[0] in {"PUT", "PATCH"}]
    _scan(emu, before_values, caplog, capsys, plan, outcomes, again, audit.entries)


# -- app-credential ---------------------------------------------------------------------------------


def _seed_app(emu: Emulator, name: str) -> tuple[str, str, str, str]:
    """An application with one client secret: (object id, app id, key id, secret text)."""
    app_id = str(uuid.uuid4())
    with emu.state.lock:
        app = emu.state.azure.add_application(app_id, name, password="app-secret-" + uuid.uuid4().hex)
        credential = app.passwords[0]
        return app.id, app_id, credential.key_id, credential.secret_text


def _app_secret(emu: Emulator, app_object_id: str) -> tuple[str, str, str, str]:
    app_obj, app_id, key_id, secret = _seed_app(emu, "payroll-" + app_object_id)
    return app_obj, app_id, key_id, secret


def _password_ids(emu: Emulator, app_object_id: str) -> set[str]:
    with emu.state.lock:
        return {p.key_id.lower() for p in emu.state.azure.applications[app_object_id.lower()].passwords}


def test_app_credential_with_no_overlap_replaces_the_client_secret_in_one_run(
    emu: Emulator, clients: AzureClients, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    app_obj, app_id, old_key, old_secret = _app_secret(emu, "a0")
    tags = {"rotator": "app-credential", "appObjectId": app_obj, "keyId": old_key}
    _seed_vault(emu, "kv-rot-app0", {"app-secret": [_version(old_secret, tags)]})
    before_values = _all_values(emu)
    policy = parse_policy({"rotation": {"appCredentialOverlapHours": 0}})

    plan, outcomes, audit, mark = _rotate(emu, clients, "kv-rot-app0", ["app-secret"], policy)

    [outcome] = outcomes
    assert outcome.status == "applied", outcome.error
    versions = _versions(emu, "kv-rot-app0", "app-secret")
    new = versions[-1]
    assert versions[0].enabled is False and new.enabled
    ids = _password_ids(emu, app_obj)
    assert new.tags is not None and ids == {new.tags["keyId"]}  # the old credential is gone
    assert old_key.lower() not in ids
    assert "pendingRemoveKeyId" not in new.tags and "removeAfter" not in new.tags
    assert outcome.after["steps"] == [
        "add-credential",
        "set-new-version",
        "verify",
        "verify-credential",
        "disable-old",
        "remove-old-credential",
        "clear-pending",
    ]
    graph = [(m, p) for m, h, p in _since(emu, mark) if h == "graph.microsoft.com"]
    assert ("POST", f"/v1.0/applications/{app_obj}/addPassword") in graph
    assert ("POST", f"/v1.0/applications/{app_obj}/removePassword") in graph
    assert [r.state for r in audit.records("c-kv-rot-app0")] == ["pending", "applied"]
    _scan(emu, before_values, caplog, capsys, plan, outcomes, audit.entries)
    # The stored value works at the token endpoint; the exposed one no longer does (after the scan:
    # these token requests are the test's own).
    tenant = emu.state.azure.tenant_id
    ClientSecretCredential(tenant, app_id, new.value).get_token("https://graph.microsoft.com/.default")
    with pytest.raises(ClientAuthenticationError):
        ClientSecretCredential(tenant, app_id, old_secret).get_token("https://graph.microsoft.com/.default")


def test_app_credential_overlap_leaves_a_pending_removal_that_a_later_sweep_completes(
    emu: Emulator, clients: AzureClients, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    app_obj, _, old_key, old_secret = _app_secret(emu, "a1")
    tags = {"rotator": "app-credential", "appObjectId": app_obj, "keyId": old_key}
    _seed_vault(emu, "kv-rot-app1", {"app-secret": [_version(old_secret, tags)]})
    before_values = _all_values(emu)
    policy = parse_policy({"rotation": {"appCredentialOverlapHours": 24}, "dryRun": False})

    plan, outcomes, audit, _ = _rotate(emu, clients, "kv-rot-app1", ["app-secret"], policy)
    assert outcomes[0].status == "applied", outcomes[0].error
    new = _versions(emu, "kv-rot-app1", "app-secret")[-1]
    assert new.tags is not None and new.tags["pendingRemoveKeyId"] == old_key.lower()
    assert _password_ids(emu, app_obj) == {old_key.lower(), new.tags["keyId"]}  # both work during overlap
    assert outcomes[0].after["pending"][0].startswith("pendingRemoveKeyId=")

    scope = Scope(
        subscription_id=emu.state.azure.subscription_id, resource_group=RG, vault_name="kv-rot-app1"
    )
    sweep_audit = MemoryAuditSink()
    early = run(
        RunRequest(trigger="timer", scope=scope, remediations={"rotate_secret"}), policy, clients, sweep_audit
    )
    assert early.plan.actions == ()  # not due yet: nothing planned
    with emu.state.lock:  # the overlap passes
        new.tags["removeAfter"] = "2000-01-01T00:00:00Z"
    result = run(
        RunRequest(trigger="timer", scope=scope, remediations={"rotate_secret"}), policy, clients, sweep_audit
    )
    assert [f.detector_id for f in result.findings if f.detector_id.startswith("rotation")] == [
        "rotation_followup_due"
    ]
    [outcome] = result.outcomes
    assert outcome.status == "applied", outcome.error
    assert outcome.after["steps"] == ["remove-old-credential", "clear-pending"]
    assert _password_ids(emu, app_obj) == {new.tags["keyId"]}
    assert "pendingRemoveKeyId" not in (_versions(emu, "kv-rot-app1", "app-secret")[-1].tags or {})
    assert len(_versions(emu, "kv-rot-app1", "app-secret")) == 2  # no third version
    _scan(emu, before_values, caplog, capsys, plan, outcomes, result, audit.entries, sweep_audit.entries)


# -- storage-key ------------------------------------------------------------------------------------


def test_storage_key_rotation_stores_the_unused_key_then_kills_the_exposed_one(
    emu: Emulator, clients: AzureClients, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    az = emu.state.azure
    with emu.state.lock:
        az.resource_groups.setdefault(
            (az.subscription_id.lower(), RG.lower()), ResourceGroup(az.subscription_id, RG)
        )
        account = StorageAccount("rotsa1", az.subscription_id, RG)
        az.storage_accounts["rotsa1"] = account
        key1, key2 = account.keys
    tags = {"rotator": "storage-key", "storageAccountId": account.arm_id, "keyName": "key1"}
    _seed_vault(emu, "kv-rot-sa", {"sa-key": [_version(key1, tags)]})
    before_values = _all_values(emu)

    plan, outcomes, audit, mark = _rotate(emu, clients, "kv-rot-sa", ["sa-key"], Policy())

    [outcome] = outcomes
    assert outcome.status == "applied", outcome.error
    versions = _versions(emu, "kv-rot-sa", "sa-key")
    new = versions[-1]
    with emu.state.lock:
        now_key1, now_key2 = account.keys
    assert new.value == now_key2 and now_key2 != key2  # key2 regenerated and stored
    assert now_key1 != key1  # the exposed key1 is dead
    assert versions[0].enabled is False and new.tags is not None and new.tags["keyName"] == "key2"
    assert "pendingRegenerateKey" not in new.tags
    regenerated = [
        json.loads(e.body)["keyName"]
        for e in emu.requests.since(mark)
        if e.path.endswith("/regenerateKey") and e.status == 200
    ]
    assert regenerated == ["key2", "key1"]
    assert outcome.after["steps"] == [
        "regenerate-unused-key",
        "set-new-version",
        "verify",
        "verify-key",
        "disable-old",
        "regenerate-old-key",
        "clear-pending",
    ]
    _scan(emu, before_values, caplog, capsys, plan, outcomes, audit.entries)


# -- manual -----------------------------------------------------------------------------------------


def test_manual_disables_tags_compromised_and_reports_the_owner(
    emu: Emulator, clients: AzureClients, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    exposed = _version("vendor-api-key-2222", {"owner": "payments-team"})
    _seed_vault(emu, "kv-rot-manual", {"vendor-key": [exposed]})
    before_values = _all_values(emu)

    plan, outcomes, audit, mark = _rotate(emu, clients, "kv-rot-manual", ["vendor-key"], Policy())

    [outcome] = outcomes
    assert outcome.status == "applied", outcome.error
    assert outcome.after["needsOwner"] == ["payments-team"]
    [only] = _versions(emu, "kv-rot-manual", "vendor-key")
    assert only.enabled is False and only.tags is not None and only.tags["compromised"] == "true"
    assert not [c for c in _since(emu, mark) if c[0] == "PUT"]  # no new value was made
    _scan(emu, before_values, caplog, capsys, plan, outcomes, audit.entries)


# -- failures ---------------------------------------------------------------------------------------


def test_key_vault_503_on_set_leaves_the_old_version_enabled_and_the_run_reports_the_step(
    emu: Emulator, clients: AzureClients, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    exposed = _version("exposed-value-3333", {"rotator": "random"})
    _seed_vault(emu, "kv-rot-503", {"db-password": [exposed]})
    before_values = _all_values(emu)
    az = emu.state.azure
    scope = Scope(subscription_id=az.subscription_id, resource_group=RG, vault_name="kv-rot-503")
    snapshot = inventory(scope, clients)
    actions = plan_for_targets(
        snapshot, Policy(), [("https://kv-rot-503.vault.azure.net/", "db-password")], "x"
    )
    plan = Plan(id="p", actions=tuple(actions), created_at=snapshot.taken_at, dry_run=False)
    rule = emu.faults.status(503, host=r".*\.vault\.azure\.net", method="PUT", count=1)
    audit = MemoryAuditSink()

    [outcome] = apply_plan(plan, clients, audit, RunContext(correlation_id="c-503", trigger="ticket"))

    assert rule.fired == 1
    assert outcome.status == "failed" and outcome.error is not None
    assert outcome.error.startswith("step set-new-version:") and "503" in outcome.error
    assert exposed.version in outcome.error and "still enabled" in outcome.error
    assert outcome.after["failedStep"] == ["set-new-version"]
    [only] = _versions(emu, "kv-rot-503", "db-password")
    assert only.version == exposed.version and only.enabled is True  # the old version still serves
    rows = audit.records("c-503")
    assert [r.state for r in rows] == ["pending", "failed"] and "set-new-version" in (rows[1].error or "")

    # Key Vault recovers: the same plan now rotates.
    [retry] = apply_plan(plan, clients, audit, RunContext(correlation_id="c-503b", trigger="ticket"))
    assert retry.status == "applied", retry.error
    assert _versions(emu, "kv-rot-503", "db-password")[0].enabled is False
    _scan(emu, before_values, caplog, capsys, plan, outcome, retry, audit.entries)


def test_a_failed_set_removes_the_client_secret_it_just_added(
    emu: Emulator, clients: AzureClients, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    app_obj, _, old_key, old_secret = _app_secret(emu, "a2")
    tags = {"rotator": "app-credential", "appObjectId": app_obj, "keyId": old_key}
    _seed_vault(emu, "kv-rot-app2", {"app-secret": [_version(old_secret, tags)]})
    before_values = _all_values(emu)
    az = emu.state.azure
    scope = Scope(subscription_id=az.subscription_id, resource_group=RG, vault_name="kv-rot-app2")
    snapshot = inventory(scope, clients)
    actions = plan_for_targets(snapshot, Policy(), [("kv-rot-app2", "app-secret")], "x")
    plan = Plan(id="p", actions=tuple(actions), created_at=snapshot.taken_at, dry_run=False)
    emu.faults.status(503, host=r".*\.vault\.azure\.net", method="PUT", count=1)
    mark = emu.requests.mark()

    [outcome] = apply_plan(plan, clients, MemoryAuditSink(), RunContext(correlation_id="c", trigger="ticket"))

    assert outcome.status == "failed" and outcome.after["failedStep"] == ["set-new-version"]
    assert outcome.after["steps"] == ["add-credential", "remove-new-credential"]
    assert _password_ids(emu, app_obj) == {old_key.lower()}  # back to the one credential in use
    assert _versions(emu, "kv-rot-app2", "app-secret")[0].enabled is True
    assert sum(1 for e in emu.requests.since(mark) if e.path.endswith("/removePassword")) == 1
    _scan(emu, before_values, caplog, capsys, plan, outcome)


# -- the sweep: near expiry -------------------------------------------------------------------------


def test_the_sweep_rotates_secrets_near_expiry(
    emu: Emulator, clients: AzureClients, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    soon = _version("expiring-value-4444", {"rotator": "random"}, exp=int(time.time()) + 5 * 86400)
    later = _version("fine-value-5555", {"rotator": "random"}, exp=int(time.time()) + 200 * 86400)
    _seed_vault(emu, "kv-rot-sweep", {"soon": [soon], "later": [later]})
    before_values = _all_values(emu)
    policy = parse_policy({"dryRun": False, "rotation": {"nearExpiryDays": 30, "expiryDays": 90}})
    az = emu.state.azure
    scope = Scope(subscription_id=az.subscription_id, resource_group=RG, vault_name="kv-rot-sweep")
    audit = MemoryAuditSink()

    result = run(
        RunRequest(trigger="timer", scope=scope, remediations={"rotate_secret"}), policy, clients, audit
    )

    assert [a.changes[0].secret_name for a in result.plan.actions] == ["soon"]
    assert result.failures == 0 and result.outcomes[0].status == "applied"
    old, new = _versions(emu, "kv-rot-sweep", "soon")
    assert old.enabled is False and new.exp is not None and new.exp > time.time() + 80 * 86400
    assert old.tags is not None and "compromised" not in old.tags  # expiring, not exposed
    assert len(_versions(emu, "kv-rot-sweep", "later")) == 1
    again = run(
        RunRequest(trigger="timer", scope=scope, remediations={"rotate_secret"}), policy, clients, audit
    )
    assert again.plan.actions == ()  # the new expiry is outside the window
    _scan(emu, before_values, caplog, capsys, result, again, audit.entries)
