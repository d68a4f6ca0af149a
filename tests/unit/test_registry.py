from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from remediations.core.detect import detector_ids
from remediations.core.model import Finding
from remediations.core.registry import Remediation, get_remediation, register, remediation_ids

ROOT = Path(__file__).resolve().parents[2]

# Azure fixes name an `az` command; Power Platform ones the admin PowerShell cmdlets (there is no az/pac
# command for flow/connection shares or DLP connector action rules).
_CLI_PREFIXES = ("az ", "pac ", "Remove-Admin", "New-DlpPolicy", "Disable-AdminFlow")


def test_every_remediation_is_a_module_named_by_its_id_with_a_test_file() -> None:
    ids = remediation_ids()
    assert {"remove_list_permission", "narrow_access_policy"} <= set(ids)
    for rid in ids:
        remediation = get_remediation(rid)
        assert type(remediation).__module__ == f"remediations.fixes.{rid}"
        assert (ROOT / "remediations" / "fixes" / f"{rid}.py").is_file()
        assert (ROOT / "tests" / "unit" / f"test_{rid}.py").is_file(), f"missing tests/unit/test_{rid}.py"
        assert remediation.handles and remediation.handles <= set(detector_ids())
        meta = remediation.metadata
        assert meta.permissions_required and meta.cli_equivalent.startswith(_CLI_PREFIXES) and meta.bicep_hint


def test_register_rejects_an_id_that_is_not_the_module_name() -> None:
    class Misnamed(Remediation):
        id = "something_else"

    with pytest.raises(ValueError, match="must equal its module name"):
        register(Misnamed)


def test_unknown_remediation_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="remove_list_permission"):
        get_remediation("nope")


def test_every_detector_is_registered_with_its_metadata() -> None:
    from remediations.core.detect import DetectorInfo, detector_ids_on, detector_info

    infos = [detector_info(did) for did in detector_ids()]
    assert all(isinstance(info, DetectorInfo) and info.title and info.help_url for info in infos)
    assert {"flow_lists_secrets", "flow_shared_beyond_allowed"} <= detector_ids_on("power_platform")
    assert not detector_ids_on("power_platform") & detector_ids_on("azure")
    assert {"secret_list_permission", "wide_secret_role_assignment"} <= detector_ids_on("azure")
    lists = detector_info("secret_list_permission")
    assert lists is not None and lists.help_url.endswith("assign-access-policy")
    # Titles are SARIF rules' short descriptions: one short line each, written at registration, distinct.
    titles = [info.title for info in infos if info is not None]
    assert len(set(titles)) == len(titles)
    assert all(len(t) <= 100 and "\n" not in t and not t.endswith(".") for t in titles)


def test_a_detectors_severity_and_evidence_model_are_written_once_at_registration() -> None:
    from remediations.core.detect import detector_info, registered
    from remediations.core.evidence import AccessPolicyEvidence, ExcessPermissionsEvidence, FlowStepEvidence

    lists, excess = detector_info("flow_lists_secrets"), detector_info("excess_secret_permissions")
    assert lists is not None and (lists.severity, lists.evidence) == ("high", FlowStepEvidence)
    assert excess is not None and (excess.severity, excess.evidence) == ("medium", ExcessPermissionsEvidence)
    step = FlowStepEvidence(flow="f", action_path="List", vault="kv", operation="list_secrets")

    def finding(**kwargs: Any) -> Finding:
        args: dict[str, Any] = {"resource_id": "/f", "principal": None, "message": "m", "evidence": step}
        return registered("flow_lists_secrets").info.finding(**{**args, **kwargs})

    assert finding().severity == "high"  # the registered default
    assert finding(severity="critical").severity == "critical"  # a finding may raise it ...
    with pytest.raises(ValueError, match="not lower it"):
        finding(severity="medium")  # ... never lower it
    entry = AccessPolicyEvidence(vault="kv", object_id="o", application_id=None, secret_permissions=("list",))
    with pytest.raises(TypeError, match="registered FlowStepEvidence"):
        finding(evidence=entry)  # evidence is built from the model readers will parse it with
    # The default is what the model says, not a copy: the dump of the info never shows the model class.
    assert "evidence" not in lists.model_dump() and lists.model_dump()["severity"] == "high"


def test_the_readmes_detector_table_says_the_registered_severities() -> None:
    """The README's table of flow-definition detectors is prose; its severities come from the registry."""
    import re

    from remediations.core.detect import detector_info

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = {i: s for i, s in re.findall(r"^\| `(\w+)` \| (\w+)", readme, re.M) if i in set(detector_ids())}
    assert {"flow_insecure_get_secret", "flow_lists_secrets", "flow_secure_get_secret"} <= set(rows)
    for detector_id, severity in rows.items():
        info = detector_info(detector_id)
        assert info is not None and info.severity == severity, detector_id


def test_a_detectors_id_is_written_once_where_it_is_registered() -> None:
    """A detector's body makes findings with the maker it is handed, so its id is not spelled again in
    the modules that hold detectors (a typo there would only fail at run time)."""
    import ast

    from remediations.core.detect import DETECTOR_MODULES

    modules = ("remediations.core.detect", "remediations.core.flow_findings", *DETECTOR_MODULES)
    literals: list[str] = []
    for module in modules:
        tree = ast.parse((ROOT / (module.replace(".", "/") + ".py")).read_text(encoding="utf-8"))
        literals += [
            n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
        ]
    for detector_id in detector_ids():
        assert literals.count(detector_id) == 1, detector_id


def test_a_detector_makes_findings_of_its_own_id_at_no_less_than_its_severity() -> None:
    """Every registered detector run alone on a seed-shaped snapshot: each finding is its own."""
    from remediations.core.detect import registered
    from remediations.core.model import severity_rank
    from remediations.core.policy import Policy
    from tests.unit.report_builders import seed_snapshot

    snapshot, policy = seed_snapshot(), Policy()
    seen = 0
    for detector_id in detector_ids():
        made = registered(detector_id)
        for finding in made(snapshot, policy):
            assert finding.detector_id == detector_id
            assert severity_rank(finding.severity) <= severity_rank(made.info.severity)
            seen += 1
    assert seen


def test_a_fixs_severity_is_never_below_the_findings_it_answers() -> None:
    """A fix ranks at least as high as the worst registered default of what it handles (most derive it
    with `highest_severity`; the others say why theirs is higher)."""
    from remediations.core.detect import highest_severity
    from remediations.core.model import severity_rank

    for rid in remediation_ids():
        remediation = get_remediation(rid)
        worst = highest_severity(remediation.handles)
        assert severity_rank(remediation.metadata.severity) <= severity_rank(worst), rid
