"""The pure core stays pure: importing any `remediations.core` module, a fix module or the detectors
loads no Azure SDK module and none of the shell or the adapters (they depend on `remediations.ports`,
not on `remediations.adapters`), and no module in `remediations/core/` names the shell or the adapters
in an import at all, not even one inside a function."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import remediations.core
import remediations.fixes

ROOT = Path(__file__).resolve().parents[2]
CORE = Path(remediations.core.__path__[0])
# Every module of the core, those of its subpackages (the model) included.
_CORE_MODULES = sorted(m.name for m in pkgutil.walk_packages([str(CORE)], prefix="remediations.core."))
# Every module of the fixes package, its shared write helpers included (not only the registered ids).
_FIX_MODULES = sorted(
    f"remediations.fixes.{m.name}" for m in pkgutil.iter_modules(remediations.fixes.__path__)
)
_PURE = _CORE_MODULES + _FIX_MODULES + ["remediations.ports"]
_IMPURE = ("azure", "remediations.shell", "remediations.adapters")

_PROBE = """
import importlib, sys
importlib.import_module(sys.argv[1])
if sys.argv[1] == "remediations.core.detect":
    from remediations.core.detect import detector_ids
    detector_ids()  # imports every detector module
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "azure"
                or m.startswith(("remediations.shell", "remediations.adapters")))
print(",".join(loaded[:5]))
sys.exit(1 if loaded else 0)
"""


def test_every_fix_module_is_probed() -> None:
    fixes = Path(remediations.fixes.__path__[0])
    assert "remediations.fixes.enforce_keyvault_dlp" in _FIX_MODULES
    assert len(_FIX_MODULES) == len([p for p in fixes.glob("*.py") if p.name != "__init__.py"])


def test_every_core_module_is_probed() -> None:
    assert "remediations.core.detect" in _CORE_MODULES and "remediations.core.planning" in _CORE_MODULES
    assert "remediations.core.model.snapshot" in _CORE_MODULES
    modules = [p for p in CORE.rglob("*.py") if p.name != "__init__.py"]
    packages = [p.parent for p in CORE.rglob("*/__init__.py")]
    assert len(_CORE_MODULES) == len(modules) + len(packages)


@pytest.mark.parametrize("module", _PURE)
def test_importing_loads_no_azure_shell_or_adapter_module(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, module], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{module} loaded {_IMPURE} modules: {result.stdout}{result.stderr}"


def _imported(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: str(p.relative_to(CORE)))
def test_core_never_imports_the_shell_or_adapters(path: Path) -> None:
    imported = _imported(ast.parse(path.read_text(encoding="utf-8")))
    wrong = [name for name in imported if name.startswith(_IMPURE) or name.split(".")[0] == "azure"]
    assert not wrong, f"{path.name} imports {wrong}"
