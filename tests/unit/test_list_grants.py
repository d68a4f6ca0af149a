"""A refused secret list says exactly what to grant: Key Vault Reader in an RBAC-mode vault, a `list`-only
access policy entry (plus the policy rule that keeps it) in an access-policy vault; and the grant it
names is one the app then leaves in place."""

from __future__ import annotations

import html

import pytest

from remediations.adapters.errors import AzureCallFailed
from remediations.core.detect import detect
from remediations.core.list_grants import UNKNOWN_PRINCIPAL, secret_list_grant
from remediations.core.model import InventoryError, Scope, SecretMeta
from remediations.core.planning import build_plan
from remediations.core.policy import parse_policy
from remediations.report import build_report
from remediations.report.html import render_html
from remediations.report.markdown import render_markdown
from remediations.report.sarif import sarif_document
from remediations.shell.inventory import inventory
from tests.unit.kv_builders import SUB, MemoryClients, policy_entry, snapshot, vault

APP = "7d0c5e2a-1b3f-4c8d-9e6a-2f4b1c3d5e7f"


class _AppClients(MemoryClients):
    """The in-memory clients signed in as APP, whose secret lists answer `status`."""

    def __init__(self, status: int, *vaults: object) -> None:
        super().__init__(*vaults)  # type: ignore[arg-type]
        self.status = status

    def own_object_id(self) -> str | None:
        return APP

    def keyvault_secrets(self, vault_uri: str) -> object:  # type: ignore[override]
        status = self.status

        class Refusing:
            def list_secret_metadata(self) -> list[SecretMeta]:
                raise AzureCallFailed(f"list secrets in {vault_uri}", status, "Forbidden", "denied")

        return Refusing()


def test_an_rbac_vault_needs_key_vault_reader_which_infra_assigns() -> None:
    grant = secret_list_grant(vault("kv-rbac", rbac=True), APP)
    assert grant.startswith("Key Vault Reader for the app's identity on kv-rbac")
    assert "infra/ assigns it" in grant and "access policy" not in grant


def test_an_access_policy_vault_needs_a_list_only_entry_and_the_rule_that_keeps_it() -> None:
    grant = secret_list_grant(vault("kv-ap"), APP)
    command = f"`az keyvault set-policy --name kv-ap --object-id {APP} --secret-permissions list`"
    assert command in grant
    assert f'{APP} in the policy\'s secretPermissions.byIdentity as ["list"]' in grant
    assert "never get" in grant and "migrate_to_rbac" in grant
    # The app's object id unknown (no token): a placeholder, never a made-up id.
    assert f"--object-id {UNKNOWN_PRINCIPAL} " in secret_list_grant(vault("kv-ap"), None)


def test_the_grant_named_for_an_access_policy_vault_is_one_the_app_keeps() -> None:
    """The entry and policy rule the message asks for draw no finding and no write; without the rule
    the app's own `secret_list_permission` would take the entry away again."""
    kv = vault("kv-ap", policy_entry(APP, "list"))
    keeps = parse_policy({"secretPermissions": {"byIdentity": {APP: ["list"]}}})
    assert [f for f in detect(snapshot(kv), keeps) if f.principal == APP] == []
    assert build_plan(detect(snapshot(kv), keeps), snapshot(kv), keeps).actions == ()
    without_rule = [f.detector_id for f in detect(snapshot(kv), parse_policy({})) if f.principal == APP]
    assert without_rule == ["secret_list_permission"]


@pytest.mark.parametrize(
    ("rbac", "names"), [(True, "Key Vault Reader"), (False, "--secret-permissions list")]
)
def test_a_refused_list_in_the_inventory_carries_the_grant(rbac: bool, names: str) -> None:
    kv = vault("kv", rbac=rbac)
    snap = inventory(Scope(subscription_id=SUB), _AppClients(403, kv))
    [error] = snap.errors
    assert (error.operation, error.status, error.partial) == ("list secrets", 403, True)
    assert error.remedy == secret_list_grant(kv, APP) and names in error.remedy
    assert error.message.endswith("denied")  # the service's own words are kept beside it


def test_a_failure_that_is_not_a_refusal_names_no_grant() -> None:
    snap = inventory(Scope(subscription_id=SUB), _AppClients(404, vault("kv")))
    assert [(e.status, e.remedy) for e in snap.errors] == [(404, None)]


def test_the_report_names_the_grant_for_the_unknown_vault() -> None:
    kv = vault("kv-prod")
    refused = InventoryError(
        resource_id=kv.id,
        operation="list secrets",
        status=403,
        message="Forbidden",
        partial=True,
        remedy=secret_list_grant(kv, APP),
    )
    report = build_report(findings=[], snapshot=snapshot(kv).model_copy(update={"errors": (refused,)}))
    assert report.summary.exposure_unknown == (
        f"unknown: cannot list secrets in kv-prod (HTTP 403); grant {secret_list_grant(kv, APP)}",
    )
    grant_html = html.escape(f"; grant {secret_list_grant(kv, APP)}")
    assert f"Forbidden{grant_html}</td>" in render_html(report)  # the inventory errors table
    markdown = render_markdown(report).replace("\\", "")  # its escapes of ` and [ ] taken out
    assert f"| 403 | Forbidden; grant {secret_list_grant(kv, APP)} |" in markdown
    [notification] = sarif_document(report)["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert notification["message"]["text"].endswith(f"; grant {secret_list_grant(kv, APP)}")
