"""Findings and plans unchanged: the demo scenario's dry run through the one pipeline gives the finding
ids and planned changes committed in tests/fixtures/golden/demo.json (tests/golden.py makes both).
A change that means to alter them rewrites the file with `python -m tests.golden --update` and says why."""

from __future__ import annotations

import json
from typing import Any

from emulator import Emulator
from remediations.core.evidence import Evidence
from tests.golden import GOLDEN, dry_run, golden_of, render


def test_the_demo_dry_run_finds_and_plans_what_the_golden_file_says(
    seeded_emu: Emulator, seed: dict[str, Any]
) -> None:
    result = dry_run(seeded_emu.env)
    assert result.plan.dry_run and {o.status for o in result.outcomes} <= {"skipped"}  # nothing written

    # Each finding's evidence is its detector's registered model, exactly (read back, it writes the same).
    assert all(Evidence.of(f).as_dict() == f.evidence for f in result.findings)
    now = golden_of(result)
    kept = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert now["findings"] == kept["findings"], "findings changed: python -m tests.golden --check"
    assert now["actions"] == kept["actions"], "planned changes changed: python -m tests.golden --check"
    assert now["deferred"] == kept["deferred"]
    assert render(now) == GOLDEN.read_text(encoding="utf-8")

    # The file is worth checking (the demo finds and plans on both platforms) and holds no secret value.
    detectors = {f["detector"] for f in kept["findings"]}
    assert {"excess_secret_permissions", "flow_insecure_get_secret"} <= detectors
    assert {"narrow_access_policy", "rotate_secret", "revoke_flow_shares"} <= {
        a["remediation"] for a in kept["actions"]
    }
    text = GOLDEN.read_text(encoding="utf-8")
    values = [s["value"] for v in seed["vaults"] for s in v["secrets"] if s.get("value")]
    assert values and not any(value in text for value in values)
