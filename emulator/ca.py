"""A local certificate authority (trustme) and one server certificate for every emulated host."""

from __future__ import annotations

import os
import ssl
import tempfile

import trustme

# Hosts the emulator answers for. Clients reach them through the CONNECT proxy.
HOSTS: tuple[str, ...] = (
    "login.microsoftonline.com",
    "management.azure.com",
    "*.vault.azure.net",
    "graph.microsoft.com",
    "api.flow.microsoft.com",
    "api.powerapps.com",
    "api.bap.microsoft.com",
    "api.powerplatform.com",
    "*.environment.api.powerplatform.com",
    "*.crm4.dynamics.com",  # Dataverse Web API of each environment (linkedEnvironmentMetadata.instanceUrl)
    "*.api.crm4.dynamics.com",  # ... and instanceApiUrl
    "collector.attacker.example",  # the attack table's own endpoint (emulator/powerplatform/egress.py)
)


class LocalCA:
    def __init__(self) -> None:
        self._ca = trustme.CA(organization_name="vaultguard emulator CA")
        self._leaf = self._ca.issue_cert(*HOSTS)
        self._dir = tempfile.mkdtemp(prefix="vaultguard-ca-")
        self.bundle_path = os.path.join(self._dir, "ca.pem")
        # The bundle holds only our CA: the emulator is the only HTTPS peer behind the proxy.
        self._ca.cert_pem.write_to_path(self.bundle_path)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._leaf.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context

    def cleanup(self) -> None:
        try:
            os.remove(self.bundle_path)
            os.rmdir(self._dir)
        except OSError:
            pass
