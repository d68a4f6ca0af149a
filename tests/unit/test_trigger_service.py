"""Pure parts of the trigger service: the deployment's safety rails, write limiting, own identity."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from remediations.adapters.identity import OwnIdentity, token_claims
from remediations.core.model import AccessPolicyChange, Action, Permissions, Plan
from remediations.core.planning import limit_writes
from remediations.core.policy import Policy
from remediations.core.request import Part
from remediations.shell.settings import AppSettings
from remediations.triggers.service import effective_policy


@pytest.mark.parametrize(
    ("setting", "policy", "ticket", "dry", "forced"),
    [
        (True, True, False, True, ["VAULTGUARD_DRY_RUN", "policy.dryRun"]),
        (True, False, False, True, ["VAULTGUARD_DRY_RUN"]),
        (False, True, False, True, ["policy.dryRun"]),
        (False, False, False, False, []),
        (False, False, True, True, []),  # a ticket's dryRun: true always wins
        (False, False, None, False, []),
    ],
)
def test_dry_run_if_either_rail_or_the_ticket_says_so(
    setting: bool, policy: bool, ticket: bool | None, dry: bool, forced: list[str]
) -> None:
    effective, why = effective_policy(AppSettings(dry_run=setting), Policy(dry_run=policy), ticket)
    assert (effective.dry_run, why) == (dry, forced)


def test_the_cap_is_the_minimum_of_setting_and_policy() -> None:
    low_setting, _ = effective_policy(AppSettings(max_actions_per_run=3), Policy(max_actions_per_run=9))
    low_policy, _ = effective_policy(AppSettings(max_actions_per_run=30), Policy(max_actions_per_run=9))
    assert (low_setting.max_actions_per_run, low_policy.max_actions_per_run) == (3, 9)


def _action(n: int, skip: str | None = None) -> Action:
    change = AccessPolicyChange(
        operation="remove", tenant_id="t", object_id=f"o{n}", permissions=Permissions(secrets=("list",))
    )
    return Action.create(
        remediation_id="remove_list_permission",
        target=f"/v{n}",
        principal=f"o{n}",
        changes=(change,),
        before={},
        after={},
        reason="r",
        finding_ids=(),
        skip_reason=skip,
    )


def test_limit_writes_defers_the_writes_over_the_grant_and_keeps_skips() -> None:
    actions = (_action(1), _action(2, skip="last manager"), _action(3), _action(4))
    plan = Plan(id="p", actions=actions, deferred=(_action(5),), created_at=datetime.now(UTC), dry_run=False)
    limited = limit_writes(plan, 1)
    assert [a.principal for a in limited.actions] == ["o1", "o2"]
    assert [a.principal for a in limited.deferred] == ["o3", "o4", "o5"]
    assert limited.id != plan.id
    assert limit_writes(plan, 3) is plan
    assert [a.principal for a in limit_writes(plan, 0).actions] == ["o2"]


def _jwt(claims: dict[str, str]) -> str:
    def part(data: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


def test_own_identity_from_token_claims_matches_callers_case_insensitively() -> None:
    claims = token_claims(_jwt({"oid": "AAAA-1", "appid": "bbbb-2"}))
    me = OwnIdentity(claims["oid"].lower(), claims["appid"])
    assert me.is_caller("aaaa-1") and me.is_caller(None, "BBBB-2")
    assert not me.is_caller("someone@contoso.example", None)
    assert not OwnIdentity(None, None).is_caller(None, "")
    assert token_claims("not-a-jwt") == {}


def test_secret_targets_name_the_vault_and_the_secret_of_both_forms() -> None:
    from remediations.triggers.remediate_ticket import secret_targets

    arm = (
        "/subscriptions/5f1c2b3a-8d4e-4f60-9a7b-1c2d3e4f5a6b/resourceGroups/rg"
        "/providers/Microsoft.KeyVault/vaults/kv-a"
    )
    assert secret_targets(
        [
            f"{arm}/secrets/db-password",
            "https://kv-b.vault.azure.net/secrets/api-key",
            "https://kv-b.vault.azure.net/secrets/api-key/0123456789abcdef0123456789abcdef",
        ]
    ) == [
        (arm, "db-password"),
        ("https://kv-b.vault.azure.net", "api-key"),
        ("https://kv-b.vault.azure.net", "api-key"),
    ]


def test_each_environment_worker_plans_only_its_share_of_the_tenant_wide_dlp_list() -> None:
    from remediations.core.policy import parse_policy
    from remediations.core.request import RunRequest
    from remediations.shell.pipeline import selected_remediations
    from remediations.triggers.scope_work import environment_policy

    def part(name: Part) -> set[str]:
        return set(selected_remediations(RunRequest(trigger="timer", scope=None, part=name)) or ())

    policy = parse_policy(
        {
            "powerPlatform": {
                "environments": ["env-a", "env-b"],
                "dlp": {"blockConnectorInEnvironments": ["env-b", "env-z"]},
            }
        }
    )

    def blocked(env: str) -> tuple[str, ...]:
        return environment_policy(policy, env).power_platform.dlp.block_connector_in_environments

    # env-z gets no message of its own: the first configured environment plans it; nobody plans twice.
    assert blocked("env-a") == ("env-z",) and blocked("env-b") == ("env-b",)
    everywhere = parse_policy(
        {"powerPlatform": {"environments": ["*"], "dlp": {"blockConnectorInEnvironments": ["env-b"]}}}
    )
    assert environment_policy(everywhere, "env-a").power_platform.dlp.block_connector_in_environments == ()
    assert part("power_platform") == {
        "revoke_flow_shares",
        "revoke_connection_shares",
        "enforce_keyvault_dlp",
        "quarantine_flow",
        "remove_flow_editing_role",
        "restore_secure_outputs",
        "move_to_service_connection",
    }
    assert not part("key_vault") & part("power_platform")
