"""The Event Grid trigger `keyvault_events`: each documented Key Vault event shape (Event Grid schema and
CloudEvents) -> what the app does, through the indexed function; idempotent by event id; scope checks;
and end to end: an access-policy change in the emulator -> Event Grid delivery to the local runner ->
the fix applied."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter

from emulator import Emulator
from remediations.serve import make_server
from remediations.triggers.deliveries import EventResult
from remediations.triggers.events import parse_event
from remediations.triggers.problems import ProblemError
from remediations.triggers.remediate_event import EventHandlingFailed
from remediations.triggers.runs import RunStore
from tests.functions.conftest import (
    FLOW_SP,
    SUBSCRIPTION,
    VAULT,
    VAULT_NAME,
    app_may_rotate,
    policy_writes_since,
    secrets_of,
)

SAMPLES = Path(__file__).with_name("event_samples")
MASTER = "master-key-for-event-tests"
EXPECTED = {
    "vault_access_policy_changed": ("recheck-vault", "EventGridSchema", None),
    "vault_access_policy_changed_cloudevent": ("recheck-vault", "CloudEventSchemaV1_0", None),
    "secret_near_expiry": ("plan-rotation", "EventGridSchema", "sql-password"),
    "secret_expired_cloudevent": ("plan-rotation", "CloudEventSchemaV1_0", "sql-password"),
    "secret_new_version_created": ("refresh-inventory", "EventGridSchema", "sql-password"),
}


def sample(name: str, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / f"{name}.json").read_text())
    data.update(overrides)
    return data


def deliver(functions: dict[str, Any], event: dict[str, Any]) -> None:
    """As the Functions host does: the worker's own converter makes the binding object."""
    binding = EventGridEventInConverter.decode(meta.Datum(json.dumps(event), "json"), trigger_metadata=None)
    functions["keyvault_events"].get_user_function()(binding)


def stored(event: dict[str, Any]) -> dict[str, Any]:
    parsed = parse_event(event)
    record = RunStore.from_env().get("event", parsed.idempotency_key())
    assert record is not None and record.body is not None
    return record.body


def test_every_sample_file_has_an_expectation() -> None:
    assert {p.stem for p in SAMPLES.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_parses_to_the_expected_event(name: str) -> None:
    kind, schema, secret = EXPECTED[name]
    event = parse_event(sample(name))
    assert (event.kind, event.schema_, event.secretName) == (kind, schema, secret)
    assert event.vaultId == VAULT


def test_the_function_is_indexed_as_an_event_grid_trigger(functions: dict[str, Any]) -> None:
    bindings = json.loads(functions["keyvault_events"].get_function_json())["bindings"]
    assert [(b["type"], b["direction"]) for b in bindings] == [("eventGridTrigger", "IN")]


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        (lambda e: "not an object", 400),
        (lambda e: {**e, "id": ""}, 422),
        (lambda e: {**e, "id": "x" * 300}, 422),
        (lambda e: {**e, "topic": "/subscriptions/abc/resourceGroups/rg"}, 422),
        (lambda e: {k: v for k, v in e.items() if k != "eventType"}, 422),
        (lambda e: {**e, "subject": "bad/name", "data": {}}, 422),
        (lambda e: {**e, "data": {**e["data"], "objectType": "Key"}}, 422),
    ],
)
def test_bad_events_are_problems(mutate: Any, status: int) -> None:
    with pytest.raises(ProblemError) as raised:
        parse_event(mutate(sample("secret_near_expiry")))
    assert raised.value.problem.status == status


def test_a_foreign_event_type_is_acknowledged_without_a_vault() -> None:
    event = parse_event(sample("secret_near_expiry", eventType="Microsoft.Storage.BlobCreated", topic="x"))
    assert (event.kind, event.vaultId) == ("acknowledged", None)


@pytest.mark.parametrize("name", ["vault_access_policy_changed", "vault_access_policy_changed_cloudevent"])
def test_access_policy_changed_rechecks_the_vault_and_a_redelivery_is_not_run_again(
    functions: dict[str, Any], enforce: dict[str, str], cloud: Emulator, name: str
) -> None:
    """Enforce: the re-check removes `List` from the flow's identity (one write), audited as an alert's
    run on the vault; the same event id again returns the stored handling and reads nothing."""
    event = sample(name, id=str(uuid.uuid4()))
    mark = cloud.requests.mark()
    deliver(functions, event)
    body = stored(event)
    assert body["status"] == "handled" and body["dryRun"] is False
    assert [(a["remediation_id"], a["principal"]) for a in body["plan"] if not a["skip_reason"]] == [
        ("remove_list_permission", FLOW_SP)
    ]
    assert secrets_of(cloud, FLOW_SP) == ["Get"]
    assert policy_writes_since(cloud, mark) == 1
    mark = cloud.requests.mark()
    deliver(functions, event)
    assert stored(event) == body
    assert cloud.requests.since(mark) == []


def test_in_dry_run_an_event_plans_and_writes_nothing(
    functions: dict[str, Any], app_env: dict[str, str], cloud: Emulator
) -> None:
    event = sample("vault_access_policy_changed", id=str(uuid.uuid4()))
    mark = cloud.requests.mark()
    deliver(functions, event)
    body = stored(event)
    assert body["status"] == "planned" and body["dryRun"] is True
    assert body["summary"]["actions"] == 1
    assert {o["status"] for o in body["outcomes"]} == {"skipped"}
    assert policy_writes_since(cloud, mark) == 0
    assert secrets_of(cloud, FLOW_SP) == ["Get", "List"]


def test_an_out_of_scope_vault_is_acknowledged_and_nothing_is_read(
    functions: dict[str, Any], enforce: dict[str, str], cloud: Emulator
) -> None:
    other = VAULT.replace(SUBSCRIPTION, "00000000-0000-4000-8000-000000000001")
    event = sample("vault_access_policy_changed", id=str(uuid.uuid4()), topic=other)
    mark = cloud.requests.mark()
    deliver(functions, event)
    body = stored(event)
    assert body["status"] == "acknowledged" and "out of scope" in body["message"]
    assert cloud.requests.since(mark) == []


@pytest.mark.parametrize("name", ["vault_access_policy_changed", "secret_new_version_created"])
def test_the_policy_is_read_once_per_event(
    functions: dict[str, Any], policy_file_reads: Callable[[dict[str, Any]], list[str]], name: str
) -> None:
    """The scope check and the run share one read of the policy file; a redelivery reads it not at all."""
    reads = policy_file_reads({"dryRun": True})
    event = sample(name, id=str(uuid.uuid4()))
    deliver(functions, event)
    assert stored(event)["status"] in {"planned", "handled"}
    assert len(reads) == 1
    deliver(functions, event)
    assert len(reads) == 1


@pytest.mark.parametrize("name", ["secret_near_expiry", "secret_expired_cloudevent"])
def test_a_secret_near_expiry_or_expired_plans_rotation_of_that_secret_only(
    functions: dict[str, Any], app_env: dict[str, str], cloud: Emulator, name: str
) -> None:
    """Dry run (the deployment's default): the plan rotates exactly the named secret and nothing else
    (no access-policy fix: the event names a secret, not an access change); no value anywhere."""
    values = {"sql-password": "near-expiry-secret-value-1", "api-key": "other-secret-value-1"}
    event = sample(name, id=str(uuid.uuid4()))
    with app_may_rotate(cloud, values):
        mark = cloud.requests.mark()
        deliver(functions, event)
        body = stored(event)
    assert body["status"] == "planned", body
    assert [(a["remediation_id"], a["target"]) for a in body["plan"]] == [
        ("rotate_secret", f"{VAULT}/secrets/sql-password")
    ]
    assert policy_writes_since(cloud, mark) == 0
    text = json.dumps(body)
    assert all(value not in text for value in values.values())


def _stored_inventory() -> dict[str, Any]:
    from remediations.triggers.secret_table import TableSecretInventory

    found = TableSecretInventory.from_env().get_many([VAULT])
    return {s.name: s for s in found[VAULT.lower()].secrets} if VAULT.lower() in found else {}


def test_a_new_secret_version_refreshes_the_vaults_stored_inventory_and_writes_nothing(
    functions: dict[str, Any], enforce: dict[str, str], cloud: Emulator
) -> None:
    """SecretNewVersionCreated: the vault's secret list is read again and stored (what the quick sweep
    plans from); no plan, no write, even with enforcement on."""
    event = sample("secret_new_version_created", id=str(uuid.uuid4()))
    assert _stored_inventory() == {}
    with app_may_rotate(cloud, {"sql-password": "new-version-value-1"}):
        mark = cloud.requests.mark()
        deliver(functions, event)
        body = stored(event)
    assert body["status"] == "handled", body
    assert body["plan"] == [] and body["outcomes"] == []
    assert body["notes"][0].startswith("refreshed the stored secret inventory of vault " + VAULT_NAME)
    assert "sql-password" in _stored_inventory()
    from remediations.triggers.secret_table import TableSecretInventory

    # Counts only (a quick sweep keeping no lists): the row's count, the list not read.
    (counted,) = TableSecretInventory.from_env().get_many([VAULT], with_lists=False).values()
    assert counted.secrets == () and counted.count == len(_stored_inventory()) > 0
    assert [r for r in cloud.requests.since(mark) if r.method in ("PUT", "PATCH", "DELETE")] == []
    assert "new-version-value-1" not in json.dumps(body)


def test_a_failed_handling_raises_so_event_grid_retries_and_the_retry_runs(
    functions: dict[str, Any], enforce: dict[str, str], cloud: Emulator
) -> None:
    event = sample("vault_access_policy_changed", id=str(uuid.uuid4()))
    cloud.faults.status(500, path=".*/accessPolicies/.*", count=10)
    try:
        with pytest.raises(EventHandlingFailed):
            deliver(functions, event)
    finally:
        cloud.faults.clear()
    assert stored(event)["status"] == "failed"
    deliver(functions, event)
    assert stored(event)["status"] == "handled"
    assert secrets_of(cloud, FLOW_SP) == ["Get"]


def test_an_event_left_unfinished_is_replayed_while_fresh_and_handled_again_once_stale(
    functions: dict[str, Any], enforce: dict[str, str], cloud: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As for alerts: a worker that died mid-handling leaves the event `received`; Event Grid's retry
    while it may still run gets that back and runs nothing, a retry once it is stale handles it."""
    monkeypatch.setenv("VAULTGUARD_STALE_RUN_SECONDS", "1")
    event = sample("vault_access_policy_changed", id=str(uuid.uuid4()))
    parsed = parse_event(event)
    left = EventResult(
        eventId=parsed.eventId, status="received", event=parsed, receivedAt="2026-01-01T00:00Z"
    )
    key = parsed.idempotency_key()
    assert RunStore.from_env().reserve("event", key, key, left.model_dump(mode="json"), "received") is None
    mark = cloud.requests.mark()
    deliver(functions, event)
    assert stored(event)["status"] == "received"
    assert cloud.requests.since(mark) == []
    time.sleep(1.2)  # the stored handling is now stale
    deliver(functions, event)
    assert stored(event)["status"] == "handled"
    assert secrets_of(cloud, FLOW_SP) == ["Get"]


# --- end to end: emulator -> Event Grid -> local runner -> fix -------------------------------------


@pytest.fixture
def runner(functions: dict[str, Any]) -> Iterator[str]:
    server = make_server(
        "127.0.0.1", 0, function_key="fn-key", functions=functions.values(), master_key=MASTER
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("schema", ["EventGridSchema", "CloudEventSchemaV1_0"])
def test_a_policy_change_emits_an_event_and_the_runner_applies_the_fix(
    runner: str, enforce: dict[str, str], cloud: Emulator, schema: Any
) -> None:
    """Someone grants the flow's identity `List` again (an ARM access-policy PUT through the SDK): the
    emulator publishes VaultAccessPolicyChanged to the runner's Event Grid webhook, the function
    re-checks the vault and removes `List`. The app's own write is a change too: its event re-checks
    the vault again and finds it compliant (0 actions)."""
    from azure.identity import ClientSecretCredential
    from azure.mgmt.keyvault import KeyVaultManagementClient
    from azure.mgmt.keyvault.models import (
        AccessPolicyEntry,
        AccessPolicyUpdateKind,
        Permissions,
        VaultAccessPolicyParameters,
        VaultAccessPolicyProperties,
    )

    with cloud.state.lock:
        vault = cloud.state.azure.vaults[VAULT_NAME]
        entry = next(p for p in vault.access_policies if p.object_id == FLOW_SP)
        entry.permissions["secrets"] = ["Get"]
        tenant = cloud.state.azure.tenant_id
    url = f"{runner}/runtime/webhooks/eventgrid?functionName=keyvault_events&code={MASTER}"
    cloud.event_grid.subscribe(url, schema=schema)
    try:
        credential = ClientSecretCredential(
            tenant, enforce["AZURE_CLIENT_ID"], enforce["AZURE_CLIENT_SECRET"]
        )
        with KeyVaultManagementClient(credential, SUBSCRIPTION) as client:
            client.vaults.update_access_policy(
                "rg-finance-automation",
                VAULT_NAME,
                AccessPolicyUpdateKind.ADD,
                VaultAccessPolicyParameters(
                    properties=VaultAccessPolicyProperties(
                        access_policies=[
                            AccessPolicyEntry(
                                tenant_id=tenant, object_id=FLOW_SP, permissions=Permissions(secrets=["List"])
                            )
                        ]
                    )
                ),
            )
        assert secrets_of(cloud, FLOW_SP) == ["Get", "List"]  # the change took effect
        cloud.event_grid.wait(timeout=60)
    finally:
        cloud.event_grid.unsubscribe_all()
    assert cloud.event_grid.dead_letters == []
    assert secrets_of(cloud, FLOW_SP) == ["Get"]
    first, second = cloud.event_grid.deliveries[-2:]
    assert (first.status, second.status) == (200, 200)
    bodies = [stored(d.event) for d in (first, second)]
    assert [b["summary"]["actions"] for b in bodies] == [1, 0]
    assert bodies[1]["notes"][0].startswith("the vault is already compliant")


def test_the_webhook_answers_the_validation_handshakes_and_needs_the_master_key(
    functions: dict[str, Any], runner: str
) -> None:
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    base = f"{runner}/runtime/webhooks/eventgrid?functionName=keyvault_events"
    validation = [
        {
            "id": "1",
            "topic": VAULT,
            "subject": "",
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "eventTime": "2026-12-05T00:00:00Z",
            "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
            "dataVersion": "1",
        }
    ]
    request = urllib.request.Request(
        f"{base}&code={MASTER}",
        data=json.dumps(validation).encode(),
        headers={"aeg-event-type": "SubscriptionValidation", "Content-Type": "application/json"},
        method="POST",
    )
    with opener.open(request) as response:
        assert json.loads(response.read()) == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}
    options = urllib.request.Request(
        f"{base}&code={MASTER}", headers={"WebHook-Request-Origin": "eventgrid.azure.net"}, method="OPTIONS"
    )
    with opener.open(options) as response:
        assert response.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    for url in (base, f"{base}&code=wrong"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(urllib.request.Request(url, data=b"[]", method="POST"))
        assert refused.value.code == 401


def test_an_arm_event_subscription_validates_the_webhook_and_scopes_delivery_to_its_vault(
    runner: str, app_env: dict[str, str], cloud: Emulator
) -> None:
    """`PUT {vault}/providers/Microsoft.EventGrid/eventSubscriptions/{name}` with a WebHook destination:
    the emulator runs Event Grid's validation handshake against the runner first (a URL that does not
    answer it is a 400 and no subscription), then publishes only that vault's events to it."""
    import requests
    from azure.identity import ClientSecretCredential

    tenant = cloud.state.azure.tenant_id
    token = ClientSecretCredential(tenant, app_env["AZURE_CLIENT_ID"], app_env["AZURE_CLIENT_SECRET"])
    http = requests.Session()
    http.trust_env = False
    http.proxies = {"https": app_env["HTTPS_PROXY"]}
    http.verify = app_env["REQUESTS_CA_BUNDLE"]
    http.headers["Authorization"] = f"Bearer {token.get_token('https://management.azure.com/.default').token}"
    url = f"https://management.azure.com{VAULT}/providers/Microsoft.EventGrid/eventSubscriptions/vg"

    def put(endpoint: str) -> requests.Response:
        destination = {"endpointType": "WebHook", "properties": {"endpointUrl": endpoint}}
        return http.put(
            url,
            params={"api-version": "2022-06-15"},
            json={"properties": {"destination": destination, "eventDeliverySchema": "CloudEventSchemaV1_0"}},
        )

    try:
        refused = put(f"{runner}/api/health")  # answers, but not the handshake
        assert refused.status_code == 400 and "handshake failed" in refused.text
        assert cloud.event_grid.subscriptions == []
        created = put(f"{runner}/runtime/webhooks/eventgrid?functionName=keyvault_events&code={MASTER}")
        assert created.status_code == 201, created.text
        assert created.json()["properties"]["topic"] == VAULT
        [subscription] = cloud.event_grid.subscriptions
        assert (subscription.source, subscription.schema) == (VAULT, "CloudEventSchemaV1_0")
    finally:
        cloud.event_grid.unsubscribe_all()


def test_a_secret_set_in_the_vault_refreshes_its_stored_expiry_through_event_grid(
    runner: str, app_env: dict[str, str], cloud: Emulator
) -> None:
    """A new version of a secret (data-plane PUT) -> the emulator publishes SecretNewVersionCreated ->
    the runner's webhook -> the vault's stored inventory has the new version's expiry."""
    from datetime import UTC, datetime, timedelta

    from azure.identity import ClientSecretCredential
    from azure.keyvault.secrets import SecretClient

    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=9)
    url = f"{runner}/runtime/webhooks/eventgrid?functionName=keyvault_events&code={MASTER}"
    with app_may_rotate(cloud, {"sql-password": "first-value-1"}):
        cloud.event_grid.subscribe(url, schema="CloudEventSchemaV1_0")
        try:
            credential = ClientSecretCredential(
                cloud.state.azure.tenant_id, app_env["AZURE_CLIENT_ID"], app_env["AZURE_CLIENT_SECRET"]
            )
            client = SecretClient(f"https://{VAULT_NAME}.vault.azure.net/", credential)
            client.set_secret("sql-password", "second-value-1", expires_on=expires)
            cloud.event_grid.wait(timeout=60)
        finally:
            cloud.event_grid.unsubscribe_all()
    assert cloud.event_grid.dead_letters == []
    delivered = cloud.event_grid.deliveries[-1]
    assert delivered.event["type"] == "Microsoft.KeyVault.SecretNewVersionCreated"
    assert delivered.event["data"]["EXP"] == int(expires.timestamp())
    assert stored(delivered.event)["status"] == "handled"
    assert _stored_inventory()["sql-password"].expires == expires
