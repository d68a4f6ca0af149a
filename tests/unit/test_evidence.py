from __future__ import annotations

import pydantic
import pytest

from remediations.core.evidence import (
    AccessPolicyEvidence,
    ExcessPermissionsEvidence,
    FlowStepEvidence,
    RoleGrantEvidence,
)
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
    read = AccessPolicyEvidence.of(_finding("excess_secret_permissions", evidence.as_dict()))
    assert isinstance(read, ExcessPermissionsEvidence) and read.excess == ("list",)
    assert read.needed_secret_names is None


def test_reading_evidence_refuses_a_key_its_detector_does_not_write() -> None:
    plain = {"vault": "kv", "objectId": "oid", "applicationId": "app", "secretPermissions": ["list"]}
    assert AccessPolicyEvidence.of(_finding("secret_list_permission", plain)).application_id == "app"
    with pytest.raises(pydantic.ValidationError):
        AccessPolicyEvidence.of(_finding("secret_list_permission", {**plain, "excess": ["list"]}))


def test_a_reader_gets_the_model_the_detector_registered_or_an_error() -> None:
    plain = {"vault": "kv", "objectId": "oid", "applicationId": None, "secretPermissions": ["list"]}
    read = AccessPolicyEvidence.of(_finding("secret_list_permission", plain))
    assert type(read) is AccessPolicyEvidence  # not parsed as whatever model the reader named
    with pytest.raises(TypeError, match="AccessPolicyEvidence, not RoleGrantEvidence"):
        RoleGrantEvidence.of(_finding("secret_list_permission", plain))
    with pytest.raises(KeyError, match="no detector"):
        AccessPolicyEvidence.of(_finding("no_such_detector", plain))
    # A key the detector no longer writes (renamed) fails loudly instead of reading as "not there".
    renamed = {k if k != "vault" else "vault_name": v for k, v in plain.items()}
    with pytest.raises(pydantic.ValidationError):
        AccessPolicyEvidence.of(_finding("secret_list_permission", renamed))
    step = FlowStepEvidence(flow="f", action_path="List", vault="kv", operation="list_secrets")
    assert FlowStepEvidence.of(_finding("flow_lists_secrets", step.as_dict())) == step
