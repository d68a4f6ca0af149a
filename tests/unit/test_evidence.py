from __future__ import annotations

import pydantic
import pytest

from remediations.core.evidence import AccessPolicyEvidence, ExcessPermissionsEvidence, entry_evidence
from remediations.core.model import Finding


def _finding(detector_id: str, evidence: dict[str, object]) -> Finding:
    return Finding.create(
        detector_id=detector_id,
        severity="high",
        resource_id="/subscriptions/s/resourceGroups/r/providers/Microsoft.KeyVault/vaults/kv",
        principal="oid",
        message="m",
        evidence=evidence,
    )


def test_evidence_keeps_the_wire_names_and_leaves_out_what_was_not_given() -> None:
    evidence = ExcessPermissionsEvidence(
        vault="kv",
        object_id="oid",
        application_id=None,
        secret_permissions=("get", "list"),
        allowed=("get",),
        excess=("list",),
    )
    assert evidence.as_dict() == {
        "vault": "kv",
        "objectId": "oid",
        "applicationId": None,
        "secretPermissions": ["get", "list"],
        "allowed": ["get"],
        "excess": ["list"],
    }
    read = entry_evidence(_finding("excess_secret_permissions", evidence.as_dict()))
    assert isinstance(read, ExcessPermissionsEvidence) and read.excess == ("list",)
    assert read.needed_secret_names is None


def test_reading_evidence_refuses_a_key_its_detector_does_not_write() -> None:
    plain = {"vault": "kv", "objectId": "oid", "applicationId": "app", "secretPermissions": ["list"]}
    assert entry_evidence(_finding("secret_list_permission", plain)).application_id == "app"
    with pytest.raises(pydantic.ValidationError):
        AccessPolicyEvidence.of(_finding("secret_list_permission", {**plain, "excess": ["list"]}))
