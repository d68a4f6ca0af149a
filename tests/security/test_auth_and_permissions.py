"""Auth: every HTTP function requires a key (auth level FUNCTION); the local runner answers
401 without one; and the app's identity needs nothing beyond what infra/ grants: every Azure RBAC
action a registered remediation declares in `metadata.permissions_required` is allowed by a role that
infra/ assigns, and every other permission (Graph, Power Platform) is documented in docs/permissions.md
as an admin grant outside Bicep.

The built-in roles' actions come from the emulator's role definitions (test data, not production code).
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator.azure.roles import BUILT_IN, RoleDefinition, action_matches
from remediations.core.registry import all_remediations
from remediations.serve import make_server, serve_in_thread
from tests.contract.calls import CALLS
from tests.infra.bicep_model import INFRA, bicep_files, body, resources, role_definition_guid, template

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "permissions.md"
README = ROOT / "README.md"


def _infra_role_guids() -> set[str]:
    guids: set[str] = set()
    for path in bicep_files():
        tpl = template(str(path.relative_to(INFRA)))
        for entry in resources(tpl, "Microsoft.Authorization/roleAssignments").values():
            guids.add(role_definition_guid(tpl, body(entry)))
    return guids


# Built-in roles infra assigns that the emulator does not model (their documented actions, as data).
EXTRA_ROLES = (
    RoleDefinition(
        "f58310d9-a9f6-439a-9e8d-f62e7b41a168",
        "Role Based Access Control Administrator",
        "",
        actions=(
            "Microsoft.Authorization/roleAssignments/write",
            "Microsoft.Authorization/roleAssignments/delete",
            "*/read",
            "Microsoft.Support/*",
        ),
    ),
    RoleDefinition(
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
        "Storage Blob Data Owner",
        "",
        actions=("Microsoft.Storage/storageAccounts/blobServices/containers/*",),
    ),
    RoleDefinition(
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
        "Storage Queue Data Contributor",
        "",
        actions=("Microsoft.Storage/storageAccounts/queueServices/queues/*",),
    ),
    RoleDefinition(
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
        "Storage Table Data Contributor",
        "",
        actions=("Microsoft.Storage/storageAccounts/tableServices/tables/*",),
    ),
    RoleDefinition(
        "3913510d-42f4-4e42-8a64-420c390055eb",
        "Monitoring Metrics Publisher",
        "",
        actions=("Microsoft.Insights/Register/Action",),
    ),
)
ROLES = (*BUILT_IN, *EXTRA_ROLES)


def _allows(guid: str, action: str) -> bool:
    [role] = [d for d in ROLES if d.id.lower() == guid]
    data = "/secrets/" in action and action.endswith("/action") and "listkeys" not in action.lower()
    granted, denied = (role.data_actions, role.not_data_actions) if data else (role.actions, role.not_actions)
    return any(action_matches(p, action) for p in granted) and not any(
        action_matches(p, action) for p in denied
    )


def _azure_actions() -> dict[str, list[str]]:
    return {
        r.id: [p for p in r.metadata.permissions_required if p.startswith("Microsoft.")]
        for r in all_remediations()
    }


def test_infra_assigns_only_roles_we_know() -> None:
    known = {d.id.lower() for d in ROLES}
    assigned = _infra_role_guids()
    assert assigned and assigned <= known, assigned - known


def test_every_role_infra_assigns_is_in_the_roles_table() -> None:
    """docs/permissions.md "Roles infra/ assigns" names each role infra/ assigns, so a role added to the
    Bicep (Key Vault Reader for the secret lists) is documented with its scope and use."""
    section = DOC.read_text().split("## Roles infra/ assigns", 1)[1].split("\n## ", 1)[0]
    names = {d.id.lower(): d.role_name for d in ROLES}
    assert [g for g in sorted(_infra_role_guids()) if names[g] not in section] == []


def test_secret_lists_are_granted_in_rbac_vaults_and_manual_only_in_access_policy_vaults() -> None:
    """The deep sweep's `Key Vault GET secrets` is covered by a role infra/ assigns at the target scopes
    (not only the rotation vaults' Secrets Officer); access-policy vaults stay a documented manual grant."""
    rows = _table(DOC.read_text(), "## Per call")
    _, granted_by = rows["Key Vault GET secrets"]
    assert "Key Vault Reader" in granted_by and "access-policy vaults: manual grant" in granted_by
    [reader] = [d for d in ROLES if d.role_name == "Key Vault Reader"]
    assert reader.id.lower() in _infra_role_guids()
    assert _allows(reader.id.lower(), "Microsoft.KeyVault/vaults/secrets/readMetadata/action")
    assert not _allows(reader.id.lower(), "Microsoft.KeyVault/vaults/secrets/getSecret/action")
    manual = DOC.read_text().split("## Manual grants", 1)[1]
    assert "--secret-permissions list`" in manual and "secretPermissions.byIdentity" in manual


def _manual_grants() -> set[str]:
    section = DOC.read_text().split("## Manual grants", 1)[1]
    return {line.strip()[3:-1] for line in section.splitlines() if line.strip().startswith("- `")}


def test_every_azure_action_a_remediation_needs_is_granted_by_a_role_infra_assigns() -> None:
    """...or is listed, exactly, as a manual grant (a new uncovered action fails until documented)."""
    assigned = _infra_role_guids()
    missing = {
        a
        for actions in _azure_actions().values()
        for a in actions
        if not any(_allows(g, a) for g in assigned)
    }
    assert missing == _manual_grants()


def test_the_permissions_document_covers_every_remediation_and_every_non_rbac_grant() -> None:
    text = DOC.read_text()
    for remediation in all_remediations():
        assert f"`{remediation.id}`" in text, remediation.id
        for permission in remediation.metadata.permissions_required:
            assert permission in text, (remediation.id, permission)


def _table(text: str, heading: str) -> dict[str, list[str]]:
    """A markdown table under `heading`: first cell's backticked id -> the other cells."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[str]] = {}
    for line in section.splitlines():
        found = re.match(r"\|\s*`([^`]+)`\s*\|", line)
        if found:
            rows[found.group(1)] = [c.strip() for c in line.strip().strip("|").split("|")][1:]
    return rows


def _dataverse_custom_role() -> set[str]:
    role = (
        DOC.read_text()
        .split("<!-- dataverse-custom-role -->", 1)[1]
        .split("<!-- /dataverse-custom-role -->")[0]
    )
    return set(re.findall(r"`(prv\w+)`", role))


def _readme_graph_permissions() -> set[str]:
    """The permission each README Graph row asks for (the first one named; later ones are alternatives)."""
    rows = [line for line in README.read_text().splitlines() if line.startswith("| Microsoft Graph |")]
    return {re.findall(r"`(\w+\.[\w.]+)`", line.split("|")[2])[0] for line in rows}


def test_every_adapter_call_has_exactly_the_grant_it_needs() -> None:
    """docs/permissions.md "Per call": one row per call the adapters make (tests/contract/calls.py); Azure
    actions granted by infra/ or marked manual; the Dataverse custom role and the README's Graph grants
    hold what the calls need and nothing they do not."""
    rows = _table(DOC.read_text(), "## Per call")
    assert set(rows) == {c.id for c in CALLS}, set(rows) ^ {c.id for c in CALLS}
    assigned = _infra_role_guids()
    privileges: set[str] = set()
    graph: set[str] = set()
    for call in CALLS:
        permission, granted_by = rows[call.id]
        for action in re.findall(r"`(Microsoft\.[\w./]+)`", permission):
            assert any(_allows(g, action) for g in assigned) or "manual grant" in granted_by, (
                call.id,
                action,
            )
        if call.id.startswith("Dataverse "):
            needed = set(re.findall(r"`(prv\w+)`", permission))
            assert needed and granted_by == "application user", call.id
            privileges |= needed
        elif call.id.startswith(("BAP ", "Power Apps ", "DLP ")):
            assert granted_by == "management app", call.id
        elif call.id.startswith("Graph "):
            (needed_graph,) = re.findall(r"`(\w+\.[\w.]+)`", permission)
            graph.add(needed_graph)
    assert privileges == _dataverse_custom_role()
    assert graph == _readme_graph_permissions()


KEY = "auth-test-key-456"


@pytest.fixture
def port(functions: dict[str, Any]) -> Iterator[int]:
    srv = make_server("127.0.0.1", 0, function_key=KEY, functions=functions.values())
    serve_in_thread(srv)
    try:
        yield srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/health"),
        ("POST", "/api/remediations"),
        ("GET", "/api/remediations"),
        ("GET", "/api/remediations/CHG-1"),
        ("POST", "/api/alerts"),
        ("GET", "/api/openapi.json"),
    ],
)
@pytest.mark.parametrize("key", [None, "wrong-key", KEY.upper()])
def test_every_route_answers_401_without_the_right_key(
    port: int, method: str, path: str, key: str | None
) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Content-Type": "application/json"} | ({"x-functions-key": key} if key else {})
    connection.request(method, path, body=b"{}" if method == "POST" else None, headers=headers)
    response = connection.getresponse()
    assert response.status == 401, (method, path, key)
    assert response.getheader("Content-Type", "").startswith("application/problem+json")
    connection.close()


def test_every_http_binding_is_auth_level_function(functions: dict[str, Any]) -> None:
    import json

    http_functions = 0
    for function in functions.values():
        for binding in (json.loads(raw) for raw in function.get_raw_bindings()):
            if binding.get("type") == "httpTrigger":
                http_functions += 1
                assert binding["authLevel"] == "FUNCTION", function.get_function_name()
    assert http_functions >= 5
