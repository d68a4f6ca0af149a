"""enforce_keyvault_dlp: a DLP policy blocks the Key Vault connector's `ListSecrets` action (a connector
action rule) in every environment that has Key Vault flows, and, per policy, a second one keeps the
connector out of the environments listed in `powerPlatform.dlp.blockConnectorInEnvironments`.

`ListSecrets` is the enumeration step of the seed attack; with the rule in place the service refuses to
save a flow that calls it and suspends started flows that do. The policy is ours, found again by its
display name: the plan creates it or adds environments/rules to it, never removes what is there, and
never puts the connector in a business/non-business group (which would break flows that mix it with
other connectors). Apply re-reads the policies first, so applying the same plan twice is a no-op;
the create/update response returns the whole policy, which is the verification.

The policy is tenant-wide while a sweep's environment workers run side by side: each may plan to
create it (none saw it) or to update it (by its id). The write lease is keyed by the display name
(`lease_key`), whichever name the action's target has, so they write one at a time, and the re-read
under the lease turns a create into an update of the policy another worker made meanwhile (or a noop),
and an update into one of the policy as it is now, so no worker's environments are lost.
"""

from __future__ import annotations

from typing import Any

from remediations.core.dlp_shape import dlp_from_api, dlp_state, dlp_target
from remediations.core.evidence import FlowUsesKeyVaultEvidence
from remediations.core.model import (
    KEYVAULT_CONNECTOR_ID,
    Action,
    DlpPolicy,
    DlpPolicyChange,
    Finding,
    Outcome,
    Snapshot,
)
from remediations.core.policy import Policy
from remediations.core.registry import Remediation, RemediationMetadata, register
from remediations.ports import AzureCallFailed, Clients, PowerPlatformApi

LIST_SECRETS = "ListSecrets"
_ENV_ID = "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/{}"
_ENV_TYPE = "Microsoft.BusinessAppPlatform/scopes/environments"


def _blocks_action(policy: DlpPolicy, action: str) -> bool:
    blocked = policy.blocked_actions.get(KEYVAULT_CONNECTOR_ID, ())
    return action in blocked or "*" in blocked or KEYVAULT_CONNECTOR_ID in policy.blocked_connectors


def _blocks_connector(policy: DlpPolicy) -> bool:
    return KEYVAULT_CONNECTOR_ID in policy.blocked_connectors


def plan_dlp(
    snapshot: Snapshot, findings: list[Finding], policy: Policy, remediation_id: str
) -> list[Action]:
    rules = policy.power_platform.dlp
    keyvault_envs = sorted({env for f in findings if (env := FlowUsesKeyVaultEvidence.of(f).environment)})
    ids = tuple(f.id for f in findings)
    actions: list[Action] = []
    targets: list[tuple[str, list[str], bool]] = []  # (display name, environments, block the connector)
    if rules.block_list_secrets and keyvault_envs:
        targets.append((rules.policy_name, keyvault_envs, False))
    if rules.block_connector_in_environments:
        targets.append(
            (f"{rules.policy_name} (connector blocked)", list(rules.block_connector_in_environments), True)
        )
    for display_name, environments, block_connector in targets:
        satisfied = _blocks_connector if block_connector else (lambda p: _blocks_action(p, LIST_SECRETS))
        uncovered = [
            env
            for env in environments
            if not any(p.covers(env) and satisfied(p) for p in snapshot.dlp_policies)
        ]
        if not uncovered:
            continue
        ours = next((p for p in snapshot.dlp_policies if p.display_name == display_name), None)
        wanted_envs = tuple(sorted({*uncovered, *(ours.environments if ours else ())}))
        change = DlpPolicyChange(
            operation="update" if ours else "create",
            policy_id=ours.id if ours else None,
            display_name=display_name,
            environments=wanted_envs,
            blocked_actions={} if block_connector else {KEYVAULT_CONNECTOR_ID: (LIST_SECRETS,)},
            blocked_connectors=(KEYVAULT_CONNECTOR_ID,) if block_connector else (),
        )
        after = DlpPolicy(
            id=ours.id if ours else "",
            display_name=display_name,
            environments=wanted_envs,
            environment_type="OnlyEnvironments",
            blocked_actions={**(ours.blocked_actions if ours else {}), **change.blocked_actions},
            blocked_connectors=tuple(
                sorted({*(ours.blocked_connectors if ours else ()), *change.blocked_connectors})
            ),
        )
        what = "keep the Key Vault connector out of" if block_connector else "block Key Vault ListSecrets in"
        actions.append(
            Action.create(
                remediation_id=remediation_id,
                target=dlp_target(ours.id if ours else display_name),
                principal=None,
                changes=(change,),
                before=dlp_state(ours),
                after=dlp_state(after),
                reason=f"{what} environments {', '.join(uncovered)}, which no DLP policy covers yet",
                finding_ids=ids,
            )
        )
    return actions


def _environment_refs(names: list[str]) -> list[dict[str, str]]:
    return [{"name": n, "id": _ENV_ID.format(n), "type": _ENV_TYPE} for n in names]


def create_body(change: DlpPolicyChange) -> dict[str, Any]:
    body: dict[str, Any] = {
        "policyDefinition": {
            "displayName": change.display_name,
            "environmentType": "OnlyEnvironments",
            "environments": _environment_refs(list(change.environments)),
            "defaultConnectorsClassification": "General",
            "connectorGroups": [
                {"classification": "Confidential", "connectors": []},
                {"classification": "General", "connectors": []},
                {"classification": "Blocked", "connectors": [{"id": c} for c in change.blocked_connectors]},
            ],
        }
    }
    return merge_rules(body, change)


def merge_rules(body: dict[str, Any], change: DlpPolicyChange) -> dict[str, Any]:
    """Adds the change's environments, blocked connectors and action rules to a policy body; keeps
    everything else."""
    definition = body["policyDefinition"]
    kind = definition.get("environmentType", "AllEnvironments")
    names = [e["name"] for e in definition.get("environments") or []]
    if kind == "OnlyEnvironments":
        names += [e for e in change.environments if e not in names]
    elif kind == "ExceptEnvironments":
        names = [e for e in names if e not in change.environments]
    definition["environments"] = _environment_refs(names)
    groups = definition.setdefault("connectorGroups", [])
    for connector in change.blocked_connectors:
        for group in groups:  # a connector sits in one group only
            group["connectors"] = [
                c for c in group.get("connectors") or [] if c["id"].lower() != connector.lower()
            ]
        blocked = next((g for g in groups if g.get("classification") == "Blocked"), None)
        if blocked is None:
            blocked = {"classification": "Blocked", "connectors": []}
            groups.append(blocked)
        blocked["connectors"].append({"id": connector})
    configs = body.setdefault("connectorConfigurationsDefinition", {}).setdefault(
        "connectorActionConfigurations", []
    )
    for connector, actions in change.blocked_actions.items():
        config = next(
            (c for c in configs if str(c.get("connectorId", "")).lower() == connector.lower()), None
        )
        if config is None:
            config = {
                "connectorId": connector,
                "defaultConnectorActionRuleBehavior": "Allow",
                "actionRules": [],
            }
            configs.append(config)
        rules = config.setdefault("actionRules", [])
        for action in actions:
            rules[:] = [r for r in rules if r.get("actionId") != action]
            rules.append({"actionId": action, "behavior": "Block"})
    return body


def satisfies(policy: DlpPolicy, change: DlpPolicyChange) -> bool:
    covered = all(policy.covers(e) for e in change.environments)
    actions = all(
        a in policy.blocked_actions.get(connector, ())
        for connector, acts in change.blocked_actions.items()
        for a in acts
    )
    connectors = all(c in policy.blocked_connectors for c in change.blocked_connectors)
    return covered and actions and connectors


def apply_dlp(action: Action, api: PowerPlatformApi) -> Outcome:
    (change,) = action.changes
    if not isinstance(change, DlpPolicyChange):
        return Outcome(action_id=action.id, status="failed", error="not a DLP action")
    try:
        listed = next(
            (
                p
                for p in api.list_dlp_policies()
                if (p.get("policyDefinition") or {}).get("displayName") == change.display_name
            ),
            None,
        )
        # List items carry no connector groups or rules: judge and update the whole policy from its GET,
        # so the PATCH (a full body) never drops what the policy already holds.
        existing = None if listed is None else api.get_dlp_policy(str(listed["policyDefinition"]["name"]))
        if existing is not None and satisfies(dlp_from_api(existing), change):
            return Outcome(
                action_id=action.id, status="noop", before=action.before, after=action.before, verified=True
            )
        if existing is None:
            result = api.create_dlp_policy(create_body(change))
        else:
            name = str(existing["policyDefinition"]["name"])
            result = api.update_dlp_policy(name, merge_rules(existing, change))
    except AzureCallFailed as error:
        return Outcome(action_id=action.id, status="failed", before=action.before, error=str(error))
    written = dlp_from_api(result)
    after = dlp_state(written)
    if not satisfies(written, change):
        return Outcome(
            action_id=action.id,
            status="failed",
            before=action.before,
            after=after,
            error="the DLP API answered success but the returned policy does not hold the rule",
        )
    return Outcome(action_id=action.id, status="applied", before=action.before, after=after, verified=True)


@register
class EnforceKeyvaultDlp(Remediation):
    id = "enforce_keyvault_dlp"
    handles = frozenset({"flow_uses_keyvault"})
    power_platform = True
    metadata = RemediationMetadata(
        title="DLP policy: block Key Vault ListSecrets where Key Vault flows run",
        severity="high",  # above flow_uses_keyvault (low): blocks List secrets (seed attack) in every flow
        risk=(
            "Flows that call List secrets are suspended and cannot be saved; flows in environments where the "
            "connector is blocked stop working."
        ),
        permissions_required=(
            "Power Platform administrator: POST/PATCH api.bap.microsoft.com/providers/"
            "PowerPlatform.Governance/v2/policies",
        ),
        cli_equivalent=(
            "New-DlpPolicy / Set-DlpPolicy (Microsoft.PowerApps.Administration.PowerShell), then "
            "connector action rules: Key Vault -> ListSecrets -> Block"
        ),
        bicep_hint="not expressible in Bicep; terraform: powerplatform_data_loss_prevention_policy",
    )

    def plan(self, snapshot: Snapshot, findings: list[Finding], policy: Policy) -> list[Action]:
        return plan_dlp(snapshot, findings, policy, self.id)

    def apply(self, action: Action, clients: Clients) -> Outcome:
        return apply_dlp(action, clients.power_platform())

    def lease_key(self, action: Action) -> str:
        """The policy by its display name: a create names it so, an update by its id."""
        changes = [c for c in action.changes if isinstance(c, DlpPolicyChange)]
        return dlp_target(changes[0].display_name) if changes else action.target
