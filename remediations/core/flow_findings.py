"""The findings of an analysed flow definition (core/flow_analysis.py): the flow-definition detectors'
ids and metadata, and one finding per risky Key Vault step or hard-coded credential (typed evidence:
`FlowStepEvidence`). Pure: no I/O."""

from __future__ import annotations

from typing import Any

from remediations.core.detect import DetectorInfo
from remediations.core.evidence import FlowStepEvidence
from remediations.core.flow_analysis import DefinitionAnalysis, KeyVaultAction
from remediations.core.model import Finding, Frozen, Severity


def _rule(detector_id: str, *, severity: Severity, title: str, detail: str) -> DetectorInfo:
    """A flow-definition detector's metadata (registered with its body by core/pp_detect.py)."""
    return DetectorInfo(
        id=detector_id,
        severity=severity,  # the rule's default; a finding may raise it
        title=title,
        detail=detail,  # what to do about it
        evidence=FlowStepEvidence,
        platform="power_platform",
    )


INSECURE_GET = _rule(
    "flow_insecure_get_secret",
    severity="high",  # critical in a loop over List secrets
    title="Key Vault Get secret without secure outputs",
    detail="The secret value is shown in the flow's run history to everyone who can see its runs. "
    "Turn on Secure outputs (and inputs) in the action's settings.",
)
LISTS_SECRETS = _rule(
    "flow_lists_secrets",
    severity="high",  # critical when a Get secret iterates its output
    title="Key Vault List secrets in a flow",
    detail="Listing is the enumeration step of the vault dump: with a Get secret for each item the flow "
    "reads every secret its connection can list. Read named secrets instead and remove the list "
    "permission.",
)
HARDCODED_CREDENTIAL = _rule(
    "flow_hardcoded_credential",
    severity="high",
    title="Hard-coded credential in a flow definition",
    detail="A literal credential is readable by every editor of the flow and in every export. Keep it in "
    "Key Vault and read it with a secured Get secret, or use a managed identity.",
)
SECURE_GET = _rule(
    "flow_secure_get_secret",
    severity="low",  # informational: good practice seen
    title="Key Vault Get secret with secure outputs (informational)",
    detail="The flow reads this secret with secure outputs on; listed so its use is visible.",
)
FLOW_RULES: tuple[DetectorInfo, ...] = (INSECURE_GET, LISTS_SECRETS, HARDCODED_CREDENTIAL, SECURE_GET)
FLOW_DETECTOR_IDS: tuple[str, ...] = tuple(rule.id for rule in FLOW_RULES)


class FlowRef(Frozen):
    """Which flow an analysis is of: a flow resource id online, a file path (plus entry) offline."""

    resource_id: str
    display_name: str = ""
    principal: str | None = None  # the flow's owner/creator, when known

    @property
    def label(self) -> str:
        """What people call it: its display name, else its resource id or path."""
        return self.display_name or self.resource_id


def _evidence(flow: FlowRef, action: KeyVaultAction, **extra: Any) -> FlowStepEvidence:
    return FlowStepEvidence(
        flow=flow.label,
        action_path=action.path,
        vault=action.vault,
        secret_names=(action.secret_name,) if action.secret_name else (),
        connection_reference=action.connection_reference,
        operation=action.operation,
        secure_inputs=action.secure_inputs,
        secure_outputs=action.secure_outputs,
        in_foreach=action.in_foreach,
        **extra,
    )


def flow_findings(flow_ref: FlowRef | str, analysis: DefinitionAnalysis) -> list[Finding]:
    """Findings for one analysed definition.

    Severities (the reasoning is the seed attack):
    - `flow_insecure_get_secret` high: a Get secret without secure outputs shows the value in run history
      to everyone who can see runs; critical when it sits in a loop over List secrets (the vault dump).
    - `flow_lists_secrets` high: the enumeration step of the attack; critical when a Get secret iterates
      its output, because then the flow reads every secret its connection can list.
    - `flow_hardcoded_credential` high: a literal credential in the definition is readable by every editor
      and in every export; only its place, kind and length are reported.
    - `flow_secure_get_secret` low with `informational: true`: a Get secret with secure outputs is the
      intended pattern; reported so the secrets a flow reads are visible (least privilege), never an alarm.
    """
    flow = FlowRef(resource_id=flow_ref) if isinstance(flow_ref, str) else flow_ref
    label = flow.label
    findings: list[Finding] = []

    def add(rule: DetectorInfo, severity: Severity | None, message: str, evidence: FlowStepEvidence) -> None:
        findings.append(
            rule.finding(
                severity=severity,  # None: the rule's (FLOW_RULES)
                resource_id=flow.resource_id,
                principal=flow.principal,
                message=message,
                evidence=evidence,
            )
        )

    for action in analysis.keyvault_actions:
        if action.operation == "list_secrets":
            readers = sorted(a.path for a in analysis.value_reads if a.list_action == action.name)
            add(
                LISTS_SECRETS,
                "critical" if readers else None,
                f"flow {label!r} lists the vault's secrets at {action.path}"
                + (f" and reads each listed secret ({', '.join(readers)})" if readers else ""),
                _evidence(flow, action, reads_each_listed_secret=readers),
            )
        elif action.reveals_value and not action.secure_outputs:
            add(
                INSECURE_GET,
                "critical" if action.iterates_list_output else None,
                f"flow {label!r} reads a secret at {action.path} without secure outputs: the value is "
                "shown in the run history"
                + (" for every listed secret" if action.iterates_list_output else ""),
                _evidence(flow, action, iterates_list_output=action.iterates_list_output),
            )
        elif action.reveals_value:
            add(
                SECURE_GET,
                None,
                f"flow {label!r} reads a secret at {action.path} with secure outputs",
                _evidence(flow, action, informational=True, iterates_list_output=action.iterates_list_output),
            )
    for credential in analysis.hardcoded_credentials:
        add(
            HARDCODED_CREDENTIAL,
            None,
            f"flow {label!r} has a hard-coded credential ({credential.kind}, {credential.length} characters) "
            f"in {credential.path} {credential.field}",
            FlowStepEvidence(
                flow=label,
                action_path=credential.path,
                field=credential.field,
                kind=credential.kind,
                length=credential.length,
                vault=None,
                secret_names=(),
                connection_reference=None,
            ),
        )
    return findings
