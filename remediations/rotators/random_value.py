"""`random`: a new strong value from the `secrets` module; length and character set from the tags
`rotationLength` / `rotationCharset`, else the policy's `rotation.randomLength` and alphanumeric."""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from typing import ClassVar

from remediations.core.policy import RotationRules
from remediations.core.rotation import TAG_CHARSET, TAG_LENGTH
from remediations.core.secret_value import SecretValue
from remediations.rotators import Prepared, RotationContext, rotator

CHARSETS: dict[str, str] = {
    "alphanumeric": string.ascii_letters + string.digits,
    "urlsafe": string.ascii_letters + string.digits + "-_",
    "hex": "0123456789abcdef",
    "ascii": "".join(chr(c) for c in range(33, 127)),  # printable, no space
}
MIN_LENGTH, MAX_LENGTH = 16, 4096


def length_and_charset(tags: Mapping[str, str], rules: RotationRules) -> tuple[int, str]:
    raw = tags.get(TAG_LENGTH)
    length = int(raw) if raw is not None and raw.isdigit() else rules.random_length
    return length, tags.get(TAG_CHARSET, "alphanumeric").lower()


@rotator
class RandomRotator:
    name: ClassVar[str] = "random"
    replaces_value: ClassVar[bool] = True

    def check(self, tags: Mapping[str, str], rules: RotationRules) -> str | None:
        raw = tags.get(TAG_LENGTH)
        if raw is not None and not (raw.isdigit() and MIN_LENGTH <= int(raw) <= MAX_LENGTH):
            return f"tag {TAG_LENGTH}={raw!r} is not a length between {MIN_LENGTH} and {MAX_LENGTH}"
        charset = tags.get(TAG_CHARSET, "alphanumeric").lower()
        if charset not in CHARSETS:
            return f"tag {TAG_CHARSET}={charset!r} is not one of {sorted(CHARSETS)}"
        return None

    def prepare(self, ctx: RotationContext) -> Prepared:
        length = ctx.change.value_length or MIN_LENGTH * 2
        alphabet = CHARSETS.get(ctx.change.charset or "alphanumeric", CHARSETS["alphanumeric"])
        value = ctx.step(
            "generate-value", lambda: SecretValue("".join(secrets.choice(alphabet) for _ in range(length)))
        )
        return Prepared(value=value, tags={}, content_type=ctx.current.content_type or "text/plain")

    def verify(self, ctx: RotationContext, new_tags: Mapping[str, str], value: SecretValue | None) -> None:
        return None  # nothing outside Key Vault knows this value; the read-back is the check

    def complete(self, ctx: RotationContext, tags: Mapping[str, str]) -> None:
        return None
