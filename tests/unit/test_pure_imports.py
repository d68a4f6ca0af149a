"""The pure core stays pure: importing a fix module or the detectors loads no Azure SDK module
(they depend on `remediations.ports`, not on `remediations.adapters`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from remediations.core.registry import remediation_ids

ROOT = Path(__file__).resolve().parents[2]
_PURE = [f"remediations.fixes.{rid}" for rid in remediation_ids()] + [
    "remediations.core.detect",
    "remediations.ports",
]

_PROBE = """
import importlib, sys
importlib.import_module(sys.argv[1])
if sys.argv[1] == "remediations.core.detect":
    from remediations.core.detect import detector_ids
    detector_ids()  # imports every detector module
loaded = sorted(m for m in sys.modules if m.startswith("azure"))
print(",".join(loaded[:5]))
sys.exit(1 if loaded else 0)
"""


@pytest.mark.parametrize("module", _PURE)
def test_importing_loads_no_azure_module(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, module], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{module} loaded azure modules: {result.stdout}{result.stderr}"
