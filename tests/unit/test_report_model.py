"""ReportData and its builder: severity order and counts, the graph view's columns, the simulated
"after" graph, and which actions count as what."""

from __future__ import annotations

from remediations.core.model import Action, Finding, Outcome, Permissions, Plan, ShareChange
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


def revoke_share_action() -> Action:
    return Action.create(
        remediation_id="revoke_flow_shares",
        target="f1",
        principal="maker",
        changes=(
            ShareChange(
                operation="delete",
                resource_kind="flow",
                environment="env1",
                resource_id="f1",
                principal_id="maker",
                role="CanEdit",
            ),
        ),
        before={"flowRoles": ["CanEdit"]},
        after={"flowRoles": []},
        reason="maker is not an allowed owner of the flow",
        finding_ids=(),
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


def test_graph_view_splits_principals_into_person_and_identity_columns() -> None:
    view = graph_view(seed_snapshot())
    by_kind = {
        k: sorted(n.label for n in view.nodes if n.kind == k)
        for k in ("person", "flow", "connection", "identity", "vault", "secret")
    }
    assert by_kind["person"] == ["Ada Admin", "Mallory Maker"]  # viewer (CanView) cannot run it: no node
    assert by_kind["identity"] == ["Ada Admin", "ghost", "payroll-app"]
    assert by_kind["flow"] == ["Payroll sync"] and by_kind["connection"] == ["keyvault kv-payroll"]
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
        ("flow", "connection", "uses"),
        ("connection", "identity", "authenticates_as"),
        ("identity", "vault", "access_policy"),
        ("vault", "secret", "contains"),
    }
    access = {e.target.rsplit("/", 1)[-1]: e.permissions for e in view.edges if e.source == "identity:admin"}
    assert access == {"kv-hr": ("get", "list"), "kv-payroll": ("get", "list", "set")}


def test_dry_run_after_graph_narrows_the_list_edges() -> None:
    snap, findings, plan = seed_run()
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
    # The maker still reads (get stays); listing is what was cut.
    assert report.summary.exposure_before == report.summary.exposure_after == 4


def test_removed_share_edge_and_exposure_drop() -> None:
    snap, findings, plan = seed_run()
    plan = plan.model_copy(update={"actions": (*plan.actions, revoke_share_action()), "dry_run": False})
    outcomes = [Outcome(action_id=a.id, status="applied", verified=True) for a in plan.actions]
    report = build_report(
        findings=findings, snapshot=snap, plan=plan, outcomes=outcomes, generated_at=GENERATED
    )
    assert report.graph_after_source == "applied outcomes"
    assert report.graph_after is not None
    [removed] = report.graph_after.edges_with("removed")
    assert (removed.source, removed.target, removed.relation) == ("person:maker", "flow:f1", "can_edit")
    assert report.summary.exposure_before == 4 and report.summary.exposure_after == 0
    # The removed edge's node is still drawn in the after picture (same layout as before).
    assert "person:maker" in {n.id for n in report.graph_after.nodes}


def test_failed_actions_do_not_change_the_after_graph() -> None:
    snap, findings, plan = seed_run(dry_run=False)
    outcomes = [Outcome(action_id=a.id, status="failed", error="403 Forbidden") for a in plan.actions]
    report = build_report(
        findings=findings, snapshot=snap, plan=plan, outcomes=outcomes, generated_at=GENERATED
    )
    assert report.graph_after is not None
    assert {e.status for e in report.graph_after.edges} == {"kept"}
    assert report.summary.actions.failed == 2 and report.summary.actions.applied == 0


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
    smaller = seed_snapshot().model_copy(update={"shares": ()})
    after = compare(graph_view(smaller), before)  # "after" has the share the "before" lacks
    [added] = after.edges_with("added")
    assert added.source == "person:maker"


def test_planned_only_counts_skips_and_deferred() -> None:
    snap, findings, plan = seed_run()
    first, second = plan.actions
    skipped = first.model_copy(update={"skip_reason": "last manager"})
    plan = Plan(id="p", actions=(skipped,), deferred=(second,), created_at=GENERATED)
    report = build_report(findings=findings, snapshot=snap, plan=plan, generated_at=GENERATED)
    counts = report.summary.actions
    assert (counts.planned, counts.skipped, counts.deferred) == (0, 1, 1)


def test_seed_report_round_trips_as_json() -> None:
    report = seed_report()
    from remediations.report import ReportData

    again = ReportData.model_validate_json(report.model_dump_json())
    assert again == report
