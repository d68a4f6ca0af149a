"""Health report: version and configuration problems, by setting name only (never values)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from remediations import __version__
from remediations.shell.settings import AppSettings


def health_report(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    settings = AppSettings.from_env(env)
    return {
        "status": "ok" if not settings.problems else "degraded",
        "version": __version__,
        "dryRun": settings.dry_run,
        "problems": list(settings.problems),
    }
