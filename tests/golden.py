"""The demo scenario's findings and planned changes, as a committed golden file.

"Findings and plans unchanged" is checkable: one dry run of the one pipeline (`shell/pipeline.run`)
over the seed scenario (emulator/scenarios/seed.json, served by the emulator, as `make demo` does) with
the demo policy (demo/policy.json), reduced to what a refactor must not change: each finding's id,
detector and severity, and each planned action's id, remediation, target and a digest of its changes
(the payload written) and of its before/after. No secret value is in a plan; digests keep the file short.

    python -m tests.golden            # print the current result
    python -m tests.golden --update   # rewrite tests/fixtures/golden/demo.json
    python -m tests.golden --check    # exit 1 and show what differs

tests/emulator/test_golden.py recomputes it on every `make test`.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "emulator" / "scenarios" / "seed.json"
DEMO_POLICY = ROOT / "demo" / "policy.json"
GOLDEN = ROOT / "tests" / "fixtures" / "golden" / "demo.json"


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _action(action: Any) -> dict[str, Any]:
    return {
        "id": action.id,
        "remediation": action.remediation_id,
        "target": action.target,
        "skipped": action.skip_reason is not None,
        "findings": sorted(action.finding_ids),
        "changes": _digest([c.model_dump(mode="json") for c in action.changes]),
        "before_after": _digest({"before": action.before, "after": action.after}),
    }


def golden_of(result: Any) -> dict[str, Any]:
    """The parts of a run result a refactor must leave unchanged, in a stable order."""
    return {
        "findings": sorted(
            ({"id": f.id, "detector": f.detector_id, "severity": f.severity} for f in result.findings),
            key=lambda f: (f["detector"], f["id"]),
        ),
        "actions": sorted(
            (_action(a) for a in result.plan.actions), key=lambda a: (a["remediation"], a["id"])
        ),
        "deferred": sorted(a.id for a in result.plan.deferred),
    }


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def dry_run(env: Mapping[str, str] | None = None, policy_data: Mapping[str, Any] | None = None) -> Any:
    """One dry run of the pipeline over the seed's subscription and the demo policy's environments, on
    an emulator already serving the seed (`env`: its client environment), or on one started here."""
    from emulator import Emulator
    from emulator.scenario import load_scenario_file
    from remediations.adapters.clients import AzureClients
    from remediations.core.model import Scope
    from remediations.core.policy import parse_policy
    from remediations.core.request import RunRequest
    from remediations.shell.audit import MemoryAuditSink
    from remediations.shell.pipeline import run

    if env is None:
        with Emulator(load_scenario_file(SEED)) as emulator:
            return dry_run(emulator.env, policy_data)
    seed = json.loads(SEED.read_text())
    data = dict(policy_data if policy_data is not None else json.loads(DEMO_POLICY.read_text()))
    policy = parse_policy({**data, "dryRun": True})
    request = RunRequest(
        trigger="cli",
        scope=Scope(subscription_id=seed["subscriptions"][0]["subscriptionId"]),
        power_platform=policy.power_platform.scope(),
        dry_run=True,
        correlation_id="golden",
    )
    with _environment(env), AzureClients() as clients:
        return run(request, policy, clients, MemoryAuditSink())


def render(golden: Mapping[str, Any]) -> str:
    return json.dumps(golden, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.golden", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--update", action="store_true", help=f"rewrite {GOLDEN.relative_to(ROOT)}")
    mode.add_argument("--check", action="store_true", help="exit 1 when the result differs from the file")
    args = parser.parse_args(argv)
    text = render(golden_of(dry_run()))
    if args.update:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
        print(f"wrote {GOLDEN.relative_to(ROOT)}")
        return 0
    if args.check:
        kept = GOLDEN.read_text(encoding="utf-8")
        if kept == text:
            return 0
        diff = difflib.unified_diff(kept.splitlines(True), text.splitlines(True), "golden", "now")
        sys.stdout.writelines(diff)
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
