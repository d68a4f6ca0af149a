from __future__ import annotations

import pytest

from remediations.adapters.errors import AzureCallFailed
from remediations.adapters.retry import with_retry


def test_throttling_is_retried_honouring_retry_after() -> None:
    waits: list[float] = []
    attempts = iter(
        [
            AzureCallFailed("op", 429, "TooManyRequests", "slow down", retry_after=7),
            AzureCallFailed("op", 503, None, "busy"),
        ]
    )

    def call() -> str:
        error = next(attempts, None)
        if error is not None:
            raise error
        return "done"

    assert with_retry("op", call, sleep=waits.append) == "done"
    assert waits[0] == 7 and 0 < waits[1] <= 8


def test_forbidden_is_not_retried() -> None:
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        raise AzureCallFailed("op", 403, "Forbidden", "no")

    with pytest.raises(AzureCallFailed, match="403"):
        with_retry("op", call, sleep=lambda s: None)
    assert len(calls) == 1


def test_gives_up_after_the_attempt_limit() -> None:
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        raise AzureCallFailed("op", 500, None, "boom")

    with pytest.raises(AzureCallFailed, match="500"):
        with_retry("op", call, attempts=3, sleep=lambda s: None)
    assert len(calls) == 3
