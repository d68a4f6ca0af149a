"""One HTTP session for every SDK client of an invocation.

Each SDK client otherwise builds its own `requests.Session`: a new connection pool per client, and on
every request requests re-reads the proxy and CA-bundle environment variables (it walks the whole of
`os.environ`, about 1.5 ms of CPU a request, minutes over a tenant's 15,000 Key Vault calls) and
looks for a `~/.netrc`. Here the same standard variables (HTTPS_PROXY/HTTP_PROXY/NO_PROXY,
REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE) are read once, when the session is built.

Pools: one per host (each vault is its own host), the least recently used closed beyond
`hosts`, so a sweep over 5,000 vaults keeps at most `hosts` tunnels open; `per_host` connections per
host so that `per_host` concurrent ARM calls reuse their connections instead of handshaking again.
"""

from __future__ import annotations

import os
import urllib.request
from typing import Any
from urllib.parse import urlsplit

import requests
from azure.core.pipeline.transport import RequestsTransport
from requests.adapters import HTTPAdapter
from requests.sessions import merge_setting
from urllib3.util.retry import Retry

POOL_HOSTS = 128
POOL_PER_HOST = 64


def _bypassed(host: str, no_proxy: tuple[str, ...]) -> bool:
    return any(entry in ("*", host) or host.endswith("." + entry.lstrip(".")) for entry in no_proxy)


class EnvOnceSession(requests.Session):
    """A Session that takes proxy and CA settings from the environment once, at construction."""

    def __init__(self, hosts: int = POOL_HOSTS, per_host: int = POOL_PER_HOST) -> None:
        super().__init__()
        self.trust_env = False  # no per-request environment or ~/.netrc lookups
        self._env_proxies = {k: v for k, v in urllib.request.getproxies().items() if k != "no"}
        raw_no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
        self._no_proxy = tuple(e.strip().lower() for e in raw_no_proxy.split(",") if e.strip())
        self._ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        # Retries are ours (adapters/retry.py), as in azure-core's own adapter.
        adapter = HTTPAdapter(
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
            verify = self._ca_bundle or verify
        return {
            "proxies": merge_setting(merged, self.proxies),
            "stream": merge_setting(stream, self.stream),
            "verify": merge_setting(verify, self.verify),
            "cert": merge_setting(cert, self.cert),
        }


def shared_transport(session: requests.Session) -> RequestsTransport:
    """A transport over `session` that does not close it when its SDK client is closed."""
    return RequestsTransport(session=session, session_owner=False)
