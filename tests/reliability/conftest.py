"""Reliability tests: the chaos/soak summary line is printed at the end of any session that ran them."""

from __future__ import annotations

import pytest

from tests.reliability.soak import SOAK


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SOAK.tenants:
        terminalreporter.write_sep("=", "chaos summary")
        terminalreporter.write_line(SOAK.line())
