"""Big Power Platform scenarios for benchmarks, built directly into the state (no JSON round trip).

    generate(state, environments=20, flows_per_environment=500, seed=7,
             principals=[user object ids...], vaults=["kv-001", ...])

Deterministic for a seed. Each environment gets role holders (one System Administrator, a few System
Customizers and makers), Key Vault connections (OAuth as a user, some as a service principal), and flows
mixing the shapes the detector cares about: Get secret with and without secure outputs, List secrets +
for-each Get secret, flows owned by personal accounts and by service accounts, shares to co-owners and
run-only users. Principals default to synthetic users added to `directory`.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from emulator.powerplatform import definitions as defs
from emulator.powerplatform.state import (
    ENVIRONMENT_MAKER,
    SYSTEM_ADMINISTRATOR,
    SYSTEM_CUSTOMIZER,
    Connection,
    Environment,
    Flow,
    RoleAssignment,
    Share,
)

if TYPE_CHECKING:
    from emulator.state import State


@dataclass
class Generated:
    environments: int
    flows: int
    connections: int
    shares: int


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def generate(
    state: State,
    *,
    environments: int = 5,
    flows_per_environment: int = 300,
    connections_per_environment: int = 10,
    shares_per_flow: int = 2,
    seed: int = 0,
    principals: list[str] | None = None,
    service_principals: list[str] | None = None,
    vaults: list[str] | None = None,
    secret_names: list[str] | None = None,
) -> Generated:
    rng = random.Random(seed)
    pp = state.powerplatform
    if principals is None:
        principals = []
        for i in range(max(10, environments * 5)):
            oid = _uuid(rng)
            pp.directory[oid] = {
                "displayName": f"User {i:05d}",
                "email": f"user{i:05d}@contoso.example",
                "type": "User",
            }
            principals.append(oid)
    if service_principals is None:
        service_principals = []
        for i in range(max(2, environments)):
            oid = _uuid(rng)
            pp.directory[oid] = {
                "displayName": f"flows-sp-{i:03d}",
                "type": "ServicePrincipal",
                "appId": _uuid(rng),
            }
            service_principals.append(oid)
    vaults = vaults or [f"kv-gen-{i:03d}" for i in range(max(1, environments))]
    secret_names = secret_names or ["db-password", "api-key", "storage-conn", "sftp-password"]
    counts = Generated(0, 0, 0, 0)
    with state.lock:
        for e in range(environments):
            env = Environment(name=_uuid(rng), display_name=f"Generated {e:03d}", sku="Production")
            env.roles.append(RoleAssignment(rng.choice(principals), SYSTEM_ADMINISTRATOR))
            for who in rng.sample(principals, k=min(3, len(principals))):
                env.roles.append(RoleAssignment(who, rng.choice([SYSTEM_CUSTOMIZER, ENVIRONMENT_MAKER])))
            pp.environments[env.name] = env
            counts.environments += 1
            connections = []
            for c in range(connections_per_environment):
                as_sp = c % 4 == 3
                creator = rng.choice(principals)
                identity = rng.choice(service_principals) if as_sp else creator
                connection = Connection(
                    name=f"shared-keyvault-{uuid.UUID(int=rng.getrandbits(128)).hex}",
                    environment=env.name,
                    api="shared_keyvault",
                    display_name=f"Key Vault {c:03d}",
                    created_by=creator,
                    identity=identity,
                    auth_type="servicePrincipal" if as_sp else "oauth",
                    parameters={"vaultName": rng.choice(vaults)},
                )
                connection.shares[creator] = Share(creator, creator, "Owner")
                if rng.random() < 0.3:
                    who = rng.choice(principals)
                    connection.shares.setdefault(who, Share(who, who, rng.choice(["CanView", "CanEdit"])))
                    counts.shares += 1
                pp.connections[connection.name] = connection
                connections.append(connection)
                counts.connections += 1
            for f in range(flows_per_environment):
                connection = rng.choice(connections) if connections else None
                shape = rng.random()
                if shape < 0.1:
                    definition = defs.dump_vault_definition()
                else:
                    definition = defs.definition(
                        {"Get_secret": defs.get_secret(rng.choice(secret_names), secure=shape < 0.6)}
                    )
                creator = connection.created_by if connection else rng.choice(principals)
                flow = Flow(
                    name=_uuid(rng),
                    environment=env.name,
                    display_name=f"Flow {e:03d}-{f:05d}",
                    creator=creator,
                    definition=definition,
                    connection_references={"shared_keyvault": defs.connection_reference(connection.name)}
                    if connection
                    else {},
                )
                flow.shares[creator] = Share(creator, creator, "Owner")
                for who in rng.sample(principals, k=min(shares_per_flow, len(principals))):
                    if who != creator:
                        flow.shares[who] = Share(who, who, rng.choice(["CanEdit", "CanView"]))
                        counts.shares += 1
                pp.flows[flow.name] = flow
                counts.flows += 1
    return counts
