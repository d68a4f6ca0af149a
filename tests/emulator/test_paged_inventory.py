"""A vault list of several pages reads the same snapshot as one page, while the directory is asked
about each page's object ids as the next page is read: no id is asked twice, and the lookup after the
lists asks only for the ids the earlier pages did not name."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from emulator import Emulator
from emulator.azure.generator import Generated, generate
from remediations.adapters.clients import AzureClients
from remediations.core.model import Scope
from remediations.shell.inventory import inventory


@pytest.fixture(scope="module")
def tenant() -> Generated:
    return generate(vaults=12, secrets_per_vault=1, identities=30, noncompliant_share=0.5, seed=5)


@pytest.fixture(scope="module")
def cloud(tenant: Generated) -> Iterator[Emulator]:
    with Emulator(tenant.state) as emulator:
        yield emulator


def _asked(cloud: Emulator, mark: int) -> list[list[str]]:
    return [
        [i.lower() for i in json.loads(r.body)["ids"]]
        for r in cloud.requests.since(mark)
        if r.path.endswith("/directoryObjects/getByIds")
    ]


def test_a_paged_list_reads_what_one_page_does_and_asks_the_directory_once_per_id(
    cloud: Emulator, tenant: Generated, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in cloud.env.items():  # before any SDK client is built
        monkeypatch.setenv(name, value)
    scope = Scope(subscription_id=tenant.state.azure.subscription_id)
    with AzureClients() as clients:
        mark = cloud.requests.mark()
        whole = inventory(scope, clients, include_secrets=False)
        one_page = _asked(cloud, mark)
        cloud.limits.arm_page_size = 5  # 12 vaults: pages of 5, 5 and 2
        try:
            mark = cloud.requests.mark()
            paged = inventory(scope, clients, include_secrets=False)
            by_page = _asked(cloud, mark)
        finally:
            cloud.limits.arm_page_size = 1000

    assert paged.errors == () and whole.errors == ()
    assert paged.vaults == whole.vaults and paged.identities == whole.identities
    assert paged.role_assignments == whole.role_assignments
    assert len(one_page) == 1
    # The first two pages are looked up while the next one is read; the last lookup has the rest.
    assert len(by_page) == 3
    asked = [i for call in by_page for i in call]
    assert sorted(asked) == sorted(one_page[0]) and len(set(asked)) == len(asked)
    first_two = {p.object_id.lower() for v in whole.vaults[:10] for p in v.access_policies}
    assert set(by_page[0]) | set(by_page[1]) == first_two and not set(by_page[2]) & first_two
