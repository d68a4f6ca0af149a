"""report.html as a reader sees it: headless Chromium (driven through ChromeDriver's WebDriver API) renders
a ~50-node report, a small probe measures the laid-out page, and a screenshot is taken.

What is asserted is what a reader would notice: names instead of GUIDs in the graph and the principal
columns, no two text boxes of a graph overlapping, one label per pair of connected boxes with no
permission said twice, secrets listed under their vault, vaultguard's own identity not drawn, no table
wider than the page and audit times on one line.

`make test` installs Chromium (Debian packages chromium and chromium-driver) when absent and it can;
elsewhere the test is skipped with that reason."""

from __future__ import annotations

import base64
import re
import socket
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from remediations.core.model import Connection, Flow, Identity, RoleAssignment, Share, Snapshot
from remediations.report import ReportData, build_report, write_reports
from tests.unit.kv_builders import policy_entry, snapshot, vault, vault_id
from tests.unit.report_builders import GENERATED, applied_outcomes, audit_rows, seed_run

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# The flags that start Chromium cleanly on a closed network, as root, without a screen.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1440,1000",
]
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"  # Key Vault Secrets User (built-in role)

pytestmark = pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="headless Chromium is absent (Debian packages chromium and chromium-driver; make install-all)",
)


def _oid(n: int) -> str:
    return f"{n:08d}-0000-4000-8000-{n:012d}"


ADMIN, VAULTGUARD = _oid(1), _oid(2)
PEOPLE = {
    _oid(10 + i): name
    for i, name in enumerate(
        [
            "Mallory Maker",
            "Casey Customizer",
            "Riley Runner",
            "Dana Dev",
            "Wilhelmina Mwangi-Mbeki",
            "Alex Analyst",
        ]
    )
}
VAULTS = {"kv-finance": "fin", "kv-hr": "hr", "kv-ops": "ops"}


def _tenant() -> Snapshot:
    """Three vaults of ten secrets, six people (one with a wide name) sharing four flows over four Key
    Vault connections (two by the same admin on the same vault), vaultguard's identity on every vault:
    about fifty boxes."""
    vaults = [
        vault(
            name,
            policy_entry(ADMIN, "Get", "List", "Set"),
            policy_entry(VAULTGUARD, "get", "list", "set"),
            secrets=tuple(f"{prefix}-secret-{i}" for i in range(10)),
        )
        for name, prefix in VAULTS.items()
    ]
    identities = (
        Identity(object_id=ADMIN, kind="user", display_name="Ada Admin", exists=True),
        Identity(object_id=VAULTGUARD, kind="servicePrincipal", display_name="vaultguard", exists=True),
        *(Identity(object_id=oid, kind="user", display_name=n, exists=True) for oid, n in PEOPLE.items()),
    )
    # Ada also holds a Secrets User role on kv-finance: an access policy and a role between one pair.
    role = RoleAssignment(
        id=f"{vault_id('kv-finance')}/providers/Microsoft.Authorization/roleAssignments/ra1",
        scope=vault_id("kv-finance"),
        role_definition_id=f"/providers/Microsoft.Authorization/roleDefinitions/{SECRETS_USER}",
        principal_id=ADMIN,
    )
    base = snapshot(*vaults, role_assignments=(role,), identities=identities)
    connections = [
        Connection(
            id=f"shared-keyvault-{i}",
            environment="env1",
            connector_id="/providers/Microsoft.PowerApps/apis/shared_keyvault",
            identity_principal_id=ADMIN,
            parameters={"vaultName": vault_name},
        )
        for i, vault_name in enumerate(["kv-finance", "kv-finance", "kv-hr", "kv-ops"])
    ]
    flows = [
        Flow(
            id=f"f000000{i}-0000-4000-8000-00000000000{i}",
            environment="env1",
            display_name=name,
            creator=ADMIN,
            connection_references=(connections[i].id,),
        )
        for i, name in enumerate(["Nightly payroll export", "Invoice sync", "HR onboarding", "Ops rotation"])
    ]
    people = list(PEOPLE)
    shares = [Share(resource_kind="flow", resource_id=f.id, principal_id=ADMIN, role="Owner") for f in flows]
    shares += [
        Share(resource_kind="flow", resource_id=flows[i % len(flows)].id, principal_id=oid, role="CanEdit")
        for i, oid in enumerate(people)
    ]
    return base.model_copy(
        update={"flows": tuple(flows), "connections": tuple(connections), "shares": tuple(shares)}
    )


def _report() -> ReportData:
    snap, findings, plan = seed_run(_tenant(), dry_run=False)
    return build_report(
        findings=findings,
        snapshot=snap,
        plan=plan,
        outcomes=applied_outcomes(plan),
        audit=audit_rows(plan),
        title="Fifty boxes",
        run_id="run-1",
        generated_at=GENERATED,
        remediators=(VAULTGUARD,),
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[tuple[str, requests.Session]]:
    """A WebDriver session on a fresh profile: (session url, http session)."""
    port = _free_port()
    driver = subprocess.Popen(
        [str(CHROMEDRIVER), f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    http = requests.Session()
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if http.get(f"{base}/status", timeout=1).json()["value"]["ready"]:
                    break
            except requests.RequestException:
                pass
            subprocess.run(["sleep", "0.1"], check=True)
        options = {
            "binary": str(CHROMIUM),
            "args": [*CHROMIUM_ARGS, f"--user-data-dir={tmp_path / 'profile'}"],
        }
        created = http.post(
            f"{base}/session",
            json={"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": options}}},
            timeout=60,
        ).json()["value"]
        session = f"{base}/session/{created['sessionId']}"
        yield session, http
        http.delete(session, timeout=30)
    finally:
        driver.terminate()
        driver.wait(timeout=10)


# Measures the page as laid out: every SVG text box per figure, node labels by kind, table and page
# widths, and how many lines each audit time takes.
PROBE = """
const box = el => { const r = el.getBoundingClientRect();
  return {text: el.textContent, x: r.left, y: r.top, w: r.width, h: r.height}; };
const figure = id => ({
  texts: [...document.querySelectorAll(`#${id} svg text`)].map(box),
  nodes: [...document.querySelectorAll(`#${id} g.node`)].map(g => ({
    kind: g.dataset.kind, label: g.querySelector('text').textContent,
    title: g.querySelector('title').textContent,
    overflow: g.querySelector('text').getBoundingClientRect().right
      - g.querySelector('rect').getBoundingClientRect().right,
    y: g.querySelector('rect').getBoundingClientRect().top})),
  groups: [...document.querySelectorAll(`#${id} text.group`)].map(box),
  edgeLabels: [...document.querySelectorAll(`#${id} text.edge-label`)].map(t => t.textContent),
});
const main = document.querySelector('main').getBoundingClientRect();
return {
  before: figure('graph-before'), after: figure('graph-after'),
  page: {scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth, main: main.right},
  tables: [...document.querySelectorAll('main table')].map(t => t.getBoundingClientRect().right),
  timeLines: [...document.querySelectorAll('td.time')].map(td => {
    const r = document.createRange(); r.selectNodeContents(td); return r.getClientRects().length; }),
  principals: [...document.querySelectorAll('main table')].flatMap(t => {
    const col = [...t.querySelectorAll('th')].findIndex(th => th.textContent === 'Principal');
    return col < 0 ? [] : [...t.querySelectorAll('tbody tr')].map(tr => tr.children[col].innerText); }),
};
"""


def _overlapping(texts: list[dict[str, Any]]) -> list[tuple[str, str]]:
    clash = []
    for i, a in enumerate(texts):
        for b in texts[i + 1 :]:
            if (
                a["x"] + 0.5 < b["x"] + b["w"]
                and b["x"] + 0.5 < a["x"] + a["w"]
                and a["y"] + 0.5 < b["y"] + b["h"]
                and b["y"] + 0.5 < a["y"] + a["h"]
            ):
                clash.append((a["text"], b["text"]))
    return clash


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_report_reads_names_first_and_lays_out_fifty_boxes_without_overlap(
    tmp_path: Path, browser: tuple[str, requests.Session]
) -> None:
    session, http = browser
    report = _report()
    assert report.graph_before is not None and 45 <= len(report.graph_before.nodes) <= 70
    html = write_reports(tmp_path, report, ["html"])["html"]
    http.post(f"{session}/url", json={"url": html.as_uri()}, timeout=60).raise_for_status()
    page = http.post(f"{session}/execute/sync", json={"script": PROBE, "args": []}, timeout=60).json()[
        "value"
    ]

    for name in ("before", "after"):
        fig = page[name]
        labels = {
            n["kind"]: [m["label"] for m in fig["nodes"] if m["kind"] == n["kind"]] for n in fig["nodes"]
        }
        # Names, not GUIDs, in every box; the full id stays in the tooltip.
        assert not [t["text"] for t in fig["texts"] if GUID.search(t["text"])]
        assert {"Ada Admin", "Mallory Maker", "Casey Customizer"} <= set(labels["person"])
        assert any(GUID.search(n["title"]) for n in fig["nodes"] if n["kind"] == "person")
        assert any(label.startswith("Nightly") for label in labels["flow"])
        # vaultguard fixes things; it is not a path to a secret.
        assert "vaultguard" not in {m["label"] for m in fig["nodes"]}
        # Two connections on kv-finance by one admin: still two different labels.
        assert len(labels["connection"]) == 4 and len(set(labels["connection"])) == 4
        # Every name fits inside its box.
        assert [n["label"] for n in fig["nodes"] if n["overflow"] > 0] == []
        # No text box over another: node names, vault headers, edge labels, column titles.
        assert _overlapping(fig["texts"]) == []
        # One label per pair of boxes, no permission said twice ("get,get,set").
        for text in fig["edgeLabels"]:
            perms = [p.lower() for p in re.split(r"[,\s\u2212\u2715]+", text) if p]
            assert len(perms) == len(set(perms)), text
        # Secrets under their vault's header, in one block per vault.
        headers = sorted((g["y"], g["text"]) for g in fig["groups"])
        assert sorted(h for _, h in headers) == sorted(VAULTS)  # one block per vault
        for secret in (n for n in fig["nodes"] if n["kind"] == "secret"):
            above = [h for y, h in headers if y < secret["y"]]
            assert above and secret["label"].startswith(VAULTS[above[-1]]), (secret["label"], above)

    assert page["principals"] and not [p for p in page["principals"] if GUID.search(p)]
    assert "Ada Admin" in page["principals"]
    # Nothing wider than the page; every table inside <main>; audit times on one line each.
    assert page["page"]["scrollWidth"] <= page["page"]["innerWidth"]
    assert all(right <= page["page"]["main"] + 1 for right in page["tables"]), page["tables"]
    assert page["timeLines"] and set(page["timeLines"]) == {1}

    shot = base64.b64decode(http.get(f"{session}/screenshot", timeout=60).json()["value"])
    (tmp_path / "report.png").write_bytes(shot)
    assert _png_size(shot) == (1440, 1000) or _png_size(shot)[0] == 1440
    assert len(shot) > 50_000  # a blank page compresses to a few KB
