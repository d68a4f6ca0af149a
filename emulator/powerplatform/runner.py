"""The flow runner: executes a flow definition's Key Vault steps as the connection's identity.

Key Vault is called through `emulator.dispatch` with a token minted for the connection's identity
(`oid` = `Connection.identity`, `aud` = https://vault.azure.net), so access policies and role
assignments in the emulated vault decide the outcome exactly as for any client: a 403 from Key Vault
fails the action with the Key Vault error in its outputs.

Executed: `OpenApiConnection`/`ApiConnection` steps of `shared_keyvault` (`GetSecret`, `ListSecrets`,
following `nextLink`), `Http` (answered by the emulator, never sent: see `_http`), `Foreach`
(per-item repetitions), `Scope`, `If`, `Compose`. Every other action type, and other connectors, is
recorded as `Skipped` (code `NotEmulated`). `runAfter` conditions are honoured.
Secure inputs/outputs (`runtimeConfiguration.secureData.properties`) are recorded per action; the run
history API redacts them, and a `Compose` that reads a secured output is hidden too (as in the product).
Each run keeps, for tests and the demo's attack table, the secrets it read (`Run.secret_reads`, by name)
and where its HTTP actions sent which secrets' values (`Run.egress`, by name).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit

from emulator import tokens
from emulator.log import LoggedRequest
from emulator.powerplatform import definitions
from emulator.powerplatform.expressions import Context, ExpressionError, condition, evaluate
from emulator.powerplatform.state import ActionRecord, Connection, Egress, Flow, Run, SecretRead, now_iso
from emulator.wire import Request

if TYPE_CHECKING:
    from emulator.core import Emulator

KEYVAULT_AUDIENCE = "https://vault.azure.net"
KEYVAULT_API_VERSION = "7.5"
_MAX_PAGES = 100


def new_run_name() -> str:
    """Logic Apps run ids look like 08584...CU12."""
    return f"08584{random.randint(10**15, 10**16 - 1)}CU{random.randint(10, 99)}"


class FlowRunner:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    # -- entry point ---------------------------------------------------------------------------
    def run(self, flow: Flow, trigger_name: str, trigger_body: Any, caller: str | None) -> Run:
        """Runs a snapshot of the flow's definition and returns the finished run (not yet stored)."""
        with self.emulator.state.lock:
            definition = definitions.copy_definition(flow.definition)
            references = dict(flow.connection_references)
        run = Run(
            name=new_run_name(),
            trigger_name=trigger_name,
            status="Running",
            start_time=now_iso(),
            caller=caller,
            flow=flow.name,
        )
        trigger_outputs = {"headers": {"Content-Type": "application/json"}, "body": trigger_body or {}}
        ctx = Context(trigger_outputs=trigger_outputs)
        statuses = self._scope(definition.get("actions") or {}, ctx, run, references, None)
        run.end_time = now_iso()
        if any(status == "Failed" for status in statuses.values()):
            run.status = "Failed"
            run.error = {
                "code": "ActionFailed",
                "message": "An action failed. No dependent actions succeeded.",
            }
        else:
            run.status = "Succeeded"
        return run

    # -- scopes --------------------------------------------------------------------------------
    def _scope(
        self,
        actions: dict[str, Any],
        ctx: Context,
        run: Run,
        references: dict[str, Any],
        repetition: tuple[str, int] | None,
    ) -> dict[str, str]:
        """Runs one level of actions in `runAfter` order; returns their statuses."""
        statuses: dict[str, str] = {}
        pending = dict(actions)
        while pending:
            ready = [
                n for n, a in pending.items() if all(dep in statuses for dep in (a.get("runAfter") or {}))
            ]
            if not ready:  # a cycle or a runAfter on an unknown action: the product refuses to save these
                for name, action in pending.items():
                    self._store(run, self._skip(name, action, "InvalidTemplate"), repetition)
                    statuses[name] = "Skipped"
                break
            for name in sorted(ready):
                action = pending.pop(name)
                allowed = {
                    dep: set(conds or ["Succeeded"]) for dep, conds in (action.get("runAfter") or {}).items()
                }
                if any(statuses[dep] not in conds for dep, conds in allowed.items()):
                    record = self._skip(name, action, "ActionBranchingConditionNotSatisfied")
                    self._skip_nested(action, run, repetition)
                else:
                    record = self._action(name, action, ctx, run, references, repetition)
                statuses[name] = record.status
                self._store(run, record, repetition)
        return statuses

    def _store(self, run: Run, record: ActionRecord, repetition: tuple[str, int] | None) -> None:
        if repetition is None:
            run.actions[record.name] = record
            return
        record.scope_name, record.repetition_index = repetition
        aggregate = run.actions.get(record.name)
        if aggregate is None:
            aggregate = ActionRecord(
                name=record.name,
                type=record.type,
                status=record.status,
                start_time=record.start_time,
                end_time=record.end_time,
                code=record.code,
                secure_inputs=record.secure_inputs,
                secure_outputs=record.secure_outputs,
            )
            run.actions[record.name] = aggregate
        aggregate.repetitions.append(record)
        aggregate.end_time = record.end_time
        statuses = {r.status for r in aggregate.repetitions}
        aggregate.status = (
            "Failed" if "Failed" in statuses else ("Succeeded" if "Succeeded" in statuses else "Skipped")
        )
        aggregate.code = "NotSpecified" if aggregate.status == "Failed" else "OK"

    def _skip(self, name: str, action: dict[str, Any], code: str) -> ActionRecord:
        secure_in, secure_out = definitions.secure_data(action)
        now = now_iso()
        return ActionRecord(
            name=name,
            type=str(action.get("type")),
            status="Skipped",
            start_time=now,
            end_time=now,
            code=code,
            secure_inputs=secure_in,
            secure_outputs=secure_out,
            error={"code": code, "message": _SKIP_MESSAGES.get(code, "The action was skipped.")},
        )

    def _skip_nested(self, action: dict[str, Any], run: Run, repetition: tuple[str, int] | None) -> None:
        for name, inner in definitions.iter_actions({"_": action}):
            if name != "_" and name not in run.actions:
                self._store(run, self._skip(name, inner, "ActionBranchingConditionNotSatisfied"), repetition)

    # -- one action ----------------------------------------------------------------------------
    def _action(
        self,
        name: str,
        action: dict[str, Any],
        ctx: Context,
        run: Run,
        references: dict[str, Any],
        repetition: tuple[str, int] | None,
    ) -> ActionRecord:
        kind = str(action.get("type"))
        secure_in, secure_out = definitions.secure_data(action)
        record = ActionRecord(
            name=name,
            type=kind,
            status="Succeeded",
            start_time=now_iso(),
            end_time="",
            secure_inputs=secure_in,
            secure_outputs=secure_out,
        )
        try:
            if kind == "Foreach":
                self._foreach(name, action, ctx, run, references, record)
            elif kind in ("Scope", "If"):
                self._branch(kind, action, ctx, run, references, repetition, record)
            elif kind == "Compose":
                ctx.referenced.clear()
                record.inputs = evaluate(action.get("inputs"), ctx)
                record.outputs = record.inputs
                secured = {n for n, r in run.actions.items() if r.secure_outputs}
                if ctx.referenced & secured:  # reading a secured output hides this step's data too
                    record.secure_inputs = record.secure_outputs = True
                ctx.outputs[name] = record.outputs
            elif definitions.api_id_of(action, references) == definitions.KEYVAULT_API_ID.lower():
                self._keyvault(name, action, ctx, references, record)
                self._note_secret_read(name, action, references, record, run)
            elif kind == "Http":
                self._http(name, action, ctx, run, record)
            else:
                record.status, record.code = "Skipped", "NotEmulated"
                record.error = {
                    "code": "NotEmulated",
                    "message": f"The emulator does not execute actions of type '{kind}'.",
                }
        except ExpressionError as error:
            record.status, record.code = "Failed", "InvalidTemplate"
            record.error = {
                "code": "InvalidTemplate",
                "message": f"Unable to process template language expressions in action '{name}' inputs: "
                f"{error}",
            }
        record.end_time = now_iso()
        return record

    def _foreach(
        self,
        name: str,
        action: dict[str, Any],
        ctx: Context,
        run: Run,
        references: dict[str, Any],
        record: ActionRecord,
    ) -> None:
        items = evaluate(action.get("foreach"), ctx)
        if not isinstance(items, list):
            raise ExpressionError(
                f"The 'foreach' of '{name}' must evaluate to an array, not {type(items).__name__}."
            )
        record.inputs = items
        failed = False
        for index, item in enumerate(items):
            statuses = self._scope(
                action.get("actions") or {}, ctx.child(name, item), run, references, (name, index)
            )
            failed = failed or "Failed" in statuses.values()
        if failed:
            record.status, record.code = "Failed", "ActionFailed"
            record.error = {
                "code": "ActionFailed",
                "message": "An action failed. No dependent actions succeeded.",
            }

    def _branch(
        self,
        kind: str,
        action: dict[str, Any],
        ctx: Context,
        run: Run,
        references: dict[str, Any],
        repetition: tuple[str, int] | None,
        record: ActionRecord,
    ) -> None:
        chosen = action.get("actions") or {}
        if kind == "If":
            result = condition(action.get("expression"), ctx)
            record.inputs = {"expressionResult": result}
            other = (action.get("else") or {}).get("actions") or {}
            chosen, other = (chosen, other) if result else (other, chosen)
            for skipped_name, skipped in definitions.iter_actions(other):
                self._store(
                    run, self._skip(skipped_name, skipped, "ActionBranchingConditionNotSatisfied"), repetition
                )
        statuses = self._scope(chosen, ctx, run, references, repetition)
        if "Failed" in statuses.values():
            record.status, record.code = "Failed", "ActionFailed"
            record.error = {
                "code": "ActionFailed",
                "message": "An action failed. No dependent actions succeeded.",
            }

    # -- what a run read and sent out ------------------------------------------------------------
    def _note_secret_read(
        self,
        name: str,
        action: dict[str, Any],
        references: dict[str, Any],
        record: ActionRecord,
        run: Run,
    ) -> None:
        """Records a Get secret that returned a value: by name in the run, value -> name for egress."""
        body = (record.outputs or {}).get("body") if record.status == "Succeeded" else None
        if definitions.operation_of(action) != "GetSecret" or not isinstance(body, dict):
            return
        connection = self._connection(action, references)
        secret = str(body.get("name") or "")
        read = SecretRead(
            flow=run.flow,
            run=run.name,
            vault=(connection.vault_name or "") if connection else "",
            name=secret,
            action=name,
            secure_outputs=record.secure_outputs,
        )
        run.secret_reads.append(read)
        with self.emulator.state.lock:
            self.emulator.state.powerplatform.secret_reads.append(read)
        if body.get("value"):
            run.values_read[str(body["value"])] = secret

    def _http(self, name: str, action: dict[str, Any], ctx: Context, run: Run, record: ActionRecord) -> None:
        """The HTTP action: the request never leaves the machine. The emulator answers 200 for the
        endpoint, keeps an Egress record naming the secrets whose values the request carried, and logs
        the request without its body (no secret value reaches the request log)."""
        ctx.referenced.clear()
        inputs = evaluate(action.get("inputs") or {}, ctx)
        secured = {n for n, r in run.actions.items() if r.secure_outputs}
        if ctx.referenced & secured:  # inputs built from secured outputs are hidden too (as in the product)
            record.secure_inputs = True
        if not isinstance(inputs, dict) or not str(inputs.get("uri") or "").startswith("https://"):
            raise ExpressionError(f"The 'uri' of HTTP action '{name}' must be an absolute https URL.")
        import json

        sent = json.dumps(inputs.get("body"), default=str) + json.dumps(inputs.get("headers") or {})
        sent += str(inputs["uri"])
        carried = tuple(sorted({n for value, n in run.values_read.items() if value in sent}))
        target = urlsplit(str(inputs["uri"]))
        method = str(inputs.get("method") or "GET").upper()
        egress = Egress(
            flow=run.flow,
            run=run.name,
            action=name,
            method=method,
            host=target.hostname or "",
            path=target.path or "/",
            secrets=carried,
        )
        run.egress.append(egress)
        with self.emulator.state.lock:
            self.emulator.state.powerplatform.egress.append(egress)
        self.emulator.requests.add(
            LoggedRequest(
                method=method,
                host=egress.host,
                path=egress.path,
                query={},
                caller_oid=None,
                status=200,
                latency_ms=0.0,
                body=b"",  # never the body: it may carry secret values
                route="flow.http.egress",
                carried=carried,
            )
        )
        record.inputs = inputs
        record.outputs = {"statusCode": 200, "headers": {}, "body": ""}
        ctx.outputs[name] = record.outputs

    # -- Key Vault -----------------------------------------------------------------------------
    def _connection(self, action: dict[str, Any], references: dict[str, Any]) -> Connection | None:
        host = (action.get("inputs") or {}).get("host") or {}
        key = host.get("connectionName") or (host.get("connection") or {}).get("name", "")
        key = str(key).removeprefix("@parameters('$connections')['").split("']")[0]
        reference = references.get(key) or {}
        name = reference.get("connectionName") or key
        with self.emulator.state.lock:
            return self.emulator.state.powerplatform.connections.get(str(name))

    def _keyvault(
        self,
        name: str,
        action: dict[str, Any],
        ctx: Context,
        references: dict[str, Any],
        record: ActionRecord,
    ) -> None:
        operation = definitions.operation_of(action) or ""
        inputs = evaluate((action.get("inputs") or {}).get("parameters") or {}, ctx)
        record.inputs = {"host": (action.get("inputs") or {}).get("host"), "parameters": inputs}
        connection = self._connection(action, references)
        if connection is None or not connection.vault_name:
            record.status, record.code = "Failed", "ConnectionNotFound"
            record.error = {
                "code": "ConnectionNotFound",
                "message": f"The connection of action '{name}' was not found.",
            }
            ctx.outputs[name] = record.outputs = {"statusCode": 404, "body": {"error": record.error}}
            return
        if operation == "GetSecret":
            secret = str(inputs.get("secretName") or "")
            status, body = self._kv_get(connection, f"/secrets/{quote(secret, safe='')}")
            if status == 200:
                body = _secret_body(body)
        elif operation == "ListSecrets":
            status, body = self._kv_list(connection)
        else:
            record.status, record.code = "Skipped", "NotEmulated"
            record.error = {
                "code": "NotEmulated",
                "message": f"Key Vault operation '{operation}' is not emulated.",
            }
            return
        outputs = {
            "statusCode": status,
            "headers": {"Content-Type": "application/json; charset=utf-8"},
            "body": body,
        }
        record.outputs = outputs
        ctx.outputs[name] = outputs
        if status >= 400:
            record.status = "Failed"
            record.code = _REASONS.get(status, "BadRequest")
            error = (body or {}).get("error") if isinstance(body, dict) else None
            record.error = {
                "code": record.code,
                "message": (error or {}).get("message") or f"Key Vault answered {status}.",
            }

    def _token(self, connection: Connection) -> str:
        state = self.emulator.state
        with state.lock:
            info = state.powerplatform.directory.get(connection.identity, {})
        claims: dict[str, Any] = {
            "oid": connection.identity,
            "sub": connection.identity,
            "tid": state.azure.tenant_id,
            "aud": KEYVAULT_AUDIENCE,
            "iss": f"https://sts.windows.net/{state.azure.tenant_id}/",
        }
        if connection.auth_type == "oauth":
            claims["idtyp"] = "user"
            if info.get("email"):
                claims["upn"] = info["email"]
        else:
            claims["idtyp"] = "app"
            claims["appid"] = info.get("appId", connection.identity)
        return tokens.issue(claims)

    def _kv_get(
        self, connection: Connection, path: str, query: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        import json

        request = Request(
            method="GET",
            host=f"{connection.vault_name}.vault.azure.net",
            path=path,
            query=query or {"api-version": KEYVAULT_API_VERSION},
            headers={"authorization": f"Bearer {self._token(connection)}", "accept": "application/json"},
        )
        response = self.emulator.dispatch(request)
        try:
            body = json.loads(response.body) if response.body else None
        except ValueError:
            body = response.body.decode(errors="replace")
        return response.status, body

    def _kv_list(self, connection: Connection) -> tuple[int, Any]:
        items: list[dict[str, Any]] = []
        path, query = "/secrets", {"api-version": KEYVAULT_API_VERSION}
        for _ in range(_MAX_PAGES):
            status, body = self._kv_get(connection, path, query)
            if status != 200:
                return status, body
            items += [_secret_item(item) for item in (body or {}).get("value") or []]
            next_link = (body or {}).get("nextLink")
            if not next_link:
                break
            parts = urlsplit(next_link)
            path, query = parts.path, dict(parse_qsl(parts.query, keep_blank_values=True))
        return 200, {"value": items}


def _name_and_version(secret_id: str) -> tuple[str, str | None]:
    parts = urlsplit(secret_id).path.strip("/").split("/")  # secrets/{name}[/{version}]
    return (parts[1] if len(parts) > 1 else ""), (parts[2] if len(parts) > 2 else None)


def _attributes(body: dict[str, Any]) -> dict[str, Any]:
    from datetime import UTC, datetime

    attrs = body.get("attributes") or {}

    def iso(key: str) -> str | None:
        value = attrs.get(key)
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None

    return {
        "contentType": body.get("contentType"),
        "isEnabled": attrs.get("enabled", True),
        "createdTime": iso("created"),
        "lastUpdatedTime": iso("updated"),
        "validityStartTime": iso("nbf"),
        "validityEndTime": iso("exp"),
        "tags": body.get("tags"),
    }


def _secret_body(body: Any) -> dict[str, Any]:
    """Key Vault's SecretBundle, as the connector's GetSecret returns it."""
    name, version = _name_and_version(str((body or {}).get("id", "")))
    return {"value": (body or {}).get("value"), "name": name, "version": version, **_attributes(body or {})}


def _secret_item(item: dict[str, Any]) -> dict[str, Any]:
    name, _ = _name_and_version(str(item.get("id", "")))
    return {"name": name, **_attributes(item)}


_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
}
_SKIP_MESSAGES = {
    "ActionBranchingConditionNotSatisfied": "The execution of template action was skipped: the 'runAfter' "
    "condition was not satisfied.",
    "InvalidTemplate": "The action's runAfter refers to an action that does not exist or forms a cycle.",
}
