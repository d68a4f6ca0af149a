from __future__ import annotations

import pytest
from pydantic import ValidationError

from remediations.core.model import (
    Action,
    Scope,
    SecretMeta,
    Snapshot,
    VaultRef,
    arm_name,
    expand_secret_permissions,
    stable_id,
    subscription_of,
)
from tests.unit.kv_builders import policy_entry, snapshot, vault


def test_snapshot_round_trips_through_json() -> None:
    snap = snapshot(vault("kv-a", policy_entry("u1", "Get", "List"), tags={"purpose": "payroll"}))
    again = Snapshot.model_validate_json(snap.model_dump_json())
    assert again == snap
    assert again.vaults[0].access_policies[0].permissions.secrets == ("Get", "List")  # casing kept


def test_models_are_frozen_and_reject_unknown_fields() -> None:
    meta = SecretMeta(name="s", id="https://kv/secrets/s")
    with pytest.raises(ValidationError):
        SecretMeta(name="s", id="x", value="hunter2")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        meta.name = "t"  # type: ignore[misc]


def test_stable_ids_depend_on_content_only() -> None:
    assert stable_id("a", {"x": 1, "y": 2}) == stable_id("a", {"y": 2, "x": 1})
    assert stable_id("a", 1) != stable_id("a", 2)
    kwargs = dict(
        remediation_id="r",
        target="/subscriptions/s/x",
        principal="u",
        changes=(),
        before={},
        after={},
        reason="why",
        finding_ids=("f2", "f1"),
    )
    first, second = Action.create(**kwargs), Action.create(**{**kwargs, "reason": "other words"})  # type: ignore[arg-type]
    assert first.id == second.id and first.finding_ids == ("f1", "f2")


def test_all_expands_to_every_secret_permission_in_any_case() -> None:
    assert expand_secret_permissions(["All"]) >= {"get", "list", "set", "purge"}
    assert "all" not in expand_secret_permissions(["ALL"])
    assert expand_secret_permissions(["Get", "LIST"]) == {"get", "list"}


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("/subscriptions/s1", "subscription"),
        ("/subscriptions/s1/resourceGroups/rg", "resource_group"),
        ("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv", "vault"),
    ],
)
def test_scope_parses_the_three_kinds(text: str, kind: str) -> None:
    scope = Scope.parse(text)
    assert scope.kind == kind and scope.resource_id == text


def test_scope_rejects_other_resources() -> None:
    with pytest.raises(ValueError, match="not /subscriptions"):
        Scope.parse("/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/x")


def test_vault_ref_reads_a_vault_id_or_a_child_id_in_any_casing() -> None:
    vault_id = "/subscriptions/S1/resourcegroups/RG-App/providers/Microsoft.KeyVault/VAULTS/kv-Pay"
    expected = VaultRef(subscription_id="S1", resource_group="RG-App", name="kv-Pay")
    assert VaultRef.parse(vault_id) == expected
    assert VaultRef.parse(vault_id + "/secrets/db") == expected  # a secret scope names its vault
    with pytest.raises(ValueError, match="not a Key Vault resource id"):
        VaultRef.parse("/subscriptions/s1/resourceGroups/rg")


def test_arm_name_and_subscription_of() -> None:
    assert arm_name("/subscriptions/s1/resourceGroups/rg", "RESOURCEGROUPS") == "rg"
    assert arm_name("/subscriptions/s1", "resourceGroups") is None
    assert arm_name("/subscriptions/s1/resourceGroups", "resourceGroups") is None  # nothing after it
    assert subscription_of("/subscriptions/s1/resourceGroups/rg/providers/x/y") == "s1"
    with pytest.raises(ValueError, match="not an ARM scope under a subscription"):
        subscription_of("/providers/Microsoft.Management/managementGroups/mg1")
