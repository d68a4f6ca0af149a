"""rotate_secret planning (pure): what is exposed, which rotator, near expiry, tickets, alerts, follow-ups."""

from __future__ import annotations

from datetime import timedelta

import pydantic
import pytest

from remediations.core import detect as detect_module
from remediations.core.detect import detect, registered
from remediations.core.evidence import FlowShareEvidence, FlowStepEvidence
from remediations.core.model import (
    Connection,
    Finding,
    Flow,
    SecretMeta,
    SecretRotationChange,
    Share,
    Snapshot,
    Vault,
)
from remediations.core.planning import build_plan
from remediations.core.policy import Policy, PolicyError, parse_policy
from remediations.core.pp_detect import flow_resource_id
from remediations.core.rotation import exposed_secrets
from remediations.core.secret_value import SecretValue
from remediations.fixes.rotate_secret import plan_for_alert, plan_for_targets, plan_rotations
from tests.unit.kv_builders import policy_entry, snapshot, vault

ADMIN = "admin-sp"  # the identity the Key Vault connection authenticates as
MAKER = "maker-user"


def _secret(name: str, vault_name: str = "kv-pay", **kwargs: object) -> SecretMeta:
    return SecretMeta(name=name, id=f"https://{vault_name}.vault.azure.net/secrets/{name}", **kwargs)  # type: ignore[arg-type]


def _vault(*secrets: SecretMeta, name: str = "kv-pay", readers: tuple[str, ...] = (ADMIN,)) -> Vault:
    return vault(name, *(policy_entry(r, "get", "list") for r in readers)).model_copy(
        update={"secrets": secrets}
    )


def _with_flow(base: Snapshot, flow_id: str = "flow-1", connection_id: str = "conn-kv") -> Snapshot:
    return base.model_copy(
        update={
            "flows": (Flow(id=flow_id, environment="env", connection_references=(connection_id,)),),
            "connections": (
                Connection(
                    id=connection_id,
                    environment="env",
                    connector_id="/providers/Microsoft.PowerApps/apis/shared_keyvault",
                    identity_principal_id=ADMIN,
                ),
            ),
            "shares": (Share(resource_kind="flow", resource_id=flow_id, principal_id=MAKER, role="CanEdit"),),
        }
    )


def _leak(vault_ref: str | None = None, *names: str, flow: str = "flow-1") -> Finding:
    """A `flow_lists_secrets` finding as its detector makes it: on the flow's resource id, with the
    vault its List secrets step names (None: an expression) and the secret names it reads."""
    return registered("flow_lists_secrets").info.finding(
        resource_id=flow_resource_id(Flow(id=flow, environment="env")),
        principal=None,
        message="flow lists secrets",
        evidence=FlowStepEvidence(
            flow=flow, action_path="List", vault=vault_ref, secret_names=names, operation="list_secrets"
        ),
    )


def _shared_with(person: str) -> Finding:
    """A `flow_shared_beyond_allowed` finding about `person` (no vault: what they can read is exposed)."""
    return registered("flow_shared_beyond_allowed").info.finding(
        resource_id=flow_resource_id(Flow(id="flow-1", environment="env")),
        principal=person,
        message="flow shared",
        evidence=FlowShareEvidence(
            environment="env", flow="flow-1", role="CanEdit", principal_kind="user", connections=("conn-kv",)
        ),
    )


def _changes(actions: list) -> list[SecretRotationChange]:  # type: ignore[type-arg]
    return [a.changes[0] for a in actions]


# -- exposure -------------------------------------------------------------------------------------


def test_only_secrets_someone_can_read_are_proposed() -> None:
    readable = _vault(_secret("db-password"), _secret("api-key"), name="kv-pay")
    unreachable = _vault(_secret("old-token", vault_name="kv-cold"), name="kv-cold", readers=())
    snap = snapshot(readable, unreachable)
    leaks = [
        _leak(readable.id),
        _leak(unreachable.id, "old-token", flow="flow-2"),
    ]
    found = exposed_secrets(snap, Policy(), leaks)
    assert sorted(f.evidence["secret_name"] for f in found) == ["api-key", "db-password"]
    assert all(f.evidence["readers"] == [ADMIN] for f in found)
    assert all(f.evidence["exposedBy"] == [leaks[0].id] for f in found)


def test_named_secrets_only_and_get_is_needed() -> None:
    list_only = vault("kv-list", policy_entry(ADMIN, "list")).model_copy(
        update={"secrets": (_secret("a", "kv-list"),)}
    )
    snap = snapshot(_vault(_secret("db-password"), _secret("api-key")), list_only)
    leaks = [
        _leak("kv-pay", "db-password"),
        _leak("https://kv-list.vault.azure.net/", flow="f2"),
    ]
    found = exposed_secrets(snap, Policy(), leaks)
    assert [f.evidence["secret_name"] for f in found] == ["db-password"]  # list without get reads nothing


def test_an_inventoried_flow_must_lead_to_the_secret() -> None:
    other = vault("kv-other", policy_entry("someone-else", "get")).model_copy(
        update={"secrets": (_secret("x", "kv-other"),)}
    )
    snap = _with_flow(snapshot(_vault(_secret("db-password")), other))
    leaks = [_leak(other.id, flow="flow-1")]  # readable, but not via flow-1
    assert exposed_secrets(snap, Policy(), leaks) == []
    via_flow = exposed_secrets(snap, Policy(), [_leak(None, flow="flow-1")])
    assert [f.evidence["secret_name"] for f in via_flow] == ["db-password"]
    assert via_flow[0].evidence["readers"] == [MAKER]


def test_a_flow_whose_connection_was_not_read_cannot_clear_a_reader() -> None:
    other = vault("kv-other", policy_entry("someone-else", "get")).model_copy(
        update={"secrets": (_secret("x", "kv-other"),)}
    )
    unread = _with_flow(snapshot(other)).model_copy(update={"connections": ()})  # its connection list failed
    found = exposed_secrets(unread, Policy(), [_leak(other.id, flow="flow-1")])
    assert [f.evidence["secret_name"] for f in found] == ["x"]  # no path can be ruled out: assume breach


def test_a_revoked_person_exposes_what_the_graph_says_they_could_read() -> None:
    snap = _with_flow(snapshot(_vault(_secret("db-password"), _secret("api-key"))))
    found = exposed_secrets(snap, Policy(), [_shared_with(MAKER)])
    assert sorted(f.evidence["secret_name"] for f in found) == ["api-key", "db-password"]
    assert exposed_secrets(snap, Policy(), [_shared_with("nobody")]) == []


def test_disabled_and_excluded_secrets_are_not_proposed() -> None:
    snap = snapshot(_vault(_secret("db-password", enabled=False), _secret("api-key")))
    policy = parse_policy({"exclusions": {"vaults": []}})
    found = exposed_secrets(snap, policy, [_leak("kv-pay")])
    assert [f.evidence["secret_name"] for f in found] == ["api-key"]
    excluded = parse_policy({"exclusions": {"vaults": ["kv-pay"]}})
    assert exposed_secrets(snap, excluded, [_leak("kv-pay")]) == []


def test_the_detector_consumes_the_policys_exposing_detectors(monkeypatch: pytest.MonkeyPatch) -> None:
    snap = snapshot(_vault(_secret("db-password")))
    leak = _leak("kv-pay", "db-password")
    lists = detect_module.registered("flow_lists_secrets")
    monkeypatch.setitem(
        detect_module._DETECTORS, lists.info.id, detect_module.Detector(lists.info, lambda s, p, new: [leak])
    )
    found = [f for f in detect(snap, Policy()) if f.detector_id == "exposed_secret"]
    assert [f.evidence["exposedBy"] for f in found] == [[leak.id]]
    quiet = parse_policy({"rotation": {"exposingDetectors": []}})
    assert [f for f in detect(snap, quiet) if f.detector_id == "exposed_secret"] == []
    plan = build_plan(detect(snap, Policy()), snap, Policy(), remediation_ids={"rotate_secret"})
    assert [a.changes[0].secret_name for a in plan.actions] == ["db-password"]


def test_an_exposing_finding_whose_detector_renamed_a_key_fails_loudly() -> None:
    """The reader names the evidence model: a key renamed in a detector's output is an error, not an
    exposure silently widened to every secret of the vault (what a `.get("secret_names")` read did)."""
    snap = snapshot(_vault(_secret("db-password"), _secret("api-key")))
    leak = _leak("kv-pay", "db-password")
    assert [f.evidence["secret_name"] for f in exposed_secrets(snap, Policy(), [leak])] == ["db-password"]
    evidence = {k: v for k, v in leak.evidence.items() if k != "secret_names"}
    renamed = leak.model_copy(update={"evidence": {**evidence, "secretNames": ["db-password"]}})
    with pytest.raises(pydantic.ValidationError, match="secretNames"):
        exposed_secrets(snap, Policy(), [renamed])


# -- rotator choice ----------------------------------------------------------------------------------


def test_rotator_by_tag_else_policy_default_and_tag_checks() -> None:
    snap = snapshot(
        _vault(
            _secret("plain"),
            _secret("pw", tags={"rotator": "random", "rotationLength": "64", "rotationCharset": "hex"}),
            _secret("app", tags={"rotator": "app-credential", "appObjectId": "app-1", "keyId": "k-1"}),
            _secret("app-bad", tags={"rotator": "app-credential"}),
            _secret(
                "sa",
                tags={
                    "rotator": "storage-key",
                    "storageAccountId": "/subscriptions/s/resourceGroups/rg/providers/"
                    "Microsoft.Storage/storageAccounts/sa1",
                    "keyName": "key1",
                },
            ),
            _secret("sa-bad", tags={"rotator": "storage-key", "storageAccountId": "x", "keyName": "key3"}),
            _secret("weird", tags={"rotator": "carrier-pigeon"}),
            _secret("short", tags={"rotator": "random", "rotationLength": "8"}),
        )
    )
    targets = [("https://kv-pay.vault.azure.net/", s.name) for s in snap.vaults[0].secrets]
    policy = parse_policy({"rotation": {"defaultRotator": "random", "randomLength": 24}})
    actions = {a.changes[0].secret_name: a for a in plan_for_targets(snap, policy, targets, "leaked", "T-1")}
    rot = {n: (a.changes[0].rotator, a.skip_reason) for n, a in actions.items()}
    assert rot["plain"] == ("random", None)
    assert actions["plain"].changes[0].value_length == 24
    assert (actions["pw"].changes[0].value_length, actions["pw"].changes[0].charset) == (64, "hex")
    assert rot["app"] == ("app-credential", None)
    assert rot["app-bad"][1] is not None and "appObjectId" in rot["app-bad"][1]
    assert rot["sa"] == ("storage-key", None)
    assert rot["sa-bad"][1] is not None and "storageAccountId" in rot["sa-bad"][1]
    assert rot["weird"][1] == "unknown rotator 'carrier-pigeon'"
    assert rot["short"][1] is not None and "rotationLength" in rot["short"][1]
    manual = plan_for_targets(snap, Policy(), targets[:1], "leaked")
    assert manual[0].changes[0].rotator == "manual"  # the default policy disables and reports
    assert all(a.changes[0].ticket_id == "T-1" and a.changes[0].compromised for a in actions.values())


def test_policy_carries_rotation_settings_into_the_change() -> None:
    snap = snapshot(
        _vault(_secret("db", tags={"rotator": "app-credential", "appObjectId": "a", "keyId": "k"}))
    )
    policy = parse_policy({"rotation": {"expiryDays": 30, "appCredentialOverlapHours": 0}})
    change = plan_for_targets(snap, policy, [("kv-pay", "db")], "x")[0].changes[0]
    assert (change.expiry_days, change.overlap_hours) == (30, 0)
    with pytest.raises(PolicyError, match=r"rotation\.onAlert"):
        parse_policy({"rotation": {"onAlert": "panic"}})
    with pytest.raises(PolicyError, match=r"rotation\.surprise"):
        parse_policy({"rotation": {"surprise": 1}})


# -- near expiry, tickets, alerts, follow-ups ------------------------------------------------------------


def test_near_expiry_within_the_window_only() -> None:
    base = snapshot(_vault())
    now = base.taken_at
    snap = snapshot(
        _vault(
            _secret("soon", expires=now + timedelta(days=10)),
            _secret("expired", expires=now - timedelta(days=1)),
            _secret("later", expires=now + timedelta(days=45)),
            _secret("never"),
            _secret("off", expires=now + timedelta(days=1), enabled=False),
        )
    )
    found = [f for f in detect(snap, Policy()) if f.detector_id == "secret_near_expiry"]
    assert sorted(f.evidence["secret_name"] for f in found) == ["expired", "soon"]
    wide = parse_policy({"rotation": {"nearExpiryDays": 60}})
    assert len([f for f in detect(snap, wide) if f.detector_id == "secret_near_expiry"]) == 3
    off = parse_policy({"rotation": {"nearExpiryDays": 0}})
    assert [f for f in detect(snap, off) if f.detector_id == "secret_near_expiry"] == []
    actions = plan_rotations(snap, found, Policy())
    assert all(not a.changes[0].compromised for a in actions)  # expiring, not exposed
    assert all("within 30 days" in a.reason for a in actions)


def test_ticket_target_missing_is_reported_not_dropped() -> None:
    snap = snapshot(_vault(_secret("db")))
    actions = plan_for_targets(snap, Policy(), [("https://kv-pay.vault.azure.net", "nope")], "leak", "T-9")
    assert len(actions) == 1 and actions[0].skip_reason == "secret not found in the inventory"


def test_alert_rotates_or_reports_per_policy() -> None:
    snap = snapshot(_vault(_secret("a"), _secret("b"), _secret("c", enabled=False)))
    reported = plan_for_alert(snap, Policy(), "kv-pay", "unusual secret listing", "alert-1")
    assert [a.changes[0].secret_name for a in reported] == ["a", "b"]
    assert all(a.skip_reason and "onAlert" in a.skip_reason for a in reported)
    rotate = parse_policy({"rotation": {"onAlert": "rotate", "defaultRotator": "random"}})
    rotated = plan_for_alert(snap, rotate, "kv-pay", "unusual secret listing", "alert-1")
    assert [a.skip_reason for a in rotated] == [None, None]
    assert "alert alert-1: unusual secret listing" in rotated[0].reason


def test_one_action_per_secret_whatever_the_number_of_reasons() -> None:
    snap = snapshot(_vault(_secret("db", expires=snapshot().taken_at + timedelta(days=1))))
    expiring = [f for f in detect(snap, Policy()) if f.detector_id == "secret_near_expiry"]
    findings = expiring + exposed_secrets(snap, Policy(), [_leak("kv-pay")])
    actions = plan_rotations(snap, findings, Policy())
    assert len(actions) == 1
    assert actions[0].changes[0].compromised and len(actions[0].finding_ids) == 2
    assert "exposed via flow_lists_secrets" in actions[0].reason and "expires" in actions[0].reason


def test_followup_due_after_the_overlap_only() -> None:
    now = snapshot().taken_at
    app_tags = {"rotator": "app-credential", "appObjectId": "a", "keyId": "new", "pendingRemoveKeyId": "old"}
    snap = snapshot(
        _vault(
            _secret(
                "due",
                tags={**app_tags, "removeAfter": (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")},
            ),
            _secret(
                "wait",
                tags={**app_tags, "removeAfter": (now + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")},
            ),
            _secret(
                "key", tags={"rotator": "storage-key", "keyName": "key2", "pendingRegenerateKey": "key1"}
            ),
        )
    )
    found = [f for f in detect(snap, Policy()) if f.detector_id == "rotation_followup_due"]
    assert sorted(f.evidence["secret_name"] for f in found) == ["due", "key"]
    changes = {c.secret_name: c for c in _changes(plan_rotations(snap, found, Policy()))}
    assert changes["due"].phase == "follow-up" and changes["due"].rotator == "app-credential"
    assert changes["key"].phase == "follow-up" and changes["key"].rotator == "storage-key"


def test_plans_are_stable_and_hold_no_values() -> None:
    snap = snapshot(_vault(_secret("db", tags={"rotator": "random"})))
    first = plan_for_targets(snap, Policy(), [("kv-pay", "db")], "leak", "T-1")
    again = plan_for_targets(snap, Policy(), [("kv-pay", "db")], "leak", "T-1")
    assert [a.id for a in first] == [a.id for a in again]
    assert "value" not in SecretRotationChange.model_fields


def test_secret_value_cannot_be_printed_or_serialised() -> None:
    value = SecretValue("s3cr3t-value-123")
    assert "s3cr3t" not in repr(value) + str(value) + f"{value}" + f"{value!r}"
    assert value.same_as("s3cr3t-value-123") and not value.same_as("other") and not value.same_as(None)
    assert value != SecretValue("s3cr3t-value-123")
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(value)


def test_a_persisting_exposure_keeps_its_action_id_when_a_followup_is_due() -> None:
    tags = {"rotator": "app-credential", "appObjectId": "a", "keyId": "k2"}
    fresh = snapshot(_vault(_secret("db", tags=tags)))
    leak = [_leak("kv-pay")]
    first = plan_rotations(fresh, exposed_secrets(fresh, Policy(), leak), Policy())
    pending = {**tags, "pendingRemoveKeyId": "k1", "removeAfter": "2000-01-01T00:00:00Z"}
    later = snapshot(_vault(_secret("db", tags=pending)))
    findings = exposed_secrets(later, Policy(), leak) + [
        f for f in detect(later, Policy()) if f.detector_id == "rotation_followup_due"
    ]
    [action] = plan_rotations(later, findings, Policy())
    assert action.changes[0].phase == "rotate" and len(action.finding_ids) == 2
    assert action.id == first[0].id  # so applying it resumes the earlier rotation
