"""`manual`: no new value can be made here (a third-party API key, a password set elsewhere). The
exposed version is disabled and tagged `compromised`, and the run reports it for the secret's owner."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from remediations.core.policy import RotationRules
from remediations.core.secret_value import SecretValue
from remediations.rotators import Prepared, RotationContext, StepFailed, rotator


@rotator
class ManualRotator:
    name: ClassVar[str] = "manual"
    replaces_value: ClassVar[bool] = False

    def check(self, tags: Mapping[str, str], rules: RotationRules) -> str | None:
        return None

    def prepare(self, ctx: RotationContext) -> Prepared:
        raise StepFailed("prepare", "the manual rotator makes no new value")

    def verify(self, ctx: RotationContext, new_tags: Mapping[str, str], value: SecretValue | None) -> None:
        return None

    def complete(self, ctx: RotationContext, tags: Mapping[str, str]) -> None:
        return None
