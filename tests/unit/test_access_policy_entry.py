"""Which access-policy entry a delta is for: ARM keys entries by tenant, object and application id."""

from remediations.core.access_policy import entry_of
from remediations.core.model import AccessPolicy, AccessPolicyChange, Permissions

OBJECT = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"


def _entry(tenant: str, secrets: list[str]) -> AccessPolicy:
    return AccessPolicy(tenant_id=tenant, object_id=OBJECT, permissions=Permissions(secrets=secrets))


def test_a_principal_with_an_entry_per_tenant_is_matched_on_the_deltas_tenant() -> None:
    policies = [_entry("tenant-a", ["Get"]), _entry("TENANT-B", ["List"])]
    change = AccessPolicyChange(
        tenant_id="tenant-b", object_id=OBJECT, operation="remove", permissions=Permissions(secrets=["List"])
    )
    entry = entry_of(policies, change)
    assert entry is not None and entry.permissions.secrets == ("List",)


def test_without_an_entry_in_the_deltas_tenant_the_principals_entry_is_used() -> None:
    change = AccessPolicyChange(
        tenant_id="tenant-c", object_id=OBJECT, operation="remove", permissions=Permissions(secrets=["List"])
    )
    entry = entry_of([_entry("tenant-a", ["Get", "List"])], change)
    assert entry is not None and entry.permissions.secrets == ("Get", "List")
    assert entry_of([], change) is None
