"""One HTTP session for every SDK client of an invocation.

Each SDK client otherwise builds its own `requests.Session`: a new connection pool per client, and on
every request requests re-reads the proxy and CA-bundle environment variables (it walks the whole of
`os.environ`, about 1.5 ms of CPU a request, minutes over a tenant's 15,000 Key Vault calls) and
looks for a `~/.netrc`. Here the same standard variables (HTTPS_PROXY/HTTP_PROXY/NO_PROXY,
REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE) are read once, when the session is built.

TLS: requests hands urllib3 the CA bundle's path, and urllib3 then builds a new SSL context and
parses the bundle for every new connection (about 1 ms of CPU: once per vault host, 5,000 times in
a large sweep). Here one context is built with the same settings and the same bundle (certifi's when
none is set, as requests does) and shared by every connection; a caller that passes its own
`verify` path or `False` still gets exactly that.

Pools: one per host (each vault is its own host), the least recently used closed beyond
`hosts`, so a sweep over 5,000 vaults keeps at most `hosts` tunnels open; `per_host` connections per
host so that `per_host` concurrent ARM calls reuse their connections instead of handshaking again.
"""

from __future__ import annotations

import os
import ssl
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import requests
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import HTTPAdapter
from requests.sessions import merge_setting
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.util.retry import Retry
from urllib3.util.ssl_ import create_urllib3_context

POOL_HOSTS = 128
POOL_PER_HOST = 64
# Bodies are read in blocks of this size (azure-core's default is 4,096 bytes: 256 reads, each taking
# the interpreter lock back, for one 1 MB ARM list page, and a page's reader waits on the lock while
# the previous page is parsed). Most answers (a Key Vault list page, a Graph batch) fit in one block.
READ_BLOCK_BYTES = 64 * 1024


def _bypassed(host: str, no_proxy: tuple[str, ...]) -> bool:
    return any(entry in ("*", host) or host.endswith("." + entry.lstrip(".")) for entry in no_proxy)


def tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """What urllib3 builds per connection for `verify=<bundle>`, built once."""
    context = create_urllib3_context()
    context.load_verify_locations(cafile=ca_bundle or DEFAULT_CA_BUNDLE_PATH)
    return context


class SharedTLSAdapter(HTTPAdapter):
    """An HTTPAdapter whose pools (direct and through a proxy) share one verifying SSL context."""

    def __init__(self, context: ssl.SSLContext, **kwargs: Any) -> None:
        self._tls = context
        super().__init__(**kwargs)

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, ssl_context=self._tls, **pool_kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        proxy_kwargs.setdefault("ssl_context", self._tls)
        return super().proxy_manager_for(proxy, **proxy_kwargs)

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        if verify is True and url.lower().startswith("https") and not cert:
            # The pool's context already trusts the bundle: a path here would make urllib3 build and
            # load a fresh context for each connection.
            conn.cert_reqs = "CERT_REQUIRED"
            conn.ca_certs = None
            conn.ca_cert_dir = None
            return
        super().cert_verify(conn, url, verify, cert)


class EnvOnceSession(requests.Session):
    """A Session that takes proxy and CA settings from the environment once, at construction."""

    def __init__(self, hosts: int = POOL_HOSTS, per_host: int = POOL_PER_HOST) -> None:
        super().__init__()
        self.trust_env = False  # no per-request environment or ~/.netrc lookups
        self._env_proxies = {k: v for k, v in urllib.request.getproxies().items() if k != "no"}
        raw_no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
        self._no_proxy = tuple(e.strip().lower() for e in raw_no_proxy.split(",") if e.strip())
        self._ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        readable = self._ca_bundle is None or os.path.isfile(self._ca_bundle)
        # A bundle that is not there stays a path, so requests refuses it on use with its own error.
        self._verify: bool | str = True if readable else str(self._ca_bundle)
        # Retries are ours (adapters/retry.py), as in azure-core's own adapter.
        adapter = SharedTLSAdapter(
            tls_context(self._ca_bundle if readable else None),
            pool_connections=hosts,
            pool_maxsize=per_host,
            max_retries=Retry(total=False, redirect=False, raise_on_status=False),
        )
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def merge_environment_settings(
        self, url: str, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        host = (urlsplit(url).hostname or "").lower()
        merged = dict(proxies or {})
        if not _bypassed(host, self._no_proxy):
            for key, value in self._env_proxies.items():
                merged.setdefault(key, value)
        if verify is True or verify is None:
            verify = self._verify  # True: the adapter's shared context holds the bundle read at construction
        return {
            "proxies": merge_setting(merged, self.proxies),
            "stream": merge_setting(stream, self.stream),
            "verify": merge_setting(verify, self.verify),
            "cert": merge_setting(cert, self.cert),
        }


def shared_transport(session: requests.Session) -> RequestsTransport:
    """A transport over `session` that does not close it when its SDK client is closed."""
    return RequestsTransport(
        session=session, session_owner=False, connection_data_block_size=READ_BLOCK_BYTES
    )
