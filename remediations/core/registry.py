"""Remediations: one module per fix, registered under a stable id equal to its module name.

A remediation is a class with `id`, `metadata`, `handles` (the detector ids whose findings it fixes),
a pure `plan()` and an `apply()` that goes through `Clients`. Dispatch is by id; there is no
signature introspection and no `**kwargs`.

A fix whose action is several writes that must not be audited as one (the RBAC migration: each role
assignment, the verification, the switch, each rollback step) overrides `apply_in_steps` and records
every step through the `StepLog` the shell passes: intent before the call, result after. When the shell
skips such an action (drifted) while an interrupted attempt of it left changes, `undo_inherited` lets
the fix undo them, step by step.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

import remediations.fixes
from remediations.core.model import Action, Change, Finding, Outcome, Severity, Snapshot
from remediations.core.policy import Policy
from remediations.core.request import Targets

if TYPE_CHECKING:
    from remediations.ports import Clients


class RemediationMetadata(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str
    severity: Severity
    risk: str  # what could go wrong when this fix is applied
    permissions_required: tuple[str, ...]  # Azure RBAC actions the app's identity needs
    cli_equivalent: str
    bicep_hint: str


StepState = Literal["applied", "failed"]


class Undone(BaseModel):
    """What became of the changes interrupted attempts of an action left, once the action itself is
    skipped (e.g. drifted): `failed` when some could not be undone, `summary` for the outcome."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    failed: bool
    summary: str
    steps: tuple[str, ...] = ()


class StepLog(Protocol):
    """Where a multi-step fix records each step of one action (the shell audits each as its own row).

    `begin` is called before the step's call and returns the step's number, `end` after it with the
    result, so a crash in between leaves an intent that reconcile settles by re-reading `change`.
    `inherited`: changes an interrupted earlier attempt of the same action made that a re-read found
    still in place (shell/reconcile.py); the fix owns them, e.g. undoes them with its own on a failure,
    and records each as a step of its own (no call between intent and result) so that, interrupted
    in turn, its rows still name them.
    """

    @property
    def inherited(self) -> tuple[Change, ...]: ...

    def begin(self, what: str, change: Change | None = None) -> int: ...

    def end(self, step: int, state: StepState, error: str | None = None) -> None: ...


class UnrecordedSteps:
    """A `StepLog` that records nothing: a fix applied outside the shell (unit tests, `apply`)."""

    def __init__(self) -> None:
        self._count = 0

    @property
    def inherited(self) -> tuple[Change, ...]:
        return ()

    def begin(self, what: str, change: Change | None = None) -> int:
        self._count += 1
        return self._count

    def end(self, step: int, state: StepState, error: str | None = None) -> None:
        return None


class Remediation(ABC):
    id: ClassVar[str]
    metadata: ClassVar[RemediationMetadata]
    handles: ClassVar[frozenset[str]]
    # Whether planning reads secret metadata (names, tags, expiry): the inventory must list secrets.
    needs_secret_metadata: ClassVar[bool] = False
    # Acts on Power Platform (shares, DLP): a sweep plans it once per environment message, never per vault.
    power_platform: ClassVar[bool] = False
    # Plans for the targets a request names (a ticket's secrets, an alert's vault): when a request
    # carries targets, `plan_for_targets` is all this remediation plans (not `plan`, not `unchecked`).
    plans_targets: ClassVar[bool] = False

    def selected_by_default(self, policy: Policy) -> bool:
        """Whether a run that names no remediations (a sweep, an alert) plans this one; a fix that is
        opt-in by policy says no unless the policy asks. A request naming it always plans it."""
        return True

    def unchecked(self, snapshot: Snapshot, policy: Policy) -> list[Action]:
        """Pure: skipped actions for what a failed read kept this remediation from checking (none by
        default). Called on every run the remediation is selected for, findings or not."""
        return []

    def plan_for_targets(self, snapshot: Snapshot, targets: Targets, policy: Policy) -> list[Action]:
        """Pure: the actions for the targets a request names. Called for every selected remediation when
        a request names targets; none by default."""
        return []

    @abstractmethod
    def plan(self, snapshot: Snapshot, findings: list[Finding], policy: Policy) -> list[Action]:
        """Pure: the actions that fix `findings` (already filtered to `handles`)."""

    @abstractmethod
    def apply(self, action: Action, clients: Clients) -> Outcome:
        """Make the change; verify it from the response or a read; never raise for an Azure error.
        Access-policy deltas come back `applied` but not verified: their PUT's response only echoes
        the request, and the shell verifies them with one read of the vault after all its writes."""

    def lease_key(self, action: Action) -> str:
        """What the shell's write lease (shell/write_guard.py) holds while the action is applied: runs
        writing under the same key write one at a time, each re-reading its target under the lease.
        The action's target by default (a vault); a fix whose target has two names overrides it."""
        return action.target

    def apply_in_steps(self, action: Action, clients: Clients, steps: StepLog) -> Outcome:
        """`apply`, each write recorded in `steps`. One step by default: the shell's own pending and
        outcome rows already audit a single write."""
        return self.apply(action, clients)

    def undo_inherited(self, action: Action, clients: Clients, steps: StepLog) -> Undone | None:
        """Called under the target's lease instead of `apply_in_steps` when the action is skipped as
        drifted (there, or a reviewed migration at the start of the run: core/pinned.py `undoes_left`)
        while interrupted attempts of it left changes in place (`steps.inherited`): undo those
        this fix may undo, each write recorded in `steps`. None (the default): nothing is undone, the
        shell names what is left."""
        return None


_REGISTRY: dict[str, type[Remediation]] = {}
R = TypeVar("R", bound=type[Remediation])


def register(cls: R) -> R:
    module_name = cls.__module__.rsplit(".", 1)[-1]
    if cls.id != module_name:
        raise ValueError(f"remediation id {cls.id!r} must equal its module name {module_name!r}")
    if cls.id in _REGISTRY and _REGISTRY[cls.id] is not cls:
        raise ValueError(f"remediation {cls.id!r} is registered twice")
    _REGISTRY[cls.id] = cls
    return cls


@functools.cache
def load_remediations() -> None:
    """Import every module of the `remediations.fixes` package (each registers itself). Once: every
    registry question calls it, and listing the package each time cost a plan about 8 ms."""
    for info in pkgutil.iter_modules(remediations.fixes.__path__):
        if not info.ispkg and not info.name.startswith("_"):
            importlib.import_module(f"remediations.fixes.{info.name}")


def remediation_ids() -> list[str]:
    load_remediations()
    return sorted(_REGISTRY)


def get_remediation(remediation_id: str) -> Remediation:
    load_remediations()
    try:
        return _REGISTRY[remediation_id]()
    except KeyError:
        raise KeyError(f"unknown remediation {remediation_id!r}; known: {sorted(_REGISTRY)}") from None


def all_remediations() -> list[Remediation]:
    return [get_remediation(rid) for rid in remediation_ids()]
