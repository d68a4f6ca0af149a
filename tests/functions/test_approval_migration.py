# ruff: noqa: F811 - the `migrate` fixture is imported, then requested by name
"""Approval of a reviewed access-policy -> RBAC migration through `POST /api/remediations/{id}/approve`
(in-process function app, Azurite, the emulator): applied as reviewed when nothing changed; skipped as
drifted, nothing written, when the vault was switched or a role assignment bearing on it changed since
the dry run, or changed after the run's own read, just before the writes (judged again under the
vault's lease, for an approved plan and a ticket applied at once alike, and for a run that only creates
the assignments and leaves the switch to a later run)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from emulator import Emulator
from emulator.azure.state import AccessPolicy, RoleAssignment
from emulator.wire import Request, Response
from remediations.core import rbac
from tests.functions.conftest import SUBSCRIPTION, VAULT, VAULT_NAME, Call, ticket_body
from tests.functions.test_approval import APPROVER, REQUESTER, approvals  # noqa: F401 - fixture reused
from tests.functions.test_rbac_migration_ticket import (  # noqa: F401 - fixture reused
    POLICY,
    _below_vault,
    _expected,
    _switched,
    _ticket,
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


@contextmanager
def _changed_after_the_read(cloud: Emulator, change: Callable[[], None]) -> Iterator[list[int]]:
    """Make `change` once the run's inventory has read the vault and the role assignments: when it
    resolves the identities it found (Graph getByIds, its last read), so the run's fresh read and its
    pinned-plan check at the start still see the state the plan was made from. Yields the request
    log's mark just after the change."""
    marks: list[int] = []

    def on_resolve(request: Request) -> Response | None:
        if not marks and request.method == "POST" and request.path.endswith("/directoryObjects/getByIds"):
            change()
            marks.append(cloud.requests.mark())
        return None

    cloud.middlewares.insert(0, on_resolve)
    try:
        yield marks
    finally:
        cloud.middlewares.remove(on_resolve)


def grant_other(cloud: Emulator) -> None:
    """Another identity given `get` on the sample vault by an access policy (by someone, not the app)."""
    with cloud.state.lock:
        az = cloud.state.azure
        az.vaults[VAULT_NAME].access_policies.append(
            AccessPolicy(az.tenant_id, OTHER_SP, permissions={"secrets": ["Get"]})
        )


def take_back_grant(cloud: Emulator) -> None:
    """The grant of `grant_other` taken away again: the vault is as the plan is made from."""
    with cloud.state.lock:
        vault = cloud.state.azure.vaults[VAULT_NAME]
        vault.access_policies = [p for p in vault.access_policies if p.object_id != OTHER_SP]


def _vault_reads(cloud: Emulator, mark: int) -> list[str]:
    return [r.path for r in cloud.requests.since(mark) if r.method == "GET" and "/vaults" in r.path]


def test_an_access_policy_added_after_the_approvals_read_is_drift_under_the_lease(
    call: Call, reviewed: dict[str, str], cloud: Emulator
) -> None:
    planned = _dry_run(call)
    mark = cloud.requests.mark()  # someone gives another identity secret access while the approval runs
    with _changed_after_the_read(cloud, lambda: grant_other(cloud)) as changed:
        [outcome] = _approve(call, planned)["outcomes"]
    # Switched, the new entry would be ignored: OTHER_SP would lose access the plan never carried over.
    assert changed and outcome["status"] == "skipped", outcome
    assert outcome["error"].startswith("drifted: the target changed since the plan was made")
    assert f"{OTHER_SP}: access policy secrets: get" in outcome["error"]
    assert outcome["before"][OTHER_SP] == ["access policy secrets: get"]  # the vault as read under the lease
    assert _vault_reads(cloud, changed[0]), "the vault is read again under its lease"
    assert _writes(cloud, mark) == [] and _below_vault(cloud) == [] and not _switched(cloud)


def test_a_role_assignment_made_after_the_tickets_read_is_drift_under_the_lease_named_by_role(
    call: Call, reviewed: dict[str, str], cloud: Emulator
) -> None:
    name = str(uuid.uuid4())
    subscription = f"/subscriptions/{SUBSCRIPTION}"

    def own() -> None:  # someone makes another identity Owner of the subscription during the run
        with cloud.state.lock:
            cloud.state.azure.role_assignments[name] = RoleAssignment(
                name, subscription, "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", OTHER_SP
            )

    mark = cloud.requests.mark()
    try:
        with _changed_after_the_read(cloud, own) as changed:  # a ticket applied at once, no approval
            [outcome] = _ticket(call, dryRun=False)["outcomes"]  # type: ignore[misc]
    finally:
        with cloud.state.lock:
            cloud.state.azure.role_assignments.pop(name, None)
    assert changed and outcome["status"] == "skipped", outcome
    assert outcome["error"].startswith("drifted: the target changed since the plan was made")
    # The new assignment named by its role (drift reasons compare and show states case-folded).
    was, _, now = outcome["error"].partition(", now role assignments: ")
    added = f"owner for {OTHER_SP} at {subscription}"
    assert added in now and added not in was, outcome["error"]
    assert _writes(cloud, mark) == [] and _below_vault(cloud) == [] and not _switched(cloud)


def test_a_run_that_only_creates_is_judged_under_the_lease_too(
    call: Call, reviewed: dict[str, str], cloud: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `propagationGraceSeconds` the run creates the assignments and leaves the switch to a later
    run; those creates are the access that switch will rely on, so a change after the run's read skips
    them as drifted, nothing written, like a run that switches."""
    policy = {**POLICY, "rbac": {"propagationGraceSeconds": 600}}
    monkeypatch.setenv("VAULTGUARD_POLICY_JSON", json.dumps(policy))
    mark = cloud.requests.mark()
    with _changed_after_the_read(cloud, lambda: grant_other(cloud)) as changed:
        [outcome] = _ticket(call, dryRun=False)["outcomes"]  # type: ignore[misc]
    assert changed and outcome["status"] == "skipped", outcome
    assert outcome["error"].startswith("drifted: the target changed since the plan was made")
    assert f"{OTHER_SP}: access policy secrets: get" in outcome["error"]
    assert _vault_reads(cloud, changed[0]), "the vault is read again under its lease"
    assert _writes(cloud, mark) == [] and _below_vault(cloud) == [] and not _switched(cloud)

    take_back_grant(cloud)
    mark = cloud.requests.mark()
    [outcome] = _ticket(call, dryRun=False)["outcomes"]  # type: ignore[misc]
    assert outcome["status"] == "applied", outcome  # judged under the lease, unchanged: created
    assert [w.split(" ")[0] for w in _writes(cloud, mark)] == ["PUT"] * 3 and not _switched(cloud)
    assert _below_vault(cloud) == _expected(cloud)
