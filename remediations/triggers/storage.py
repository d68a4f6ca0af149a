"""Storage clients for the triggers: a connection string locally (Azurite), identity in Azure.

Mirrors how the Functions host reads `AzureWebJobsStorage`: either a connection string, or the
identity-based form `AzureWebJobsStorage__queueServiceUri` / `__tableServiceUri` with
`__credential=managedidentity` and `__clientId` for a user-assigned identity. azure-identity is
imported only in the identity-based branch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from azure.data.tables import TableClient, TableServiceClient
from azure.storage.queue import BinaryBase64DecodePolicy, BinaryBase64EncodePolicy, QueueClient

from remediations.shell import settings as names

CLIENT_ID = "AzureWebJobsStorage__clientId"


class StorageNotConfigured(RuntimeError):
    pass


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _credential(env: Mapping[str, str]) -> Any:
    from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - only for identity-based storage

    client_id = env.get(CLIENT_ID, "").strip() or None
    return DefaultAzureCredential(managed_identity_client_id=client_id)


def table_client(table_name: str, env: Mapping[str, str] | None = None) -> TableClient:
    source = _env(env)
    connection = source.get(names.STORAGE_CONNECTION, "").strip()
    if connection:
        service = TableServiceClient.from_connection_string(connection)
    else:
        uri = source.get(names.STORAGE_TABLE_URI, "").strip()
        if not uri:
            raise StorageNotConfigured(
                f"set {names.STORAGE_CONNECTION} or {names.STORAGE_TABLE_URI} for the run store"
            )
        service = TableServiceClient(endpoint=uri, credential=_credential(source))
    return service.get_table_client(table_name)


def queue_client(queue_name: str, env: Mapping[str, str] | None = None) -> QueueClient:
    """A client whose messages the queue trigger can read: host.json says `messageEncoding: base64`."""
    source = _env(env)
    policies: dict[str, Any] = {
        "message_encode_policy": BinaryBase64EncodePolicy(),
        "message_decode_policy": BinaryBase64DecodePolicy(),
    }
    connection = source.get(names.STORAGE_CONNECTION, "").strip()
    if connection:
        return QueueClient.from_connection_string(connection, queue_name, **policies)
    uri = source.get(names.STORAGE_QUEUE_URI, "").strip()
    if not uri:
        raise StorageNotConfigured(
            f"set {names.STORAGE_CONNECTION} or {names.STORAGE_QUEUE_URI} for the queue"
        )
    return QueueClient(account_url=uri, queue_name=queue_name, credential=_credential(source), **policies)
