# ruff: noqa: F811 - the `migrate` fixture is imported, then requested by name
"""Approval of a reviewed access-policy -> RBAC migration through `POST /api/remediations/{id}/approve`
(in-process function app, Azurite, the emulator): applied as reviewed when nothing changed; skipped as
drifted, nothing written, when the vault was switched or a role assignment bearing on it changed since
the dry run."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from emulator import Emulator
from emulator.azure.state import RoleAssignment
from remediations.core import rbac
from tests.functions.conftest import VAULT, VAULT_NAME, Call, ticket_body
from tests.functions.test_approval import APPROVER, REQUESTER, approvals  # noqa: F401 - fixture reused
from tests.functions.test_rbac_migration_ticket import (  # noqa: F401 - fixture reused
    _below_vault,
    _expected,
    _switched,
    _writes,
    migrate,
)

OTHER_SP = "6b7c8d9e-0f1a-4b2c-9d3e-4f5a6b7c8d9e"


def _dry_run(call: Call) -> dict[str, Any]:
    body = ticket_body(requester=None, remediations=["migrate_to_rbac"], dryRun=True)
    response = call("tickets", "POST", "/api/remediations", body=body, headers=REQUESTER)
    assert response.status_code == 200, response.get_body()
    planned: dict[str, Any] = json.loads(response.get_body())
    assert planned["status"] == "planned" and len(planned["planHash"]) == 64
    return planned


def _approve(call: Call, planned: dict[str, Any]) -> dict[str, Any]:
    ticket = planned["ticketId"]
    response = call(
        "approve",
        "POST",
        f"/api/remediations/{ticket}/approve",
        body={"planHash": planned["planHash"]},
        headers=APPROVER,
        route_params={"ticketId": ticket},
    )
    assert response.status_code == 202, response.get_body()
    result: dict[str, Any] = json.loads(response.get_body())
    return result


@pytest.fixture
def reviewed(approvals: dict[str, str], migrate: dict[str, str]) -> dict[str, str]:
    """Enforcing, behind App Service Authentication, the sample vault opted in to the migration."""
    return migrate


def test_an_unchanged_vault_is_migrated_as_reviewed(
    call: Call, reviewed: dict[str, str], cloud: Emulator
) -> None:
    planned = _dry_run(call)
    result = _approve(call, planned)
    assert [o["status"] for o in result["outcomes"]] == ["applied"], result["outcomes"]
    assert _switched(cloud) and _below_vault(cloud) == _expected(cloud)


def test_a_vault_switched_since_the_review_is_skipped_as_drifted(
    call: Call, reviewed: dict[str, str], cloud: Emulator
) -> None:
    planned = _dry_run(call)
    with cloud.state.lock:  # someone switched the vault by hand after the review
        cloud.state.azure.vaults[VAULT_NAME].enable_rbac_authorization = True
    mark = cloud.requests.mark()
    [outcome] = _approve(call, planned)["outcomes"]
    assert outcome["status"] == "skipped", outcome
    assert outcome["error"].startswith(
        "drifted: the vault was switched to Azure RBAC since the plan was made"
    )
    assert _writes(cloud, mark) == [] and _below_vault(cloud) == []


def test_a_role_assignment_granted_since_the_review_is_drift_not_a_new_plan(
    call: Call, reviewed: dict[str, str], cloud: Emulator
) -> None:
    planned = _dry_run(call)
    with cloud.state.lock:  # someone granted another identity a data role on the vault after the review
        name = str(uuid.uuid4())
        cloud.state.azure.role_assignments[name] = RoleAssignment(
            name, VAULT, rbac.KEY_VAULT_SECRETS_USER, OTHER_SP
        )
    mark = cloud.requests.mark()
    [outcome] = _approve(call, planned)["outcomes"]
    assert outcome["status"] == "skipped", outcome
    assert outcome["error"].startswith("drifted: the target changed since the plan was made")
    assert f"Key Vault Secrets User for {OTHER_SP} at {VAULT}".casefold() in outcome["error"]
    assert _writes(cloud, mark) == [] and not _switched(cloud)
