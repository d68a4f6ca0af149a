"""Start and stop Azurite (the real Azure Storage emulator, from npm) on free ports.

Used by the pytest fixture, `make demo` and the benchmarks. Data lives in a temp dir that is
removed on stop.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from emulator.ports import free_port, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
# Azurite's published development account; not a secret (documented by Microsoft).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteNotInstalled(RuntimeError):
    pass


def azurite_binary() -> Path:
    binary = ROOT / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        raise AzuriteNotInstalled(
            f"Azurite is not installed at {binary}: run `make node_modules/.installed` (needs node and npm)"
        )
    return binary


class Azurite:
    """`with Azurite() as az: az.connection_string` — blob, queue and table on free ports."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.blob_port = free_port(host)
        self.queue_port = free_port(host)
        self.table_port = free_port(host)
        self._dir: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        base = f"http://{self.host}"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={base}:{self.blob_port}/{ACCOUNT};"
            f"QueueEndpoint={base}:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint={base}:{self.table_port}/{ACCOUNT};"
        )

    def start(self) -> Azurite:
        binary = azurite_binary()
        self._dir = tempfile.mkdtemp(prefix="azurite-")
        self._proc = subprocess.Popen(
            [
                str(binary),
                "--silent",
                "--skipApiVersionCheck",
                "--loose",
                "--location",
                self._dir,
                "--blobHost",
                self.host,
                "--blobPort",
                str(self.blob_port),
                "--queueHost",
                self.host,
                "--queuePort",
                str(self.queue_port),
                "--tableHost",
                self.host,
                "--tablePort",
                str(self.table_port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
            start_new_session=True,
        )
        try:
            for port in (self.blob_port, self.queue_port, self.table_port):
                wait_for_port(port, self.host, timeout=60)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            if self._proc.stderr is not None:
                self._proc.stderr.close()
            self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
