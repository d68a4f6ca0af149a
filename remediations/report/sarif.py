"""SARIF 2.1.0 for code-scanning tools (GitHub code scanning, Azure DevOps, Defender for DevOps).

Like Prowler, only failing findings become results (a finding *is* a failure here). Shapes:
- one rule per detector id: `shortDescription`, `helpUri`, `defaultConfiguration.level` (the detector's
  registered severity; a result may be more severe), `properties.security-severity` (GitHub's numeric
  scale: critical 9.5, high 8.0, medium 5.5, low 3.0; of the rule's most severe result, because code
  scanning reads it from the rule only);
- one result per finding: `ruleId`/`ruleIndex`, `kind`, `level`, `message.text`, `partialFingerprints`
  from the finding's stable id, the finding's evidence as `properties`, and one location. A finding
  whose evidence says `informational: true` (good practice seen, e.g. a secured Get secret) is
  `kind: informational`, `level: none`, and so is its rule's default when all its findings are;
- reads that failed (inventory errors, unreadable files) become `toolExecutionNotifications` and make
  `executionSuccessful` false.

Both the cloud report (`plan/apply --output-formats sarif`) and the offline `scan-flows --sarif` use
this one writer.

Locations: GitHub rejects a whole file when any result has no `physicalLocation` ("expected at least
one location" / "expected artifact location"), so every result gets one:
- findings on a file (a flow definition scanned from disk) carry `artifactUri` (a repo-relative path or
  URI reference, or a file:// URI) and optionally `startLine` in their evidence (`FileLocation`): that
  file and line are used;
- cloud findings use the ARM resource id without its leading `/` as a relative URI (it names the
  resource; no file exists), and the full resource id as a `logicalLocation` of kind `resource`.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from remediations.core.evidence import FileLocation
from remediations.core.model import Finding, severity_rank
from remediations.report.guard import check_output
from remediations.report.model import ReportData, evidence_of, is_informational

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
SARIF_VERSION = "2.1.0"
INFORMATION_URI = "https://learn.microsoft.com/azure/key-vault/general/security-features"
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0"}
LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}


def _location(finding: Finding) -> dict[str, Any]:
    evidence = evidence_of(finding)
    logical = [{"fullyQualifiedName": finding.resource_id, "kind": "resource"}]
    if isinstance(evidence, FileLocation) and evidence.artifact_uri:
        physical: dict[str, Any] = {"artifactLocation": {"uri": evidence.artifact_uri.replace("\\", "/")}}
        if evidence.start_line is not None and evidence.start_line >= 1:
            physical["region"] = {"startLine": evidence.start_line}
    else:
        physical = {"artifactLocation": {"uri": finding.resource_id.lstrip("/")}}
    return {"physicalLocation": physical, "logicalLocations": logical}


def _utc(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def sarif_document(report: ReportData) -> dict[str, Any]:
    rules = list(report.rules)
    index = {rule.id: i for i, rule in enumerate(rules)}
    results: list[dict[str, Any]] = []
    for finding in sorted(report.findings, key=lambda f: (severity_rank(f.severity), f.id)):
        informational = is_informational(finding)
        evidence = finding.model_dump(mode="json")["evidence"]  # JSON-safe; never holds a secret value
        result: dict[str, Any] = {
            "ruleId": finding.detector_id,
            "kind": "informational" if informational else "fail",
            "level": "none" if informational else LEVEL[finding.severity],
            "message": {"text": finding.message},
            "locations": [_location(finding)],
            "partialFingerprints": {"vaultguardFindingId/v1": finding.id},
            "properties": {**evidence, "severity": finding.severity},
        }
        if finding.detector_id in index:
            result["ruleIndex"] = index[finding.detector_id]
        if finding.principal:
            result["properties"]["principal"] = finding.principal
        results.append(result)
    driver = {
        "name": "vaultguard",
        "version": report.tool_version,
        "semanticVersion": report.tool_version,
        "informationUri": INFORMATION_URI,
        "rules": [
            {
                "id": rule.id,
                "name": "".join(part.capitalize() for part in rule.id.split("_")),
                "shortDescription": {"text": rule.description},
                **(
                    {"fullDescription": {"text": rule.detail}, "help": {"text": rule.detail}}
                    if rule.detail
                    else {}
                ),
                "helpUri": rule.help_uri,
                "defaultConfiguration": {
                    "level": "none" if rule.informational else LEVEL[rule.default_severity]
                },
                "properties": {
                    "security-severity": SECURITY_SEVERITY[rule.severity],
                    "tags": ["security", "azure-key-vault", "power-automate"],
                },
            }
            for rule in rules
        ],
    }
    run: dict[str, Any] = {
        "tool": {"driver": driver},
        "results": results,
        "columnKind": "unicodeCodePoints",
        "invocations": [
            {
                "executionSuccessful": report.summary.inventory_errors == 0,
                "endTimeUtc": _utc(report.generated_at),
                **(
                    {
                        "toolExecutionNotifications": [
                            {
                                "level": "error",
                                "message": {"text": f"{e.resource_id}: {e.message}{e.remedy_note}"},
                            }
                            for e in report.inventory_errors
                        ]
                    }
                    if report.inventory_errors
                    else {}
                ),
            }
        ],
        "properties": {"scope": report.scope, **({"runId": report.run_id} if report.run_id else {})},
    }
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}


def render_sarif(report: ReportData, *, forbidden_values: Collection[str] | None = None) -> str:
    text = json.dumps(sarif_document(report), indent=2, ensure_ascii=False) + "\n"
    return check_output(text, forbidden_values, fmt="sarif")
