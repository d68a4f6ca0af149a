"""`SecretValue`: a secret in memory, on its way from a rotator to Key Vault. It cannot be printed,
logged, compared by `==`, pickled or serialised; `reveal()` is called only where the value is sent
(Key Vault `set secret`) or compared (read-back verification)."""

from __future__ import annotations

import hmac
from typing import NoReturn

_REDACTED = "SecretValue(<redacted>)"


class SecretValue:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not value:
            raise ValueError("a secret value must not be empty")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def same_as(self, other: str | SecretValue | None) -> bool:
        """Constant-time comparison with a value read back."""
        if isinstance(other, SecretValue):
            other = other.reveal()
        return other is not None and hmac.compare_digest(self._value.encode(), other.encode())

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return _REDACTED

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return _REDACTED

    def __eq__(self, other: object) -> bool:  # `==` would invite comparisons that leak timing
        return self is other

    __hash__ = object.__hash__

    def __reduce__(self) -> NoReturn:
        raise TypeError("a SecretValue cannot be pickled or serialised")
