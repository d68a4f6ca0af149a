"""`vaultguard apply --output-dir` end to end: the real SDKs against the emulator, the audit table on
Azurite, and the four report files, which carry the change and never a secret value."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emulator import Emulator
from emulator.scenario import load_scenario
from remediations.__main__ import main

TENANT = "11111111-1111-4111-8111-111111111111"
SUB = "22222222-2222-4222-8222-222222222222"
ADMIN = {
    "clientId": "33333333-3333-4333-8333-333333333333",
    "clientSecret": "admin-secret-value",
    "objectId": "44444444-4444-4444-8444-444444444444",
}
APP_ID = "55555555-5555-4555-8555-555555555555"
SP_ID = "66666666-6666-4666-8666-666666666666"
SECRET_VALUES = {"hunter2-payroll-db", "connection-secret-xyz", ADMIN["clientSecret"]}


def _scenario() -> dict[str, Any]:
    return {
        "tenantId": TENANT,
        "subscriptions": [{"subscriptionId": SUB, "displayName": "Prod"}],
        "admin": ADMIN,
        "applications": [
            {
                "appId": APP_ID,
                "displayName": "flow-connection",
                "servicePrincipalId": SP_ID,
                "passwords": [{"secretText": "connection-secret-xyz"}],
            }
        ],
        "vaults": [
            {
                "name": "kv-report",
                "resourceGroup": "rg-report",
                "accessPolicies": [
                    {"objectId": SP_ID, "permissions": {"secrets": ["Get", "List"]}},
                    # vaultguard's own identity reads secret metadata; break-glass in the policy below.
                    {"objectId": ADMIN["objectId"], "permissions": {"secrets": ["List"]}},
                ],
                "secrets": [{"name": "db-password", "value": "hunter2-payroll-db"}],
            }
        ],
    }


@pytest.fixture(autouse=True)
def _policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTGUARD_POLICY_JSON", json.dumps({"breakGlass": [ADMIN["objectId"]]}))


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(load_scenario(_scenario())) as emulator:
        yield emulator


# Module order matters: the dry run sees the List the apply test then removes.
def test_dry_run_report_has_no_audit_and_changes_nothing(
    emu: Emulator, env: dict[str, str], storage_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "dry"
    mark = emu.requests.mark()
    code = main(
        [
            "apply",
            "--scope",
            f"/subscriptions/{SUB}",
            "--dry-run",
            "--output-formats",
            "json",
            "--output-dir",
            str(out),
        ]
    )
    assert code == 0
    arm_writes = [r for r in emu.requests.since(mark) if r.host == "management.azure.com" and r.is_write]
    assert arm_writes == []
    report = json.loads((out / "report.json").read_text())
    assert report["dry_run"] is True and report["audit"] == []
    assert report["graph_after_source"] == "planned (dry run)"
    assert report["summary"]["actions"]["planned"] == 1 and report["summary"]["actions"]["applied"] == 0


def test_apply_writes_reports_with_the_change_and_no_secret(
    emu: Emulator, env: dict[str, str], storage_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    mark = emu.requests.mark()
    code = main(["apply", "--scope", f"/subscriptions/{SUB}", "--output-dir", str(out), "--severity", "high"])
    assert code == 0
    removes = [
        r for r in emu.requests.since(mark) if r.method == "PUT" and r.path.endswith("/accessPolicies/remove")
    ]
    assert len(removes) == 1 and json.loads(removes[0].body)["properties"]["accessPolicies"][0][
        "permissions"
    ] == {"secrets": ["List"]}
    assert sorted(p.name for p in out.iterdir()) == [
        "report.html",
        "report.json",
        "report.md",
        "report.sarif",
    ]

    report = json.loads((out / "report.json").read_text())
    assert report["dry_run"] is False and report["summary"]["actions"]["applied"] == 1
    assert [r["state"] for r in report["audit"]] == ["pending", "applied"]  # read back from the table
    narrowed = [e for e in report["graph_after"]["edges"] if e["status"] == "narrowed"]
    assert [(e["permissions"], e["removed_permissions"]) for e in narrowed] == [(["get"], ["list"])]
    sarif = json.loads((out / "report.sarif").read_text())
    assert [r["ruleId"] for r in sarif["runs"][0]["results"]] == ["secret_list_permission"]
    for path in out.iterdir():
        text = path.read_text()
        assert not [v for v in SECRET_VALUES if v in text], path.name
