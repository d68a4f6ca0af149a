"""report.html renders in a real browser: headless Chromium takes a screenshot of the seed report.

Skipped where Chromium is not installed (CI does not install it; `apt-get install chromium`)."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from remediations.report import write_reports
from tests.unit.report_builders import seed_report

CHROMIUM = Path("/usr/bin/chromium")


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)")
def test_report_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    paths = write_reports(tmp_path, seed_report(), ["html"])
    shot = tmp_path / "report.png"
    dom = subprocess.run(
        [
            str(CHROMIUM),
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            paths["html"].as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    # The browser parsed our page into the DOM we meant: both figures with their SVGs.
    assert 'id="graph-before"' in dom and 'id="graph-after"' in dom and dom.count("<svg") == 2
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1440,2400",
            f"--screenshot={shot}",
            paths["html"].as_uri(),
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
    data = shot.read_bytes()
    assert _png_size(data) == (1440, 2400)
    assert len(data) > 50_000  # a blank page compresses to a few KB; the report is far richer
