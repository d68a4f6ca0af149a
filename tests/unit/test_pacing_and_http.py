"""The ARM write pacer (token bucket) and the shared session's environment handling."""

from __future__ import annotations

import pytest

from remediations.adapters.http import EnvOnceSession, _bypassed
from remediations.adapters.keyvault_data import secret_meta_from_item
from remediations.shell.pacing import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_bucket_bursts_to_capacity_then_paces_at_the_refill_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(200, 10, clock=clock, sleep=clock.sleep)
    for _ in range(200):
        assert bucket.acquire() == 0.0
    for _ in range(50):
        bucket.acquire()
    # 50 writes beyond the burst at 10/s: (250 - 200) / 10 = 5 s, the model's bucket_time
    assert clock.now == pytest.approx(5.0)
    assert bucket.waited_s == pytest.approx(sum(clock.slept))


def test_bucket_takes_several_tokens_for_a_multi_write_action() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2, 1, clock=clock, sleep=clock.sleep)
    bucket.acquire(2)
    bucket.acquire(2)
    assert clock.now == pytest.approx(2.0)
    with pytest.raises(ValueError):
        TokenBucket(0, 1)


def test_no_proxy_matching() -> None:
    entries = ("127.0.0.1", "localhost", ".internal.example")
    assert _bypassed("localhost", entries)
    assert _bypassed("db.internal.example", entries)
    assert not _bypassed("management.azure.com", entries)
    assert _bypassed("anything", ("*",))


def test_session_reads_proxy_and_ca_bundle_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "localhost")
    monkeypatch.setenv("no_proxy", "localhost")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/tmp/ca.pem")
    session = EnvOnceSession()
    monkeypatch.setenv("HTTPS_PROXY", "http://changed.example:1")  # read once: later changes are not seen
    monkeypatch.setenv("https_proxy", "http://changed.example:1")
    url = "https://kv-1.vault.azure.net/secrets"
    settings = session.merge_environment_settings(url, {}, None, True, None)
    assert settings["proxies"]["https"] == "http://proxy.example:3128"
    assert settings["verify"] == "/tmp/ca.pem"
    local = session.merge_environment_settings("https://localhost:10000/x", {}, None, True, None)
    assert "https" not in local["proxies"]
    assert session.merge_environment_settings("https://a", {}, None, False, None)["verify"] is False
    assert not session.trust_env


def test_secret_item_maps_to_metadata_without_a_value() -> None:
    meta = secret_meta_from_item(
        {
            "id": "https://kv-1.vault.azure.net/secrets/db-password",
            "attributes": {"enabled": True, "exp": 1_700_000_000},
            "tags": {"owner": "payroll"},
            "contentType": "text/plain",
        }
    )
    assert meta.name == "db-password" and meta.enabled is True
    assert meta.expires is not None and meta.expires.year == 2023
    assert meta.tags == {"owner": "payroll"} and meta.content_type == "text/plain"
    bare = secret_meta_from_item({"id": "https://kv-1.vault.azure.net/secrets/x"})
    assert bare.enabled is None and bare.expires is None and bare.tags == {}
