"""How many simple requests per second the emulator serves, measured with the client in other
processes (so the client's GIL does not cap the number): `measure()` returns requests/s.

The client keeps `connections` keep-alive TLS tunnels through the CONNECT proxy and sends a
pre-built authenticated ARM GET (`/subscriptions/{id}`) in a loop on each, with raw sockets to keep
the client cheap. Throttling is turned off while measuring (the ARM read bucket refills at 25/s).

    python -m emulator.capacity [--seconds 3] [--connections 8] [--processes 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import socket
import ssl
import sys
import threading
import time
from typing import Any

_RESPONSE_END = b"\r\n\r\n"


def _connect(proxy: tuple[str, int], ca_bundle: str, host: str) -> ssl.SSLSocket:
    sock = socket.create_connection(proxy, timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
    head = b""
    while _RESPONSE_END not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("proxy closed the connection")
        head += chunk
    context = ssl.create_default_context(cafile=ca_bundle)
    return context.wrap_socket(sock, server_hostname=host)


def _read_response(tls: ssl.SSLSocket, buffer: bytes) -> tuple[int, bytes]:
    while _RESPONSE_END not in buffer:
        chunk = tls.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buffer += chunk
    head, _, rest = buffer.partition(_RESPONSE_END)
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        chunk = tls.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        rest += chunk
    return status, rest[length:]


def _client_process(spec: dict[str, Any], queue: Any) -> None:
    """Runs in a child process: `connections` threads, each looping on one keep-alive tunnel."""
    counts = [0] * spec["connections"]
    errors = [0] * spec["connections"]
    request = (
        f"GET {spec['path']} HTTP/1.1\r\nHost: {spec['host']}\r\nAuthorization: Bearer {spec['token']}\r\n"
        "Accept: application/json\r\n\r\n"
    ).encode()
    start_at = spec["start_at"]
    stop_at = start_at + spec["seconds"]

    def run(slot: int) -> None:
        tls = _connect((spec["proxy_host"], spec["proxy_port"]), spec["ca_bundle"], spec["host"])
        buffer = b""
        while time.time() < start_at:
            time.sleep(0.001)
        while time.time() < stop_at:
            tls.sendall(request)
            status, buffer = _read_response(tls, buffer)
            if status == 200:
                counts[slot] += 1
            else:
                errors[slot] += 1
        tls.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(spec["connections"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put((sum(counts), sum(errors)))


def measure(seconds: float = 3.0, connections: int = 8, processes: int = 2, emulator: Any = None) -> float:
    """Requests/s served to `processes` client processes with `connections` tunnels in total."""
    from emulator.azure.entra import app_token
    from emulator.core import Emulator

    own = emulator is None
    emu = Emulator(keep_log=False).start() if own else emulator
    previous = emu.limits.enabled
    emu.limits.enabled = False
    try:
        az = emu.state.azure
        host, port = emu.proxy_url.removeprefix("http://").rsplit(":", 1)
        spec = {
            "proxy_host": host,
            "proxy_port": int(port),
            "ca_bundle": emu.ca_bundle,
            "host": "management.azure.com",
            "path": f"/subscriptions/{az.subscription_id}?api-version=2022-12-01",
            "token": app_token(az, az.admin_client_id, az.admin_object_id, "https://management.azure.com"),
            "seconds": seconds,
            "start_at": time.time() + 1.5,
        }
        context = multiprocessing.get_context("spawn")  # no forked copy of the server's threads
        queue = context.Queue()
        per_process = max(1, connections // processes)
        workers = [
            context.Process(target=_client_process, args=({**spec, "connections": per_process}, queue))
            for _ in range(processes)
        ]
        for worker in workers:
            worker.start()
        results = [queue.get(timeout=seconds + 60) for _ in workers]
        for worker in workers:
            worker.join(timeout=10)
        ok = sum(r[0] for r in results)
        failed = sum(r[1] for r in results)
        if failed:
            raise RuntimeError(f"{failed} requests failed during the measurement")
        return ok / seconds
    finally:
        emu.limits.enabled = previous
        if own:
            emu.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulator.capacity")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    rate = measure(args.seconds, args.connections, args.processes)
    print(
        json.dumps(
            {
                "requests_per_second": round(rate, 1),
                "seconds": args.seconds,
                "connections": args.connections,
                "processes": args.processes,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
