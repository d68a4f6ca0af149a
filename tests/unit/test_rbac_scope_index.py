"""The scope index answers exactly what a scan of every assignment with `covers` does (and keeps
list order), for scopes at, above, beside and below vaults in any casing."""

from __future__ import annotations

import itertools
import random

from remediations.core import rbac
from remediations.core.model import RoleAssignment


def _vault_id(sub: str, group: str, vault: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.KeyVault/vaults/{vault}"


SUBS, GROUPS, VAULTS = ("S1", "s2"), ("RG-a", "rg-b"), ("kv1", "KV2", "kv10")
PLACES = list(itertools.product(SUBS, GROUPS, VAULTS))
SCOPES = [
    "/",
    "",
    "/providers/Microsoft.Management/managementGroups/mg",
    *(f"/subscriptions/{s}" for s in SUBS),
    *(f"/subscriptions/{s}/resourceGroups/{g}" for s in SUBS for g in GROUPS),
    *(_vault_id(*p) for p in PLACES),
    *(_vault_id(*p) + "/" for p in PLACES),
    *(_vault_id(*p) + "/secrets/db" for p in PLACES),
    *(_vault_id(*p) + "/keys/k" for p in PLACES),
]


def test_reaching_equals_a_scan_with_covers_or_below() -> None:
    rng = random.Random(3)
    assignments = tuple(
        RoleAssignment(
            id=f"/ra/{i}",
            scope=rng.choice(SCOPES).upper() if rng.random() < 0.3 else rng.choice(SCOPES),
            role_definition_id="r",
            principal_id=f"p{i}",
        )
        for i in range(400)
    )
    index = rbac.AssignmentsByScope(assignments)
    for place in PLACES:
        target = _vault_id(*place)
        below = rbac._norm(target) + "/"
        scanned = [
            a for a in assignments if rbac.covers(a.scope, target) or rbac._norm(a.scope).startswith(below)
        ]
        assert scanned and index.reaching(target) == scanned
