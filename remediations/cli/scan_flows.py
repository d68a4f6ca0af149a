"""`vaultguard scan-flows PATH...`: find Key Vault leaks in exported flows, offline (shift left).

No tenant, no network: reads files and runs `analyze_definition` + `flow_findings` on every flow found in

- Power Platform solution exports, zipped or unpacked (`Workflows/*.json`: `properties.definition` and
  `properties.connectionReferences`);
- flow package exports (.zip with `Microsoft.Flow/flows/<id>/definition.json`);
- bare definitions (`definition.json` with `actions`/`triggers`, or `{"definition": ...}` as in a Logic Apps
  Standard `workflow.json`);
- Logic Apps ARM templates (`resources[]` of type `Microsoft.Logic/workflows`, `$connections` parameter),
  their template expressions evaluated first (remediations/core/arm_expressions.py).

Directories are walked for `*.json` and `*.zip`; JSON files inside directories and archives that are not
flows (manifests, connection maps) are skipped. A file named on the command line must contain a flow.

Exit codes: 0 no finding at or above `--fail-on` (default high), 1 at least one, 2 unreadable input
(a message per file, never a traceback, and no "0 flow(s) scanned" line when nothing could be read);
a reader that stops early (`| head`) ends the output quietly. Informational findings (a Get secret with
secure outputs) never fail the scan. Output: a text table, `--json`, and/or `--sarif FILE|-` (SARIF 2.1.0
through the shared writer in remediations/report/sarif.py, with the file and line of each action).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from remediations.core.arm_expressions import TemplateContext, Unresolved, evaluate, render
from remediations.core.evidence import FlowStepEvidence
from remediations.core.flow_analysis import DefinitionAnalysis, analyze_definition
from remediations.core.flow_findings import FlowRef, flow_findings
from remediations.core.model import Finding, InventoryError, Severity
from remediations.report import ReportData, build_report, render_sarif

EXIT_OK, EXIT_FINDINGS, EXIT_UNREADABLE = 0, 1, 2
SEVERITY_RANK: dict[str, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}
MAX_ENTRY_BYTES = 64 * 1024 * 1024  # a flow definition is kilobytes; refuse archive members that are not


class ScanError(Exception):
    """Input that cannot be read as flows; the message names the file."""


@dataclass(frozen=True)
class ScannedFlow:
    ref: FlowRef
    artifact: str  # the file on disk (a zip for archive members), for SARIF locations
    entry: str | None  # member inside the archive
    text: str | None  # the JSON text, to find line numbers (plain files only)
    analysis: DefinitionAnalysis


@dataclass
class ScanResult:
    flows: list[ScannedFlow] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def failing(self, threshold: Severity) -> list[Finding]:
        return [
            f
            for f in self.findings
            if SEVERITY_RANK[f.severity] >= SEVERITY_RANK[threshold]
            and not FlowStepEvidence.of(f).informational
        ]


# --- recognising flows in JSON documents --------------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    suffix: str  # appended to the file name to identify the flow (ARM: #<workflow name>)
    display_name: str
    definition: dict[str, Any]
    references: Mapping[str, Any]


def _is_definition(value: Any) -> bool:
    return isinstance(value, dict) and (
        isinstance(value.get("actions"), dict)
        or isinstance(value.get("triggers"), dict)
        or "workflowdefinition.json" in str(value.get("$schema", "")).lower()
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _arm_workflows(resources: Any) -> Iterator[dict[str, Any]]:
    """Workflow resources in an ARM template, nested deployments and child resources included."""
    if not isinstance(resources, list):
        return
    for resource in resources:
        if not isinstance(resource, dict):
            continue
        if str(resource.get("type", "")).lower() == "microsoft.logic/workflows":
            yield resource
        yield from _arm_workflows(resource.get("resources"))
        template = _mapping(_mapping(resource.get("properties")).get("template"))
        yield from _arm_workflows(template.get("resources"))


def _arm_vaults(resources: Any, context: TemplateContext) -> dict[str, str]:
    """API connection resource name -> vault name, from `Microsoft.Web/connections` in the template (a
    `[parameters('KeyVaultName')]` counts only when the parameter has a default)."""
    vaults: dict[str, str] = {}
    if not isinstance(resources, list):
        return vaults
    for resource in resources:
        if not isinstance(resource, dict):
            continue
        if str(resource.get("type", "")).lower() == "microsoft.web/connections":
            props = _mapping(resource.get("properties"))
            value_set = _mapping(_mapping(props.get("parameterValueSet")).get("values"))
            candidates = [
                _mapping(props.get(key)).get("vaultName")
                for key in ("parameterValues", "alternativeParameterValues")
            ]
            candidates.append(_mapping(value_set.get("vaultName")).get("value"))
            for candidate in candidates:
                vault = evaluate(candidate, context) if isinstance(candidate, str) else None
                if isinstance(vault, str) and vault:
                    vaults[str(resource.get("name", ""))] = vault
        vaults.update(_arm_vaults(resource.get("resources"), context))
    return vaults


def _with_vaults(references: Mapping[str, Any], vaults: Mapping[str, str]) -> Mapping[str, Any]:
    """Add `vaultName` to `$connections` entries whose connection resource in the template names one."""
    if not vaults:
        return references
    enriched: dict[str, Any] = {}
    for key, entry in references.items():
        entry_map = dict(_mapping(entry))
        connection_id = str(entry_map.get("connectionId", ""))
        for name, vault in vaults.items():
            if name and (name == entry_map.get("connectionName") or name in connection_id):
                entry_map.setdefault("vaultName", vault)
        enriched[key] = entry_map
    return enriched


def _unresolved(part: Unresolved) -> str:
    """Unresolved template parts (a parameter without a default, `resourceGroup()`) become a Logic Apps
    expression, so a secret name built from one reads as not static."""
    return "@{" + part.text + "}"


def _arm_resolved(value: Any, context: TemplateContext) -> Any:
    """The workflow definition as deployed: ARM template expressions in its strings evaluated."""
    if isinstance(value, str):
        return render(evaluate(value, context), _unresolved)
    if isinstance(value, dict):
        return {key: _arm_resolved(item, context) for key, item in value.items()}
    if isinstance(value, list):
        return [_arm_resolved(item, context) for item in value]
    return value


def _arm_name(name: Any, context: TemplateContext) -> str:
    """A workflow's name; `[parameters('PlaybookName')]` resolved to its default value when it has one."""
    text = str(name or "")
    value = evaluate(text, context)
    return value if isinstance(value, str) and value else text


def find_flows(document: Any, default_name: str) -> list[_Found]:
    """The flows in one parsed JSON document (empty when it is not a flow document)."""
    if not isinstance(document, dict):
        return []
    if isinstance(document.get("resources"), list):
        context = TemplateContext(_mapping(document.get("parameters")), _mapping(document.get("variables")))
        vaults = _arm_vaults(document["resources"], context)
        found = []
        for index, resource in enumerate(_arm_workflows(document["resources"])):
            props = _mapping(resource.get("properties"))
            if not _is_definition(props.get("definition")):
                continue
            name = _arm_name(resource.get("name"), context) or f"resources[{index}]"
            connections = _mapping(
                _mapping(_mapping(props.get("parameters")).get("$connections")).get("value")
            )
            definition = _arm_resolved(props["definition"], context)
            found.append(_Found(f"#{name}", name, definition, _with_vaults(connections, vaults)))
        return found
    props = _mapping(document.get("properties"))
    if _is_definition(props.get("definition")):
        name = str(props.get("displayName") or document.get("name") or default_name)
        return [_Found("", name, props["definition"], _mapping(props.get("connectionReferences")))]
    if _is_definition(document.get("definition")):
        references = _mapping(document.get("connectionReferences"))
        return [_Found("", default_name, document["definition"], references)]
    if _is_definition(document):
        return [_Found("", default_name, document, {})]
    return []


# --- reading files --------------------------------------------------------------------------------


def _display_path(path: Path) -> str:
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def _parse(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ScanError(
            f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8-sig")  # Power Platform exports may start with a byte-order mark
    except UnicodeDecodeError:
        raise ScanError(f"{where}: not UTF-8 text") from None


def _scan_document(
    result: ScanResult, document: Any, artifact: str, entry: str | None, text: str | None, name: str
) -> int:
    location = f"{artifact}!{entry}" if entry else artifact
    flows = find_flows(document, name)
    for found in flows:
        ref = FlowRef(resource_id=location + found.suffix, display_name=found.display_name)
        analysis = analyze_definition(found.definition, connection_references=found.references)
        result.flows.append(ScannedFlow(ref, artifact, entry, text, analysis))
        result.findings.extend(flow_findings(ref, analysis))
    return len(flows)


def _scan_zip(result: ScanResult, path: Path) -> None:
    artifact = _display_path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.is_dir() or not info.filename.lower().endswith(".json"):
                    continue
                where = f"{artifact}!{info.filename}"
                if info.file_size > MAX_ENTRY_BYTES:
                    raise ScanError(f"{where}: {info.file_size} bytes is too large for a flow definition")
                text = _decode(archive.read(info), where)
                name = _flow_name(PurePosixPath(info.filename))
                _scan_document(result, _parse(text, where), artifact, info.filename, None, name)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError) as exc:
        raise ScanError(f"{artifact}: not a readable zip archive ({exc})") from None


# Solution exports name workflow files <name>-<workflow GUID>.json (the display name is in customizations.xml)
_GUID_SUFFIX = re.compile(r"-[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


def _flow_name(path: PurePosixPath | Path) -> str:
    """A readable name: the flow folder for package `definition.json`/`workflow.json`, else the file stem
    without a solution export's workflow GUID."""
    if path.name.lower() in {"definition.json", "workflow.json"} and path.parent.name:
        return path.parent.name
    return _GUID_SUFFIX.sub("", path.stem) or path.stem


def _scan_json(result: ScanResult, path: Path, *, explicit: bool) -> None:
    artifact = _display_path(path)
    text = _decode(path.read_bytes(), artifact)
    count = _scan_document(result, _parse(text, artifact), artifact, None, text, _flow_name(path))
    if explicit and count == 0:
        raise ScanError(
            f"{artifact}: no flow definition found (expected a definition with actions/triggers, a flow or "
            "solution Workflows JSON with properties.definition, or an ARM template with "
            "Microsoft.Logic/workflows)"
        )


def _scan_path(result: ScanResult, path: Path, *, explicit: bool) -> None:
    try:
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    child = Path(root) / name
                    if name.lower().endswith((".json", ".zip")):
                        _scan_path(result, child, explicit=False)
        elif not path.exists():
            raise ScanError(f"{_display_path(path)}: no such file or directory")
        elif zipfile.is_zipfile(path):
            _scan_zip(result, path)
        elif path.suffix.lower() == ".zip":
            raise ScanError(f"{_display_path(path)}: not a readable zip archive")
        else:
            _scan_json(result, path, explicit=explicit)
    except ScanError as error:
        result.errors.append(str(error))
    except OSError as exc:
        result.errors.append(f"{_display_path(path)}: cannot be read ({exc.strerror or exc})")


def scan(paths: Sequence[str | Path]) -> ScanResult:
    """Scan files and directories; errors are collected (one message per unreadable input), not raised."""
    result = ScanResult()
    for path in paths:
        _scan_path(result, Path(path), explicit=True)
    result.findings.sort(
        key=lambda f: (-SEVERITY_RANK[f.severity], f.resource_id, FlowStepEvidence.of(f).action_path)
    )
    return result


# --- output ---------------------------------------------------------------------------------------


def _where(finding: Finding) -> str:
    evidence = FlowStepEvidence.of(finding)
    return evidence.action_path + (f" {evidence.field}" if evidence.field else "")


def _secret(finding: Finding) -> str:
    """The secret a finding is about: its name, `(all)` for List secrets, `?` when built at run time."""
    evidence = FlowStepEvidence.of(finding)
    if evidence.secret_names:
        return ", ".join(evidence.secret_names)
    if evidence.operation == "list_secrets":
        return "(all)"
    return "?" if evidence.operation else "-"


def render_text(result: ScanResult) -> str:
    """The findings as a table (flow by name, secret by name, the file last) and a one-line summary.
    Nothing when no input could be read: the errors say it all, a "0 flow(s)" line would only mislead."""
    if result.errors and not result.flows:
        return ""
    files = {flow.ref.resource_id: flow.artifact for flow in result.flows}
    lines = []
    if result.findings:
        rows = [
            (
                f.severity + (" (info)" if FlowStepEvidence.of(f).informational else ""),
                f.detector_id,
                FlowStepEvidence.of(f).flow or f.resource_id,
                _secret(f),
                _where(f),
                files.get(f.resource_id, f.resource_id),
            )
            for f in result.findings
        ]
        headers = ("SEVERITY", "DETECTOR", "FLOW", "SECRET", "WHERE", "FILE")
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
        for row in (headers, *rows):
            lines.append(
                "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            )
    counts = {
        s: sum(1 for f in result.findings if f.severity == s) for s in ("critical", "high", "medium", "low")
    }
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no findings"
    unreadable = f", {len(result.errors)} input(s) unreadable" if result.errors else ""
    lines.append(f"{len(result.flows)} flow(s) scanned{unreadable}: {summary}")
    return "\n".join(lines)


def render_json(result: ScanResult) -> dict[str, Any]:
    return {
        "flows": [
            {
                "resource_id": flow.ref.resource_id,
                "display_name": flow.ref.display_name,
                "analysis": flow.analysis.model_dump(mode="json"),
            }
            for flow in result.flows
        ],
        "findings": [f.model_dump(mode="json") for f in result.findings],
        "errors": result.errors,
    }


def _line_of(text: str | None, action_path: str) -> int | None:
    """The line declaring the action (last segment of its JSON path), for code-scanning annotations."""
    if not text or not action_path:
        return None
    name = action_path.rsplit(".", 1)[-1]
    match = re.search(r'"' + re.escape(name) + r'"\s*:', text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _artifact_uri(artifact: str) -> str:
    """SARIF wants URIs: relative ones (resolved against the checkout) when we can, else file:// URIs."""
    path = Path(artifact)
    return path.as_uri() if path.is_absolute() else quote(artifact)


def sarif_report(result: ScanResult, generated_at: datetime | None = None) -> ReportData:
    """The scan as report data for the shared SARIF writer (remediations/report/sarif.py): each finding
    gets its file (`artifactUri`) and the line declaring its action (`startLine`); unreadable inputs are
    the run's execution errors."""
    flows = {flow.ref.resource_id: flow for flow in result.flows}
    located = []
    for finding in result.findings:
        flow = flows[finding.resource_id]
        where: dict[str, Any] = {"artifactUri": _artifact_uri(flow.artifact)}
        line = _line_of(flow.text, FlowStepEvidence.of(finding).action_path)
        if line is not None:
            where["startLine"] = line
        located.append(finding.model_copy(update={"evidence": {**finding.evidence, **where}}))
    errors = []
    for error in result.errors:
        path, _, message = error.partition(": ")
        errors.append(InventoryError(resource_id=path, operation="read", message=message or error))
    return build_report(
        findings=located,
        title="vaultguard scan-flows",
        scope="exported flows",
        generated_at=generated_at,
        inventory_errors=errors,
    )


# --- command line ---------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="exported flow files, archives or directories"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    parser.add_argument(
        "--sarif",
        metavar="FILE",
        help="also write SARIF 2.1.0 to FILE (- for stdout, instead of the table or --json)",
    )
    parser.add_argument(
        "--fail-on",
        choices=tuple(SEVERITY_RANK),
        default="high",
        help="exit 1 when a finding is at or above this severity (default: high; informational never fails)",
    )


def _write_stdout(text: str) -> None:
    """Write the report; a reader that stops early (`| head`) is not an error worth a traceback."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python would report the pipe again when flushing stdout at exit: point it at devnull.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def run(args: argparse.Namespace) -> int:
    result = scan(args.paths)
    sarif_to_stdout = args.sarif == "-"
    if args.sarif and not sarif_to_stdout:
        try:
            Path(args.sarif).write_text(render_sarif(sarif_report(result)), encoding="utf-8")
        except OSError as exc:
            result.errors.append(f"{args.sarif}: SARIF cannot be written ({exc.strerror or exc})")
    if sarif_to_stdout:
        output = render_sarif(sarif_report(result))
    elif args.json:
        output = json.dumps(render_json(result), indent=2, sort_keys=True) + "\n"
    else:
        output = render_text(result) + "\n" if result.flows or not result.errors else ""
    _write_stdout(output)
    for error in result.errors:
        print(f"vaultguard scan-flows: {error}", file=sys.stderr)
    if result.errors:
        return EXIT_UNREADABLE
    return EXIT_FINDINGS if result.failing(args.fail_on) else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vaultguard scan-flows", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
