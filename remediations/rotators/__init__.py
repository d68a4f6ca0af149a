"""Rotators: how a new value for a secret comes to exist, chosen by the secret's `rotator` tag (or the
policy's `rotation.defaultRotator`). `rotate_secret` does the Key Vault cut-over around them.

A rotator has a pure `check` (can this secret be rotated this way? used at plan time), `prepare` (make
the new value: generate it, or create it at the issuer: Graph addPassword, storage regenerateKey),
`verify` (the issuer reflects it) and `complete` (the pending step after the cut-over: remove the old
client secret, regenerate the old key). Every call to Azure is a named step, so a failure names it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Protocol, TypeVar

from remediations.core.model import SecretRotationChange, SecretVersionMeta
from remediations.core.policy import RotationRules
from remediations.core.secret_value import SecretValue
from remediations.ports import AzureCallFailed, Clients

T = TypeVar("T")


class StepFailed(Exception):
    """A rotation step failed; `step` names it (`set-new-version`, `verify`, `disable-old`, ...)."""

    def __init__(self, step: str, message: str) -> None:
        self.step = step
        self.message = message
        super().__init__(f"step {step}: {message}")


@dataclass
class RotationContext:
    action_id: str
    change: SecretRotationChange
    clients: Clients
    current: SecretVersionMeta  # the version being replaced (the exposed one)
    now: datetime
    expires: datetime
    steps: list[str] = field(default_factory=list)  # completed steps, in order

    def step(self, name: str, call: Callable[[], T]) -> T:
        """Run one step; an Azure failure becomes StepFailed naming it."""
        try:
            result = call()
        except AzureCallFailed as error:
            raise StepFailed(name, str(error)) from error
        self.steps.append(name)
        return result


@dataclass
class Prepared:
    value: SecretValue
    tags: dict[str, str]  # rotator tags for the new version (keyId, keyName, pending follow-up)
    content_type: str
    rollback: Callable[[], None] | None = None  # undo `prepare` when the new version cannot be stored
    rollback_step: str = "rollback"


class Rotator(Protocol):
    name: ClassVar[str]
    replaces_value: ClassVar[bool]  # False: `manual` disables and reports, it makes no new value

    def check(self, tags: Mapping[str, str], rules: RotationRules) -> str | None:
        """Pure: why this secret cannot be rotated this way (missing tags...), or None."""

    def prepare(self, ctx: RotationContext) -> Prepared: ...

    def verify(self, ctx: RotationContext, new_tags: Mapping[str, str], value: SecretValue | None) -> None:
        """Raise StepFailed when the issuer does not reflect the new value."""

    def complete(self, ctx: RotationContext, tags: Mapping[str, str]) -> None:
        """The pending step recorded in `tags` (pendingRemoveKeyId / pendingRegenerateKey)."""


_ROTATORS: dict[str, Rotator] = {}
R = TypeVar("R", bound=type)


def rotator(cls: R) -> R:
    """Register a rotator class by its `name`."""
    instance: Rotator = cls()
    if instance.name in _ROTATORS:
        raise ValueError(f"rotator {instance.name!r} is registered twice")
    _ROTATORS[instance.name] = instance
    return cls


def get_rotator(name: str) -> Rotator | None:
    return _ROTATORS.get(name)


def rotator_names() -> list[str]:
    return sorted(_ROTATORS)


# Importing the built-in rotators registers them.
from remediations.rotators import app_credential, manual, random_value, storage_key  # noqa: E402

__all__ = [
    "Prepared",
    "RotationContext",
    "Rotator",
    "StepFailed",
    "app_credential",
    "get_rotator",
    "manual",
    "random_value",
    "rotator",
    "rotator_names",
    "storage_key",
]
