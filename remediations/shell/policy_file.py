"""Reading the policy: from a file, or the app settings (`VAULTGUARD_POLICY_FILE`, `_JSON`). The
policy model and its parsing stay pure in remediations/core/policy.py."""

from __future__ import annotations

import json
from pathlib import Path

from remediations.core.policy import Policy, PolicyError, parse_policy
from remediations.shell.settings import AppSettings


def load_policy_file(path: str | Path) -> Policy:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"policy file {path} cannot be read: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"policy file {path} is not JSON: {exc.msg} at line {exc.lineno}") from exc
    return parse_policy(data, source=f"policy file {path}")


def load_policy(settings: AppSettings | None = None, path: str | Path | None = None) -> Policy:
    """An explicit path wins, then VAULTGUARD_POLICY_FILE, then VAULTGUARD_POLICY_JSON, else defaults."""
    if path is not None:
        return load_policy_file(path)
    settings = settings or AppSettings.from_env()
    if settings.policy_file is not None:
        return load_policy_file(settings.policy_file)
    if settings.policy_json is not None:
        try:
            data = json.loads(settings.policy_json)
        except json.JSONDecodeError as exc:
            raise PolicyError(f"VAULTGUARD_POLICY_JSON is not JSON: {exc.msg}") from exc
        return parse_policy(data, source="VAULTGUARD_POLICY_JSON")
    return Policy()
