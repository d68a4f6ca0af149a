from __future__ import annotations

from remediations.core.detect import detect
from remediations.core.dlp_shape import dlp_from_api
from remediations.core.model import KEYVAULT_CONNECTOR_ID, DlpPolicy, DlpPolicyChange
from remediations.core.planning import build_plan
from remediations.core.policy import parse_policy
from remediations.fixes.enforce_keyvault_dlp import EnforceKeyvaultDlp, create_body
from tests.unit.pp_builders import ENV, MemoryPowerPlatform, PPClients, seed_like

NAME = "vaultguard: Key Vault without enumeration"


def _plan(policy_data: dict[str, object] | None = None, dlp: tuple[DlpPolicy, ...] = ()):  # type: ignore[no-untyped-def]
    snap = seed_like().model_copy(update={"dlp_policies": dlp})
    policy = parse_policy(policy_data or {})
    return snap, build_plan(detect(snap, policy), snap, policy, remediation_ids={"enforce_keyvault_dlp"})


def test_creates_a_policy_blocking_list_secrets_where_keyvault_flows_run() -> None:
    _, plan = _plan()
    (action,) = plan.actions
    (change,) = action.changes
    assert isinstance(change, DlpPolicyChange)
    assert (change.operation, change.display_name, change.environments) == ("create", NAME, (ENV,))
    assert change.blocked_actions == {KEYVAULT_CONNECTOR_ID: ("ListSecrets",)}
    assert action.after["blockedActions"] == ["shared_keyvault:ListSecrets"]
    body = create_body(change)
    assert body["policyDefinition"]["environmentType"] == "OnlyEnvironments"
    # the connector is not put in a business group: flows mixing it with other connectors keep working
    assert all(not g["connectors"] for g in body["policyDefinition"]["connectorGroups"])


def test_nothing_to_do_when_a_policy_already_covers_the_environment() -> None:
    tenant_wide = DlpPolicy(
        id="p1",
        display_name="tenant",
        environment_type="AllEnvironments",
        blocked_actions={KEYVAULT_CONNECTOR_ID: ("ListSecrets",)},
    )
    _, plan = _plan(dlp=(tenant_wide,))
    assert plan.actions == ()


def test_updates_our_policy_adding_the_environment_and_keeping_the_others() -> None:
    ours = DlpPolicy(id="p9", display_name=NAME, environments=("env-0",), blocked_actions={})
    _, plan = _plan(dlp=(ours,))
    (change,) = plan.actions[0].changes
    assert isinstance(change, DlpPolicyChange)
    assert (change.operation, change.policy_id, change.environments) == ("update", "p9", ("env-0", ENV))


def test_blocks_the_connector_in_configured_environments() -> None:
    _, plan = _plan(
        {"powerPlatform": {"dlp": {"blockListSecrets": False, "blockConnectorInEnvironments": ["sandbox"]}}}
    )
    (action,) = plan.actions
    (change,) = action.changes
    assert isinstance(change, DlpPolicyChange)
    assert change.blocked_connectors == (KEYVAULT_CONNECTOR_ID,) and change.environments == ("sandbox",)
    assert change.display_name == f"{NAME} (connector blocked)"


def test_apply_creates_then_is_a_noop_the_second_time() -> None:
    snap, plan = _plan()
    api = MemoryPowerPlatform(snap)
    clients = PPClients(api)
    outcome = EnforceKeyvaultDlp().apply(plan.actions[0], clients)  # type: ignore[arg-type]
    assert outcome.status == "applied" and outcome.verified
    assert [c[0] for c in api.calls] == ["list_dlp_policies", "create_dlp_policy"]
    written = dlp_from_api(api.policies[0])
    assert written.covers(ENV) and written.blocked_actions == {KEYVAULT_CONNECTOR_ID: ("ListSecrets",)}
    again = EnforceKeyvaultDlp().apply(plan.actions[0], clients)  # type: ignore[arg-type]
    assert again.status == "noop" and len(api.policies) == 1
    # The list has no rules: the existing block is only seen through the per-policy GET.
    assert [c[0] for c in api.calls[2:]] == ["list_dlp_policies", "get_dlp_policy"]


def test_apply_merges_into_an_existing_policy_without_dropping_its_rules() -> None:
    snap, plan = _plan()
    api = MemoryPowerPlatform(snap)
    api.policies = [
        {
            "policyDefinition": {
                "name": "p9",
                "displayName": NAME,
                "environmentType": "OnlyEnvironments",
                "environments": [{"name": "env-0"}],
                "connectorGroups": [
                    {"classification": "Blocked", "connectors": [{"id": "/x/apis/shared_ftp"}]}
                ],
            },
            "connectorConfigurationsDefinition": {
                "connectorActionConfigurations": [
                    {
                        "connectorId": KEYVAULT_CONNECTOR_ID,
                        "actionRules": [{"actionId": "SetSecret", "behavior": "Block"}],
                    }
                ]
            },
        }
    ]
    outcome = EnforceKeyvaultDlp().apply(plan.actions[0], PPClients(api))  # type: ignore[arg-type]
    assert outcome.status == "applied"
    name, body = api.calls[-1][1]
    assert name == "p9"
    assert [e["name"] for e in body["policyDefinition"]["environments"]] == ["env-0", ENV]
    rules = body["connectorConfigurationsDefinition"]["connectorActionConfigurations"][0]["actionRules"]
    assert {r["actionId"] for r in rules} == {"SetSecret", "ListSecrets"}
    assert body["policyDefinition"]["connectorGroups"][0]["connectors"] == [{"id": "/x/apis/shared_ftp"}]
