"""The demo's story on emulator/scenarios/seed.json, step by step (see demo/__main__.py).

    a. the attack before: the System Customizer edits the admin's flow and dumps the vault
    b. the exposure graph: who reaches which secret, through which path
    c. the fix through the triggers: timer tick (dry run) -> dry-run ticket -> approval by another
       identity (the requester's own refused) -> alert (own change) -> Key Vault event
    d. the attack after: the same edit reads nothing, the revoked user cannot edit, secrets rotated
    e. the summary, and out/report.{html,md,json,sarif}

Every check that makes the story true is a `Check`; the demo exits 1 naming the first that failed.
Secret values are held only to compare and to mask; none is printed or written.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets as random_source
import shutil
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from demo.clients import FlowUser, Runner, emulator_session, error_code
from demo.console import Console, mask
from demo.procs import ROOT, SEED, Children, DemoError
from remediations.core.model import SEVERITIES
from remediations.shell.settings import STORAGE_CONNECTION

POLICY = Path(__file__).resolve().parent / "policy.json"
ARM = "https://management.azure.com"
KV_API = {"api-version": "2023-07-01"}
FIX_REMEDIATIONS = [
    "narrow_access_policy",
    "remove_list_permission",
    "revoke_flow_shares",
    "revoke_connection_shares",
    "enforce_keyvault_dlp",
    "rotate_secret",
]
SERVICES = {  # emulator host -> the service it stands for (report `api_calls`)
    "login.microsoftonline.com": "Entra ID tokens",
    "management.azure.com": "Azure Resource Manager",
    "graph.microsoft.com": "Microsoft Graph",
    "api.flow.microsoft.com": "Power Automate",
    "api.powerapps.com": "Power Apps",
    "api.bap.microsoft.com": "Power Platform admin (BAP)",
}
PERSON_RELATIONS = frozenset({"can_edit", "can_run", "environment_role", "can_use"})
SINGLE_SECRET = "payroll-db-password"  # the secret the single-secret attacks ask for
GUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE)
SECRET_ID = re.compile(
    r"/subscriptions/\S+?/vaults/(?P<vault>[^/\s]+)/secrets/(?P<secret>[^/\s:]+)", re.IGNORECASE
)
# Two people of the customer's tenant: one asks for the fix, another approves the plan. On App Service,
# App Service Authentication validates their tokens and sets these headers; the local runner stands in.
REQUESTER = ("secops@contoso.example", "7d1e9a34-6c2b-4f0e-9a51-2b3c4d5e6f70")
APPROVER = ("ciso@contoso.example", "5e2a8b61-3c4d-4e7f-8a9b-0c1d2e3f4a5b")
MARK = "/providers/vaultguard.demo/markers/"  # a harmless 404 that splits the emulator's request log


class CheckFailed(RuntimeError):
    """The story did not hold: `str()` names the check."""


@dataclass
class Results:
    started: float = field(default_factory=time.monotonic)
    before: dict[str, str] = field(default_factory=dict)  # secret name -> value (never printed)
    after: dict[str, str] = field(default_factory=dict)
    vault_secret_names: list[str] = field(default_factory=list)
    sweep_plan: list[dict[str, Any]] = field(default_factory=list)
    sweep_scopes: int = 0
    ticket: dict[str, Any] = field(default_factory=dict)
    alert: dict[str, Any] = field(default_factory=dict)
    rotated: list[str] = field(default_factory=list)
    rotated_in: Counter[str] = field(default_factory=Counter)  # vault name -> secrets rotated in it
    checks: list[str] = field(default_factory=list)
    api_calls: dict[str, int] = field(default_factory=dict)
    attacker_calls: int = 0
    seconds: float = 0.0
    report_files: dict[str, Path] = field(default_factory=dict)
    known_values: set[str] = field(default_factory=set)


def _service(host: str) -> str:
    if host.endswith(".vault.azure.net"):
        return "Key Vault"
    if host.endswith(".dynamics.com"):
        return "Dataverse"
    return SERVICES.get(host, host)


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))  # type: ignore[no-any-return]


def _principal(who: tuple[str, str]) -> dict[str, str]:
    """The headers App Service Authentication sets for a signed-in caller (name, object id)."""
    return {"x-ms-client-principal-name": who[0], "x-ms-client-principal-id": who[1]}


def _short(resource_id: str) -> str:
    """The last two segments of a resource id (enough to recognise it in a terminal)."""
    parts = [p for p in resource_id.split("/") if p]
    return "/".join(parts[-2:]) if len(parts) >= 2 else resource_id


class Story:
    def __init__(self, console: Console, out_dir: Path, kids: Children, state_out: str | None = None) -> None:
        self.c = console
        self.state_out = state_out
        self.out_dir = out_dir
        self.kids = kids
        self.r = Results()
        self.seed: dict[str, Any] = json.loads(SEED.read_text())
        users = {u["userPrincipalName"].split("@")[0]: u for u in self.seed["users"]}
        self.admin = users["admin"]["id"]
        self.customizer = users["customizer"]["id"]
        self.analyst = users["analyst"]["id"]
        self.names = {u["id"]: f"{u['displayName']} ({u['userPrincipalName']})" for u in self.seed["users"]}
        self.names.update({s["id"]: s["displayName"] for s in self.seed["servicePrincipals"]})
        pp = self.seed["powerPlatform"]
        self.flow = next(f for f in pp["flows"] if f["displayName"] == "Nightly payroll export")
        self.environment = self.flow["environment"]
        self.subscription = self.seed["subscriptions"][0]["subscriptionId"]
        self.vault_ids = {
            v["name"]: (
                f"/subscriptions/{self.subscription}/resourceGroups/{v['resourceGroup']}"
                f"/providers/Microsoft.KeyVault/vaults/{v['name']}"
            )
            for v in self.seed["vaults"]
        }
        self.shared_vault = "kv-shared-prod"
        self.before_snapshot: Any = None  # read in step b
        self._names_of: dict[str, str] | None = None  # display names, from the step b snapshot
        for vault in self.seed["vaults"]:
            for secret in vault["secrets"]:
                for version in secret.get("versions") or [secret]:
                    self.r.known_values.add(str(version["value"]))

    # -- helpers --------------------------------------------------------------------------------
    def check(self, ok: bool, name: str, detail: str = "") -> None:
        if not ok:
            raise CheckFailed(f"{name}{': ' + detail if detail else ''}")
        self.r.checks.append(name)
        self.c.good(name)

    def mark(self, name: str) -> None:
        emulator_session(self.env).get(f"{ARM}{MARK}{name}")

    # -- setup ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.c.title("Starting the emulator, Azurite and the local function runner")
        self.env = self.kids.start_emulator()
        self.c.info(
            f"emulator: HTTPS proxy {self.env['HTTPS_PROXY']} (ARM, Key Vault, Graph, Power Platform)"
        )
        storage = self.kids.start_azurite()
        self.c.info("Azurite: blob, queue and table on free local ports")
        from emulator.scenario import load_scenario_file

        self.state = load_scenario_file(SEED)  # the harness mints users' tokens for the same tenant
        os.environ.update(self.env)  # the harness's own reads (report inventory) go to the emulator too
        os.environ[STORAGE_CONNECTION] = storage
        self.app_oid = self._app_identity()
        self.policy_file = self.kids.tmp / "policy.json"
        self._write_policy(dry_run=True)
        self._grant_rotation_access()
        self.function_key = random_source.token_urlsafe(24)
        self.master_key = random_source.token_urlsafe(24)
        settings = {
            STORAGE_CONNECTION: storage,
            "VAULTGUARD_SUBSCRIPTION_IDS": self.subscription,
            "VAULTGUARD_POLICY_FILE": str(self.policy_file),
            "VAULTGUARD_DRY_RUN": "false",  # the policy file's dryRun decides (true for the first sweep)
            "VAULTGUARD_MAX_ACTIONS_PER_RUN": "100",
            "VAULTGUARD_SWEEP_SCHEDULE": "0 0 */6 * * *",
            "VAULTGUARD_DEEP_SWEEP_SCHEDULE": "0 0 3 * * *",
            "VAULTGUARD_QUEUE_NAME": "vaultguard-scopes",
            "VAULTGUARD_LOCAL_FUNCTION_KEY": self.function_key,
            "VAULTGUARD_LOCAL_MASTER_KEY": self.master_key,
            # App Service Authentication in front (its principal headers name the requester and the
            # approver): an approval needs a caller the platform proved.
            "WEBSITE_AUTH_ENABLED": "true",
        }
        os.environ.update(settings)
        runner_env = {**os.environ, **self.env, **settings, "PYTHONPATH": str(ROOT)}
        url = self.kids.start_runner(runner_env)
        self.runner = Runner(url, self.function_key, self.master_key)
        self.c.info(f"function runner: {url}/api/ (function key) and /admin/functions/ (master key)")
        self.c.info(f"vaultguard signs in as the app registration with object id {self.app_oid}")

    def _arm_token(self) -> str:
        """An ARM token of vaultguard's app registration (the deployment's and the demo's admin calls)."""
        from azure.identity import ClientSecretCredential

        credential = ClientSecretCredential(
            self.env["AZURE_TENANT_ID"], self.env["AZURE_CLIENT_ID"], self.env["AZURE_CLIENT_SECRET"]
        )
        return credential.get_token(f"{ARM}/.default").token

    def _arm_session(self) -> requests.Session:
        return emulator_session(self.env, self._arm_token())

    def _app_identity(self) -> str:
        return str(_claims(self._arm_token())["oid"])

    def _write_policy(self, *, dry_run: bool) -> None:
        policy = json.loads(POLICY.read_text())
        policy["dryRun"] = dry_run
        # vaultguard's own access (granted at deployment for rotation) is its purpose: not narrowed.
        policy.setdefault("secretPermissions", {}).setdefault("byIdentity", {})[self.app_oid] = [
            "get",
            "list",
            "set",
        ]
        self.policy_file.write_text(json.dumps(policy, indent=2))

    def _grant_rotation_access(self) -> None:
        """The deployment step README "Secret rotation" asks for on access-policy vaults: an access
        policy for vaultguard's identity with secrets get, list, set (ARM `accessPolicies/add`)."""
        http = self._arm_session()
        for vault_id in self.vault_ids.values():
            response = http.put(
                f"{ARM}{vault_id}/accessPolicies/add",
                params=KV_API,
                json={
                    "properties": {
                        "accessPolicies": [
                            {
                                "tenantId": self.env["AZURE_TENANT_ID"],
                                "objectId": self.app_oid,
                                "permissions": {"secrets": ["get", "list", "set"]},
                            }
                        ]
                    }
                },
            )
            if response.status_code != 200:
                raise DemoError(
                    f"could not grant vaultguard rotation access on {vault_id}: {response.status_code}"
                )
        self.c.info(
            "deployment step: vaultguard's identity got secrets get/list/set on both vaults (rotation)"
        )

    # -- a. the attack before -------------------------------------------------------------------
    def attack_before(self) -> None:
        c = self.c
        c.title("a. The attack, before vaultguard")
        attacker = FlowUser(self.env, self.state, self.customizer, self.environment, self.flow["name"])
        c.step(
            f"{self.names[self.customizer]} is a System Customizer in environment "
            f"'{self.seed['powerPlatform']['environments'][0]['displayName']}'"
        )
        status, run = attacker.run()
        seen = attacker.secrets_read(run) if status == 202 else {}
        c.info(
            f"as seeded, '{self.flow['displayName']}' runs with secure outputs: "
            f"{len(seen)} value(s) in run history"
        )
        c.step("edits the admin's flow: secure outputs off; List secrets + for each: Get secret")
        edited = attacker.edit_to_dump_the_vault()
        self.check(
            edited.status_code == 200, "the customizer may save the edit", f"HTTP {edited.status_code}"
        )
        c.step("runs it: the Key Vault connection authenticates as the admin, not as the customizer")
        status, run = attacker.run()
        self.r.before = attacker.secrets_read(run)
        for name in sorted(self.r.before):
            c.info(f"{name} = {mask(self.r.before[name])}")
        vault = next(v for v in self.seed["vaults"] if v["name"] == self.shared_vault)
        self.r.vault_secret_names = sorted(s["name"] for s in vault["secrets"])
        self.check(
            sorted(self.r.before) == self.r.vault_secret_names,
            f"before: the attacker read every secret in {self.shared_vault} "
            f"({len(self.r.before)} of {len(self.r.vault_secret_names)})",
        )

    # -- b. the exposure graph ------------------------------------------------------------------
    def snapshot(self) -> Any:
        from remediations.adapters.clients import AzureClients
        from remediations.core.model import PowerPlatformScope, Scope
        from remediations.shell.inventory import inventory

        with AzureClients() as clients:
            return inventory(
                Scope(subscription_id=self.subscription),
                clients,
                include_secrets=True,
                pp_scope=PowerPlatformScope(all_environments=True),
            )

    def exposure(self) -> None:
        from remediations.core.graph import ExposureGraph

        c = self.c
        c.title("b. The exposure graph: who can reach which secret, and how")
        self.before_snapshot = self.snapshot()
        graph = ExposureGraph.build(self.before_snapshot)
        labels = self._labels(self.before_snapshot)
        routes: dict[tuple[str, str], set[str]] = defaultdict(set)
        people = {e.source for e in graph.edges if e.relation in PERSON_RELATIONS}
        # vaultguard holds an environment role to fix flows: it is the remediator, not a reach path.
        people.discard(f"principal:{self.app_oid.lower()}")
        for person in sorted(people):
            for path in graph.what_can_read(person.partition(":")[2]):
                if path[0].relation not in PERSON_RELATIONS or any(
                    e.relation in PERSON_RELATIONS for e in path[1:]
                ):
                    continue  # one person's own reach only (not a chain through someone else's identity)
                hops = [labels.get(path[0].source, path[0].source)]
                for edge in path[:-1]:  # the last hop is vault -> secret: counted, not listed
                    perms = f"({','.join(edge.permissions)})" if edge.permissions else ""
                    hops.append(f"-{edge.relation}{perms}-> {labels.get(edge.target, edge.target)}")
                routes[(person, " ".join(hops))].add(path[-1].target)
        rows = sorted(routes.items(), key=lambda kv: (-len(kv[1]), kv[0][1]))
        for (_, route), reached in rows:
            c.info(f"{len(reached):>3} secret(s)  {route}", hang=16)
        self.check(
            any(
                p == f"principal:{self.customizer}" and len(s) >= len(self.r.vault_secret_names)
                for (p, _), s in routes.items()
            ),
            "the graph shows the customizer's path to every secret in the shared vault",
        )

    def _labels(self, snapshot: Any) -> dict[str, str]:
        labels = {f"principal:{oid.lower()}": name.split(" (")[0] for oid, name in self.names.items()}
        labels[f"principal:{self.app_oid.lower()}"] = "vaultguard"
        for flow in snapshot.flows:
            labels[f"flow:{flow.id.lower()}"] = f"flow '{flow.display_name}'"
            labels[f"flow:{flow.id}"] = f"flow '{flow.display_name}'"
        for connection in snapshot.connections:
            labels[f"connection:{connection.id.lower()}"] = f"connection '{connection.display_name}'"
            labels[f"connection:{connection.id}"] = f"connection '{connection.display_name}'"
        for vault in snapshot.vaults:
            labels[f"vault:{vault.id.lower()}"] = vault.name
            labels[f"vault:{vault.id}"] = vault.name
        return labels

    # -- c. the fix through the triggers --------------------------------------------------------
    def fix(self) -> None:
        c = self.c
        c.title("c. The fix, through the app's triggers")
        self.mark("fix-start")
        self._sweep()
        self._ticket()
        self._alert()
        self._event()
        self.mark("fix-end")

    def _sweep(self) -> None:
        from remediations.triggers.messages import ScopeMessage
        from remediations.triggers.runs import RunStore
        from remediations.triggers.storage import queue_client

        c = self.c
        c.step("timer tick (policy dryRun: true): POST /admin/functions/sweep")
        ticked = self.runner.run_function("sweep")
        self.check(
            ticked.status_code == 202, "the sweep ran", f"HTTP {ticked.status_code} {ticked.text[:300]}"
        )
        queue = queue_client(os.environ["VAULTGUARD_QUEUE_NAME"])
        messages = list(queue.receive_messages(max_messages=32, visibility_timeout=60))
        c.info(f"the sweep enqueued {len(messages)} scope message(s) on the Storage queue (Azurite)")
        store = RunStore.from_env()
        plan: dict[str, dict[str, Any]] = {}
        for message in messages:
            body = message.content.decode() if isinstance(message.content, bytes) else str(message.content)
            scope = ScopeMessage.model_validate_json(body)
            worked = self.runner.run_function("remediate_worker", body)
            self.check(
                worked.status_code == 202,
                f"the worker ran scope {self._named(scope.id)}",
                f"HTTP {worked.status_code} {worked.text[:300]}\n{self.kids.runner_log()}",
            )
            queue.delete_message(message)
            stored = store.get("scope", scope.idempotency_key())
            record = (stored.body if stored is not None else None) or {}
            summary = record.get("summary") or {}
            c.info(
                f"worker, {self._named(scope.id)}: {record.get('status')}, "
                f"{summary.get('findings', 0)} finding(s), "
                f"{summary.get('actions', 0)} write(s) planned, none made"
            )
            for action in record.get("plan") or []:
                plan.setdefault(action["id"], action)
        self.r.sweep_scopes = len(messages)
        self.r.sweep_plan = list(plan.values())
        self._show_actions("the plan (dry run)", self.r.sweep_plan)
        # One message per vault (Key Vault fixes) and one per environment (shares and DLP, planned once).
        environments = len(self.seed["powerPlatform"]["environments"])
        self.check(
            bool(self.r.sweep_plan) and self.r.sweep_scopes == len(self.vault_ids) + environments,
            "the dry-run sweep planned the fix for every vault and changed nothing",
        )

    def _show_actions(
        self, heading: str, actions: list[dict[str, Any]], outcomes: dict[str, str] | None = None
    ) -> None:
        c = self.c
        c.info(f"{heading}:")
        rotations = [a for a in actions if a["remediation_id"] == "rotate_secret"]
        rows = []
        for action in actions:
            if action["remediation_id"] == "rotate_secret":
                continue
            before, after = action.get("before") or {}, action.get("after") or {}
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            summary = "; ".join(
                f"{k}: {self._readable(before.get(k))} -> {self._readable(after.get(k))}" for k in changed
            )
            principal = action.get("principal")
            who = f" for {self.names.get(principal, principal).split(' (')[0]}" if principal else ""
            outcome = f" [{outcomes.get(action['id'], '-')}]" if outcomes is not None else ""
            rows.append(
                f"{action['remediation_id']} on {self._named(action['target'])}{who}: {summary}{outcome}"
            )
        if rotations:
            statuses = Counter(outcomes.get(a["id"], "-") for a in rotations) if outcomes else None
            outcome = f" [{', '.join(f'{n} {s}' for s, n in sorted(statuses.items()))}]" if statuses else ""
            rows.append(
                f"rotate_secret on {len(rotations)} secret(s): new version (random), "
                f"old versions disabled{outcome}"
            )
        # One action a line (wrapped under itself): a table of long before/after cells wraps worse.
        for row in rows:
            c.info(f"- {row}", hang=2)

    def _readable(self, value: Any) -> str:
        if isinstance(value, list):
            items = []
            for item in value:
                text = str(item)
                oid, _, role = text.partition(":")
                items.append(
                    f"{self.names.get(oid, oid).split(' (')[0]}:{role}"
                    if role and oid in self.names
                    else self._named(text)
                )
            return ", ".join(items) or "none"
        return "none" if value is None else str(value)

    def _readable_text(self, text: str) -> str:
        """A note from the app with names for the GUIDs and ARM ids it carries (people, vault/secret)."""
        text = SECRET_ID.sub(lambda m: f"{m['vault']}/{m['secret']}", text)
        return GUID.sub(lambda m: self.names.get(m[0], m[0]).split(" (")[0], text)

    def _named(self, resource_id: str) -> str:
        """A flow, connection, environment or vault by its display name (the seed's ids are GUIDs)."""
        from remediations.report.graph_view import display_names, name_in

        if self.before_snapshot is not None and self._names_of is None:
            self._names_of = display_names(self.before_snapshot)
        return name_in(self._names_of or {}, resource_id) or _short(resource_id)

    def _ticket(self) -> None:
        c = self.c
        self._write_policy(dry_run=False)
        c.step("the deployment applies approved plans: policy dryRun set to false")
        ticket_id = f"DEMO-{uuid.uuid4().hex[:8].upper()}"
        body = {
            "ticketId": ticket_id,
            # and the person -> flow edge: the flow-editing role the policy does not allow, the
            # secure outputs the attacker switched off (removeFlowEditingRoles, restoreSecureOutputs)
            "remediations": [*FIX_REMEDIATIONS, "remove_flow_editing_role", "restore_secure_outputs"],
            "targets": {"vaults": sorted(self.vault_ids.values())},
            "dryRun": True,
            "reason": "Key Vault secrets reachable through Power Automate flow edits (seed attack)",
        }
        c.step(f"{REQUESTER[0]} files ticket {ticket_id}: POST /api/remediations (dryRun: true)")
        response = self.runner.call("POST", "remediations", body, _principal(REQUESTER))
        self.check(
            response.status_code == 200 and response.json().get("status") == "planned",
            "the dry-run ticket pinned its plan and changed nothing",
            f"HTTP {response.status_code} {response.text[:500]}",
        )
        planned = response.json()
        c.info(f"plan {planned['planId']}: {len(planned['plan'])} action(s) to review")
        c.info(f"plan hash {planned['planHash']}")
        approve = f"remediations/{ticket_id}/approve"
        reviewed = {"planHash": planned["planHash"], "reason": "CAB-2026-117: reviewed the plan"}
        c.step(f"{REQUESTER[0]} approves their own plan: POST /api/{approve}")
        own = self.runner.call("POST", approve, reviewed, _principal(REQUESTER))
        self.check(
            own.status_code == 403,
            "the requester's own approval was refused (403)",
            f"HTTP {own.status_code} {own.text[:300]}",
        )
        c.info(str(own.json().get("detail", "")))
        c.step(f"{APPROVER[0]} approves plan {planned['planId']}: POST /api/{approve}")
        response = self.runner.call("POST", approve, reviewed, _principal(APPROVER))
        approved = response.json() if response.status_code == 202 else {}
        drifted = [o for o in approved.get("outcomes", []) if str(o.get("error")).startswith("drifted")]
        self.check(
            approved.get("planHash") == planned["planHash"]
            and str(approved.get("approvedBy", "")).startswith(APPROVER[0])
            and not drifted,
            f"{APPROVER[0]}'s approval applied exactly the reviewed plan",
            f"HTTP {response.status_code} {response.text[:500]}",
        )
        result = response.json()
        self.r.ticket = result
        outcomes = {o["action_id"]: o["status"] for o in result["outcomes"]}
        self._show_actions("applied", result["plan"], outcomes)
        failed = [o for o in result["outcomes"] if o["status"] == "failed"]
        self.check(
            result["status"] in ("applied", "partially-applied") and not failed,
            f"the ticket applied {len(result['outcomes'])} action(s), none failed",
            "; ".join(f"{o['action_id']}: {o.get('error')}" for o in failed) or result["status"],
        )
        # Closure is judged on a fresh read after apply: every person -> flow -> secret path left,
        # with its reason (one no reason accepts fails the ticket), and every chain still there that no
        # longer reaches the secret, with why it is closed. Shown by name (the ticket result has the ids
        # in brackets), one row per person, flow and reason.
        path = re.compile(r"^path (left|closed): (.+?) -> flow (.+?) \(([a-z_]+)\) -> (\S+): (.+)$")

        def unbracket(text: str) -> str:  # "Casey [<id>]" -> "Casey"; "'Payroll' [<id>]" -> "Payroll"
            return re.sub(r" \[[^\]]*\]$", "", text).strip("'")

        found = [m for n in result.get("notes", []) if (m := path.match(n))]
        left = [m for m in found if m[1] == "left"]
        rows: dict[tuple[str, str, str, str], Counter[str]] = defaultdict(Counter)  # -> secrets per vault
        for m in found:
            rows[(m[1], unbracket(m[2]), unbracket(m[3]), m[6])][m[5].split("/", 1)[0]] += 1
        open_paths = [m for m in left if m[6].startswith("not accepted")]
        c.info(
            f"after the fix: {len(left)} person -> flow -> secret path(s) left, {len(open_paths)} open; "
            f"{len(found) - len(left)} closed"
        )
        c.table(
            ["who", "flow", "vault (secrets)", "path", "why it is left or closed"],
            [
                [
                    who[:24],
                    flow[:24],
                    ", ".join(f"{v} ({n})" for v, n in sorted(vaults.items()))[:30],
                    state,
                    why,
                ]
                for (state, who, flow, why), vaults in sorted(
                    rows.items(), key=lambda r: (r[0][0] != "left", r[0][3], r[0][1])
                )
            ],
        )
        self.check(
            result["status"] == "applied" and not open_paths,
            "the ticket applied and left no path the policy does not accept",
            "; ".join(m[0] for m in open_paths[:5]) or result["status"],
        )
        rotated = [
            a["target"]
            for a in result["plan"]
            if a["remediation_id"] == "rotate_secret" and outcomes.get(a["id"]) == "applied"
        ]
        self.r.rotated = sorted(t.rsplit("/", 1)[-1] for t in rotated)
        self.r.rotated_in = Counter(t.rpartition("/secrets/")[0].rsplit("/", 1)[-1] for t in rotated)

    def _alert(self) -> None:
        c = self.c
        vault_id = self.vault_ids[self.shared_vault]
        c.step(
            "Azure Monitor reports the access-policy write the fix made: POST /api/alerts "
            "(caller = vaultguard's identity)"
        )
        response = self.runner.call("POST", "alerts", self._activity_log_alert(vault_id))
        self.check(
            response.status_code == 202,
            "the alert was accepted",
            f"HTTP {response.status_code} {response.text[:300]}",
        )
        result = response.json()
        self.r.alert = result
        c.info(f"alert result: {result.get('status')}; {result.get('notes', [''])[0]}")
        self.check(
            result.get("ownChange") is True
            and result["summary"]["actions"] == 0
            and not result.get("outcomes"),
            "the app recognised its own change and did nothing",
        )

    def _event(self) -> None:
        """Event Grid: the shared vault's access-policy change reaches the app in seconds (no alert
        rule in between); it re-checks the vault and takes the re-granted `List` away again."""
        from remediations.triggers.runs import RunStore

        c = self.c
        vault_id = self.vault_ids[self.shared_vault]
        removed = [
            a["principal"]
            for a in self.r.ticket.get("plan", [])
            if a["remediation_id"] in ("remove_list_permission", "narrow_access_policy")
            and a["target"] == vault_id
        ]
        self.check(bool(removed), "the ticket removed a List permission on the shared vault")
        principal = removed[0]
        http = self._arm_session()
        webhook = f"{self.runner.url}/runtime/webhooks/eventgrid?functionName=keyvault_events"
        webhook += f"&code={self.master_key}"
        c.step("deployment: an Event Grid subscription on the shared vault -> keyvault_events")
        created = http.put(
            f"{ARM}{vault_id}/providers/Microsoft.EventGrid/eventSubscriptions/vaultguard",
            params={"api-version": "2022-06-15"},
            json={
                "properties": {
                    "destination": {"endpointType": "WebHook", "properties": {"endpointUrl": webhook}},
                    "eventDeliverySchema": "CloudEventSchemaV1_0",
                    "filter": {"includedEventTypes": ["Microsoft.KeyVault.VaultAccessPolicyChanged"]},
                }
            },
        )
        self.check(
            created.status_code in (200, 201),
            "the event subscription passed the webhook validation handshake",
            f"HTTP {created.status_code} {created.text[:300]}",
        )
        c.step(f"someone re-grants List to {self.names.get(principal, principal)} on {self.shared_vault}")
        granted = http.put(
            f"{ARM}{vault_id}/accessPolicies/add",
            params=KV_API,
            json={
                "properties": {
                    "accessPolicies": [
                        {
                            "tenantId": self.env["AZURE_TENANT_ID"],
                            "objectId": principal,
                            "permissions": {"secrets": ["List"]},
                        }
                    ]
                }
            },
        )
        self.check(granted.status_code == 200, "the access-policy change was made", str(granted.status_code))
        store = RunStore.from_env()
        deadline = time.monotonic() + 60
        done: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(done) < 2:
            time.sleep(0.2)
            records = [store.get("event", r.key) for r in store.recent(10, "event") if r.status != "received"]
            done = [r.body for r in records if r is not None and r.body is not None]
        done.reverse()  # oldest first: the re-grant's event, then the event of the app's own fix
        self.check(len(done) == 2, "Event Grid delivered VaultAccessPolicyChanged twice (change, then fix)")
        first, second = done
        c.info(f"event 1: {first['status']}, {first['summary'].get('actions')} action(s); {first['message']}")
        own = second["notes"][0] if second["notes"] else second["status"]
        c.info(f"event 2 (the app's own write): {own}")
        vault = http.get(f"{ARM}{vault_id}", params=KV_API).json()
        permissions = [
            p
            for e in vault["properties"]["accessPolicies"]
            if e["objectId"] == principal
            for p in e["permissions"].get("secrets", [])
        ]
        self.check(
            first["status"] == "handled"
            and first["summary"]["actions"] == 1
            and second["summary"]["actions"] == 0
            and "list" not in {p.lower() for p in permissions},
            "the event re-check took List away again; the app's own change re-checked clean",
        )

    def _activity_log_alert(self, vault_id: str) -> dict[str, Any]:
        """Azure Monitor common alert schema, Activity Log - Administrative, as an action group sends it."""
        now = datetime.now(UTC).isoformat()
        claims = {
            "aud": "https://management.core.windows.net/",
            "appid": self.env["AZURE_CLIENT_ID"],
            "http://schemas.microsoft.com/identity/claims/objectidentifier": self.app_oid,
            "http://schemas.microsoft.com/identity/claims/tenantid": self.env["AZURE_TENANT_ID"],
        }
        alert_id = (
            f"/subscriptions/{self.subscription}/providers/Microsoft.AlertsManagement/alerts/{uuid.uuid4()}"
        )
        return {
            "schemaId": "azureMonitorCommonAlertSchema",
            "data": {
                "essentials": {
                    "alertId": alert_id,
                    "alertRule": "kv-access-policy-changed",
                    "severity": "Sev2",
                    "signalType": "Activity Log",
                    "monitorCondition": "Fired",
                    "monitoringService": "Activity Log - Administrative",
                    "alertTargetIDs": [vault_id.lower()],
                    "configurationItems": [self.shared_vault],
                    "originAlertId": f"{uuid.uuid4()}_origin",
                    "firedDateTime": now,
                    "description": "",
                    "essentialsVersion": "1.0",
                    "alertContextVersion": "1.0",
                },
                "alertContext": {
                    "authorization": {
                        "action": "Microsoft.KeyVault/vaults/accessPolicies/write",
                        "scope": vault_id,
                    },
                    "channels": "Operation",
                    "claims": json.dumps(claims),
                    "caller": self.app_oid,
                    "correlationId": str(uuid.uuid4()),
                    "eventSource": "Administrative",
                    "eventTimestamp": now,
                    "eventDataId": str(uuid.uuid4()),
                    "level": "Informational",
                    "operationName": "Microsoft.KeyVault/vaults/accessPolicies/write",
                    "operationId": str(uuid.uuid4()),
                    "properties": {
                        "eventCategory": "Administrative",
                        "entity": vault_id,
                        "message": "Microsoft.KeyVault/vaults/accessPolicies/write",
                    },
                    "status": "Succeeded",
                    "subStatus": "",
                    "submissionTimestamp": now,
                },
            },
        }

    # -- d. the attack after --------------------------------------------------------------------
    def attack_after(self) -> None:
        c = self.c
        c.title("d. The attack, after vaultguard")
        attacker = FlowUser(self.env, self.state, self.customizer, self.environment, self.flow["name"])
        c.step("the customizer makes the same edit")
        edited = attacker.edit_to_dump_the_vault()
        c.info(f"edit: HTTP {edited.status_code} {error_code(edited)}")
        c.step("and runs the flow")
        status, run = attacker.run()
        self.r.after = attacker.secrets_read(run) if status == 202 else {}
        outcome = (
            f"run: {run.get('properties', {}).get('status')} ({attacker.failed_step(run)})"
            if status == 202
            else f"run refused: HTTP {status} {(run.get('error') or {}).get('code', '')}"
        )
        c.info(f"{outcome}; secrets read: {len(self.r.after)}")
        self.check(
            edited.status_code == 403, "after: the same edit is refused (403)", f"HTTP {edited.status_code}"
        )
        self.check(not self.r.after, "after: the attacker reads 0 secrets", f"{len(self.r.after)} read")
        analyst = FlowUser(self.env, self.state, self.analyst, self.environment, self.flow["name"])
        c.step(f"{self.names[self.analyst]}, whose CanEdit share was revoked, tries to edit the flow")
        denied = analyst.edit_to_dump_the_vault()
        c.info(f"edit: HTTP {denied.status_code} {error_code(denied)}")
        self.check(
            denied.status_code == 403,
            "after: the revoked user cannot edit the flow (403)",
            f"HTTP {denied.status_code}",
        )
        self.after_snapshot = self.snapshot()

    # -- the attack table (before the fix, and after it) ----------------------------------------
    def _attacks(self, phase: str) -> None:
        """Every editor of the admin's flow tries every attack (demo/attacks.py); the results come from
        the emulator's run history and the attacker's endpoint. After the fix: before -> after per cell."""
        from demo.attacks import ATTACKS, Target, attack_table, editors
        from emulator.powerplatform import FLOW_AUDIENCE, token_for

        c = self.c
        c.title(f"{'a' if phase == 'before' else 'd'}+. Every editor x every attack, {phase} the fix")
        people = editors(self.seed, self.flow["name"])
        target = Target(
            self.environment, self.flow["name"], self.flow["displayName"], self.flow["creator"], SINGLE_SECRET
        )
        outcomes = attack_table(
            lambda oid: emulator_session(self.env, token_for(self.state, oid, FLOW_AUDIENCE)),
            target,
            people,
            flow_off_first=True,  # "turn the flow back on" starts from a flow that is off
        )
        found = {(o.attack, o.editor): o for o in outcomes}
        earlier: dict[tuple[str, str], Any] = getattr(self, "_attack_outcomes", {})
        self._attack_outcomes = found

        def short(outcome: Any) -> str:  # "read 30" / "refused (edit)": the service's code is listed below
            if not outcome.refused:
                return f"read {len(outcome.secrets)}"
            return f"refused ({outcome.refused.rpartition(' (')[2].rstrip(')')})"

        rows = []
        for key, (label, _) in ATTACKS.items():
            for person in people:
                row = [label, self.names[person].split(" (")[0]]
                before = earlier.get((key, person))
                rows.append(
                    [*row, short(before), short(found[(key, person)])]
                    if before
                    else [*row, short(found[(key, person)])]
                )
        heads = ["attack", "editor", "before", "after"] if earlier else ["attack", "editor", "result"]
        c.table(heads, rows)
        codes = Counter(o.refused.rpartition(" (")[0] for o in outcomes if o.refused)
        if codes:
            c.info(
                "the service refused with: " + ", ".join(f"{code} x{n}" for code, n in sorted(codes.items()))
            )
        still = [o for o in outcomes if o.read_any]
        summary = f"{len(still)} of {len(outcomes)} attempt(s) read a secret {phase} the fix"
        (c.bad if still and phase == "after" else c.info)(summary)

    # -- e. stop, verify rotation from the emulator's state, count calls, report -----------------
    def finish(self) -> None:
        self.kids.stop_emulator()  # writes its state and request log
        state = json.loads(self.kids.state_file.read_text())
        if self.state_out:
            shutil.copyfile(self.kids.state_file, self.state_out)
        rotated_ok, problems = self._verify_rotation(state)
        self.c.title("e. Summary")
        self.check(
            rotated_ok and len(self.r.rotated) >= len(self.r.vault_secret_names),
            f"after: {len(self.r.rotated)} exposed secret(s) rotated; every old version disabled",
            "; ".join(problems[:5]),
        )
        # Why rotated and read differ: every secret a finding showed exposed is rotated, not only the
        # ones this attacker happened to read.
        elsewhere = ", ".join(
            f"{n} in {v}" for v, n in sorted(self.r.rotated_in.items()) if v != self.shared_vault
        )
        self.c.info(
            f"{len(self.r.rotated)} rotated vs {len(self.r.before)} read: the attacker read "
            f"{len(self.r.before)} in {self.shared_vault}; the fix rotates every secret a flow exposed"
            + (f", also {elsewhere}" if elsewhere else "")
        )
        self._count_calls()
        self.r.seconds = time.monotonic() - self.r.started

    def _verify_rotation(self, state: dict[str, Any]) -> tuple[bool, list[str]]:
        problems: list[str] = []
        by_vault = {v["name"]: v for v in state["vaults"]}
        seed_values = {
            (v["name"], s["name"]): s.get("value") for v in self.seed["vaults"] for s in v["secrets"]
        }
        for vault in state["vaults"]:
            for secret in vault["secrets"]:
                for version in secret.get("versions") or [secret]:
                    self.r.known_values.add(str(version["value"]))
        for name in self.r.rotated:
            vault = next((v for v in by_vault.values() if any(s["name"] == name for s in v["secrets"])), None)
            if vault is None:
                problems.append(f"{name}: not found")
                continue
            secret = next(s for s in vault["secrets"] if s["name"] == name)
            versions = secret.get("versions") or [secret]
            *old, new = versions
            if not old:
                problems.append(f"{name}: no new version")
            if any(v.get("enabled", True) for v in old):
                problems.append(f"{name}: an old version is still enabled")
            if not new.get("enabled", True) or new["value"] == seed_values.get((vault["name"], name)):
                problems.append(f"{name}: the current version is not a new enabled value")
        return not problems, problems

    def _count_calls(self) -> None:
        entries = [json.loads(line) for line in self.kids.requests_file.read_text().splitlines() if line]
        marks = [i for i, e in enumerate(entries) if MARK in e["path"]]
        window = entries[marks[0] + 1 : marks[1]] if len(marks) >= 2 else []
        calls: Counter[str] = Counter()
        for entry in window:
            if entry.get("callerOid") in (self.customizer, self.analyst):
                continue
            calls[_service(entry["host"])] += 1
        self.r.api_calls = dict(sorted(calls.items()))
        self.r.attacker_calls = sum(
            1 for e in entries if e.get("callerOid") in (self.customizer, self.analyst)
        )

    def report(self) -> None:
        from remediations.core.closure import closure
        from remediations.core.model import Action, Finding, Outcome, Plan
        from remediations.core.policy import parse_policy
        from remediations.report import AttackReplay, build_report, write_reports
        from remediations.shell.audit import TableAuditSink

        ticket = self.r.ticket
        actions = tuple(Action.model_validate(a) for a in ticket["plan"])
        plan = Plan(
            id=f"ticket-{ticket['ticketId']}",
            actions=actions,
            created_at=datetime.fromisoformat(ticket["createdAt"]),
            dry_run=bool(ticket["dryRun"]),
        )
        sink = TableAuditSink.from_settings()
        try:
            audit = sink.records(ticket["correlationId"])
        finally:
            sink.close()
        # closure over the fresh read after the fix, with the policy the app ran with
        policy = parse_policy(json.loads(self.policy_file.read_text()))
        judged = closure(self.after_snapshot, policy, self.app_oid)  # the app fixes; "this app"
        data = build_report(
            findings=[Finding.model_validate(f) for f in ticket["findings"]],
            snapshot=self.before_snapshot,
            snapshot_after=self.after_snapshot,
            plan=plan,
            outcomes=[Outcome.model_validate(o) for o in ticket["outcomes"]],
            audit=audit,
            title="vaultguard demo: the seed attack, fixed through the triggers",
            scope=f"/subscriptions/{self.subscription} + Power Platform environment {self.environment}",
            run_id=ticket["correlationId"],
            remediators=(self.app_oid,),
            api_calls=self.r.api_calls,
            duration_seconds=round(self.r.seconds, 1),
            paths_left=judged.left,
            paths_closed=judged.closed,
            attack_replay=AttackReplay(
                attacker=self.names[self.customizer],
                before=tuple(sorted(self.r.before)),
                after=tuple(sorted(self.r.after)),
                note=(
                    "System Customizer edits 'Nightly payroll export': List secrets + for each Get secret, "
                    "secure outputs off; after the fix the edit is refused (DLP) and the flow cannot run."
                ),
            ),
        )
        self.r.report_files = write_reports(
            self.out_dir, data, ("html", "md", "json", "sarif"), forbidden_values=self.r.known_values
        )
        html = self.r.report_files["html"].read_text(encoding="utf-8")
        self.check(
            html.count("<svg") >= 2,
            f"report written with the exposure graph before and after: {self.r.report_files['html']}",
        )

    def summary(self) -> None:
        c = self.c
        ticket = self.r.ticket
        outcomes = Counter(o["status"] for o in ticket["outcomes"])
        findings = Counter(f["severity"] for f in ticket["findings"])
        c.table(
            ["", "count"],
            [
                ["secrets the attacker read before", len(self.r.before)],
                ["secrets the attacker read after", len(self.r.after)],
                [
                    "findings (ticket run)",
                    f"{sum(findings.values())} ("
                    + ", ".join(f"{findings[s]} {s}" for s in SEVERITIES if findings[s])
                    + ")",
                ],
                [
                    "dry-run plan (sweep)",
                    f"{len(self.r.sweep_plan)} action(s) over {self.r.sweep_scopes} scope(s)",
                ],
                ["actions applied (ticket)", ", ".join(f"{n} {s}" for s, n in sorted(outcomes.items()))],
                ["secrets rotated", len(self.r.rotated)],
                ["alert (own change)", f"{self.r.alert['summary']['actions']} action(s)"],
                [
                    "API calls by vaultguard",
                    f"{sum(self.r.api_calls.values())} ("
                    + ", ".join(f"{k} {v}" for k, v in self.r.api_calls.items())
                    + ")",
                ],
                ["checks passed", len(self.r.checks)],
                ["wall time", f"{self.r.seconds:.1f} s"],
            ],
        )
        for name, path in sorted(self.r.report_files.items()):
            c.info(f"report ({name}): {path}")

    def run(self) -> Results:
        self.start()
        self.attack_before()
        self._attacks("before")
        self.exposure()
        self.fix()
        self.attack_after()
        self._attacks("after")
        self.finish()
        self.report()
        self.summary()
        return self.r
