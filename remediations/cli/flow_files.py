"""Finding flows in exported files, offline: solution exports (zipped or unpacked), flow packages, bare
definitions and Logic Apps ARM templates (their template expressions evaluated first), each flow run
through `analyze_definition` + `flow_findings`. Unreadable inputs are collected, one message per file.
The formats and the command are described in remediations/cli/scan_flows.py; rendering is scan_report.py.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from remediations.core.arm_expressions import TemplateContext, Unresolved, evaluate, render
from remediations.core.evidence import FlowStepEvidence
from remediations.core.flow_analysis import DefinitionAnalysis, analyze_definition
from remediations.core.flow_findings import FlowRef, flow_findings
from remediations.core.model import Finding, Severity, severity_rank

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
            if severity_rank(f.severity) <= severity_rank(threshold)
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
        key=lambda f: (severity_rank(f.severity), f.resource_id, FlowStepEvidence.of(f).action_path)
    )
    return result
