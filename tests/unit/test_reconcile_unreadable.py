"""A failed read leaves pending only the rows whose judgement reads it: an Azure read the rows under its
resource, a Power Platform read the rows of its environment, a DLP read the DLP rows, the environment
list every Power Platform row, a read reconcile does not know of every row. A directory read re-reads
nothing, but the plan needs it: a row that would be failed because this run does not make it stays
pending. The errors are the ones the inventory writes (shell/inventory.py, shell/pp_inventory.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from remediations.core.model import Action, Flow, InventoryError, PowerPlatformScope, Share, Snapshot
from remediations.ports import AzureCallFailed
from remediations.shell.audit import AuditRecord
from remediations.shell.pp_inventory import inventory_powerplatform
from remediations.shell.reconcile import (
    DIRECTORY_READS,
    DLP_READS,
    ENVIRONMENT_LIST,
    ENVIRONMENT_READS,
    SHARE_READS,
    reconcile,
)
from tests.unit.kv_builders import SUB, vault_id
from tests.unit.pp_builders import ADMIN, ENV
from tests.unit.test_reconcile_dlp import _action as dlp_action
from tests.unit.test_reconcile_dlp import _tenant as dlp_tenant
from tests.unit.test_reconcile_power_platform import _actions, _pending, _tenant

OTHER_ENV = "env-2"


def _error(resource_id: str, operation: str) -> InventoryError:
    return InventoryError(resource_id=resource_id, operation=operation, status=503, message="busy")


def _access_policy_row() -> AuditRecord:
    """remove_list_permission on the admin's entry of vault kv (the vault still shows get+list)."""
    return AuditRecord(
        correlation_id="crashed",
        action_id="act-kv",
        sequence=0,
        state="pending",
        remediation_id="remove_list_permission",
        target=vault_id("kv"),
        principal=ADMIN,
        before={"secrets": ["get", "list"]},
        after={"secrets": ["get"]},
        trigger="timer",
        recorded_at=datetime.now(UTC) - timedelta(hours=1),
    )


def _rows(snap: Snapshot) -> dict[str, AuditRecord]:
    """One pending row of each kind: Azure (access policy), Power Platform (quarantine_flow in ENV), DLP."""
    [flow_action] = [a for a in _actions(snap) if a.remediation_id == "quarantine_flow"]
    dlp: Action = dlp_action(dlp_tenant())
    return {"azure": _access_policy_row(), "flow": _pending(flow_action), "dlp": _pending(dlp)}


def _judged(*errors: InventoryError) -> set[str]:
    """The kinds of row a run with these read errors still settles (a run that plans each again, so no
    judgement rests on what it does not plan)."""
    snap = dlp_tenant().model_copy(update={"flows": _tenant().flows})
    rows = _rows(snap)
    blind = snap.model_copy(update={"errors": errors})
    planned = {r.action_id for r in rows.values()}
    settled = {r.action_id for r in reconcile(rows.values(), blind, planned, "next")}
    return {kind for kind, row in rows.items() if row.action_id in settled}


def test_without_errors_every_kind_is_judged() -> None:
    assert _judged() == {"azure", "flow", "dlp"}


@pytest.mark.parametrize(
    ("error", "pending"),
    [
        (_error(vault_id("kv"), "list secrets"), set()),  # an access-policy row does not need secrets
        (_error(vault_id("kv-other"), "list secrets"), set()),
        (_error(f"/subscriptions/{SUB}", "list role assignments"), {"azure"}),
        (_error(f"/subscriptions/{SUB}/resourceGroups/rg-app", "list vaults"), {"azure"}),
        (_error("/subscriptions/00000000-0000-0000-0000-0000000000ff", "list role assignments"), set()),
        (_error(ENV, "list flows"), {"flow"}),
        (_error(ENV, "list environment role assignments"), {"flow"}),
        (_error(OTHER_ENV, "list flows"), set()),
        (_error("f1", "list flow shares"), {"flow"}),  # f1 is a flow of ENV
        (_error("c-admin", "list connection permissions"), {"flow"}),  # a connection of ENV
        (_error("f-unknown", "list flow shares"), {"flow"}),  # whose environment is not known: unsure
        (_error("environments", "list environments"), {"flow", "dlp"}),
        (_error("dlp policies", "list DLP policies"), {"dlp"}),
        (_error("p4", "get DLP policy"), {"dlp"}),
        (_error("directoryObjects/getByIds", "resolve identities"), set()),
        (_error("group-1", "list group members"), set()),
        (_error("somewhere", "a read added later"), {"azure", "flow", "dlp"}),  # unknown: every row
    ],
)
def test_a_failed_read_leaves_pending_only_the_rows_that_need_it(
    error: InventoryError, pending: set[str]
) -> None:
    assert _judged(error) == {"azure", "flow", "dlp"} - pending


@pytest.mark.parametrize(
    "error",
    [
        _error("directoryObjects/getByIds", "resolve identities"),
        _error("servicePrincipals(appId=x)", "map connection client ids to object ids"),
    ],
)
def test_while_the_directory_failed_not_planning_a_change_proves_nothing(error: InventoryError) -> None:
    """A change not in place is failed when this run does not make it, but not while a directory read
    failed (the detectors may have missed it); in place, gone, or planned again are judged as ever."""
    snap = _tenant()
    [action] = [a for a in _actions(snap) if a.remediation_id == "quarantine_flow"]
    row = _pending(action)
    assert [r.state for r in reconcile([row], snap, set(), "next")] == ["failed"]
    blind = snap.model_copy(update={"errors": (error,)})
    assert reconcile([row], blind, set(), "next") == []
    assert [r.state for r in reconcile([row], blind, {action.id}, "next")] == ["noop"]
    stopped = tuple(f.model_copy(update={"state": "Stopped"}) for f in blind.flows)
    assert [r.state for r in reconcile([row], blind.model_copy(update={"flows": stopped}), set(), "n")] == [
        "applied"
    ]


class _Reads:
    """A Power Platform API and directory whose reads named in `fail` fail (503); the others answer
    one Key Vault connection (a service principal's), one flow using it shared with a group, one DLP
    policy."""

    def __init__(self, *fail: str) -> None:
        self.fail = set(fail)

    def __getattr__(self, read: str) -> Any:
        answers: dict[str, Any] = {
            "list_environments": [{"name": ENV}],
            "get_environment": {"name": ENV},
            "role_holders": {},
            "principal_names": {},
            "list_connections": [
                {
                    "name": "c-admin",
                    "properties": {
                        "apiId": "/providers/Microsoft.PowerApps/apis/shared_keyvault",
                        "connectionParametersSet": {"values": {"token:clientId": {"value": "app-1"}}},
                    },
                }
            ],
            "list_flows": [Flow(id="f1", environment=ENV, connection_references=("c-admin",))],
            "list_dlp_policies": [{"policyDefinition": {"name": "p4"}}],
            "get_dlp_policy": {"policyDefinition": {"name": "p4"}},
            "connection_permissions": [],
            "flow_permissions": [
                Share(
                    resource_kind="flow",
                    resource_id="f1",
                    principal_id="g-1",
                    principal_kind="group",
                    role="CanEdit",
                    environment=ENV,
                )
            ],
            "object_ids_for_app_ids": {},
            "group_members": [],
        }
        if read not in answers:
            raise AttributeError(read)

        def call(*_: Any) -> Any:
            if read in self.fail:
                raise AzureCallFailed(read, 503, None, "busy")
            return answers[read]

        return call

    def power_platform(self) -> _Reads:
        return self

    def directory(self) -> _Reads:
        return self


@pytest.mark.parametrize(
    ("scope", "fail"),
    [
        (PowerPlatformScope(all_environments=True), {"list_environments"}),
        (PowerPlatformScope(environments=(ENV,)), {"get_environment"}),
        (
            PowerPlatformScope(environments=(ENV,)),
            {"role_holders", "list_connections", "list_flows", "list_dlp_policies"},
        ),
        (
            PowerPlatformScope(environments=(ENV,)),
            {"connection_permissions", "flow_permissions", "get_dlp_policy", "object_ids_for_app_ids"},
        ),
        (PowerPlatformScope(environments=(ENV,)), {"group_members"}),
    ],
)
def test_every_failed_power_platform_read_is_one_reconcile_places(
    scope: PowerPlatformScope, fail: set[str]
) -> None:
    """The inventory's own errors: each is placed (an environment, a flow or connection of one, DLP, the
    directory, the environment list), so none leaves every row pending as an unknown read would."""
    read = inventory_powerplatform(scope, _Reads(*fail))  # type: ignore[arg-type]
    assert len(read.errors) == len(fail)
    known = DIRECTORY_READS | DLP_READS | ENVIRONMENT_READS | SHARE_READS | {ENVIRONMENT_LIST}
    for error in read.errors:
        assert error.operation in known, error
        if error.operation in ENVIRONMENT_READS:
            assert error.resource_id == ENV
        if error.operation in SHARE_READS:
            assert error.resource_id in {"f1", "c-admin"}
