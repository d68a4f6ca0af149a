"""The demo's child processes: the emulator, Azurite and the local function runner.

Each child runs in its own process group (`start_new_session`), so a Ctrl-C in the terminal reaches
only the demo, which then stops every child by group (SIGTERM, then SIGKILL) and removes its temp dir.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from emulator.azurite import Azurite, AzuriteNotInstalled
from emulator.ports import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "emulator" / "scenarios" / "seed.json"


class DemoError(RuntimeError):
    """A clear, user-facing reason the demo cannot go on (missing tool, child that did not start)."""


def check_prerequisites() -> None:
    if shutil.which("node") is None:
        raise DemoError(
            "node (Node.js) is not on PATH: Azurite needs it. Install nodejs and npm, then run `make demo`."
        )
    try:
        from emulator.azurite import azurite_binary

        azurite_binary()
    except AzuriteNotInstalled as error:
        raise DemoError(str(error)) from None


def _stop_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class _Tail:
    """Keeps the last lines of a child's stderr, for an error message if it dies."""

    def __init__(self, stream: object, keep: int = 40) -> None:
        self.lines: list[str] = []
        self._keep = keep
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            self.lines.append(raw.decode("utf-8", errors="replace").rstrip())
            del self.lines[: -self._keep]

    def text(self) -> str:
        return "\n".join(self.lines[-12:])


class Children:
    """Starts and stops the demo's children; `with Children() as kids:`."""

    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="vaultguard-demo-"))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.emulator: subprocess.Popen[bytes] | None = None
        self.emulator_env: dict[str, str] = {}
        self.azurite: Azurite | None = None
        self.runner_url = ""
        self._tails: dict[int, _Tail] = {}

    # -- emulator -------------------------------------------------------------------------------
    def start_emulator(self, scenario: Path = SEED, timeout: float = 30.0) -> dict[str, str]:
        """`python -m emulator serve`: read its `export NAME=value` lines until `ready`."""
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "emulator",
                "serve",
                "--scenario",
                str(scenario),
                "--dump",
                str(self.state_file),
                "--requests",
                str(self.requests_file),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.procs.append(proc)
        self.emulator = proc
        self._tails[proc.pid] = _Tail(proc.stderr)
        env: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode().strip()
            if line == "ready":
                self.emulator_env = env
                return env
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").partition("=")
                env[name] = shlex.split(value)[0] if value else ""
            if time.monotonic() > deadline:
                break
        raise DemoError(f"the emulator did not start:\n{self._tails[proc.pid].text()}")

    @property
    def state_file(self) -> Path:
        return self.tmp / "emulator-state.json"

    @property
    def requests_file(self) -> Path:
        return self.tmp / "emulator-requests.jsonl"

    def stop_emulator(self) -> None:
        """SIGTERM: the emulator writes its state and request log, then exits."""
        if self.emulator is not None:
            _stop_group(self.emulator, timeout=30)
            if self.emulator.returncode not in (0, -signal.SIGTERM):
                raise DemoError(f"the emulator failed on exit:\n{self._tails[self.emulator.pid].text()}")

    # -- Azurite --------------------------------------------------------------------------------
    def start_azurite(self) -> str:
        try:
            self.azurite = Azurite().start()
        except AzuriteNotInstalled as error:
            raise DemoError(str(error)) from None
        except TimeoutError as error:
            raise DemoError(f"Azurite did not start: {error}") from None
        return self.azurite.connection_string

    # -- local function runner ------------------------------------------------------------------
    def start_runner(self, env: dict[str, str], timeout: float = 30.0) -> str:
        """`python -m remediations serve --port N`: the app's functions over real HTTP."""
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "remediations", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.procs.append(proc)
        self._tails[proc.pid] = _Tail(proc.stderr)
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise DemoError(
                    f"the local function runner exited (code {proc.returncode}); port {port} taken?\n"
                    f"{self._tails[proc.pid].text()}"
                )
            try:
                wait_for_port(port, timeout=0.5)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise DemoError(f"the local function runner is not listening on port {port}") from None
        self.runner_url = f"http://127.0.0.1:{port}"
        return self.runner_url

    def runner_log(self) -> str:
        runner = self.procs[-1] if self.procs else None
        return self._tails[runner.pid].text() if runner is not None and runner.pid in self._tails else ""

    # -- all ------------------------------------------------------------------------------------
    def stop(self) -> None:
        for proc in reversed(self.procs):
            _stop_group(proc)
        for proc in self.procs:
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()
        self.procs.clear()
        if self.azurite is not None:
            self.azurite.stop()
            self.azurite = None
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def interrupts_as_keyboard_interrupt() -> Iterator[None]:
    """SIGTERM (and SIGINT, SIGHUP) raise KeyboardInterrupt, so `finally` blocks stop the children."""

    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    for sig in previous:
        signal.signal(sig, raise_interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
