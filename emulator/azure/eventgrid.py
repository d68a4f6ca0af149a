"""Event Grid system topics of the emulated vaults: event subscriptions to a webhook and delivery.

`emu.event_grid.subscribe(url, schema=..., event_types=...)` stands for an event subscription on a
Key Vault system topic (infra/app/events.bicep). When a vault's access model changes (an access-policy
PUT that changed the policies, a vault PUT/PATCH changing `accessPolicies` or `enableRbacAuthorization`)
the emulator publishes `Microsoft.KeyVault.VaultAccessPolicyChanged`; a secret set (a new secret or a
new version, data-plane PUT) publishes `Microsoft.KeyVault.SecretNewVersionCreated`;
`publish_secret_event` lets a test stand in for the time-based `SecretNearExpiry` / `SecretExpired`.

As Event Grid (learn.microsoft.com/azure/event-grid/delivery-and-retry, event-schema-key-vault,
cloud-event-schema, webhook-event-delivery):
- delivery is asynchronous: the ARM write answers first, a background thread posts afterwards;
- Event Grid schema: a JSON array of events, header `aeg-event-type: Notification`; CloudEvents 1.0:
  one event per request in structured mode (`application/cloudevents+json`);
- the event: `id` (a new GUID), `topic`/`source` = the vault's ARM id, `subject` = the object name,
  `data` = `Id, VaultName, ObjectType, ObjectName, Version, NBF, EXP` (the wire names of the Event Grid
  data-plane spec, Microsoft.KeyVault/stable/2018-01-01/KeyVault.json, which the SDKs' system-event
  models deserialize; the docs' sample mixes cases). `VaultAccessPolicyChanged`'s data is not shown in
  any public sample: ObjectType `Vault` and ObjectName the vault are our assumption (the app reads
  the vault from `topic`/`source` only);
- a delivery that fails (connection error or a status other than 200-204) is retried; after
  `max_attempts` it is dead-lettered (kept in `dead_letters`), never dropped.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from emulator.azure.arm_keyvault import VAULT, vault_or_404, vault_scope
from emulator.azure.common import ARM, AzureContext, arm_error, body_json, require_arm
from emulator.azure.state import Vault
from emulator.wire import Request, Response

ACCESS_POLICY_CHANGED = "Microsoft.KeyVault.VaultAccessPolicyChanged"
SECRET_NEW_VERSION = "Microsoft.KeyVault.SecretNewVersionCreated"
Schema = Literal["EventGridSchema", "CloudEventSchemaV1_0"]
_SUCCESS = frozenset({200, 201, 202, 203, 204})


@dataclass(frozen=True)
class EventSubscription:
    url: str
    schema: Schema = "EventGridSchema"
    event_types: frozenset[str] | None = None  # None: every Key Vault event type
    max_attempts: int = 3
    retry_seconds: float = 0.2
    source: str | None = None  # a vault's ARM id (an ARM-created subscription); None: every vault
    name: str | None = None

    def wants(self, vault: Vault, event_type: str) -> bool:
        return (self.event_types is None or event_type in self.event_types) and (
            self.source is None or self.source.lower() == vault.arm_id.lower()
        )


@dataclass
class Delivery:
    subscription: EventSubscription
    event: dict[str, Any]
    attempts: int = 0
    status: int | None = None  # the last answer; None: no answer (connection failed)
    delivered: bool = False


@dataclass
class EventGrid:
    subscriptions: list[EventSubscription] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    dead_letters: list[Delivery] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._queue: queue.Queue[Delivery | None] = queue.Queue()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        # Webhooks are local (the runner); never route them through a proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def subscribe(
        self,
        url: str,
        *,
        schema: Schema = "EventGridSchema",
        event_types: set[str] | None = None,
        max_attempts: int = 3,
        source: str | None = None,
        name: str | None = None,
    ) -> EventSubscription:
        subscription = EventSubscription(
            url,
            schema,
            frozenset(event_types) if event_types else None,
            max_attempts,
            source=source,
            name=name,
        )
        with self._lock:
            if name is not None:  # an ARM PUT replaces the subscription of that name on that source
                self.subscriptions = [s for s in self.subscriptions if (s.name, s.source) != (name, source)]
            self.subscriptions.append(subscription)
        return subscription

    def unsubscribe_all(self) -> None:
        with self._lock:
            self.subscriptions.clear()

    # -- publishing (called by the ARM handlers, under the state lock: only enqueue here) ------------
    def publish_access_policy_changed(self, vault: Vault) -> None:
        data = {
            "Id": f"https://{vault.name}.vault.azure.net/",
            "VaultName": vault.name,
            "ObjectType": "Vault",
            "ObjectName": vault.name,
            "Version": "",
            "NBF": None,
            "EXP": None,
        }
        self._publish(vault, ACCESS_POLICY_CHANGED, vault.name, data)

    def publish_secret_event(
        self,
        vault: Vault,
        event_type: str,
        name: str,
        version: str,
        nbf: int | None = None,
        exp: int | None = None,
    ) -> None:
        # NBF / EXP: Unix seconds (numbers in the spec's KeyVaultSecretNewVersionCreatedEventData).
        data = {
            "Id": f"https://{vault.name}.vault.azure.net/secrets/{name}/{version}",
            "VaultName": vault.name,
            "ObjectType": "Secret",
            "ObjectName": name,
            "Version": version,
            "NBF": nbf,
            "EXP": exp,
        }
        self._publish(vault, event_type, name, data)

    def _publish(self, vault: Vault, event_type: str, subject: str, data: dict[str, Any]) -> None:
        event_id = str(uuid.uuid4())
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        with self._lock:
            targets = [s for s in self.subscriptions if s.wants(vault, event_type)]
        for subscription in targets:
            if subscription.schema == "CloudEventSchemaV1_0":
                event = {
                    "specversion": "1.0",
                    "id": event_id,
                    "source": vault.arm_id,
                    "subject": subject,
                    "type": event_type,
                    "time": now,
                    "data": data,
                }
            else:
                event = {
                    "id": event_id,
                    "topic": vault.arm_id,
                    "subject": subject,
                    "eventType": event_type,
                    "eventTime": now,
                    "data": data,
                    "dataVersion": "1",
                    "metadataVersion": "1",
                }
            delivery = Delivery(subscription, event)
            with self._lock:
                self.deliveries.append(delivery)
            self._ensure_worker()
            self._queue.put(delivery)

    # -- delivery -------------------------------------------------------------------------------------
    def wait(self, timeout: float = 30.0) -> None:
        """Until every published event was delivered or dead-lettered (tests and the demo)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                pending = [d for d in self.deliveries if not d.delivered and d not in self.dead_letters]
            if not pending:
                return
            time.sleep(0.02)
        raise TimeoutError("Event Grid deliveries still pending")

    def close(self) -> None:
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=5)
            self._worker = None

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="event-grid", daemon=True)
                self._worker.start()

    def _run(self) -> None:
        while (delivery := self._queue.get()) is not None:
            while not delivery.delivered and delivery.attempts < delivery.subscription.max_attempts:
                if delivery.attempts:
                    time.sleep(delivery.subscription.retry_seconds * delivery.attempts)
                self._post(delivery)
            if not delivery.delivered:
                with self._lock:
                    self.dead_letters.append(delivery)

    def _post(self, delivery: Delivery) -> None:
        subscription = delivery.subscription
        cloud = subscription.schema == "CloudEventSchemaV1_0"
        body = json.dumps(delivery.event if cloud else [delivery.event]).encode()
        headers = {
            "Content-Type": "application/cloudevents+json; charset=utf-8" if cloud else "application/json",
            "aeg-event-type": "Notification",
            "aeg-delivery-count": str(delivery.attempts),
        }
        request = urllib.request.Request(subscription.url, data=body, headers=headers, method="POST")
        delivery.attempts += 1
        try:
            with self._opener.open(request, timeout=120) as response:
                delivery.status = response.status
        except urllib.error.HTTPError as error:
            delivery.status = error.code
        except OSError:
            delivery.status = None
        delivery.delivered = delivery.status in _SUCCESS


# -- ARM: event subscriptions on a vault (extension resource) ---------------------------------------


def validate_webhook(url: str, source: str) -> bool:
    """Event Grid's synchronous handshake on creating a WebHook subscription: a
    `SubscriptionValidationEvent` whose `validationCode` the endpoint must echo as `validationResponse`."""
    code = str(uuid.uuid4())
    event = {
        "id": str(uuid.uuid4()),
        "topic": source,
        "subject": "",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "data": {"validationCode": code},
        "dataVersion": "2",
        "metadataVersion": "1",
    }
    request = urllib.request.Request(
        url,
        data=json.dumps([event]).encode(),
        headers={"Content-Type": "application/json", "aeg-event-type": "SubscriptionValidation"},
        method="POST",
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            answer = json.loads(response.read() or b"{}")
    except (OSError, ValueError):
        return False
    return isinstance(answer, dict) and answer.get("validationResponse") == code


def register(ctx: AzureContext) -> None:
    @ctx.route(ARM, "PUT", VAULT + r"/providers/Microsoft\.EventGrid/eventSubscriptions/(?P<name>[^/]+)")
    def put_event_subscription(request: Request) -> Response:
        """A WebHook event subscription on a vault (Event Grid creates the vault's system topic)."""
        p = request.params
        scope = vault_scope(p["sub"], p["rg"], p["vault"])
        require_arm(ctx, request, "Microsoft.EventGrid/eventSubscriptions/write", scope)
        vault = vault_or_404(ctx, request)
        props = body_json(request).get("properties") or {}
        destination = props.get("destination") or {} if isinstance(props, dict) else {}
        url = (destination.get("properties") or {}).get("endpointUrl")
        if destination.get("endpointType") != "WebHook" or not isinstance(url, str):
            raise arm_error(
                400, "InvalidRequest", "Only WebHook destinations with an endpointUrl are emulated."
            )
        schema = props.get("eventDeliverySchema") or "EventGridSchema"
        if schema not in ("EventGridSchema", "CloudEventSchemaV1_0"):
            raise arm_error(400, "InvalidRequest", f"Unsupported eventDeliverySchema '{schema}'.")
        types = (props.get("filter") or {}).get("includedEventTypes") or None
        if not validate_webhook(url, vault.arm_id):
            raise arm_error(
                400,
                "InvalidRequest",
                f"Webhook validation handshake failed for {url.split('?')[0]}.",
            )
        ctx.emulator.event_grid.subscribe(
            url, schema=schema, event_types=set(types) if types else None, source=vault.arm_id, name=p["name"]
        )
        return Response.json(
            201,
            {
                "id": f"{vault.arm_id}/providers/Microsoft.EventGrid/eventSubscriptions/{p['name']}",
                "name": p["name"],
                "type": "Microsoft.EventGrid/eventSubscriptions",
                "properties": {
                    "topic": vault.arm_id,
                    "provisioningState": "Succeeded",
                    "destination": {
                        "endpointType": "WebHook",
                        "properties": {"endpointBaseUrl": url.split("?")[0]},
                    },
                    "eventDeliverySchema": schema,
                    "filter": {"includedEventTypes": types},
                },
            },
        )
