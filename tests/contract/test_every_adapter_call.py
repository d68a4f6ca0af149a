"""Every call the adapters make has a public recording it is tested against, or an explicit row saying
there is none.

Every public method of every adapter class is driven through `RoutedTransport` (tests/contract/calls.py):
each HTTP request it sends must match exactly one registered call, which answers with its recording, and
the method must succeed on it. A new call, or a new adapter method, fails here until it is registered;
docs/fidelity.md must then have its row: the recording and the tests, or "no public recording" with the
reason and the safest behaviour chosen.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from remediations.adapters.authorization import Authorization
from remediations.adapters.graph_api import Directory
from remediations.adapters.graph_applications import Applications
from remediations.adapters.keyvault_data import KeyVaultSecrets
from remediations.adapters.keyvault_mgmt import KeyVaultManagement
from remediations.adapters.powerplatform import PowerPlatform
from remediations.adapters.storage_keys import StorageKeys
from remediations.core.model import AccessPolicyChange, Permissions, RoleAssignmentChange, Scope
from remediations.core.secret_value import SecretValue
from tests.contract.calls import CALLS, CONNECTION_REFERENCE_ID, RoutedTransport
from tests.contract.recorded import StaticCredential
from tests.contract.shapes import FIXTURES, fixture

ROOT = Path(__file__).resolve().parents[2]
FIDELITY = ROOT / "docs" / "fidelity.md"
SUB = "00000000-0000-0000-0000-000000000000"
ENV = "00000000-0000-0000-0000-000000000001"  # the recorded environment with a Dataverse database
FLOW = "d9e875bf-1c9b-ea11-a811-000d3a122b89"  # the recorded workflows row
USER = fixture("dataverse-systemuser.tf-provider.json")
KEYVAULT = "shared_keyvault"
REFERENCE = "crdcb_sharedcommondataserviceforapps_109ea"  # the logical name the recorded clientdata names

ADAPTERS: dict[type, Callable[[RoutedTransport], Any]] = {
    Directory: lambda t: Directory(StaticCredential(), transport=t),
    Applications: lambda t: Applications(StaticCredential(), transport=t),
    KeyVaultManagement: lambda t: KeyVaultManagement(StaticCredential(), SUB, transport=t),
    KeyVaultSecrets: lambda t: KeyVaultSecrets(
        StaticCredential(), "https://myvault.vault.azure.net/", transport=t
    ),
    Authorization: lambda t: Authorization(StaticCredential(), SUB, transport=t),
    StorageKeys: lambda t: StorageKeys(StaticCredential(), SUB, transport=t),
    PowerPlatform: lambda t: PowerPlatform(StaticCredential(), transport=t),
}
NOT_CALLS = {"close"}  # public methods that send nothing

_POLICY = AccessPolicyChange(
    operation="add",
    tenant_id=SUB,
    object_id="00000000-0000-0000-0000-0000000000aa",
    permissions=Permissions(secrets=("get",)),
)
_ASSIGNMENT = RoleAssignmentChange(
    operation="create",
    scope=f"/subscriptions/{SUB}",
    role_definition_id=f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/r",
    principal_id="00000000-0000-0000-0000-0000000000aa",
    assignment_name="05c5a614-a7d6-4502-b150-c2fb455033ff",
)


def _solution_flow() -> dict[str, Any]:
    """The recorded workflows row with the recorded clientdata as a solution flow has it: the reference
    names only its connection reference, so the adapter reads `connectionreferences`."""
    (row,) = fixture("dataverse-workflows-list.docs.json")["value"]
    data = json.loads(fixture("dataverse-workflow-clientdata.docs.json")["clientdata"])
    for reference in data["properties"]["connectionReferences"].values():
        reference["connection"].pop("name")
    return row | {"clientdata": json.dumps(data)}


def _get_flow(api: PowerPlatform, transport: RoutedTransport) -> Any:
    transport.overrides["Dataverse GET workflows({id})"] = _solution_flow()
    flow = api.get_flow(ENV, FLOW)
    assert flow.connection_references  # resolved through the connectionreferences row
    return flow


def _list_vaults(api: KeyVaultManagement, _: RoutedTransport) -> Any:
    return [
        api.list_vaults(Scope(subscription_id=SUB, resource_group="rg", vault_name="sample-vault")),
        api.list_vaults(Scope(subscription_id=SUB, resource_group="rg")),
        api.list_vaults(Scope(subscription_id=SUB)),
    ]


DRIVERS: dict[str, Callable[[Any, RoutedTransport], Any]] = {
    "Directory.resolve": lambda a, _: a.resolve(["84b80893-8749-40a3-97b7-68513b600544"]),
    "Directory.object_ids_for_app_ids": lambda a, _: a.object_ids_for_app_ids(
        ["65415bb1-9267-4313-bbf5-ae259732ee12"]
    ),
    "Directory.group_members": lambda a, _: a.group_members("02bd9fd6-8f93-4758-87c3-1fb73740a315"),
    "Applications.password_key_ids": lambda a, _: a.password_key_ids("app") or ["none listed"],
    "Applications.add_password": lambda a, _: a.add_password(
        "app", "rotated", datetime(2030, 1, 1, tzinfo=UTC)
    ),
    "Applications.remove_password": lambda a, _: a.remove_password("app", "key") or "done",
    "KeyVaultManagement.list_vaults": _list_vaults,
    "KeyVaultManagement.update_access_policy": lambda a, _: (
        a.update_access_policy("rg", "sample-vault", _POLICY) or "done"
    ),
    "KeyVaultManagement.set_rbac_authorization": lambda a, _: [
        a.set_rbac_authorization("rg", "sample-vault", True)
    ],
    "KeyVaultSecrets.list_secret_metadata": lambda a, _: a.list_secret_metadata(),
    "KeyVaultSecrets.count_secrets": lambda a, _: a.count_secrets(),
    "KeyVaultSecrets.list_versions": lambda a, _: a.list_versions("listsecretversionstest"),
    "KeyVaultSecrets.set_secret": lambda a, _: a.set_secret(
        "crpsecret", SecretValue("new"), content_type=None, expires=None, tags={}
    ),
    "KeyVaultSecrets.update_version": lambda a, _: a.update_version("crpsecret", "v1", enabled=True),
    "KeyVaultSecrets.value_matches": lambda a, _: a.value_matches("s", "v1", SecretValue("mysecretvalue")),
    "KeyVaultSecrets.is_readable": lambda a, _: a.is_readable("s", "v1"),
    "Authorization.list_role_assignments": lambda a, _: a.list_role_assignments(Scope(subscription_id=SUB)),
    "Authorization.list_role_assignments_at": lambda a, _: a.list_role_assignments_at(
        f"/subscriptions/{SUB}"
    ),
    "Authorization.list_role_definitions": lambda a, _: a.list_role_definitions(),
    "Authorization.create_role_assignment": lambda a, _: a.create_role_assignment(_ASSIGNMENT),
    "Authorization.delete_role_assignment": lambda a, _: a.delete_role_assignment(
        _ASSIGNMENT.model_copy(update={"operation": "delete"})
    ),
    "StorageKeys.list_keys": lambda a, _: a.list_keys("rg", "sto2220"),
    "StorageKeys.regenerate_key": lambda a, _: a.regenerate_key("rg", "sto3539", "key2"),
    "PowerPlatform.list_environments": lambda a, _: a.list_environments(),
    "PowerPlatform.get_environment": lambda a, _: a.get_environment(ENV),
    "PowerPlatform.principals": lambda a, _: a.principals(ENV).roles,
    "PowerPlatform.remove_security_role": lambda a, _: (
        a.remove_security_role(ENV, USER["azureactivedirectoryobjectid"], "Role 2") or "done"
    ),
    "PowerPlatform.security_roles": lambda a, _: a.security_roles(ENV, USER["azureactivedirectoryobjectid"]),
    "PowerPlatform.principal_names": lambda a, _: a.principal_names(ENV),
    "PowerPlatform.role_holders": lambda a, _: a.role_holders(ENV),
    "PowerPlatform.list_flows": lambda a, _: a.list_flows(ENV),
    "PowerPlatform.get_flow": _get_flow,
    "PowerPlatform.get_flow_client_data": lambda a, _: a.get_flow_client_data(ENV, FLOW),
    "PowerPlatform.update_flow_client_data": lambda a, _: (
        a.update_flow_client_data(ENV, FLOW, {"properties": {"definition": {}}}) or "done"
    ),
    "PowerPlatform.get_connection_reference": lambda a, _: a.get_connection_reference(ENV, REFERENCE),
    "PowerPlatform.update_connection_reference": lambda a, _: (
        a.update_connection_reference(ENV, CONNECTION_REFERENCE_ID, "c1") or "done"
    ),
    "PowerPlatform.flow_permissions": lambda a, _: a.flow_permissions(ENV, FLOW),
    "PowerPlatform.revoke_flow_access": lambda a, _: (
        a.revoke_flow_access(ENV, FLOW, [(FLOW, "user")]) or "done"
    ),
    "PowerPlatform.turn_off_flow": lambda a, _: a.turn_off_flow(ENV, FLOW) or "done",
    "PowerPlatform.list_connections": lambda a, _: a.list_connections(ENV),
    "PowerPlatform.connection_permissions": lambda a, _: a.connection_permissions(ENV, KEYVAULT, "c1"),
    "PowerPlatform.modify_connection_permissions": lambda a, _: (
        a.modify_connection_permissions(ENV, KEYVAULT, "c1", delete=["p1"]) or "done"
    ),
    "PowerPlatform.list_dlp_policies": lambda a, _: a.list_dlp_policies(),
    "PowerPlatform.get_dlp_policy": lambda a, _: a.get_dlp_policy("p1"),
    "PowerPlatform.create_dlp_policy": lambda a, _: a.create_dlp_policy({"policyDefinition": {}}),
    "PowerPlatform.update_dlp_policy": lambda a, _: a.update_dlp_policy("p1", {"policyDefinition": {}}),
}


def _drive(name: str) -> RoutedTransport:
    cls = next(c for c in ADAPTERS if c.__name__ == name.split(".", maxsplit=1)[0])
    transport = RoutedTransport()
    adapter = ADAPTERS[cls](transport)
    try:
        result = DRIVERS[name](adapter, transport)
    except Exception as failed:
        unmatched = transport.unmatched
        raise AssertionError(f"{name} failed (calls with no row in calls.py: {unmatched})") from failed
    finally:
        adapter.close()
    assert not transport.unmatched, f"{name} sent calls with no row in calls.py: {transport.unmatched}"
    assert transport.served, f"{name} sent nothing"
    assert result, f"{name} gave nothing from the recorded answers"
    return transport


def test_every_public_adapter_method_is_driven() -> None:
    public = {
        f"{cls.__name__}.{name}"
        for cls in ADAPTERS
        for name, member in vars(cls).items()
        if inspect.isfunction(member) and not name.startswith("_") and name not in NOT_CALLS
    }
    assert public == set(DRIVERS), (public - set(DRIVERS), set(DRIVERS) - public)


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_the_adapter_method_works_on_the_recorded_answers_of_every_call_it_sends(name: str) -> None:
    _drive(name)


def test_every_registered_call_is_sent_by_some_adapter_method() -> None:
    served = {call for name in DRIVERS for call in _drive(name).served}
    assert served == {c.id for c in CALLS}, {c.id for c in CALLS} - served


def _fidelity_rows() -> dict[str, str]:
    """The "Calls -> source -> tested" table of docs/fidelity.md: call id (first cell) -> whole row."""
    text = FIDELITY.read_text()
    table = text.split("## Calls -> source -> tested", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in table.splitlines():
        found = re.match(r"\|\s*`([^`]+)`", line)
        if found:
            assert found.group(1) not in rows, f"two rows for {found.group(1)}"
            rows[found.group(1)] = line
    return rows


def _contract_tests() -> set[str]:
    return {
        m.group(1)
        for path in (ROOT / "tests").rglob("test_*.py")
        for m in re.finditer(r"^def (test_\w+)", path.read_text(), re.MULTILINE)
    }


def test_docs_fidelity_has_one_row_per_call_with_its_recording_or_why_there_is_none() -> None:
    rows = _fidelity_rows()
    assert set(rows) == {c.id for c in CALLS}, set(rows) ^ {c.id for c in CALLS}
    tests = _contract_tests()
    for call in CALLS:
        row = rows[call.id]
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        assert len(cells) == 5, f"{call.id}: call | adapter method | source | (a) | (b)"
        named = set(re.findall(r"`(test_\w+)`", row))
        assert named <= tests, f"{call.id}: no such test {named - tests}"
        assert re.search(r"`test_\w+`", cells[3]), f"{call.id}: (a) names no adapter test"
        if call.recorded:
            assert f"`{call.fixture}`" in cells[2], f"{call.id}: the source cell names no recording"
            assert "no public recording" not in row.lower()
        else:
            assert "no public recording" in cells[2].lower() and "safest" in cells[2].lower(), call.id
        assert re.search(r"`test_\w+`", cells[4]) or cells[4].startswith("not compared:"), (
            f"{call.id}: (b) names no emulator test and no reason"
        )


def test_every_fixture_has_its_source_and_licence_noted() -> None:
    sources = (FIXTURES / "SOURCES.md").read_text()
    missing = [p.name for p in FIXTURES.glob("*.json") if f"`{p.name}`" not in sources]
    assert not missing, missing
