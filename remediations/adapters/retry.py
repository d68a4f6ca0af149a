"""Retries around whole idempotent operations (a list, or one access-policy delta).

The SDK clients are built with `retry_total=0`, so this is the only retry layer for our calls
(stacking SDK retries under tenacity would multiply attempts against an already-throttled API).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from azure.core.exceptions import AzureError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from remediations.adapters.errors import AzureCallFailed, translate

T = TypeVar("T")

MAX_ATTEMPTS = 5
MAX_WAIT_SECONDS = 60.0


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, AzureCallFailed) and error.transient


def wait_seconds(state: RetryCallState) -> float:
    """Honour Retry-After when the service sent one; otherwise exponential backoff with jitter."""
    error = state.outcome.exception() if state.outcome is not None else None
    if isinstance(error, AzureCallFailed) and error.retry_after is not None:
        return min(error.retry_after, MAX_WAIT_SECONDS)
    backoff: float = min(0.5 * 2 ** (state.attempt_number - 1), 8.0)
    return backoff * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not cryptography


def with_retry(
    operation: str,
    call: Callable[[], T],
    *,
    attempts: int = MAX_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `call`, translating Azure errors and retrying throttling, 5xx and connection failures."""

    def translated() -> T:
        try:
            return call()
        except AzureError as error:
            raise translate(operation, error) from error

    retrying = Retrying(
        retry=retry_if_exception(_is_transient),
        stop=stop_after_attempt(attempts),
        wait=wait_seconds,
        sleep=sleep,
        reraise=True,
    )
    return retrying(translated)
