"""The CONNECT proxy that terminates TLS itself with the local CA's certificate and serves the
emulated APIs over the tunnel (HTTP/1.1, keep-alive). Clients need only HTTPS_PROXY and the CA
bundle. TCP_NODELAY is set on the accepted socket: without it, delayed ACKs stall each request
by about 40 ms."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from emulator.faults import ConnectionReset
from emulator.wire import Request, Response

Dispatch = Callable[[Request], Response]
_MAX_HEADER = 64 * 1024
_LINGER_RESET = (1).to_bytes(4, "little") + (0).to_bytes(4, "little")


class _ApiHandler(BaseHTTPRequestHandler):
    """Serves HTTP/1.1 requests that arrive inside one TLS tunnel for one target host."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "vaultguard-emulator"
    sys_version = ""

    def __init__(self, sock: Any, address: Any, server: Any, target_host: str, dispatch: Dispatch) -> None:
        self.target_host = target_host
        self.dispatch = dispatch
        super().__init__(sock, address, server)

    def log_message(self, format: str, *args: Any) -> None:
        return  # the emulator keeps its own request log

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        body = self._read_body()
        host = self.headers.get("Host") or self.target_host
        request = Request.from_target(self.command, host, self.path, dict(self.headers.items()), body)
        try:
            response = self.dispatch(request)
        except ConnectionReset:
            self.close_connection = True
            with contextlib.suppress(OSError):
                # linger 0: close sends RST, as a reset connection does
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
            raise
        self.send_response_only(response.status)
        headers = {k.lower(): (k, v) for k, v in response.headers.items()}
        for name, value in headers.values():
            self.send_header(name, value)
        if "content-length" not in headers:
            self.send_header("Content-Length", str(len(response.body)))
        self.send_header("Date", self.date_time_string())
        self.end_headers()
        if response.body and self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


class _ProxyHandler(socketserver.BaseRequestHandler):
    server: ProxyServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                return
            head += chunk
            if len(head) > _MAX_HEADER:
                return
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        if len(parts) != 3 or parts[0].upper() != "CONNECT":
            body = b"This is the vaultguard emulator's CONNECT proxy: only HTTPS tunnels are served.\n"
            sock.sendall(
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            return
        target_host = parts[1].rsplit(":", 1)[0].lower()
        sock.sendall(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        try:
            tls = self.server.tls_context.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError):
            return
        try:
            _ApiHandler(tls, self.client_address, self.server, target_host, self.server.dispatch)
        except (ConnectionReset, ssl.SSLError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError):
                tls.close()


class ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], tls_context: ssl.SSLContext, dispatch: Dispatch) -> None:
        self.tls_context = tls_context
        self.dispatch = dispatch
        super().__init__(address, _ProxyHandler)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        return thread


def sleep(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)
