"""migrate_to_rbac: the plan (pure, opt-in by policy, never in a sweep unless asked) and its apply against
in-memory ARM with Azure's semantics: creates first, verified from a re-read, then the switch; a failed
verification or switch rolls back what the run did (switch back first, then its own assignments)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from remediations.__main__ import main
from remediations.adapters.errors import AzureCallFailed
from remediations.core import rbac
from remediations.core.detect import detect
from remediations.core.model import (
    AccessPolicy,
    Action,
    Change,
    Outcome,
    RoleAssignment,
    RoleAssignmentChange,
    RoleDefinition,
    Scope,
    VaultAuthorizationChange,
)
from remediations.core.planning import assemble_plan, build_plan
from remediations.core.policy import Policy, parse_policy
from remediations.core.rbac_migration import (
    is_migration,
    left_to_roll_back,
    rollback_changes,
    unverified_access,
)
from remediations.core.role_changes import describe
from remediations.fixes.migrate_to_rbac import OPT_IN, MigrateToRbac
from remediations.shell.apply import RunContext, apply_plan
from remediations.shell.audit import MemoryAuditSink
from remediations.shell.inventory import inventory
from tests.unit.kv_builders import (
    OWNER_ROLE,
    MemoryClients,
    apply_actions,
    owner_at,
    policy_entry,
    snapshot,
    vault,
    vault_id,
)
from tests.unit.rbac_builders import assignment

FLOW = "11111111-0000-0000-0000-0000000000f1"
ADMIN = "11111111-0000-0000-0000-0000000000ad"
KV = vault_id("kv")
USER = rbac.KEY_VAULT_SECRETS_USER
ROLES = {d.guid: d for d in rbac.BUILT_IN_DEFINITIONS}


def _vault():  # type: ignore[no-untyped-def]
    return vault("kv", policy_entry(FLOW, "Get", "List"), policy_entry(ADMIN, "all"), secrets=("a", "b"))


def _policy(enabled: bool = True, **extra: object) -> Policy:
    return parse_policy(
        {
            "allowedSecretNames": {FLOW: ["a"]},
            "rbacMigration": {"enabled": enabled, "vaults": ["kv"]},
            **extra,
        }
    )


def _action(policy: Policy, *assignments: RoleAssignment):  # type: ignore[no-untyped-def]
    snap = snapshot(_vault(), role_assignments=assignments)
    [action] = build_plan(detect(snap, policy), snap, policy, remediation_ids={"migrate_to_rbac"}).actions
    return action


def _kinds(action):  # type: ignore[no-untyped-def]
    return [
        (c.operation, c.scope)
        if isinstance(c, RoleAssignmentChange)
        else ("switch", c.enable_rbac_authorization)
        for c in action.changes
    ]


def test_plan_creates_every_assignment_before_the_switch_and_shows_each_identity() -> None:
    action = _action(_policy())
    assert action.skip_reason is None and action.target == KV
    assert _kinds(action) == [("create", f"{KV}/secrets/a"), ("create", KV), ("switch", True)]
    assert action.before[FLOW] == ["access policy secrets: get, list"]
    assert action.after[FLOW] == [
        f"Key Vault Secrets User at {KV}/secrets/a",
        "not carried over: list (vault-wide enumeration)",
    ]
    assert action.after[ADMIN] == [f"Key Vault Secrets Officer at {KV}"]
    assert action.before["vault"] == ["enableRbacAuthorization=false (access policies)"]


def test_opt_in_only_listed_enabled_vaults_are_applied_and_sweeps_do_not_plan_it() -> None:
    assert _action(_policy(enabled=False)).skip_reason == OPT_IN
    policy = _policy()
    snap = snapshot(_vault())
    sweep = build_plan(detect(snap, policy), snap, policy)  # names no remediation: a sweep, an alert
    assert not [a for a in sweep.actions if a.remediation_id == "migrate_to_rbac"]
    swept = parse_policy({"rbacMigration": {"enabled": True, "vaults": ["kv"], "inSweeps": True}})
    assert "migrate_to_rbac" in [
        a.remediation_id for a in build_plan(detect(snap, swept), snap, swept).actions
    ]


def test_keys_or_compound_identities_block_the_vault() -> None:
    policy = _policy()
    blocked = vault("kv", policy_entry(FLOW, "get", application_id="app"), secrets=("a",))
    snap = snapshot(blocked)
    [action] = build_plan(detect(snap, policy), snap, policy, remediation_ids={"migrate_to_rbac"}).actions
    assert action.skip_reason is not None and "compound identity" in action.skip_reason


def test_propagation_grace_defers_the_switch_until_the_assignments_exist() -> None:
    action = _action(_policy(rbac={"propagationGraceSeconds": 600}))
    assert ("switch", True) not in _kinds(action) and "later run" in action.reason


def test_apply_creates_verifies_then_switches() -> None:
    action = _action(_policy())
    clients = MemoryClients(_vault())
    outcome = MigrateToRbac().apply(action, clients)
    assert outcome.status == "applied" and outcome.verified, outcome.error
    ops = [op for op, _ in clients.authz.calls]
    assert ops == ["list", "create", "create", "list"]  # every create and its check before the switch
    assert clients.mgmt.switches == [("kv", True)] and clients.mgmt.vaults["kv"].enable_rbac_authorization
    assert outcome.after["steps"][-1] == "switched and re-read: enableRbacAuthorization=true"
    clients.authz.calls.clear()
    again = MigrateToRbac().apply(action, clients)  # deterministic names: nothing is created twice
    assert again.status == "applied" and len(clients.authz.assignments) == 2
    assert [s for s in again.after["steps"] if s.startswith("already there")] and not again.after["steps"][
        0
    ].startswith("created")
    assert [op for op, _ in clients.authz.calls] == ["list", "list"]  # what exists is not written again


def test_a_create_missing_from_the_re_read_rolls_back_and_never_switches() -> None:
    clients = MemoryClients(_vault())
    clients.authz.hide_creates = True
    kept = owner_at(KV)
    clients.authz.assignments.append(kept)
    outcome = MigrateToRbac().apply(_action(_policy()), clients)
    assert outcome.status == "failed" and outcome.error is not None
    assert "verification failed" in outcome.error and outcome.error.endswith("rolled back")
    assert clients.mgmt.switches == []
    assert [op for op, _ in clients.authz.calls][-2:] == ["delete", "delete"]
    assert clients.authz.assignments == [kept]  # what existed before the run is never deleted


def test_a_switch_that_does_not_hold_is_switched_back_then_the_run_s_assignments_deleted() -> None:
    clients = MemoryClients(_vault())
    clients.mgmt.ignore_switches = True
    outcome = MigrateToRbac().apply(_action(_policy()), clients)
    assert outcome.status == "failed" and "switch not verified" in (outcome.error or "")
    assert clients.mgmt.switches == [("kv", True), ("kv", False)]
    assert clients.authz.assignments == []
    steps = outcome.after["steps"]
    assert steps.index("rolled back: enableRbacAuthorization=false") < steps.index(
        next(s for s in steps if s.startswith("rolled back: deleted"))
    )


def test_a_failed_create_rolls_back_the_earlier_creates() -> None:
    clients = MemoryClients(_vault())
    first = MigrateToRbac().apply(_action(_policy()), clients)  # creates, then fails no more
    assert first.status == "applied"
    clients = MemoryClients(_vault())
    clients.authz.fail_on["create"] = AzureCallFailed("create", 403, "AuthorizationFailed", "ABAC condition")
    outcome = MigrateToRbac().apply(_action(_policy()), clients)
    assert outcome.status == "failed" and "AuthorizationFailed" in (outcome.error or "")
    assert clients.mgmt.switches == [] and clients.authz.assignments == []


def test_rollback_order_and_verification_decisions_are_pure() -> None:
    create = RoleAssignmentChange(
        operation="create",
        scope=f"{KV}/secrets/a",
        role_definition_id=rbac.role_id("s", USER),
        principal_id=FLOW,
        assignment_name="n1",
    )
    later = create.model_copy(update={"scope": KV, "assignment_name": "n2"})
    switch = VaultAuthorizationChange(vault_id=KV, enable_rbac_authorization=True)
    undo = rollback_changes([create, later], switch)
    assert isinstance(undo[0], VaultAuthorizationChange) and not undo[0].enable_rbac_authorization
    assert [c.assignment_name for c in undo[1:]] == ["n2", "n1"]  # type: ignore[union-attr]
    assert rollback_changes([create], None)[0].operation == "delete"  # type: ignore[union-attr]
    vault_wide = RoleAssignment(
        id=f"{KV}/providers/Microsoft.Authorization/roleAssignments/x",
        scope=KV,
        role_definition_id=rbac.role_id("s", USER),
        principal_id=FLOW,
    )
    assert unverified_access([create], [vault_wide], ROLES) == []  # inherited from the vault counts
    other = vault_wide.model_copy(update={"principal_id": ADMIN})
    assert unverified_access([create], [other], ROLES) == [f"{FLOW} lacks ['get', 'list'] at {KV}/secrets/a"]


def _role_at(scope: str, role_guid: str, principal: str = "ops") -> RoleAssignment:
    return RoleAssignment(
        id=f"{scope}/providers/Microsoft.Authorization/roleAssignments/{role_guid}",
        scope=scope,
        role_definition_id=f"/providers/Microsoft.Authorization/roleDefinitions/{role_guid}",
        principal_id=principal,
    )


def test_escalation_is_found_for_roles_that_write_the_vault_but_cannot_assign_roles() -> None:
    kv_contributor = _role_at(KV, "f25e0fa2-a7c8-4377-a976-54943a77a395")
    policy = parse_policy({})
    [finding] = detect(
        snapshot(_vault(), role_assignments=(kv_contributor,)), policy, {"access_policy_escalation"}
    )
    assert finding.resource_id == KV and "grant themselves data access" in finding.message
    assert finding.evidence["writers"] == [f"ops (Key Vault Contributor at {KV})"]
    # Owner may assign roles anyway: no path that RBAC closes; an RBAC vault has no access policies.
    assert (
        detect(snapshot(_vault(), role_assignments=(owner_at(KV),)), policy, {"access_policy_escalation"})
        == []
    )
    rbac_vault = vault("kv", rbac=True)
    assert (
        detect(snapshot(rbac_vault, role_assignments=(kv_contributor,)), policy, {"access_policy_escalation"})
        == []
    )


def test_a_list_only_identity_becomes_key_vault_reader_never_a_secret_reader() -> None:
    snap = snapshot(vault("kv", policy_entry(ADMIN, "List"), secrets=("a",)))
    [action] = build_plan(
        detect(snap, _policy()), snap, _policy(), remediation_ids={"migrate_to_rbac"}
    ).actions
    [create] = [c for c in action.changes if isinstance(c, RoleAssignmentChange)]
    assert create.role_definition_id.endswith(rbac.KEY_VAULT_READER) and create.scope == KV


def test_cli_plan_prints_each_identity_s_access_policy_to_role_and_the_reports_have_a_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snap_file, policy_file, out = tmp_path / "snap.json", tmp_path / "policy.json", tmp_path / "reports"
    contributor = assignment(KV, "b24988ac-6180-42a0-ab88-20f7382dd24c", principal="ops-group")
    snap_file.write_text(snapshot(_vault(), role_assignments=(contributor,)).model_dump_json())
    policy_file.write_text(
        json.dumps({"allowedSecretNames": {FLOW: ["a"]}, "rbacMigration": {"vaults": ["kv"]}})
    )
    args = [
        "plan",
        "--snapshot",
        str(snap_file),
        "--policy",
        str(policy_file),
        "--remediation",
        "migrate_to_rbac",
    ]
    assert main([*args, "--output-dir", str(out), "--output-formats", "md,html"]) == 0
    printed = capsys.readouterr().out
    # plain text, no Python lists: identity: access policy -> role at scope
    assert f"{FLOW}: access policy secrets: get, list -> Key Vault Secrets User at {KV}/secrets/a" in printed
    assert (
        f"{ADMIN}: access policy secrets: " in printed
        and f"-> Key Vault Secrets Officer at {KV}\n" in printed
    )
    assert "['" not in printed
    # every role by its name: the assignments kept as they are, and those the migration creates
    assert f"role assignments: Contributor for ops-group at {KV} -> Contributor for ops-group" in printed
    assert f"create role assignment role=Key Vault Secrets User principal={FLOW} at {KV}/secrets/a" in printed
    assert "PATCH properties.enableRbacAuthorization = true" in printed and OPT_IN in printed
    markdown = (out / "report.md").read_text()
    assert "## Access-policy -> RBAC migration" in markdown
    assert f"| {FLOW} | access policy secrets: get, list | Key Vault Secrets User at kv/a;" in markdown
    assert f"| role assignments | Contributor for ops-group at {KV} |" in markdown
    assert "RBAC migration</h2>" in (out / "report.html").read_text()


def test_the_report_s_after_picture_has_the_vault_switched_and_the_new_assignments() -> None:
    from remediations.report.simulate import simulate

    snap = snapshot(_vault())
    after = simulate(snap, [_action(_policy())])
    assert after.vaults[0].enable_rbac_authorization
    granted = {(g.assignment.principal_id, g.secret_name) for g in rbac.secret_grants(after, after.vaults[0])}
    assert granted == {(FLOW, "a"), (ADMIN, None)}  # the flow's identity reads one secret, no longer lists


def test_under_the_lease_an_unchanged_vault_is_migrated_after_one_read_of_it_and_its_assignments() -> None:
    owner = owner_at(vault_id("kv"))
    action = _action(_policy(), owner)
    assert action.before["role assignments"] == [f"Owner for admin-group at {KV}"]  # a name, not a GUID
    clients = MemoryClients(_vault(), assignments=(owner,))
    [outcome] = apply_actions(clients, action)
    assert outcome.status == "applied" and clients.mgmt.switches == [("kv", True)]
    assert clients.mgmt.reads == ["kv"]  # the vault read once under the lease, before the first create
    assert [op for op, _ in clients.authz.calls] == ["list", "list", "create", "create", "list"]


@pytest.mark.parametrize(
    ("now", "assignments", "named"),
    [
        # someone was given secret access since: the switch would take it away
        (policy_entry("intruder", "get"), (), "intruder: access policy secrets: get"),
        # a role assignment bearing on the vault was made since (named by its role)
        (None, (owner_at(KV, "intruder"),), "owner for intruder at"),
    ],
)
def test_under_the_lease_a_vault_changed_since_the_plan_is_skipped_as_drifted_before_any_write(
    now: AccessPolicy | None, assignments: tuple[RoleAssignment, ...], named: str
) -> None:
    action = _action(_policy())
    current = _vault()
    if now is not None:
        current = current.model_copy(update={"access_policies": (*current.access_policies, now)})
    clients = MemoryClients(current, assignments=assignments)
    [outcome] = apply_actions(clients, action)  # not a reviewed plan: drift is checked all the same
    assert outcome.status == "skipped" and (outcome.error or "").startswith("drifted"), outcome
    assert named in (outcome.error or "").casefold()
    assert [op for op, _ in clients.authz.calls] == ["list"] and clients.mgmt.switches == []


def test_under_the_lease_a_vault_switched_since_is_named_as_such() -> None:
    action = _action(_policy())
    clients = MemoryClients(_vault().model_copy(update={"enable_rbac_authorization": True}))
    [outcome] = apply_actions(clients, action, pinned=True)
    assert outcome.status == "skipped"
    assert (outcome.error or "").startswith("drifted: the vault was switched to Azure RBAC since")
    assert clients.mgmt.switches == [] and not [c for c in clients.authz.calls if c[0] == "create"]


def test_under_the_lease_a_failed_read_writes_nothing() -> None:
    action = _action(_policy())
    clients = MemoryClients(_vault())
    clients.authz.fail_on["list"] = AzureCallFailed(
        "list role assignments", 503, "ServiceUnavailable", "busy"
    )
    [outcome] = apply_actions(clients, action)
    assert outcome.status == "failed" and "under its lease" in (outcome.error or "")
    assert "nothing written" in (outcome.error or "") and clients.mgmt.switches == []


CUSTOM = "5d1f0e2c-0000-4000-8000-00000000c0de"


@pytest.mark.parametrize(
    ("role", "reads_definitions", "shown"),
    [
        (OWNER_ROLE, False, "Owner"),  # built-in: named from the app's table, no extra read
        (CUSTOM, True, "Vault Operators"),  # custom: the inventory lists the definitions to name it
    ],
)
def test_the_migration_names_every_role_bearing_on_the_vault(
    role: str, reads_definitions: bool, shown: str
) -> None:
    on_vault = assignment(KV, role, principal="ops-group")
    clients = MemoryClients(_vault(), assignments=(on_vault,))
    clients.authz.definitions = [
        RoleDefinition(
            id=CUSTOM,
            role_name="Vault Operators",
            role_type="CustomRole",
            actions=("Microsoft.KeyVault/vaults/*",),
        )
    ]
    snap = inventory(Scope.parse(KV), clients, include_secrets=False)
    assert (("definitions", "") in clients.authz.calls) is reads_definitions
    snap = snap.model_copy(update={"vaults": (_vault(),)})  # the secrets the flows name, as a deep read
    policy = _policy()
    [action] = build_plan(detect(snap, policy), snap, policy, remediation_ids={"migrate_to_rbac"}).actions
    assert action.before["role assignments"] == [f"{shown} for ops-group at {KV}"]


def _left_by_an_interrupted_attempt(
    *others: RoleAssignment,
) -> tuple[MemoryClients, RoleAssignmentChange, RoleAssignmentChange, RoleAssignment]:
    """The flow identity's per-secret assignment, made by an interrupted attempt (so in the snapshot the
    new plan is made from, and handed to it by reconcile), plus `others`. The clients, the new attempt's
    action, the leftover's create, the leftover."""
    [first, *_] = [c for c in _action(_policy()).changes if isinstance(c, RoleAssignmentChange)]
    leftover = assignment(first.scope, USER, FLOW, name=first.assignment_name)
    clients = MemoryClients(_vault(), assignments=(leftover, *others))
    return clients, _action(_policy(), leftover, *others), first, leftover


def _applied_with(
    clients: MemoryClients,
    action: Action,
    left: tuple[Change, ...],
    audit: MemoryAuditSink,
    *,
    pinned: bool = False,
) -> Outcome:
    plan = assemble_plan([action], parse_policy({}), created_at=datetime.now(UTC), dry_run=False)
    context = RunContext(correlation_id="next", trigger="ticket")
    [outcome] = apply_plan(plan, clients, audit, context, pinned=pinned, inherited={action.id: left})  # type: ignore[arg-type]
    return outcome


def _drift(clients: MemoryClients, **update: object) -> None:
    """Someone changes the vault after the run's read, before its lease: an identity given `get`."""
    current = clients.mgmt.vaults["kv"]
    entries = (*current.access_policies, policy_entry("x", "get"))
    clients.mgmt.vaults["kv"] = current.model_copy(update={"access_policies": entries, **update})


# The rows of a skipped migration that rolls back one leftover: the action's intent, the adopt step,
# the delete step (intent, result), the skipped outcome.
ADOPTED_THEN_DELETED = [
    (None, "pending"),
    (1, "pending"),
    (1, "applied"),
    (2, "pending"),
    (2, "applied"),
    (None, "skipped"),
]


def test_a_drifted_migration_rolls_back_what_an_interrupted_attempt_created_audited_in_steps() -> None:
    """Reconcile handed this attempt an earlier one's assignment; the drift check skips the migration,
    so that extra grant is deleted by its own name under the lease, an intent row before the delete and
    a result row after it (after a row adopting it: this attempt's rows name all it owns). Someone
    else's assignment of the same role (another name) stays."""
    theirs = assignment(f"{KV}/secrets/b", USER, FLOW, name="their-own-grant")
    clients, action, first, leftover = _left_by_an_interrupted_attempt(theirs)
    _drift(clients)
    audit = MemoryAuditSink()
    outcome = _applied_with(clients, action, (first,), audit)
    assert outcome.status == "skipped" and (outcome.error or "").startswith("drifted"), outcome
    assert "rolled back what an interrupted attempt left: " in (outcome.error or "")
    assert clients.authz.assignments == [theirs]  # the leftover deleted, theirs kept
    assert [c for c in clients.authz.calls if c[0] != "list"] == [("delete", leftover.name)]
    assert clients.mgmt.switches == []
    rows = audit.records("next")
    assert [(r.step, r.state) for r in rows] == ADOPTED_THEN_DELETED
    assert rows[1].changes == (first,) and rows[1].reason.startswith("adopt ")
    assert rows[3].changes == (first.model_copy(update={"operation": "delete"}),)
    assert rows[-1].error == outcome.error  # the audit row says so too


def test_a_migration_drifted_to_rbac_keeps_and_names_what_an_interrupted_attempt_created() -> None:
    """Switched since (by the attempt or a person), the assignments may be the access identities rely
    on now: nothing is deleted, they are named."""
    clients, action, first, leftover = _left_by_an_interrupted_attempt()
    _drift(clients, enable_rbac_authorization=True)
    outcome = _applied_with(clients, action, (first,), MemoryAuditSink())
    assert outcome.status == "skipped" and (outcome.error or "").startswith("drifted")
    assert (outcome.error or "").endswith(f"they may be the access its identities rely on: {describe(first)}")
    assert clients.authz.assignments == [leftover]
    assert not [c for c in clients.authz.calls if c[0] == "delete"]


def test_a_leftover_that_cannot_be_deleted_fails_the_skipped_migration_and_names_it() -> None:
    clients, action, first, leftover = _left_by_an_interrupted_attempt()
    _drift(clients)
    clients.authz.fail_on["delete"] = AzureCallFailed("delete role assignment", 403, "Forbidden", "denied")
    audit = MemoryAuditSink()
    outcome = _applied_with(clients, action, (first,), audit)
    assert outcome.status == "failed" and "drifted" in (outcome.error or "")
    assert "rollback of what an interrupted attempt left incomplete" in (outcome.error or "")
    assert clients.authz.assignments == [leftover]
    assert [(r.step, r.state) for r in audit.records("next")][3:5] == [(2, "pending"), (2, "failed")]


def test_a_create_only_migration_is_judged_under_the_lease_and_skipped_as_drifted_before_any_create() -> None:
    """With `propagationGraceSeconds` the run only creates (the switch waits for a later run): those
    creates are the access the switch will rely on, so a change since the plan skips them too."""
    action = _action(_policy(rbac={"propagationGraceSeconds": 600}))
    assert ("switch", True) not in _kinds(action)
    clients = MemoryClients(_vault())
    _drift(clients)
    [outcome] = apply_actions(clients, action)
    assert outcome.status == "skipped" and (outcome.error or "").startswith("drifted"), outcome
    assert "x: access policy secrets: get" in (outcome.error or "")
    assert clients.mgmt.reads == ["kv"]  # the vault read under the lease
    assert [op for op, _ in clients.authz.calls] == ["list"] and clients.authz.assignments == []


def test_a_create_only_migration_of_an_unchanged_vault_creates_and_verifies_without_switching() -> None:
    action = _action(_policy(rbac={"propagationGraceSeconds": 600}))
    clients = MemoryClients(_vault())
    [outcome] = apply_actions(clients, action)
    assert outcome.status == "applied", outcome.error
    assert [op for op, _ in clients.authz.calls] == ["list", "list", "create", "create", "list"]
    assert clients.mgmt.switches == [] and len(clients.authz.assignments) == 2


@pytest.mark.parametrize(
    ("rbac_now", "gone", "rolled_back"),
    [(False, False, True), (False, True, True), (True, False, False)],
)
def test_what_a_drifted_migration_rolls_back_of_what_an_interrupted_attempt_left(
    rbac_now: bool, gone: bool, rolled_back: bool
) -> None:
    """Pure: the creates left, newest first, as deletes of the same names, unless the vault reads RBAC
    now (then kept, with the reason); a vault that is gone would hand them to one re-created under its
    name. A switch left by the attempt is never undone here."""
    action = _action(_policy())
    creates = [c for c in action.changes if isinstance(c, RoleAssignmentChange)]
    switch = next(c for c in action.changes if isinstance(c, VaultAuthorizationChange))
    now = None if gone else _vault().model_copy(update={"enable_rbac_authorization": rbac_now})
    deletes, kept = left_to_roll_back((*creates, switch), now)
    if rolled_back:
        assert kept is None
        assert [(c.operation, c.assignment_name) for c in deletes] == [
            ("delete", c.assignment_name) for c in reversed(creates)
        ]
    else:
        assert deletes == () and kept is not None and "Azure RBAC" in kept
    assert is_migration(action) and not is_migration(action.model_copy(update={"before": {}}))
