"""`serve --help` says what the command does and what its options mean; test.http starts it as README does."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from remediations.__main__ import main as vaultguard
from remediations.serve import main as serve_main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("entry", [lambda: vaultguard(["serve", "--help"]), lambda: serve_main(["--help"])])
def test_serve_help_describes_the_command_and_its_options(
    entry: Callable[[], int], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        entry()
    assert done.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "HTTP functions locally" in out
    assert "VAULTGUARD_LOCAL_FUNCTION_KEY" in out and "/admin/functions/{name}" in out
    assert re.search(r"--host HOST address to listen on \(default: 127\.0\.0\.1", out)
    assert re.search(r"--port PORT port \(default: 7071", out)


def test_test_http_starts_the_runner_as_the_readme_does() -> None:
    first_line = (ROOT / "test.http").read_text(encoding="utf-8").splitlines()[0]
    command = re.search(r"python -m remediations[ .]serve", first_line)
    assert command is not None and command.group(0) == "python -m remediations serve"
    assert "python -m remediations serve" in (ROOT / "README.md").read_text(encoding="utf-8")
