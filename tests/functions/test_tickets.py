"""POST/GET /api/remediations in-process against Azurite: validation, idempotency, storage."""

from __future__ import annotations

import json
from typing import Any

import pytest

from emulator import Emulator
from emulator.azure.state import AccessPolicy
from tests.functions.conftest import (
    ADMIN_USER,
    FLOW_SP,
    VAULT,
    VAULT_NAME,
    Call,
    app_may_rotate,
    policy_writes_since,
    problem,
    secrets_of,
    ticket_body,
)


def _count_entities(env: dict[str, str]) -> int:
    from azure.data.tables import TableClient

    table = TableClient.from_connection_string(env["AzureWebJobsStorage"], env["VAULTGUARD_RUNS_TABLE"])
    return len(list(table.list_entities()))


def test_dry_run_ticket_returns_the_plan_with_200_and_is_stored(
    call: Call, app_env: dict[str, str], cloud: Emulator
) -> None:
    mark = cloud.requests.mark()
    body = ticket_body()
    response = call("tickets", "POST", "/api/remediations", body=body)
    assert response.status_code == 200, response.get_body()
    assert response.headers["Location"] == f"/api/remediations/{body['ticketId']}"
    assert response.headers["x-correlation-id"]
    result = json.loads(response.get_body())
    assert result["ticketId"] == body["ticketId"]
    assert result["status"] == "planned"
    assert result["dryRun"] is True and result["requestedDryRun"] is True
    assert result["targets"]["vaults"] == [VAULT]
    assert result["scopes"] == [VAULT]
    [action] = result["plan"]
    assert (action["remediation_id"], action["principal"], action["target"]) == (
        "remove_list_permission",
        FLOW_SP,
        VAULT,
    )
    assert action["before"]["secrets"] == ["Get", "List"] and action["after"]["secrets"] == ["Get"]
    assert [(o["status"], o["error"]) for o in result["outcomes"]] == [("skipped", "dry run")]
    assert result["summary"] == {"findings": 1, "actions": 1, "failures": 0, "throttled": 0, "readErrors": 0}
    assert policy_writes_since(cloud, mark) == 0
    assert secrets_of(cloud, FLOW_SP) == ["Get", "List"]

    fetched = call(
        "ticket", "GET", f"/api/remediations/{body['ticketId']}", route_params={"ticketId": body["ticketId"]}
    )
    assert fetched.status_code == 200
    assert json.loads(fetched.get_body()) == result


def test_an_applied_ticket_is_202_changes_the_vault_and_audits_requester_and_ticket(
    call: Call, enforce: dict[str, str], cloud: Emulator
) -> None:
    from remediations.shell.audit import TableAuditSink
    from remediations.shell.settings import AppSettings

    mark = cloud.requests.mark()
    body = ticket_body(dryRun=False)
    response = call("tickets", "POST", "/api/remediations", body=body)
    assert response.status_code == 202, response.get_body()
    result = json.loads(response.get_body())
    assert result["status"] == "applied" and result["dryRun"] is False
    assert [o["status"] for o in result["outcomes"]] == ["applied"]
    assert secrets_of(cloud, FLOW_SP) == ["Get"]
    assert secrets_of(cloud, ADMIN_USER) == ["Get", "Set", "Delete"]
    assert policy_writes_since(cloud, mark) == 1
    rows = TableAuditSink.from_settings(AppSettings.from_env()).records(result["correlationId"])
    assert [r.state for r in rows] == ["pending", "applied"]
    assert {(r.trigger, r.caller, r.ticket_id) for r in rows} == {
        ("ticket", "secops@contoso.example", body["ticketId"])
    }
    assert rows[1].before["secrets"] == ["Get", "List"] and rows[1].after["secrets"] == ["Get"]

    # The same ticket again: the stored result, and no second write (nor any call to Azure).
    mark = cloud.requests.mark()
    again = call("tickets", "POST", "/api/remediations", body=body)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert json.loads(again.get_body()) == result
    assert cloud.requests.since(mark) == []


def test_dry_run_false_cannot_lift_a_deployment_wide_dry_run(
    call: Call, app_env: dict[str, str], cloud: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULTGUARD_DRY_RUN", "true")
    monkeypatch.setenv("VAULTGUARD_POLICY_JSON", json.dumps({"dryRun": False}))
    mark = cloud.requests.mark()
    response = call("tickets", "POST", "/api/remediations", body=ticket_body(dryRun=False))
    assert response.status_code == 200
    result = json.loads(response.get_body())
    assert result["dryRun"] is True and result["requestedDryRun"] is False
    assert result["dryRunForcedBy"] == ["VAULTGUARD_DRY_RUN"]
    assert "keep this deployment in dry run" in result["notes"][0]
    assert len(result["plan"]) == 1
    assert policy_writes_since(cloud, mark) == 0


def test_ticket_dry_run_true_wins_over_an_enforcing_deployment(
    call: Call, enforce: dict[str, str], cloud: Emulator
) -> None:
    mark = cloud.requests.mark()
    result = json.loads(call("tickets", "POST", "/api/remediations", body=ticket_body()).get_body())
    assert result["status"] == "planned" and result["dryRunForcedBy"] == []
    assert policy_writes_since(cloud, mark) == 0


def test_the_cap_is_the_minimum_of_setting_and_policy(
    call: Call, enforce: dict[str, str], cloud: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An allow-list of `get` makes two writes due (List off the flow identity, Set/Delete off the
    admin); the setting allows 7, the policy 1: one is applied, the other deferred."""
    monkeypatch.setenv("VAULTGUARD_MAX_ACTIONS_PER_RUN", "7")
    policy = {"dryRun": False, "maxActionsPerRun": 1, "secretPermissions": {"default": ["get"]}}
    monkeypatch.setenv("VAULTGUARD_POLICY_JSON", json.dumps(policy))
    mark = cloud.requests.mark()
    body = ticket_body(remediations=["narrow_access_policy"], dryRun=False)
    result = json.loads(call("tickets", "POST", "/api/remediations", body=body).get_body())
    assert sorted(o["status"] for o in result["outcomes"]) == ["applied", "deferred"], result["outcomes"]
    assert policy_writes_since(cloud, mark) == 1


def test_principals_narrow_what_a_ticket_touches(call: Call, app_env: dict[str, str]) -> None:
    mine = ticket_body(targets={"vaults": [VAULT], "principals": [FLOW_SP.upper()]})
    other = ticket_body(targets={"vaults": [VAULT], "principals": [ADMIN_USER]})
    only_principal = ticket_body(targets={"principals": [FLOW_SP]})
    assert [a["principal"] for a in _post(call, mine)["plan"]] == [FLOW_SP]
    assert _post(call, other)["plan"] == []
    swept = _post(call, only_principal)  # no vault named: the configured subscriptions are looked at
    assert swept["scopes"] == ["/subscriptions/5f1c2b3a-8d4e-4f60-9a7b-1c2d3e4f5a6b"]
    assert [a["principal"] for a in swept["plan"]] == [FLOW_SP]


def test_a_secret_url_finds_its_vault(call: Call, app_env: dict[str, str]) -> None:
    result = _post(
        call, ticket_body(targets={"secrets": ["https://kv-fin-flows.vault.azure.net/secrets/sql-password"]})
    )
    assert result["scopes"] == [VAULT]
    assert [a["principal"] for a in result["plan"]] == [FLOW_SP]
    missing = _post(call, ticket_body(targets={"secrets": ["https://kv-gone.vault.azure.net/secrets/x"]}))
    assert missing["scopes"] == [] and "no vault named kv-gone" in " ".join(missing["notes"])


def _post(call: Call, body: dict[str, Any]) -> dict[str, Any]:
    response = call("tickets", "POST", "/api/remediations", body=body)
    assert response.status_code == 200, response.get_body()
    result: dict[str, Any] = json.loads(response.get_body())
    return result


def test_same_ticket_twice_returns_the_stored_result_and_writes_nothing(
    call: Call, app_env: dict[str, str], cloud: Emulator
) -> None:
    body = ticket_body()
    first = call("tickets", "POST", "/api/remediations", body=body)
    assert first.status_code == 200
    entities = _count_entities(app_env)
    mark = cloud.requests.mark()
    # The same meaning in a different key order and with the default spelled out.
    second = call(
        "tickets", "POST", "/api/remediations", body={**dict(reversed(list(body.items()))), "dryRun": True}
    )
    assert second.status_code == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert json.loads(second.get_body()) == json.loads(first.get_body())
    assert _count_entities(app_env) == entities
    assert cloud.requests.since(mark) == []


def test_same_ticket_id_with_another_body_is_a_409_problem(call: Call, app_env: dict[str, str]) -> None:
    body = ticket_body()
    assert call("tickets", "POST", "/api/remediations", body=body).status_code == 200
    entities = _count_entities(app_env)
    response = call("tickets", "POST", "/api/remediations", body={**body, "dryRun": False})
    assert response.status_code == 409
    assert problem(response)["type"].endswith("idempotency-conflict")
    assert _count_entities(app_env) == entities


def test_list_recent_runs_newest_first(call: Call, app_env: dict[str, str]) -> None:
    ids = []
    for _ in range(3):
        body = ticket_body()
        ids.append(body["ticketId"])
        assert call("tickets", "POST", "/api/remediations", body=body).status_code == 200
    response = call("tickets", "GET", "/api/remediations", params={"limit": "2"})
    assert response.status_code == 200
    runs = json.loads(response.get_body())["runs"]
    assert [r["id"] for r in runs] == [ids[2], ids[1]]
    assert all(r["kind"] == "ticket" and r["status"] == "planned" for r in runs)


@pytest.mark.parametrize("limit", ["-4", "\u00b2", "\u0663", "99999999999999999999", ""])
def test_list_rejects_a_bad_limit(call: Call, app_env: dict[str, str], limit: str) -> None:
    # "²" and "٣" are digits to str.isdigit() but not to int(): once a 500.
    response = call("tickets", "GET", "/api/remediations", params={"limit": limit})
    assert response.status_code == 422
    assert problem(response)["errors"][0]["path"] == "query.limit"


def test_unknown_ticket_is_404(call: Call, app_env: dict[str, str]) -> None:
    for ticket_id in ("NOPE-1", "../etc", "a" * 65, ".", ".."):
        response = call(
            "ticket", "GET", f"/api/remediations/{ticket_id}", route_params={"ticketId": ticket_id}
        )
        assert response.status_code == 404
        problem(response)


BAD_VAULTS = [
    VAULT + "/../../other",
    VAULT + "?api-version=1",
    VAULT + "#x",
    VAULT.replace("kv-fin-flows", "kv%2Ffin"),
    VAULT.replace("kv-fin-flows", "kv fin"),
    VAULT.replace("kv-fin-flows", "kv"),
    VAULT.replace("kv-fin-flows", "k" * 25),
    VAULT.replace("Microsoft.KeyVault", "Microsoft.Storage"),
    VAULT.replace("5f1c2b3a-8d4e-4f60-9a7b-1c2d3e4f5a6b", "not-a-guid"),
    "https://management.azure.com" + VAULT,
    VAULT + "/",
    VAULT.replace("kv-fin-flows", "kv-fin-flöws"),
]


@pytest.mark.parametrize("vault", BAD_VAULTS)
def test_injected_or_malformed_vault_ids_are_422_with_the_path(
    call: Call, app_env: dict[str, str], vault: str
) -> None:
    response = call("tickets", "POST", "/api/remediations", body=ticket_body(targets={"vaults": [vault]}))
    assert response.status_code == 422
    body = problem(response)
    assert body["errors"][0]["path"] == "$.targets.vaults[0]"
    assert vault not in response.get_body().decode()


@pytest.mark.parametrize(
    ("overrides", "path"),
    [
        ({"remediations": ["drop_database"]}, "$.remediations"),
        # Not registered: unknown to the registry, so 422.
        ({"remediations": ["rotate_everything"]}, "$.remediations"),
        (
            {
                "targets": {
                    "flows": [
                        "/providers/Microsoft.ProcessSimple/environments/e1/flows/0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
                    ]
                }
            },
            "$.targets",
        ),
        ({"remediations": []}, "$.remediations"),
        ({"remediations": "remove_list_permission"}, "$.remediations"),
        ({"ticketId": "has space"}, "$.ticketId"),
        ({"ticketId": "x" * 65}, "$.ticketId"),
        ({"ticketId": 42}, "$.ticketId"),
        ({"ticketId": "."}, "$.ticketId"),
        ({"ticketId": ".."}, "$.ticketId"),
        ({"dryRun": "false"}, "$.dryRun"),
        ({"dryRun": 0}, "$.dryRun"),
        ({"targets": {}}, "$.targets"),
        ({"targets": {"vaults": [], "buckets": ["x"]}}, "$.targets.buckets"),
        ({"targets": {"principals": ["not-a-guid"]}}, "$.targets.principals[0]"),
        ({"targets": {"secrets": ["https://evil.example/secrets/x"]}}, "$.targets.secrets[0]"),
        (
            {"targets": {"flows": ["/providers/Microsoft.ProcessSimple/environments/e1/flows/../x"]}},
            "$.targets.flows[0]",
        ),
        ({"unexpected": True}, "$.unexpected"),
        ({"reason": "line\x00break"}, "$.reason"),
    ],
)
def test_wrong_types_unknown_fields_and_bad_values_are_422(
    call: Call, app_env: dict[str, str], overrides: dict[str, Any], path: str
) -> None:
    response = call("tickets", "POST", "/api/remediations", body=ticket_body(**overrides))
    assert response.status_code == 422, response.get_body()
    body = problem(response)
    assert path in [e["path"] for e in body["errors"]], body


def test_valid_targets_of_every_kind_are_accepted(call: Call, app_env: dict[str, str]) -> None:
    targets = {
        "vaults": [VAULT],
        "secrets": [
            VAULT + "/secrets/sql-password",
            "https://kv-fin-flows.vault.azure.net/secrets/sql-password",
        ],
        "flows": [
            "/providers/Microsoft.ProcessSimple/environments/Default-7c6b5a49-3827-4160-9f8e-d7c6b5a49382"
            "/flows/0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
        ],
        "connections": [
            "/providers/Microsoft.PowerApps/apis/shared_keyvault/connections/5f1e2d3c4b5a69788796a5b4c3d2e1f0"
        ],
        "principals": ["0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D"],
        "environments": ["Default-7c6b5a49-3827-4160-9f8e-d7c6b5a49382"],
    }
    response = call("tickets", "POST", "/api/remediations", body=ticket_body(targets=targets, dryRun=False))
    assert response.status_code == 200, response.get_body()
    result = json.loads(response.get_body())
    assert result["targets"]["principals"] == [FLOW_SP]
    assert result["requestedDryRun"] is False and result["dryRun"] is True
    assert result["scopes"] == [VAULT]  # three ways of naming one vault
    assert any("flows, connections, environments are not acted on" in n for n in result["notes"])


@pytest.mark.parametrize(
    ("raw", "headers", "status", "kind"),
    [
        (b"{not json", {}, 400, "malformed-json"),
        (b"", {}, 400, "malformed-json"),
        (b'{"a": NaN}', {}, 400, "malformed-json"),
        (b"\xff\xfe{}", {}, 400, "malformed-json"),
        (b"[" * 100_000, {}, 400, "malformed-json"),
        (b"ticketId=1", {"content-type": "application/x-www-form-urlencoded"}, 415, "unsupported-media-type"),
        (b"{}", {"content-type": "text/plain"}, 415, "unsupported-media-type"),
        (b" " * (256 * 1024 + 1), {}, 413, "payload-too-large"),
        (b"{}", {"content-length": str(10**9)}, 413, "payload-too-large"),
        (b"[]", {}, 422, "validation-error"),
        (b'"text"', {}, 422, "validation-error"),
    ],
)
def test_malformed_bodies_are_4xx_problems(
    call: Call, app_env: dict[str, str], raw: bytes, headers: dict[str, str], status: int, kind: str
) -> None:
    response = call("tickets", "POST", "/api/remediations", raw=raw, headers=headers)
    assert response.status_code == status, response.get_body()[:300]
    assert problem(response)["type"].endswith(kind)


def test_a_failing_engine_is_a_500_problem_without_traceback_and_is_recorded(
    call: Call, app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from remediations.triggers import remediate_ticket

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret-value-that-must-not-leak")

    monkeypatch.setattr(remediate_ticket, "run_ticket", boom)
    body = ticket_body()
    response = call("tickets", "POST", "/api/remediations", body=body)
    assert response.status_code == 500
    details = problem(response)
    assert "secret-value-that-must-not-leak" not in response.get_body().decode()
    assert details["correlationId"] == response.headers["x-correlation-id"]
    stored = call("ticket", "GET", "/x", route_params={"ticketId": body["ticketId"]})
    assert json.loads(stored.get_body())["status"] == "failed"


def test_storage_not_configured_is_503_problem(call: Call, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    monkeypatch.delenv("AzureWebJobsStorage__tableServiceUri", raising=False)
    response = call("tickets", "POST", "/api/remediations", body=ticket_body())
    assert response.status_code == 503
    problem(response)


@pytest.mark.parametrize("form", ["url", "arm"])
def test_a_ticket_rotates_exactly_the_named_secret_and_returns_no_value(
    call: Call,
    enforce: dict[str, str],
    cloud: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    form: str,
) -> None:
    """`targets.secrets` + `rotate_secret`: only the named secret gets a new version (random rotator),
    its old version is disabled; the other secret of the vault is untouched. The response and the audit
    rows name versions, never a value."""
    from remediations.shell.audit import TableAuditSink
    from remediations.shell.settings import AppSettings

    policy = {"dryRun": False, "rotation": {"defaultRotator": "random"}}
    monkeypatch.setenv("VAULTGUARD_POLICY_JSON", json.dumps(policy))
    values = {"api-key": "exposed-api-key-value-1", "other-key": "untouched-other-value-2"}
    vault = cloud.state.azure.vaults[VAULT_NAME]
    named = (
        "https://kv-fin-flows.vault.azure.net/secrets/api-key"
        if form == "url"
        else f"{VAULT}/secrets/api-key"
    )
    with app_may_rotate(cloud, values):
        old = vault.secrets["api-key"].latest.version
        mark = cloud.requests.mark()
        body = ticket_body(remediations=["rotate_secret"], targets={"secrets": [named]}, dryRun=False)
        response = call("tickets", "POST", "/api/remediations", body=body)
        assert response.status_code == 202, response.get_body()
        result = json.loads(response.get_body())
        assert result["status"] == "applied", result
        [action] = result["plan"]
        assert (action["remediation_id"], action["target"]) == ("rotate_secret", f"{VAULT}/secrets/api-key")
        [outcome] = result["outcomes"]
        assert outcome["status"] == "applied", outcome
        with cloud.state.lock:
            versions = list(vault.secrets["api-key"].versions)
            other = list(vault.secrets["other-key"].versions)
        assert len(versions) == 2 and versions[0].version == old
        new = versions[-1]
        assert outcome["after"]["newVersion"] == [new.version]
        assert outcome["after"]["disabledVersions"] == [old]
        assert versions[0].enabled is False and new.enabled is True
        assert new.value not in values.values() and new.tags is not None
        assert new.tags["ticketId"] == body["ticketId"]
        assert len(other) == 1 and other[0].enabled is True  # not named: not rotated
        writes = [(r.method, r.path) for r in cloud.requests.since(mark) if r.method in {"PUT", "PATCH"}]
        assert ("PATCH", f"/secrets/api-key/{old}") in writes
        assert not any("other-key" in path for _, path in writes)

        rows = TableAuditSink.from_settings(AppSettings.from_env()).records(result["correlationId"])
        assert [r.state for r in rows] == ["pending", "applied"]
        assert {r.ticket_id for r in rows} == {body["ticketId"]}
        texts = [
            response.get_body().decode(),
            json.dumps([r.model_dump(mode="json") for r in rows]),
            caplog.text,
        ]
        for value in [*values.values(), new.value]:
            assert all(value not in text for text in texts)


def test_a_ticket_naming_a_secret_the_app_cannot_list_fails_and_says_why(
    call: Call, enforce: dict[str, str], cloud: Emulator
) -> None:
    """The app's identity may not list the sample vault: the named secret is not rotated, the action is
    skipped with the reason, and the ticket (which asked for rotation) is not reported as applied."""
    body = ticket_body(
        remediations=["rotate_secret"],
        targets={"secrets": [f"{VAULT}/secrets/sql-password"]},
        dryRun=False,
    )
    response = call("tickets", "POST", "/api/remediations", body=body)
    assert response.status_code == 202, response.get_body()  # handled; the body says it failed
    result = json.loads(response.get_body())
    [action] = result["plan"]
    assert action["remediation_id"] == "rotate_secret"
    assert "secret list of vault kv-fin-flows failed (HTTP 403)" in action["skip_reason"]
    assert [o["status"] for o in result["outcomes"]] == ["skipped"]
    assert result["status"] == "failed"
    assert result["summary"]["readErrors"] == 1 and result["summary"]["failures"] == 1
    [note] = [n for n in result["notes"] if n.startswith(f"read failed: list secrets {VAULT}: HTTP 403")]
    # The note says what to grant: the vault uses access policies, so a list-only entry for the app's own
    # identity (Key Vault Reader would not reach it), which the app then leaves in place by itself.
    app = cloud.state.azure.admin_object_id
    command = f"az keyvault set-policy --name {VAULT_NAME} --object-id {app} --secret-permissions list"
    assert f"; grant an access policy entry with secret permission list only, never get: `{command}`" in note
    assert "list-only entry of its own identity in place" in note and "Key Vault Reader" in note
    assert "byIdentity" not in note


def test_a_list_refused_by_the_vault_firewall_says_network_access_not_a_grant(
    call: Call, enforce: dict[str, str], cloud: Emulator
) -> None:
    """The vault's firewall denies by default and the app's address is not in its rules: Key Vault
    refuses the list with innererror ForbiddenByFirewall even though the app may list secrets, and
    the run's note asks for network access (outbound IPs or a private endpoint), not a role."""
    az = cloud.state.azure
    with cloud.state.lock:
        vault = az.vaults[VAULT_NAME]
        vault.access_policies.append(
            AccessPolicy(az.tenant_id, az.admin_object_id, permissions={"secrets": ["List"]})
        )
        vault.extra_properties["networkAcls"] = {
            "defaultAction": "Deny",
            "bypass": "AzureServices",
            "ipRules": [],
        }
    try:
        body = ticket_body(
            remediations=["rotate_secret"],
            targets={"secrets": [f"{VAULT}/secrets/sql-password"]},
            dryRun=False,
        )
        response = call("tickets", "POST", "/api/remediations", body=body)
    finally:
        with cloud.state.lock:
            vault.extra_properties.pop("networkAcls", None)
    assert response.status_code == 202, response.get_body()
    result = json.loads(response.get_body())
    assert [o["status"] for o in result["outcomes"]] == ["skipped"]
    [note] = [n for n in result["notes"] if n.startswith(f"read failed: list secrets {VAULT}: HTTP 403")]
    assert f"; allow the app's network access to {VAULT_NAME}: its firewall refused" in note
    assert "(innererror ForbiddenByFirewall)" in note and "outbound IP addresses" in note
    assert "grant" not in note and "set-policy" not in note


def test_the_apps_own_list_only_entry_is_left_alone_with_a_note(
    call: Call, enforce: dict[str, str], cloud: Emulator
) -> None:
    """The app's identity holds secret list only on the vault (the grant its deep sweep needs) and the
    policy has no rule for it: an applied ticket takes list from the flow's identity, leaves the app's
    entry in place and says so in its notes."""
    az = cloud.state.azure
    with cloud.state.lock:
        az.vaults[VAULT_NAME].access_policies.append(
            AccessPolicy(az.tenant_id, az.admin_object_id, permissions={"secrets": ["List"]})
        )
    response = call("tickets", "POST", "/api/remediations", body=ticket_body(dryRun=False))
    assert response.status_code == 202, response.get_body()
    result = json.loads(response.get_body())
    assert [(a["remediation_id"], a["principal"]) for a in result["plan"]] == [
        ("remove_list_permission", FLOW_SP)
    ]
    assert [o["status"] for o in result["outcomes"]] == ["applied"]
    assert secrets_of(cloud, FLOW_SP) == ["Get"] and secrets_of(cloud, az.admin_object_id) == ["List"]
    left = f"left alone: the app's own identity {az.admin_object_id} holds secret list only on vault "
    assert f"{left}{VAULT_NAME}" in " ".join(result["notes"])
