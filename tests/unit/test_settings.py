from __future__ import annotations

from remediations.shell.settings import AppSettings

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
# The least a working deployment sets: storage, and the subscriptions it may look at.
STORAGE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "VAULTGUARD_SUBSCRIPTION_IDS": SUBSCRIPTION}


def test_no_subscriptions_is_a_problem_that_says_what_to_set() -> None:
    """With no subscription every target is out of scope: health must not say `ok`."""
    for unset in ({}, {"VAULTGUARD_SUBSCRIPTION_IDS": ""}, {"VAULTGUARD_SUBSCRIPTION_IDS": " , "}):
        settings = AppSettings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true", **unset})
        assert settings.subscription_ids == ()
        assert settings.problems == (
            "VAULTGUARD_SUBSCRIPTION_IDS is not set: sweeps scan nothing and every ticket, alert and event "
            "is out of scope",
        )


def test_defaults_are_safe() -> None:
    settings = AppSettings.from_env(STORAGE)
    assert settings.dry_run is True
    assert settings.max_actions_per_run == 50
    assert settings.problems == ()


def test_identity_based_storage_is_accepted() -> None:
    env = {
        "AzureWebJobsStorage__queueServiceUri": "https://st.queue.core.windows.net",
        "AzureWebJobsStorage__tableServiceUri": "https://st.table.core.windows.net",
        "VAULTGUARD_SUBSCRIPTION_IDS": SUBSCRIPTION,
    }
    assert AppSettings.from_env(env).problems == ()


def test_bad_values_are_named() -> None:
    env = {
        **STORAGE,
        "VAULTGUARD_MAX_ACTIONS_PER_RUN": "-3",
        "VAULTGUARD_SWEEP_SCHEDULE": "every hour",
        "VAULTGUARD_QUEUE_NAME": "Bad_Queue",
        "VAULTGUARD_SUBSCRIPTION_IDS": "00000000-0000-0000-0000-000000000001, nope",
    }
    settings = AppSettings.from_env(env)
    joined = " ".join(settings.problems)
    for name in ("MAX_ACTIONS_PER_RUN", "SWEEP_SCHEDULE", "QUEUE_NAME", "SUBSCRIPTION_IDS"):
        assert name in joined
    assert settings.subscription_ids == ("00000000-0000-0000-0000-000000000001",)
    assert "nope" not in joined


def test_authenticated_callers_are_off_by_default_and_headers_untrusted() -> None:
    settings = AppSettings.from_env(STORAGE)
    assert settings.require_authenticated_caller is False
    assert settings.allowed_caller_roles == ()
    assert settings.callers_required is False
    assert settings.trusts_principal_headers is False


def test_requiring_callers_without_easy_auth_trusts_no_header_and_says_why() -> None:
    """Requiring callers does not make client-sent principal headers true; without App
    Service Authentication the deployment fails closed and the health problems say so."""
    required = AppSettings.from_env({**STORAGE, "VAULTGUARD_REQUIRE_AUTHENTICATED_CALLER": "true"})
    assert required.callers_required and not required.trusts_principal_headers
    assert required.cannot_check_callers is not None
    assert any("WEBSITE_AUTH_ENABLED" in p for p in required.problems)
    roles = AppSettings.from_env({**STORAGE, "VAULTGUARD_ALLOWED_CALLER_ROLES": " Remediator, Admin,,Admin "})
    assert roles.allowed_caller_roles == ("Remediator", "Admin")
    assert roles.callers_required and not roles.trusts_principal_headers
    behind = AppSettings.from_env(
        {**STORAGE, "VAULTGUARD_ALLOWED_CALLER_ROLES": "Remediator", "WEBSITE_AUTH_ENABLED": "true"}
    )
    assert behind.trusts_principal_headers and behind.cannot_check_callers is None
    assert behind.problems == ()


def test_the_platform_saying_easy_auth_is_on_trusts_the_headers_without_requiring_callers() -> None:
    settings = AppSettings.from_env({**STORAGE, "WEBSITE_AUTH_ENABLED": "True"})
    assert settings.trusts_principal_headers is True
    assert settings.callers_required is False


def test_an_unreadable_requirement_fails_closed_and_is_named() -> None:
    settings = AppSettings.from_env(
        {
            **STORAGE,
            "VAULTGUARD_REQUIRE_AUTHENTICATED_CALLER": "maybe",
            "VAULTGUARD_ALLOWED_CALLER_ROLES": "Remediator,has space",
        }
    )
    assert settings.require_authenticated_caller is True
    joined = " ".join(settings.problems)
    assert "VAULTGUARD_REQUIRE_AUTHENTICATED_CALLER" in joined
    assert "VAULTGUARD_ALLOWED_CALLER_ROLES" in joined
    assert "maybe" not in joined and "has space" not in joined


def test_approval_settings_are_read_and_an_insecure_webhook_is_a_problem() -> None:
    settings = AppSettings.from_env(
        {
            "VAULTGUARD_APPROVER_ROLES": "Vaultguard.Approver, Vaultguard.Approver,CAB",
            "VAULTGUARD_APPROVAL_WEBHOOK_URL": "https://contoso.webhook.office.com/webhookb2/x",
            "WEBSITE_HOSTNAME": "vaultguard.azurewebsites.net",
        }
    )
    assert settings.approver_roles == ("Vaultguard.Approver", "CAB")
    assert settings.approval_webhook_url == "https://contoso.webhook.office.com/webhookb2/x"
    assert settings.hostname == "vaultguard.azurewebsites.net"
    assert AppSettings.from_env(
        {"VAULTGUARD_APPROVAL_WEBHOOK_URL": "http://127.0.0.1:8080/hook"}
    ).approval_webhook_url
    for url in ("http://hooks.example.com/x", "ftp://x", "https://"):
        insecure = AppSettings.from_env({"VAULTGUARD_APPROVAL_WEBHOOK_URL": url})
        assert insecure.approval_webhook_url is None
        assert any("VAULTGUARD_APPROVAL_WEBHOOK_URL" in p for p in insecure.problems)
        assert not any(url in p for p in insecure.problems)  # problems name settings, never values
    bad_role = AppSettings.from_env({"VAULTGUARD_APPROVER_ROLES": "has space"})
    assert any("VAULTGUARD_APPROVER_ROLES" in p for p in bad_role.problems)
