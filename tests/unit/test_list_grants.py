"""A refused secret list says exactly what would let it through: Key Vault Reader in an RBAC-mode vault, a
`list`-only access policy entry in an access-policy vault, network access when the vault's firewall or
private link refused it; and the grant it names is one the app then leaves in place."""

from __future__ import annotations

import html

import pytest

from remediations.adapters.errors import AzureCallFailed
from remediations.core.detect import detect, own_list_notes
from remediations.core.list_grants import (
    UNKNOWN_PRINCIPAL,
    is_own_list_entry,
    secret_list_grant,
    secret_list_remedy,
)
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

    def __init__(self, status: int, *vaults: object, inner: str | None = None) -> None:
        super().__init__(*vaults)  # type: ignore[arg-type]
        self.status, self.inner = status, inner

    def own_object_id(self) -> str | None:
        return APP

    def keyvault_secrets(self, vault_uri: str) -> object:  # type: ignore[override]
        status, inner = self.status, self.inner

        class Refusing:
            def list_secret_metadata(self) -> list[SecretMeta]:
                raise AzureCallFailed(
                    f"list secrets in {vault_uri}", status, "Forbidden", "denied", None, inner
                )

        return Refusing()


def test_an_rbac_vault_needs_key_vault_reader_which_infra_assigns() -> None:
    grant = secret_list_grant(vault("kv-rbac", rbac=True), APP)
    assert grant.startswith("grant Key Vault Reader for the app's identity on kv-rbac")
    assert "infra/ assigns it" in grant and "access policy" not in grant


def test_an_access_policy_vault_needs_a_list_only_entry_and_the_rule_that_keeps_it() -> None:
    grant = secret_list_grant(vault("kv-ap"), APP)
    command = f"`az keyvault set-policy --name kv-ap --object-id {APP} --secret-permissions list`"
    assert command in grant
    assert "byIdentity" not in grant  # the app leaves its own list-only entry alone, no rule needed
    assert "never get" in grant and "migrate_to_rbac" in grant
    # The app's object id unknown (no token): a placeholder, never a made-up id.
    assert f"--object-id {UNKNOWN_PRINCIPAL} " in secret_list_grant(vault("kv-ap"), None)


def test_the_grant_named_for_an_access_policy_vault_is_one_the_app_keeps() -> None:
    """The list-only entry the message asks for draws no finding and no write when the snapshot knows
    the app's object id, and the run says it left it alone; with no policy rule for the app."""
    kv = vault("kv-ap", policy_entry(APP, "list"))
    mine = snapshot(kv).model_copy(update={"app_object_id": APP})
    no_rule = parse_policy({})
    assert detect(mine, no_rule) == []
    assert build_plan(detect(mine, no_rule), mine, no_rule).actions == ()
    [note] = own_list_notes(mine, no_rule)
    assert note.startswith(f"left alone: the app's own identity {APP} holds secret list only on vault kv-ap")
    # Unknown to the run (no token), the same entry is judged like any other identity's.
    assert [f.detector_id for f in detect(snapshot(kv), no_rule)] == ["secret_list_permission"]
    assert own_list_notes(snapshot(kv), no_rule) == []


@pytest.mark.parametrize(
    ("secrets", "judged"),
    [
        (("get", "list"), ["secret_list_permission"]),  # get beside list: the app could read values
        (("all",), ["secret_list_permission"]),  # `all` expands to get and list
        (("get",), []),  # no list: nothing for the list detector, as for any identity without a rule
    ],
)
def test_any_other_permission_of_the_apps_identity_is_judged_as_before(
    secrets: tuple[str, ...], judged: list[str]
) -> None:
    kv = vault("kv-ap", policy_entry(APP, *secrets))
    mine = snapshot(kv).model_copy(update={"app_object_id": APP})
    assert [f.detector_id for f in detect(mine, parse_policy({}))] == judged
    assert own_list_notes(mine, parse_policy({})) == []
    # With an allow-list rule for the app, the excess beyond it is judged.
    rule = parse_policy({"secretPermissions": {"byIdentity": {APP: []}}})
    assert [f.detector_id for f in detect(mine, rule)] == ["excess_secret_permissions"]


def test_only_the_apps_own_plain_entry_is_left_alone() -> None:
    other = "0f0e0d0c-0b0a-0908-0706-050403020100"
    [mine] = vault("kv", policy_entry(APP.upper(), "List")).access_policies
    [theirs] = vault("kv", policy_entry(other, "list")).access_policies
    assert is_own_list_entry(mine, APP)  # object ids and permission names compared case-insensitively
    assert not is_own_list_entry(theirs, APP) and not is_own_list_entry(mine, None)
    compound = mine.model_copy(update={"application_id": other})  # a user through an application
    assert not is_own_list_entry(compound, APP)


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


@pytest.mark.parametrize(
    ("inner", "says"),
    [
        ("ForbiddenByFirewall", "networkAcls.ipRules"),
        ("ForbiddenByConnection", "public network access is disabled"),
    ],
)
@pytest.mark.parametrize("rbac", [True, False])
def test_a_network_refusal_names_network_access_not_a_grant(inner: str, says: str, rbac: bool) -> None:
    kv = vault("kv", rbac=rbac)
    snap = inventory(Scope(subscription_id=SUB), _AppClients(403, kv, inner=inner))
    [error] = snap.errors
    assert error.remedy == secret_list_remedy(kv, APP, inner)
    assert error.remedy.startswith("allow the app's network access to kv") and says in error.remedy
    assert "Key Vault Reader" not in error.remedy and "set-policy" not in error.remedy
    assert f"HTTP 403 Forbidden/{inner}" in error.message  # the inner code kept on the error


@pytest.mark.parametrize("inner", [None, "AccessDenied", "ForbiddenByPolicy", "ForbiddenByRbac"])
def test_an_authorization_refusal_still_names_the_grant(inner: str | None) -> None:
    kv = vault("kv")
    assert secret_list_remedy(kv, APP, inner) == secret_list_grant(kv, APP)


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
        f"unknown: cannot list secrets in kv-prod (HTTP 403); {secret_list_grant(kv, APP)}",
    )
    grant_html = html.escape(f"; {secret_list_grant(kv, APP)}")
    assert f"Forbidden{grant_html}</td>" in render_html(report)  # the inventory errors table
    markdown = render_markdown(report).replace("\\", "")  # its escapes of ` and [ ] taken out
    assert f"| 403 | Forbidden; {secret_list_grant(kv, APP)} |" in markdown
    [notification] = sarif_document(report)["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert notification["message"]["text"].endswith(f"; {secret_list_grant(kv, APP)}")
