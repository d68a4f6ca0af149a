"""In-memory state of the emulated Azure tenant."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass
class AzureState:
    tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    subscription_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # The admin service principal (Owner of the subscription) whose credentials `serve` prints.
    admin_client_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    admin_client_secret: str = field(default_factory=lambda: uuid.uuid4().hex + uuid.uuid4().hex)
