"""The Azurite fixture is real storage: a queue message and a table entity round-trip."""

from __future__ import annotations

import uuid

from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient

from emulator.azurite import Azurite


def test_queue_message_round_trip(azurite: Azurite) -> None:
    queue = QueueClient.from_connection_string(azurite.connection_string, f"q-{uuid.uuid4().hex[:8]}")
    queue.create_queue()
    queue.send_message('{"scope": "vault-1"}')
    messages = list(queue.receive_messages(max_messages=5))
    assert [m.content for m in messages] == ['{"scope": "vault-1"}']
    queue.delete_message(messages[0])
    assert list(queue.receive_messages(max_messages=5)) == []


def test_table_entity_round_trip(azurite: Azurite) -> None:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    table = service.create_table_if_not_exists(f"t{uuid.uuid4().hex[:8]}")
    table.upsert_entity({"PartitionKey": "run", "RowKey": "1", "outcome": "applied"})
    assert table.get_entity("run", "1")["outcome"] == "applied"
