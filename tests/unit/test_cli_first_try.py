"""A first try at the CLI fails in one line with what to do, exit 2: unknown remediation names, no audit
storage, no Azure sign-in, and `--environment` names that match no or several environments."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from remediations.__main__ import main
from remediations.cli.checks import UsageError, match_environments
from remediations.core.model import Plan
from remediations.core.registry import all_remediations
from tests.unit.kv_builders import policy_entry, snapshot, vault

STORAGE_SETTINGS = (
    "AzureWebJobsStorage",
    "AzureWebJobsStorage__tableServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
)


@pytest.fixture
def snapshot_file(tmp_path: Path) -> Path:
    path = tmp_path / "snapshot.json"
    path.write_text(snapshot(vault("kv", policy_entry("u1", "get", "List"))).model_dump_json())
    return path


@pytest.mark.parametrize("name", ["remove_list_permissions", "bogus"])
def test_unknown_remediation_is_an_error_listing_the_valid_ones(
    name: str, snapshot_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "--snapshot", str(snapshot_file), "--remediation", name]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no "0 change(s)"
    [line] = captured.err.splitlines()
    assert repr(name) in line
    assert all(r.id in line for r in all_remediations())


def test_known_remediation_still_plans(snapshot_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--snapshot", str(snapshot_file), "--remediation", "remove_list_permission"]) == 0
    assert "1 change(s)" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["audit", "--run", "some-run"], ["apply", "--plan", "PLAN"]])
def test_no_audit_storage_is_one_line_naming_the_settings(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for setting in STORAGE_SETTINGS:
        monkeypatch.delenv(setting, raising=False)
    plan = tmp_path / "plan.json"
    plan.write_text(Plan(id="p", created_at=datetime.now(UTC)).model_dump_json())
    assert main([str(plan) if part == "PLAN" else part for part in command]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "audit storage is not configured" in line and "AzureWebJobsStorage" in line


def test_no_sign_in_is_reported_once_with_how_to_sign_in(tmp_path: Path) -> None:
    """A real process with no credential of any kind: DefaultAzureCredential's whole chain fails."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AZURE_", "IDENTITY_", "MSI_", "HTTPS_PROXY", "HTTP_PROXY"))
    }
    env |= {"HOME": str(tmp_path), "AZURE_CONFIG_DIR": str(tmp_path / "az"), "PATH": str(tmp_path)}
    env |= {"AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:9"}  # no IMDS wait on cloud runners
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "remediations",
            "plan",
            "--scope",
            "/subscriptions/" + "0" * 8 + "-0000-0000-0000-" + "0" * 12,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert "no Azure sign-in (DefaultAzureCredential got no token)" in line
    assert "az login" in line and "AZURE_CLIENT_SECRET" in line


ENVIRONMENTS = [
    {
        "name": "Default-t1",
        "id": "/providers/Microsoft.BusinessAppPlatform/environments/Default-t1",
        "properties": {"displayName": "Contoso (default)"},
    },
    {"name": "e-prod", "properties": {"displayName": "Production"}},
    {"name": "e-test-1", "properties": {"displayName": "Test"}},
    {"name": "e-test-2", "properties": {"displayName": "test"}},
]


def test_environment_by_display_name_or_id() -> None:
    assert match_environments(["production", "e-TEST-1", "Contoso (default)"], ENVIRONMENTS) == (
        "e-prod",
        "e-test-1",
        "Default-t1",
    )


def test_ambiguous_or_unknown_environment_lists_the_candidates() -> None:
    with pytest.raises(UsageError, match=r"matches 2 environments: e-test-1 \(Test\); e-test-2 \(test\)"):
        match_environments(["Test"], ENVIRONMENTS)
    with pytest.raises(UsageError, match=r"'Staging': no environment .*e-prod \(Production\)"):
        match_environments(["Staging"], ENVIRONMENTS)
