from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from remediations.core.detect import detect, detector_ids
from remediations.core.model import Identity
from remediations.core.policy import parse_policy
from tests.unit.kv_builders import policy_entry, snapshot, vault


def by_detector(findings: list, detector_id: str) -> list:  # type: ignore[type-arg]
    return [f for f in findings if f.detector_id == detector_id]


def test_detectors_are_registered_by_id() -> None:
    assert {"secret_list_permission", "excess_secret_permissions", "orphaned_principal"} <= set(
        detector_ids()
    )


def test_empty_snapshot_and_empty_policies_find_nothing() -> None:
    assert detect(snapshot(), parse_policy({})) == []
    assert detect(snapshot(vault("kv")), parse_policy({})) == []


def test_list_in_any_case_or_via_all_is_found_without_a_rule() -> None:
    snap = snapshot(
        vault("kv", policy_entry("u1", "Get", "List"), policy_entry("u2", "all"), policy_entry("u3", "get"))
    )
    found = by_detector(detect(snap, parse_policy({})), "secret_list_permission")
    assert sorted(f.principal for f in found) == ["u1", "u2"]
    assert found[0].evidence["secretPermissions"] in (["Get", "List"], ["all"])


def test_with_an_allow_list_the_excess_finding_covers_list() -> None:
    policy = parse_policy({"secretPermissions": {"byIdentity": {"u1": ["get"]}}})
    findings = detect(snapshot(vault("kv", policy_entry("u1", "get", "list", "set"))), policy)
    assert [f.detector_id for f in findings] == ["excess_secret_permissions"]
    assert findings[0].evidence["excess"] == ["list", "set"] and findings[0].severity == "high"


def test_duplicate_and_mixed_case_permissions_are_not_excess_when_allowed() -> None:
    policy = parse_policy({"secretPermissions": {"default": ["get", "list"]}})
    assert detect(snapshot(vault("kv", policy_entry("u1", "Get", "get", "LIST"))), policy) == []


def test_break_glass_exclusions_and_rbac_vaults_are_never_findings() -> None:
    policy = parse_policy(
        {
            "breakGlass": ["BG"],
            "exclusions": {"vaults": ["kv-excluded"], "identities": ["svc"]},
        }
    )
    snap = snapshot(
        vault("kv", policy_entry("bg", "all"), policy_entry("svc", "list")),
        vault("kv-excluded", policy_entry("u1", "list")),
        vault("kv-rbac", policy_entry("u1", "list"), rbac=True),
    )
    assert detect(snap, policy) == []


def test_unknown_identity_is_not_orphaned_but_a_deleted_one_is() -> None:
    snap = snapshot(
        vault("kv", policy_entry("gone", "get"), policy_entry("unknown", "get")),
        identities=(Identity(object_id="gone", exists=False), Identity(object_id="unknown", exists=None)),
    )
    found = by_detector(detect(snap, parse_policy({})), "orphaned_principal")
    assert [f.principal for f in found] == ["gone"]


def test_same_problem_twice_is_one_finding_with_the_same_id() -> None:
    snap = snapshot(vault("kv", policy_entry("u1", "list")))
    first, second = detect(snap, parse_policy({})), detect(snap, parse_policy({}))
    assert [f.id for f in first] == [f.id for f in second] and len(first) == 1


ROOT = Path(__file__).resolve().parents[2]
# In a fresh interpreter: the detectors the first detect() call knows, then every detector that exists
# once every module of the package is imported.
_PROBE = """
import importlib, json, pkgutil
from datetime import UTC, datetime
import remediations
from remediations.core import detect as d
from remediations.core.model import Scope, Snapshot
from remediations.core.policy import Policy

scope = Scope(subscription_id="00000000-0000-0000-0000-000000000001")
d.detect(Snapshot(scope=scope, taken_at=datetime.now(UTC)), Policy())
first_call = sorted(d._DETECTORS)
for module in pkgutil.walk_packages(remediations.__path__, "remediations."):
    if not module.name.endswith("__main__"):
        importlib.import_module(module.name)
print(json.dumps({"first_call": first_call, "all": sorted(d._DETECTORS)}))
"""


def _literal_detector_ids() -> set[str]:
    """`@detector("id")` with a literal id anywhere in the package (ids built at runtime are not here)."""
    found = set()
    for path in (ROOT / "remediations").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "detector"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(str(node.args[0].value))
    return found


def test_every_detector_runs_on_the_first_detect_call_in_a_fresh_interpreter() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    # A detector module missing from DETECTOR_MODULES registers only when something else imports it.
    assert seen["first_call"] == seen["all"]
    assert _literal_detector_ids() <= set(seen["all"])
    # The three families besides detect.py itself: RBAC, Power Platform (incl. flow definitions), rotation.
    assert {"oversized_vault", "flow_shared_beyond_allowed", "flow_lists_secrets", "exposed_secret"} <= set(
        seen["first_call"]
    )
