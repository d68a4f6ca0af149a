"""The audit log in real Azure Table Storage (Azurite): pending before, outcome after, no secrets."""

from __future__ import annotations

from azure.data.tables import TableServiceClient

from remediations.core.model import Scope
from remediations.core.policy import parse_policy
from remediations.core.request import RunRequest
from remediations.shell.audit import MemoryAuditSink, TableAuditSink
from remediations.shell.pipeline import run
from remediations.shell.settings import AppSettings
from tests.unit.kv_builders import SUB, MemoryClients, owner_at, policy_entry, vault


def test_run_writes_rows_to_the_table(storage_env: dict[str, str]) -> None:
    clients = MemoryClients(
        vault("kv", policy_entry("u1", "Get", "List")), assignments=(owner_at(f"/subscriptions/{SUB}"),)
    )
    sink = TableAuditSink.from_settings(AppSettings.from_env())
    result = run(
        RunRequest(
            trigger="ticket",
            scope=Scope(subscription_id=SUB),
            correlation_id="run-42",
            ticket_id="T-1",
            caller="alice",
        ),
        parse_policy({"dryRun": False}),
        clients,
        sink,
    )
    assert result.count("applied") == 1

    table = TableServiceClient.from_connection_string(storage_env["AzureWebJobsStorage"]).get_table_client(
        storage_env["VAULTGUARD_AUDIT_TABLE"]
    )
    rows = sorted(table.query_entities("PartitionKey eq 'run-42'"), key=lambda r: r["RowKey"])
    action_id = result.plan.actions[0].id
    assert [r["RowKey"] for r in rows] == [f"{action_id}-00-pending", f"{action_id}-01-applied"]
    assert rows[0]["before"] == '{"certificates": [], "keys": [], "secrets": ["Get", "List"], "storage": []}'
    assert '"secrets": ["Get"]' in rows[1]["after"]
    assert {r["trigger"] for r in rows} == {"ticket"} and {r["ticket_id"] for r in rows} == {"T-1"}
    assert rows[1]["remediation_id"] == "remove_list_permission" and rows[1]["caller"] == "alice"
    assert not any("value" in key.lower() for r in rows for key in r)

    records = sink.records("run-42")
    assert [r.state for r in records] == ["pending", "applied"] and records[1].target == vault("kv").id


def test_memory_sink_has_the_same_protocol() -> None:
    sink = MemoryAuditSink()
    clients = MemoryClients(
        vault("kv", policy_entry("u1", "list")), assignments=(owner_at(f"/subscriptions/{SUB}"),)
    )
    run(
        RunRequest(trigger="cli", scope=Scope(subscription_id=SUB), correlation_id="m"),
        parse_policy({"dryRun": False}),
        clients,
        sink,
    )
    assert [r.state for r in sink.records("m")] == ["pending", "applied"]
