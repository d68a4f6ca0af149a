"""Large scenarios for benchmarks, built directly in memory (no JSON, no validation round trip).

    generated = generate(vaults=5000, secrets_per_vault=40, identities=500, noncompliant_share=0.1)
    with Emulator(generated.state) as emu: ...

Every vault grants one "purpose" identity `Get` on secrets (compliant). A non-compliant vault
also grants `List` (the enumeration edge of the attack) to that identity, and every other one of
them additionally keeps an access-policy entry for a deleted identity (an orphan). RBAC vaults
(`rbac_share`) get a vault-scope "Key Vault Secrets User" assignment instead (non-compliant:
"Key Vault Secrets Officer"). The ground truth comes back with the state.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

from emulator.azure import roles
from emulator.azure.state import (
    AccessPolicy,
    AzureState,
    ResourceGroup,
    RoleAssignment,
    Secret,
    SecretVersion,
    Vault,
    now,
)
from emulator.state import State


@dataclass
class Identity:
    app_id: str
    object_id: str
    secret: str


@dataclass
class Generated:
    state: State
    identities: list[Identity]
    noncompliant_vaults: list[str] = field(default_factory=list)
    orphaned_object_ids: list[str] = field(default_factory=list)
    rbac_vaults: list[str] = field(default_factory=list)

    @property
    def secret_count(self) -> int:
        return sum(len(v.secrets) for v in self.state.azure.vaults.values())


def generate(
    *,
    vaults: int = 1000,
    secrets_per_vault: int = 40,
    identities: int = 100,
    noncompliant_share: float = 0.1,
    rbac_share: float = 0.0,
    vaults_per_resource_group: int = 100,
    seed: int = 0,
) -> Generated:
    """A tenant with `vaults` vaults of `secrets_per_vault` secrets each. Deterministic for a seed."""
    if vaults < 0 or secrets_per_vault < 0 or identities < 1:
        raise ValueError("vaults and secrets_per_vault must be >= 0 and identities >= 1")
    if not 0.0 <= noncompliant_share <= 1.0 or not 0.0 <= rbac_share <= 1.0:
        raise ValueError("noncompliant_share and rbac_share are fractions between 0 and 1")
    rng = random.Random(seed)

    def guid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    az = AzureState(
        tenant_id=guid(),
        subscription_id=guid(),
        admin_client_id=guid(),
        admin_client_secret=f"admin-{rng.getrandbits(64):016x}",
        admin_object_id=guid(),
        admin_application_object_id=guid(),
    )
    people: list[Identity] = []
    for index in range(identities):
        identity = Identity(guid(), guid(), f"secret-{index}-{rng.getrandbits(48):012x}")
        az.add_application(
            identity.app_id,
            f"purpose-{index:05d}",
            object_id=guid(),
            sp_object_id=identity.object_id,
            password=identity.secret,
        )
        people.append(identity)
    result = Generated(State(azure=az), people)
    sub = az.subscription_id
    stamp = now()
    for index in range(vaults):
        group_name = f"rg-{index // max(1, vaults_per_resource_group):04d}"
        key = (sub.lower(), group_name.lower())
        if key not in az.resource_groups:
            az.resource_groups[key] = ResourceGroup(sub, group_name)
        name = f"kv-{index:06d}"
        owner = people[index % len(people)]
        noncompliant = rng.random() < noncompliant_share
        rbac = rng.random() < rbac_share
        vault = Vault(
            name,
            sub,
            group_name,
            az.tenant_id,
            tags={"purpose": f"purpose-{index % len(people):05d}"},
            enable_rbac_authorization=rbac,
            created=stamp,
        )
        if rbac:
            role = roles.KEY_VAULT_SECRETS_OFFICER if noncompliant else roles.KEY_VAULT_SECRETS_USER
            assignment = RoleAssignment(guid(), vault.arm_id, role, owner.object_id, "ServicePrincipal", 0.0)
            az.role_assignments[assignment.name] = assignment
            result.rbac_vaults.append(name)
        else:
            vault.access_policies.append(
                AccessPolicy(
                    az.tenant_id,
                    owner.object_id,
                    None,
                    {"secrets": ["Get", "List"] if noncompliant else ["Get"]},
                )
            )
            if noncompliant and index % 2 == 0:
                orphan = guid()  # a deleted identity: in no directory, still in the vault's policies
                vault.access_policies.append(
                    AccessPolicy(az.tenant_id, orphan, None, {"secrets": ["Get", "List"]})
                )
                result.orphaned_object_ids.append(orphan)
        if noncompliant:
            result.noncompliant_vaults.append(name)
        secrets = vault.secrets
        for number in range(secrets_per_vault):
            secret_name = f"secret-{number:05d}"
            version = SecretVersion(
                f"{rng.getrandbits(128):032x}",
                f"{rng.getrandbits(64):016x}",
                None,
                True,
                None,
                None,
                None,
                stamp,
                stamp,
            )
            secrets[secret_name] = Secret(secret_name, [version])
        az.vaults[name] = vault
    return result
