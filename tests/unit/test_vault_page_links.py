"""`next_link_of`: a vault list page's `nextLink`, read off the end of its body so that the next page is
requested before this one is parsed, is the link the parser reads, whatever the body looks like; where
it cannot be read off the end, the page is parsed (and handed on parsed)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from emulator.wire import Response
from remediations.adapters.keyvault_mgmt import next_link_of

LINK = "https://management.azure.com/subscriptions/s/providers/Microsoft.KeyVault/vaults?api-version=2023-07-01&$skiptoken=2"
VAULT = {"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv", "name": "kv"}


def _tagged(tags: dict[str, Any]) -> dict[str, Any]:
    return {**VAULT, "tags": tags}


BODIES = {
    # As the emulator and ARM write it: `value`, then `nextLink`.
    "link last": Response.json(200, {"value": [VAULT], "nextLink": LINK}).body,
    "link last, spaced": json.dumps({"value": [VAULT], "nextLink": LINK}, indent=2).encode() + b"\n",
    "last page": Response.json(200, {"value": [VAULT]}).body,
    "link null": Response.json(200, {"value": [VAULT], "nextLink": None}).body,
    "link first": Response.json(200, {"nextLink": LINK, "value": [VAULT]}).body,
    "link escaped": json.dumps({"value": [VAULT], "nextLink": LINK.replace("/", "\\/")})
    .replace("\\\\/", "\\/")
    .encode(),
    # Not the page's link: a tag named nextLink, last in the last vault, and a link-like text in a tag.
    "tag named nextLink": Response.json(200, {"value": [_tagged({"nextLink": "x"})]}).body,
    "nested last member": Response.json(200, {"value": [VAULT], "x": {"nextLink": "x"}}).body,
    "link text in a string": Response.json(200, {"value": [_tagged({"t": '"nextLink": "x"}'})]}).body,
}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_the_link_read_is_the_parsers_and_a_parsed_page_is_the_page(name: str) -> None:
    body = BODIES[name]
    expected = json.loads(body)

    link, parsed = next_link_of(body)

    assert link == (expected.get("nextLink") or None)
    assert parsed is None or parsed == expected


def test_a_trailing_link_is_read_without_parsing_and_others_are_parsed() -> None:
    assert next_link_of(BODIES["link last"]) == (LINK, None)
    assert next_link_of(BODIES["link last, spaced"]) == (LINK, None)
    assert next_link_of(BODIES["last page"]) == (None, None)  # no link at all: nothing to parse here
    assert next_link_of(BODIES["link first"])[1] is not None
    assert next_link_of(BODIES["link escaped"]) == (LINK, json.loads(BODIES["link escaped"]))
