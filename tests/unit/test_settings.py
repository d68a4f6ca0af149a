from __future__ import annotations

from remediations.core.settings import AppSettings

STORAGE = {"AzureWebJobsStorage": "UseDevelopmentStorage=true"}


def test_defaults_are_safe() -> None:
    settings = AppSettings.from_env(STORAGE)
    assert settings.dry_run is True
    assert settings.max_actions_per_run == 50
    assert settings.problems == ()


def test_identity_based_storage_is_accepted() -> None:
    env = {
        "AzureWebJobsStorage__queueServiceUri": "https://st.queue.core.windows.net",
        "AzureWebJobsStorage__tableServiceUri": "https://st.table.core.windows.net",
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
