"""Process plumbing for the benchmark: the emulator process, its control port, engine runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class EmulatorProcess:
    """`with EmulatorProcess(spec) as emu:` -> `.env`, `.generated`, `.counts()`, `.reset()`."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}
        self.start_s = 0.0

    def __enter__(self) -> EmulatorProcess:
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.emulator_proc", json.dumps(self.spec)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator process exited with {self.proc.wait()} before serving")
        self.info = json.loads(line)
        self.start_s = time.perf_counter() - started
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def env(self) -> dict[str, str]:
        return dict(self.info["env"])

    @property
    def generated(self) -> dict[str, Any]:
        return dict(self.info["generated"])

    def _call(self, method: str, path: str) -> Any:
        request = urllib.request.Request(
            self.info["control"] + path, method=method, data=b"" if method == "POST" else None
        )
        with _NO_PROXY.open(request, timeout=30) as response:
            return json.loads(response.read())

    def counts(self) -> dict[str, Any]:
        return dict(self._call("GET", "/counts"))

    def reset(self) -> None:
        self._call("POST", "/reset")

    def state(self) -> dict[str, Any]:
        return dict(self._call("GET", "/state"))


def client_env(emulator_env: dict[str, str]) -> dict[str, str]:
    """This process's environment with the emulator's client settings on top (proxy, CA, AZURE_*)."""
    env = dict(os.environ)
    env.update(emulator_env)
    env["PYTHONPATH"] = str(ROOT)
    return env


def run_json(args: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Runs a child Python module that prints one JSON line last; raises with its stderr on failure."""
    done = subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{' '.join(args[:2])} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}"
        )
    return dict(json.loads(lines[-1]))


def run_engine(emulator: EmulatorProcess, spec: dict[str, Any], timeout: float = 3600) -> dict[str, Any]:
    emulator.reset()
    started = time.perf_counter()
    result = run_json(["-m", "bench.engine_proc", json.dumps(spec)], client_env(emulator.env), timeout)
    result["process_wall_s"] = time.perf_counter() - started
    result["emulator"] = emulator.counts()
    return result
