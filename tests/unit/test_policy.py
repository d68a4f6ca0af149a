from __future__ import annotations

import json
from pathlib import Path

import pytest

from remediations.core.policy import Policy, PolicyError, parse_policy
from remediations.shell.policy_file import load_policy
from remediations.shell.settings import AppSettings
from tests.unit.kv_builders import vault


def test_empty_policy_is_safe_defaults() -> None:
    policy = parse_policy({})
    assert policy.dry_run is True and policy.max_actions_per_run == 50
    assert policy.allowed_secret_permissions("anyone", vault("kv")) is None


def test_unknown_key_fails_naming_the_field_path() -> None:
    with pytest.raises(PolicyError, match=r"secretPermissions\.byIdentitty"):
        parse_policy({"secretPermissions": {"byIdentitty": {}}})


def test_unknown_permission_fails_naming_the_field_path() -> None:
    with pytest.raises(PolicyError, match=r"secretPermissions\.default.*unknown secret permission"):
        parse_policy({"secretPermissions": {"default": ["get", "lsit"]}})


def test_cap_must_be_positive() -> None:
    with pytest.raises(PolicyError, match="maxActionsPerRun"):
        parse_policy({"maxActionsPerRun": 0})


def test_resolution_identity_then_tag_then_default() -> None:
    policy = parse_policy(
        {
            "secretPermissions": {
                "byIdentity": {"U1": ["Get", "list"]},
                "byVaultTag": {"purpose=payroll": ["get"], "team=hr": ["set"]},
                "default": ["all"],
            }
        }
    )
    payroll = vault("kv", tags={"purpose": "payroll", "team": "hr"})
    assert policy.allowed_secret_permissions("u1", payroll) == {"get", "list"}
    assert policy.allowed_secret_permissions("u2", payroll) == {"get", "set"}
    assert "purge" in (policy.allowed_secret_permissions("u2", vault("other")) or set())


def test_tag_rules_must_be_name_equals_value() -> None:
    with pytest.raises(PolicyError, match="name=value"):
        parse_policy({"secretPermissions": {"byVaultTag": {"payroll": ["get"]}}})


def test_loads_from_env_json_and_from_file(tmp_path: Path) -> None:
    from_env = load_policy(AppSettings.from_env({"VAULTGUARD_POLICY_JSON": '{"breakGlass": ["BG"]}'}))
    assert from_env.is_break_glass("bg")
    file = tmp_path / "policy.json"
    file.write_text(json.dumps({"maxActionsPerRun": 3, "dryRun": False}))
    assert load_policy(path=file) == Policy(max_actions_per_run=3, dry_run=False)
    settings = AppSettings.from_env({"VAULTGUARD_POLICY_FILE": str(file)})
    assert load_policy(settings).max_actions_per_run == 3


def test_bad_json_and_missing_file_fail_with_a_message(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="VAULTGUARD_POLICY_JSON is not JSON"):
        load_policy(AppSettings.from_env({"VAULTGUARD_POLICY_JSON": "{nope"}))
    with pytest.raises(PolicyError, match="cannot be read"):
        load_policy(path=tmp_path / "missing.json")


def test_power_platform_environments_give_the_trigger_scope() -> None:
    from remediations.core.model import PowerPlatformScope

    assert parse_policy({}).power_platform.scope() is None
    every = parse_policy({"powerPlatform": {"environments": ["*"]}}).power_platform.scope()
    assert every == PowerPlatformScope(all_environments=True)
    named = parse_policy({"powerPlatform": {"environments": ["env-a", "env-b"]}}).power_platform.scope()
    assert named == PowerPlatformScope(environments=("env-a", "env-b"))
