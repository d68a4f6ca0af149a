"""`vaultguard scan-flows` over the fixture corpus in tests/fixtures/flows (shapes of real exports: solution
zips and unpacked solutions, flow packages, bare definitions, Logic Apps ARM templates and Standard
workflow.json), through the real command line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from remediations.__main__ import main as vaultguard
from remediations.cli.scan_flows import main as scan_flows
from remediations.report.sarif import SARIF_SCHEMA

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "flows"
ROOT = Path(__file__).resolve().parents[2]
# Literal credentials planted in bare/definition.json: they must never be printed.
PLANTED = ("Pl4nted-B4sic-P4ssw0rd!", "pl4nted-h34der-k3y-5b8e0a")


def zip_dir(source: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(source.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(source).as_posix())
    return target


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = scan_flows([*args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def found(report: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(f["detector_id"], f["severity"], f["evidence"]["action_path"]) for f in report["findings"]}


def test_the_corpus_has_the_export_shapes() -> None:
    files = [f for f in FIXTURES.rglob("*") if f.is_file()]
    assert len(files) >= 8
    for file in files:
        if file.suffix == ".json":
            json.loads(file.read_text(encoding="utf-8"))


def test_solution_zip_with_nested_controls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = zip_dir(FIXTURES / "solution_zip_src", tmp_path / "ContosoFinance_1_0_0_3.zip")
    code, report = run_json(capsys, str(archive))
    assert code == 1
    (flow,) = report["flows"]
    assert flow["resource_id"].endswith(
        "ContosoFinance_1_0_0_3.zip!Workflows/InvoiceSync-9A8B7C6D-1111-2222-3333-444455556666.json"
    )
    base = "actions.Try.actions."
    assert found(report) == {
        # secure data on inputs only: the output (the value) is still in the run history
        ("flow_insecure_get_secret", "high", base + "Is_production.actions.Get_prod_sql_password"),
        ("flow_secure_get_secret", "low", base + "Is_production.else.actions.Get_test_sql_password"),
        ("flow_insecure_get_secret", "high", base + "Switch_region.cases.Case_EU.actions.Get_eu_api_key"),
        ("flow_secure_get_secret", "low", base + "Wait_for_token.actions.Get_rotation_token"),
    }
    analysis = flow["analysis"]
    assert analysis["needed_secret_names"] == [
        "eu-api-key",
        "rotation-token",
        "sql-prod-password",
        "sql-test-password",
    ]
    metadata = [a for a in analysis["keyvault_actions"] if a["operation"] == "get_secret_metadata"]
    assert [a["path"] for a in metadata] == [base + "Switch_region.default.actions.Get_default_metadata"]
    assert {a["connection_reference"] for a in analysis["keyvault_actions"]} == {"shared_keyvault_1"}


def test_unpacked_solution_vault_dump_is_critical(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(capsys, str(FIXTURES / "solution_unpacked"))
    assert code == 1
    assert len(report["flows"]) == 2
    assert found(report) == {
        ("flow_lists_secrets", "critical", "actions.List_secrets"),
        ("flow_insecure_get_secret", "critical", "actions.Apply_to_each.actions.Get_secret"),
        ("flow_secure_get_secret", "low", "actions.Get_partner_key"),
    }
    dump = next(f for f in report["findings"] if f["detector_id"] == "flow_lists_secrets")
    assert dump["evidence"]["reads_each_listed_secret"] == ["actions.Apply_to_each.actions.Get_secret"]
    # The header reads the secret through an expression: a reference, not a hard-coded credential.
    assert not any(f["detector_id"] == "flow_hardcoded_credential" for f in report["findings"])


def test_flow_package_zip_skips_manifests_and_sees_the_outputs_loop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = zip_dir(FIXTURES / "flow_package_src", tmp_path / "SecretInventory_20240301.zip")
    code, report = run_json(capsys, str(archive))
    (flow,) = report["flows"]  # manifest.json, apisMap.json, connectionsMap.json are not flows
    assert flow["display_name"] == "Secret inventory"
    assert found(report) == {
        ("flow_lists_secrets", "critical", "actions.List_secrets"),
        ("flow_secure_get_secret", "low", "actions.For_each_secret.actions.Get_secret_value"),
    }
    get = next(a for a in flow["analysis"]["keyvault_actions"] if a["name"] == "Get_secret_value")
    assert get["iterates_list_output"] and get["list_action"] == "List_secrets" and get["dynamic_secret_name"]
    assert code == 1


def test_logic_apps_arm_template(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(capsys, str(FIXTURES / "logicapp_arm_template.json"))
    assert code == 1
    (flow,) = report["flows"]
    assert flow["display_name"] == "la-publisher"  # [parameters('workflows_publisher_name')] resolved
    assert found(report) == {
        ("flow_insecure_get_secret", "high", "actions.Get_publishing_token"),
        ("flow_lists_secrets", "high", "actions.List_all_secrets"),
        ("flow_secure_get_secret", "low", "actions.Get_storage_key"),
    }
    insecure = next(f for f in report["findings"] if f["detector_id"] == "flow_insecure_get_secret")
    # The vault comes from the template's Microsoft.Web/connections resource behind $connections.
    assert insecure["evidence"]["vault"] == "kv-publishing-prod"
    assert insecure["evidence"]["secret_names"] == ["publishing-token"]
    assert insecure["evidence"]["connection_reference"] == "keyvault"
    assert flow["analysis"]["needed_secret_names"] == ["publishing-token", "storage-key"]


def test_logic_apps_standard_workflow(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(
        capsys, str(FIXTURES / "logicapp_standard" / "ReadClientSecret" / "workflow.json")
    )
    assert code == 1
    assert found(report) == {
        ("flow_secure_get_secret", "low", "actions.Get_client_id"),
        ("flow_insecure_get_secret", "high", "actions.Get_client_secret"),
    }
    assert report["flows"][0]["display_name"] == "ReadClientSecret"


def test_clean_flow_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert scan_flows([str(FIXTURES / "clean_flow.json")]) == 0
    out = capsys.readouterr().out
    assert out.strip() == "1 flow(s) scanned: no findings"


def test_hard_coded_credentials_are_reported_without_their_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = str(FIXTURES / "bare" / "definition.json")
    sarif_file = tmp_path / "out.sarif"
    outputs = []
    for args in ([bare], [bare, "--json"], [bare, "--sarif", "-"], [bare, "--sarif", str(sarif_file)]):
        assert scan_flows(args) == 1
        captured = capsys.readouterr()
        outputs += [captured.out, captured.err]
    outputs.append(sarif_file.read_text(encoding="utf-8"))
    for text in outputs:
        for value in PLANTED:
            assert value not in text
    report = json.loads(outputs[2])
    credentials = {
        (f["evidence"]["action_path"], f["evidence"]["field"], f["evidence"]["kind"], f["evidence"]["length"])
        for f in report["findings"]
        if f["detector_id"] == "flow_hardcoded_credential"
    }
    assert credentials == {
        ("actions.Call_legacy_ERP", "inputs.authentication.password", "basic_auth_password", len(PLANTED[0])),
        ("actions.Call_partner", "inputs.headers.X-API-Key", "api_key_header", len(PLANTED[1])),
    }
    assert "inputs.authentication.password" in outputs[0]  # the text table names the field


def test_fail_on_threshold_and_informational(capsys: pytest.CaptureFixture[str]) -> None:
    arm = str(FIXTURES / "logicapp_arm_template.json")  # high at most
    assert scan_flows([arm, "--fail-on", "critical"]) == 0
    assert scan_flows([arm, "--fail-on", "high"]) == 1
    assert scan_flows([str(FIXTURES / "solution_unpacked"), "--fail-on", "critical"]) == 1
    secure_only = str(FIXTURES / "solution_unpacked" / "Workflows")
    secure_only += "/ReadPartnerKey-6F9619FF-8B86-D011-B42D-00C04FC964FF.json"
    # A Get secret with secure outputs is informational: it never fails the scan, even at --fail-on low.
    assert scan_flows([secure_only, "--fail-on", "low"]) == 0
    assert "1 low" in capsys.readouterr().out


def test_whole_corpus_directory(capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_json(capsys, str(FIXTURES))
    assert code == 1 and report["errors"] == []
    # 2 unpacked solution flows, the zip sources, the package definition, bare, ARM, clean, Standard;
    # connections.json, manifests and maps are skipped in a walk; plus one per public playbook.
    assert len(report["flows"]) == 8 + len(PUBLIC_PLAYBOOKS)
    severities = [f["severity"] for f in report["findings"]]
    order = {"critical": 0, "high": 1, "medium": 2, "low": 3}
    assert severities == sorted(severities, key=order.__getitem__)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.json", b'{"actions": {', "not valid JSON"),
        ("export.zip", b"this is not a zip", "not a readable zip archive"),
        ("latin1.json", '{"actions": {"é": 1}}'.encode("latin-1"), "not UTF-8"),
    ],
)
def test_unreadable_input_exits_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: bytes, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert scan_flows([str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and name in err and "Traceback" not in err


def test_missing_path_and_explicit_non_flow_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert scan_flows([str(tmp_path / "nope.json")]) == 2
    assert "no such file or directory" in capsys.readouterr().err
    assert scan_flows([str(FIXTURES / "logicapp_standard" / "connections.json")]) == 2
    assert "no flow definition found" in capsys.readouterr().err


def test_bad_member_in_a_zip_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = tmp_path / "solution.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("Workflows/Broken-1.json", "{not json")
    assert scan_flows([str(archive)]) == 2
    assert "solution.zip!Workflows/Broken-1.json: not valid JSON" in capsys.readouterr().err


def test_byte_order_mark_is_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (FIXTURES / "clean_flow.json").read_text(encoding="utf-8")
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert scan_flows([str(path)]) == 0
    assert "1 flow(s) scanned" in capsys.readouterr().out


def test_sarif_structure(capsys: pytest.CaptureFixture[str]) -> None:
    assert scan_flows([str(FIXTURES / "bare"), str(FIXTURES / "solution_unpacked"), "--sarif", "-"]) == 1
    log = json.loads(capsys.readouterr().out)
    assert log["version"] == "2.1.0" and log["$schema"] == SARIF_SCHEMA  # the shared writer's
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    rule_ids = [r["id"] for r in rules]
    assert set(rule_ids) == {
        "flow_insecure_get_secret",
        "flow_lists_secrets",
        "flow_hardcoded_credential",
        "flow_secure_get_secret",
    }
    assert all(r["shortDescription"]["text"] and r["properties"]["security-severity"] for r in rules)
    results = run["results"]
    assert len(results) == 6
    for result in results:
        assert rule_ids[result["ruleIndex"]] == result["ruleId"]
        assert result["message"]["text"] and result["partialFingerprints"]["vaultguardFindingId/v1"]
        (location,) = result["locations"]
        uri = location["physicalLocation"]["artifactLocation"]["uri"]
        file = Path(unquote(urlsplit(uri).path)) if uri.startswith("file:") else ROOT / unquote(uri)
        lines = file.read_text(encoding="utf-8").splitlines()
        # The region points at the line declaring the action.
        action = result["properties"]["action_path"].rsplit(".", 1)[-1]
        assert f'"{action}"' in lines[location["physicalLocation"]["region"]["startLine"] - 1]
    levels = {(r["ruleId"], r["level"], r["kind"]) for r in results}
    assert levels == {
        ("flow_lists_secrets", "error", "fail"),
        ("flow_insecure_get_secret", "error", "fail"),
        ("flow_hardcoded_credential", "error", "fail"),
        ("flow_secure_get_secret", "none", "informational"),
    }
    assert run["invocations"][0]["executionSuccessful"] is True


def test_sarif_file_alongside_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "scan.sarif"
    assert scan_flows([str(FIXTURES / "clean_flow.json"), "--sarif", str(target)]) == 0
    assert "no findings" in capsys.readouterr().out
    log = json.loads(target.read_text(encoding="utf-8"))
    assert log["runs"][0]["results"] == []


def test_wired_into_the_vaultguard_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert vaultguard(["scan-flows", str(FIXTURES / "clean_flow.json"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["flows"]) == 1 and report["findings"] == []


def test_module_entry_point_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "remediations", "scan-flows", str(bad), str(FIXTURES / "bare")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2  # unreadable input wins over findings
    assert "bad.json: not valid JSON" in done.stderr and "Traceback" not in done.stderr
    assert "flow_hardcoded_credential" in done.stdout  # the readable input was still scanned
    for value in PLANTED:
        assert value not in done.stdout + done.stderr


# Real public playbooks (tests/fixtures/flows/public/README.md names their sources): flow name and, per Key
# Vault action, (JSON path, operation, secret name or None when the template parameter has no default).
PUBLIC_PLAYBOOKS: dict[str, tuple[str, set[tuple[str, str, str | None]]]] = {
    "AS-Datadog-Events-Integration/azuredeploy.json": (
        "AS-Datadog-Events-Integration",
        {
            ("actions.Get_Secret_-_API_Key", "get_secret", None),
            ("actions.Get_Secret_-_Application_Key", "get_secret", None),
        },
    ),
    "AS-Revoke-Azure-AD-User-Session-From-Entity/azuredeploy.json": (
        "AS-Revoke-Entra-ID-User-Session-From-Entity",
        {("actions.Get_Client_Secret", "get_secret", None)},
    ),
}


@pytest.mark.parametrize("relative", sorted(PUBLIC_PLAYBOOKS))
def test_public_playbooks(relative: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Sentinel playbooks build the Key Vault path with ARM template functions
    (`[concat('/secrets/@{encodeURIComponent(''', parameters('SecretName'), ''')}/value')]`)."""
    name, expected = PUBLIC_PLAYBOOKS[relative]
    code, report = run_json(capsys, str(FIXTURES / "public" / relative))
    (flow,) = report["flows"]
    assert flow["display_name"] == name
    actions = {(a["path"], a["operation"], a["secret_name"]) for a in flow["analysis"]["keyvault_actions"]}
    assert actions == expected
    reads = [a for a in expected if a[1] == "get_secret"]
    assert code == (1 if reads else 0)
    assert {f["evidence"]["action_path"] for f in report["findings"]} == {a[0] for a in expected}


def test_public_corpus_is_documented() -> None:
    readme = (FIXTURES / "public" / "README.md").read_text(encoding="utf-8")
    for relative in PUBLIC_PLAYBOOKS:
        assert f"`{relative}`" in readme


def table(out: str) -> list[dict[str, str]]:
    """The text table as rows keyed by header (columns are separated by two or more spaces)."""
    header, *rows = [line for line in out.splitlines() if line and "flow(s) scanned" not in line]
    names = header.split()
    return [
        dict(zip(names, [cell.strip() for cell in re.split(r"\s{2,}", row)], strict=True)) for row in rows
    ]


def test_table_names_the_flow_and_the_secret(capsys: pytest.CaptureFixture[str]) -> None:
    assert scan_flows([str(FIXTURES / "logicapp_arm_template.json")]) == 1
    rows = table(capsys.readouterr().out)
    by_action = {row["WHERE"]: row for row in rows}
    get = by_action["actions.Get_publishing_token"]
    assert (get["FLOW"], get["SECRET"]) == ("la-publisher", "publishing-token")
    assert by_action["actions.List_all_secrets"]["SECRET"] == "(all)"
    assert {row["FILE"] for row in rows} == {"tests/fixtures/flows/logicapp_arm_template.json"}


def test_solution_workflow_files_are_named_without_their_guid(capsys: pytest.CaptureFixture[str]) -> None:
    scan_flows([str(FIXTURES / "solution_unpacked")])
    rows = table(capsys.readouterr().out)
    assert "NightlyPayrollExport" in {row["FLOW"] for row in rows}
    assert not any("3F2504E0" in row["FLOW"] for row in rows)


def test_unreadable_input_alone_prints_no_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{", encoding="utf-8")
    assert scan_flows([str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "bad.json: not valid JSON" in captured.err
    # with a readable input too, the summary counts the unreadable one
    assert scan_flows([str(bad), str(FIXTURES / "clean_flow.json")]) == 2
    assert "1 flow(s) scanned, 1 input(s) unreadable: no findings" in capsys.readouterr().out


def test_a_reader_that_stops_early_is_no_error(tmp_path: Path) -> None:
    """`scan-flows --json ... | head`: the closed pipe ends the command quietly with its usual exit code."""
    source = (FIXTURES / "logicapp_arm_template.json").read_text(encoding="utf-8")
    for index in range(60):  # far more JSON than a pipe buffer holds, so the writer meets the closed pipe
        (tmp_path / f"copy{index}.json").write_text(source, encoding="utf-8")
    process = subprocess.Popen(
        [sys.executable, "-m", "remediations", "scan-flows", "--json", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline().strip() == b"{"
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 1
    assert stderr == ""


def test_public_playbook_with_parameter_defaults_names_vault_and_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same real playbook deployed with defaults: the secret and vault names come from the template."""
    template = json.loads(
        (FIXTURES / "public" / "AS-Datadog-Events-Integration" / "azuredeploy.json").read_text(
            encoding="utf-8"
        )
    )
    template["parameters"]["APIKeySecretName"]["defaultValue"] = "datadog-api-key"
    template["parameters"]["KeyVaultName"]["defaultValue"] = "kv-soc-prod"
    path = tmp_path / "azuredeploy.json"
    path.write_text(json.dumps(template), encoding="utf-8")
    code, report = run_json(capsys, str(path))
    assert code == 1
    (flow,) = report["flows"]
    actions = {a["name"]: a for a in flow["analysis"]["keyvault_actions"]}
    assert (actions["Get_Secret_-_API_Key"]["secret_name"], actions["Get_Secret_-_API_Key"]["vault"]) == (
        "datadog-api-key",
        "kv-soc-prod",
    )
    assert (
        actions["Get_Secret_-_Application_Key"]["secret_name"] is None
    )  # that parameter still has no default
    assert flow["analysis"]["needed_secret_names"] == ["datadog-api-key"]


def test_unresolved_template_function_is_not_taken_for_a_secret_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`resourceGroup().name` has no quotes: left unresolved it must not read as a literal secret name."""
    template = json.loads(
        (FIXTURES / "public" / "AS-Datadog-Events-Integration" / "azuredeploy.json").read_text(
            encoding="utf-8"
        )
    )
    (workflow,) = [r for r in template["resources"] if r["type"] == "Microsoft.Logic/workflows"]
    get = workflow["properties"]["definition"]["actions"]["Get_Secret_-_API_Key"]
    get["inputs"]["path"] = "[concat('/secrets/@{encodeURIComponent(''', resourceGroup().name, ''')}/value')]"
    path = tmp_path / "azuredeploy.json"
    path.write_text(json.dumps(template), encoding="utf-8")
    _, report = run_json(capsys, str(path))
    (action,) = [
        a for a in report["flows"][0]["analysis"]["keyvault_actions"] if a["name"] == "Get_Secret_-_API_Key"
    ]
    assert (action["operation"], action["secret_name"], action["dynamic_secret_name"]) == (
        "get_secret",
        None,
        True,
    )
