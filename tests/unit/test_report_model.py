"""ReportData and its builder: severity order and counts, the graph view's columns, the simulated
"after" graph, and which actions count as what."""

from __future__ import annotations

from remediations.core.model import Action, Environment, Finding, Identity, Outcome, Permissions, Plan, Share
from remediations.report import build_report, graph_view, simulate
from remediations.report.graph_view import compare, readable_pairs
from remediations.report.model import at_least, sort_findings
from tests.unit.report_builders import GENERATED, seed_report, seed_run, seed_snapshot, vault_id


def _finding(severity: str, name: str) -> Finding:
    return Finding.create(
        detector_id=f"rule_{name}",
        severity=severity,  # type: ignore[arg-type]
        resource_id=vault_id(name),
        principal=None,
        message=name,
        evidence={},
    )


def test_severity_order_filter_and_counts() -> None:
    findings = [_finding(s, f"v{i}") for i, s in enumerate(["low", "critical", "medium", "high", "low"])]
    assert [f.severity for f in sort_findings(findings)] == ["critical", "high", "medium", "low", "low"]
    assert [f.severity for f in at_least(findings, "high")] == ["critical", "high"]
    assert len(at_least(findings, None)) == 5
    report = build_report(findings=findings, min_severity="medium", generated_at=GENERATED)
    assert report.summary.findings_by_severity == {"critical": 1, "high": 1, "medium": 1, "low": 0}
    assert list(report.summary.findings_by_severity) == ["critical", "high", "medium", "low"]
    assert [f.severity for f in report.findings] == ["critical", "high", "medium"]
    assert {r.id: r.severity for r in report.rules} == {
        "rule_v1": "critical",
        "rule_v3": "high",
        "rule_v2": "medium",
    }
    assert report.graph_before is None and report.scope == "-"


LIST_ONLY = {"secret_list_permission"}


def test_graph_view_splits_principals_into_person_and_identity_columns() -> None:
    view = graph_view(seed_snapshot())
    by_kind = {
        k: sorted(n.label for n in view.nodes if n.kind == k)
        for k in ("person", "flow", "connection", "identity", "vault", "secret")
    }
    # viewer (CanView) is a run-only user: a person who can run the flow (no display name known).
    assert by_kind["person"] == ["Ada Admin", "Mallory Maker", "viewer"]
    assert by_kind["identity"] == ["Ada Admin", "ghost", "payroll-app"]
    assert by_kind["flow"] == ["Payroll sync"] and by_kind["connection"] == ["kv-payroll"]
    assert by_kind["vault"] == ["kv-hr", "kv-payroll"]
    assert by_kind["secret"] == [
        "kv-hr/hr-token",
        "kv-payroll/api-key",
        "kv-payroll/db-password",
        "kv-payroll/storage-key",
    ]
    relations = {(e.source.split(":")[0], e.target.split(":")[0], e.relation) for e in view.edges}
    assert relations == {
        ("person", "flow", "can_edit"),
        ("person", "flow", "can_run"),
        ("flow", "connection", "uses"),
        ("connection", "identity", "authenticates_as"),
        ("identity", "vault", "access_policy"),
        ("vault", "secret", "contains"),
    }
    access = {e.target.rsplit("/", 1)[-1]: e.permissions for e in view.edges if e.source == "identity:admin"}
    assert access == {"kv-hr": ("get", "list"), "kv-payroll": ("get", "list", "set")}


def test_graph_view_places_power_platform_edges_in_their_columns() -> None:
    """Environment role holders and connection users are people; a group member sits in its group's
    column; all of them count as exposure (they reach the secrets through the flow or connection)."""
    seed = seed_snapshot()
    snap = seed.model_copy(
        update={
            "environments": (
                Environment(id="env1", name="env1", role_holders={"custo": ("System Customizer",)}),
            ),
            "shares": (
                *seed.shares,
                Share(resource_kind="connection", resource_id="c1", principal_id="analyst", role="CanEdit"),
                Share(resource_kind="flow", resource_id="f1", principal_id="team", role="CanView"),
            ),
            "group_members": {"team": ("member",), "app-reader": ("svc",)},
            "identities": (*seed.identities, Identity(object_id="team", kind="group", display_name="Team")),
        }
    )
    view = graph_view(snap)
    kinds = {n.id: n.kind for n in view.nodes}
    edges = {(e.source, e.target, e.relation) for e in view.edges}
    assert ("person:custo", "flow:f1", "environment_role") in edges
    assert ("person:analyst", "connection:c1", "can_use") in edges
    assert ("person:member", "person:team", "member_of") in edges  # the group runs the flow: a person
    assert ("identity:svc", "identity:app-reader", "member_of") in edges  # the group reads the vault
    assert {kinds[n] for e in edges for n in e[:2] if e[2] == "member_of"} <= {"person", "identity"}
    people = {p for p, _ in readable_pairs(snap)}
    assert people == {"maker", "viewer", "custo", "analyst", "team", "member"}
    assert "svc" not in people  # reads through its group's access policy, not through a flow
    secrets_per_person = {p: sum(1 for q, _ in readable_pairs(snap) if q == p) for p in people}
    assert set(secrets_per_person.values()) == {4}


def test_dry_run_after_graph_narrows_the_list_edges() -> None:
    snap, findings, plan = seed_run(only=LIST_ONLY)
    report = build_report(findings=findings, snapshot=snap, plan=plan, generated_at=GENERATED)
    assert report.graph_after_source == "planned (dry run)" and report.dry_run
    assert report.graph_after is not None
    narrowed = report.graph_after.edges_with("narrowed")
    assert {(e.target.rsplit("/", 1)[-1], e.permissions, e.removed_permissions) for e in narrowed} == {
        ("kv-hr", ("get",), ("list",)),
        ("kv-payroll", ("get", "set"), ("list",)),
    }
    assert report.graph_after.edges_with("removed") == ()
    assert report.summary.actions.planned == 2 and report.summary.actions.applied == 0
    # The maker and the run-only viewer still read (get stays); listing is what was cut.
    assert report.summary.exposure_before == report.summary.exposure_after == 8


def test_dry_run_after_graph_of_the_whole_seed_plan() -> None:
    """Every shipped remediation: list narrowed, orphan removed, shares revoked (DLP changes no edge)."""
    snap, findings, plan = seed_run()
    report = build_report(findings=findings, snapshot=snap, plan=plan, generated_at=GENERATED)
    assert report.graph_after is not None
    assert {e.target.rsplit("/", 1)[-1] for e in report.graph_after.edges_with("narrowed")} == {
        "kv-hr",
        "kv-payroll",
    }
    removed = {
        (e.source, e.target.rsplit("/", 1)[-1], e.relation) for e in report.graph_after.edges_with("removed")
    }
    assert removed == {
        ("identity:ghost", "kv-payroll", "access_policy"),
        ("person:maker", "flow:f1", "can_edit"),
        ("person:viewer", "flow:f1", "can_run"),
    }
    assert {a.remediation_id for a in plan.writes} == {
        "remove_list_permission",
        "remove_orphaned_principal",
        "revoke_flow_shares",
        "enforce_keyvault_dlp",
    }
    assert report.summary.actions.planned == len(plan.writes) and report.summary.actions.applied == 0
    assert report.summary.exposure_before == 8 and report.summary.exposure_after == 0


def test_removed_share_edge_and_exposure_drop() -> None:
    snap, findings, plan = seed_run(dry_run=False)
    outcomes = [Outcome(action_id=a.id, status="applied", verified=True) for a in plan.actions]
    report = build_report(
        findings=findings, snapshot=snap, plan=plan, outcomes=outcomes, generated_at=GENERATED
    )
    assert report.graph_after_source == "applied outcomes"
    assert report.graph_after is not None
    removed_shares = {
        (e.source, e.target, e.relation)
        for e in report.graph_after.edges_with("removed")
        if e.target.startswith("flow:")
    }
    assert removed_shares == {
        ("person:maker", "flow:f1", "can_edit"),
        ("person:viewer", "flow:f1", "can_run"),
    }
    # The creator's own edge stays: it is the flow's Owner, which the fix never revokes.
    assert ("person:admin", "flow:f1", "can_edit") in {e.key for e in report.graph_after.edges_with("kept")}
    assert report.summary.exposure_before == 8 and report.summary.exposure_after == 0
    # The removed edge's node is still drawn in the after picture (same layout as before).
    assert "person:maker" in {n.id for n in report.graph_after.nodes}


def test_only_applied_actions_change_the_after_graph() -> None:
    snap, findings, plan = seed_run(dry_run=False)
    [revoke] = [a for a in plan.actions if a.remediation_id == "revoke_flow_shares"]
    outcomes = [
        Outcome(action_id=a.id, status="failed" if a is revoke else "applied", error=None)
        for a in plan.actions
    ]
    report = build_report(
        findings=findings, snapshot=snap, plan=plan, outcomes=outcomes, generated_at=GENERATED
    )
    assert report.graph_after is not None
    assert not any(e.target == "flow:f1" for e in report.graph_after.edges_with("removed"))
    assert report.summary.exposure_after == report.summary.exposure_before == 8


def test_failed_actions_do_not_change_the_after_graph() -> None:
    snap, findings, plan = seed_run(dry_run=False)
    outcomes = [Outcome(action_id=a.id, status="failed", error="403 Forbidden") for a in plan.actions]
    report = build_report(
        findings=findings, snapshot=snap, plan=plan, outcomes=outcomes, generated_at=GENERATED
    )
    assert report.graph_after is not None
    assert {e.status for e in report.graph_after.edges} == {"kept"}
    assert len(plan.actions) > 1
    assert report.summary.actions.failed == len(plan.actions) and report.summary.actions.applied == 0


def test_simulate_remove_is_case_sensitive_like_azure() -> None:
    snap = seed_snapshot()
    hr = vault_id("kv-hr")
    _, _, plan = seed_run(snap)
    [hr_action] = [a for a in plan.actions if a.target == hr]
    wrong_case = hr_action.model_copy(
        update={
            "changes": (
                hr_action.changes[0].model_copy(update={"permissions": Permissions(secrets=("list",))}),
            )
        }
    )
    unchanged = simulate(snap, [wrong_case])
    assert unchanged.vault(hr) == snap.vault(hr)  # `list` does not remove `List`
    changed = simulate(snap, [hr_action])
    hr_vault = changed.vault(hr)
    assert hr_vault is not None and hr_vault.access_policies[0].permissions.secrets == ("Get",)
    assert readable_pairs(changed) == readable_pairs(snap)


def test_compare_marks_added_edges() -> None:
    before = graph_view(seed_snapshot())
    seed = seed_snapshot()
    smaller = seed.model_copy(update={"shares": tuple(s for s in seed.shares if s.principal_id != "maker")})
    after = compare(graph_view(smaller), before)  # "after" has the maker's share the "before" lacks
    [added] = after.edges_with("added")
    assert added.source == "person:maker"


def test_planned_only_counts_skips_and_deferred() -> None:
    snap, findings, plan = seed_run()
    first, second, *rest = plan.actions
    assert rest and not any(a.skip_reason for a in rest)
    skipped = first.model_copy(update={"skip_reason": "last manager"})
    plan = Plan(id="p", actions=(skipped, *rest), deferred=(second,), created_at=GENERATED)
    report = build_report(findings=findings, snapshot=snap, plan=plan, generated_at=GENERATED)
    counts = report.summary.actions
    assert (counts.planned, counts.skipped, counts.deferred) == (len(rest), 1, 1)


def test_seed_report_round_trips_as_json() -> None:
    report = seed_report()
    from remediations.report import ReportData

    again = ReportData.model_validate_json(report.model_dump_json())
    assert again == report


def test_simulate_deletes_the_role_assignment_a_change_names() -> None:
    """Matched as the apply path matches (role_changes.assignment_matches): ARM ids ignore case."""
    from remediations.core import rbac
    from remediations.core.model import RoleAssignmentChange
    from tests.unit.rbac_builders import FLOW, assignment, rbac_snapshot, rbac_vault

    kv = rbac_vault("kv-rbac", "a", "b")
    officer = assignment(kv.id, rbac.KEY_VAULT_SECRETS_OFFICER)
    other = assignment(
        kv.id, rbac.KEY_VAULT_SECRETS_OFFICER, principal="33333333-0000-0000-0000-000000000033"
    )
    snap = rbac_snapshot(kv, assignments=(officer, other))
    delete = RoleAssignmentChange(
        operation="delete",
        scope=kv.id.upper() + "/",
        role_definition_id=officer.role_definition_id.upper(),
        principal_id=FLOW.upper(),
        principal_type="ServicePrincipal",
        assignment_name=officer.name,
    )
    action = Action.create(
        remediation_id="narrow_role_assignment",
        target=kv.id,
        principal=FLOW,
        changes=(delete,),
        before={},
        after={},
        reason="narrow",
        finding_ids=(),
    )
    after = simulate(snap, [action])
    assert after.role_assignments == (other,)
    view = compare(graph_view(snap), graph_view(after))
    [removed] = view.edges_with("removed")
    assert removed.source == f"identity:{FLOW}" and removed.relation == "role_assignment"
