"""HTTP clients of the demo harness: people using Power Automate through the emulator (as a browser
would), and the local function runner (as Azure Monitor, a ticketing system or the timer would).

The harness knows it talks to the emulator (it mints the users' tokens with `token_for`); the app
under test does not: it gets only the standard proxy, CA and credential environment variables.
"""

from __future__ import annotations

import json
from typing import Any

import requests

from emulator.powerplatform import FLOW_AUDIENCE, token_for
from emulator.powerplatform import definitions as defs
from emulator.state import State

FLOW_API = {"api-version": "2016-11-01"}


def emulator_session(env: dict[str, str], token: str | None = None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # this machine sets REQUESTS_CA_BUNDLE globally, which would win over verify
    session.proxies = {"https": env["HTTPS_PROXY"]}
    session.verify = env["REQUESTS_CA_BUNDLE"]
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    return session


class FlowUser:
    """One person editing and running one flow through the Power Automate (maker) API."""

    def __init__(
        self, env: dict[str, str], state: State, object_id: str, environment: str, flow: str
    ) -> None:
        self.object_id = object_id
        self.http = emulator_session(env, token_for(state, object_id, FLOW_AUDIENCE))
        self.base = (
            "https://api.flow.microsoft.com/providers/Microsoft.ProcessSimple/environments/"
            f"{environment}/flows/{flow}"
        )

    def edit(self, definition: dict[str, Any]) -> requests.Response:
        return self.http.patch(self.base, params=FLOW_API, json={"properties": {"definition": definition}})

    def edit_to_dump_the_vault(self) -> requests.Response:
        """The attack: List secrets, then for each item Get secret, with secure outputs off."""
        return self.edit(defs.dump_vault_definition())

    def run(self) -> tuple[int, dict[str, Any]]:
        """Start the flow (manual trigger) and read the finished run: (HTTP status of the start, run)."""
        started = self.http.post(f"{self.base}/triggers/manual/run", params=FLOW_API, json={})
        if started.status_code != 202:
            return started.status_code, _json(started)
        run_id = started.headers["x-ms-workflow-run-id"]
        run = self.http.get(
            f"{self.base}/runs/{run_id}", params={**FLOW_API, "$expand": "properties/actions"}
        )
        return started.status_code, _json(run)

    def secrets_read(self, run: dict[str, Any]) -> dict[str, str]:
        """What the run history shows this person: each repetition's Get secret output."""
        if (run.get("properties") or {}).get("status") != "Succeeded":
            return {}
        reps = self.http.get(
            f"{self.base}/runs/{run['name']}/actions/Get_secret/repetitions", params=FLOW_API
        ).json()["value"]
        out: dict[str, str] = {}
        for rep in reps:
            link = (rep.get("properties") or {}).get("outputsLink")
            if not link:  # secure outputs: nothing shown
                continue
            body = self.http.get(link["uri"], headers={"Authorization": ""}).json().get("body") or {}
            if "name" in body and "value" in body:
                out[str(body["name"])] = str(body["value"])
        return out

    def failed_step(self, run: dict[str, Any]) -> str:
        for name, action in ((run.get("properties") or {}).get("actions") or {}).items():
            if action.get("status") == "Failed":
                return f"{name}: {action.get('code')}"
        return ""


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def error_code(response: requests.Response) -> str:
    return str((_json(response).get("error") or {}).get("code") or "")


class Runner:
    """The local function runner: HTTP functions with the function key, the admin API with the master key."""

    def __init__(self, url: str, function_key: str, master_key: str) -> None:
        self.url = url
        self.http = requests.Session()
        self.http.trust_env = False  # plain HTTP on 127.0.0.1: no proxy
        self.function_key = function_key
        self.master_key = master_key

    def call(
        self, method: str, route: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> requests.Response:
        return self.http.request(
            method,
            f"{self.url}/api/{route}",
            headers={
                "x-functions-key": self.function_key,
                "Content-Type": "application/json",
                **(headers or {}),
            },
            data=None if body is None else json.dumps(body),
            timeout=120,
        )

    def run_function(self, name: str, text: str = "") -> requests.Response:
        """`POST /admin/functions/{name}`: what the Functions host offers for timer and queue triggers."""
        return self.http.post(
            f"{self.url}/admin/functions/{name}",
            headers={"x-functions-key": self.master_key, "Content-Type": "application/json"},
            data=json.dumps({"input": text}),
            timeout=120,
        )
