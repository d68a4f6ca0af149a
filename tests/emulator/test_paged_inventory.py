"""A vault list of several pages reads the same snapshot as one page, while the directory is asked
about each page's object ids as the next page is read: no id is asked twice, and the lookup after the
lists asks only for the ids the earlier pages did not name."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from emulator import Emulator
from emulator.azure.generator import Generated, generate
from emulator.wire import HttpError, Request, Response
from remediations.adapters.clients import AzureClients
from remediations.core.model import Scope, Vault
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


def test_a_failed_page_is_read_again_with_its_list_and_a_failed_page_hook_stops_the_reading(
    cloud: Emulator, tenant: Generated, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The adapter reads the pages in one thread and maps them in the caller's: a page that fails there
    (a 503 on the second page, once) reaches the caller, whose retry reads the list again, whole; a
    caller that fails on a page (its hook raises) leaves the pages after it unread. `on_started` is
    called once, before the first page, however often the list is read."""
    for name, value in cloud.env.items():
        monkeypatch.setenv(name, value)
    scope = Scope(subscription_id=tenant.state.azure.subscription_id)
    failed: list[str] = []

    def second_page_fails_once(request: Request) -> Response | None:
        if failed or "$skiptoken" not in request.query or not request.path.endswith("/vaults"):
            return None
        failed.append(request.query["$skiptoken"])
        return HttpError(503, "ServiceUnavailable", "try again", {"Retry-After": "0"}).to_response()

    def refuse(vaults: list[Vault], more: bool) -> None:
        raise ValueError("the caller stops at the first page")

    pages: list[int] = []
    events: list[str] = []
    cloud.limits.arm_page_size = 5  # 12 vaults: pages of 5, 5 and 2
    cloud.middlewares.insert(0, second_page_fails_once)
    try:
        with AzureClients() as clients:
            api = clients.keyvault_management(scope.subscription_id)
            mark = cloud.requests.mark()
            listed = api.list_vaults(
                scope,
                on_page=lambda vaults, more: (pages.append(len(vaults)), events.append("page")),
                on_started=lambda: events.append("started"),
            )
            reads = [r for r in cloud.requests.since(mark) if r.path.endswith("/vaults")]
            # A page takes 0.3 s to answer: the refusal is made while the second page is in flight.
            cloud.faults.latency(300, host=r"management\.azure\.com", path=r"/vaults$")
            mark = cloud.requests.mark()
            with pytest.raises(ValueError, match="first page"):
                api.list_vaults(scope, on_page=refuse)
            after_refusal = [r for r in cloud.requests.since(mark) if r.path.endswith("/vaults")]
    finally:
        cloud.limits.arm_page_size = 1000
        cloud.middlewares.remove(second_page_fails_once)
        cloud.faults.clear()

    assert sorted(v.name for v in listed) == sorted(v.name for v in tenant.state.azure.vaults.values())
    assert len(listed) == 12 and len(failed) == 1
    # Page 1, the failed page 2, then the list again: pages 1, 2 and 3.
    assert [r.status for r in reads] == [200, 503, 200, 200, 200]
    assert pages == [5, 5, 5, 2]  # the first attempt's page 1 was handed on before page 2 failed
    # The reads beside the list are started once its first page is asked for, once, not per attempt.
    assert events == ["started", "page", "page", "page", "page"]
    # The reader asked for the second page before the first was refused, never for the third.
    assert len(after_refusal) == 2
