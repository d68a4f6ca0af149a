"""Dataverse Web API shapes for cloud flows, owners, shares and security roles (pure mapping; the calls
are in adapters/powerplatform.py).

Why Dataverse: the Flow API (api.flow.microsoft.com) takes app-only tokens on its admin routes only
(its maker routes refuse them) and its admin GET has no `properties.definition` (docs/fidelity.md, "The
Flow API and app-only tokens"); Microsoft documents the Dataverse `workflows` table as the
supported way to work with cloud flows in code ("Work with cloud flows using code",
MicrosoftDocs/power-automate-docs `articles/manage-flows-with-code.md`): `category eq 5`, the
definition and connection references in `clientdata` (a JSON string), `_ownerid_value`,
`statecode` 0 Draft (off) / 1 Activated (on) / 2 Suspended, shares through
`RetrieveSharedPrincipalsAndAccess` and `RevokeAccess`. Security-role holders (System Customizer /
System Administrator) come from `systemusers` with `systemuserroles_association` and `teams` with
`teamroles_association`: BAP environment role assignments answer 403 for Dataverse environments.

Every Dataverse id (systemuserid, teamid) is mapped to the Entra object id the rest of the app speaks
(`azureactivedirectoryobjectid`); an unmapped principal keeps its Dataverse id, so it is still judged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from remediations.core.model import ConnectionReference, Flow, PrincipalKind, Share

WEB_API = "/api/data/v9.2"
# Dataverse pages at most 5,000 rows (`Prefer: odata.maxpagesize`); fewer round trips than the default.
PAGE_SIZE = 5000
CLOUD_FLOW_CATEGORY = 5
WORKFLOW_COLUMNS = "workflowid,name,clientdata,statecode,statuscode,_ownerid_value,_createdby_value"
USER_COLUMNS = "systemuserid,azureactivedirectoryobjectid,applicationid,fullname,isdisabled"
TEAM_COLUMNS = "teamid,azureactivedirectoryobjectid,teamtype,name"
ROLE_COLUMNS = "roleid,name"
CONNECTION_REFERENCE_COLUMNS = "connectionreferenceid,connectionreferencelogicalname,connectionid,connectorid"
# statecode (manage-flows-with-code.md): 0 Draft (off), 1 Activated (on), 2 Suspended.
FLOW_STATES = {0: "Stopped", 1: "Started", 2: "Suspended"}
OFF = {"statecode": 0, "statuscode": 1}  # Draft / Draft: the flow stops triggering


@dataclass(frozen=True)
class DataverseInstance:
    """Where an environment's Dataverse Web API answers and the token audience for it."""

    api_url: str  # e.g. https://org1.api.crm4.dynamics.com
    scope: str  # e.g. https://org1.crm4.dynamics.com/.default


def instance_from_environment(item: dict[str, Any]) -> DataverseInstance | None:
    """From a BAP environment (`properties.linkedEnvironmentMetadata`); None without a database."""
    meta = (item.get("properties") or {}).get("linkedEnvironmentMetadata") or {}
    api = str(meta.get("instanceApiUrl") or meta.get("instanceUrl") or "").rstrip("/")
    web = str(meta.get("instanceUrl") or api).rstrip("/")
    if not api.startswith("https://") or not web.startswith("https://"):
        return None
    origin = urlsplit(web)
    return DataverseInstance(api_url=api, scope=f"{origin.scheme}://{origin.netloc}/.default")


@dataclass
class DataversePrincipals:
    """One environment's users and teams: Dataverse id -> (Entra object id, kind), and role names held
    by Entra object id (users directly; Entra group teams for their members)."""

    by_id: dict[str, tuple[str, PrincipalKind]] = field(default_factory=dict)
    dataverse_ids: dict[str, str] = field(default_factory=dict)  # Entra object id -> Dataverse id
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Entra object id -> role name -> roleid of the role row it holds (a role name exists once per
    # business unit, so the id to disassociate is the one on the principal's own association)
    role_ids: dict[str, dict[str, str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # Entra object id -> full name / team name

    def resolve(self, dataverse_id: str, default: PrincipalKind = "user") -> tuple[str, PrincipalKind]:
        return self.by_id.get(dataverse_id.lower(), (dataverse_id.lower(), default))


def _expanded(row: dict[str, Any], relation: str) -> list[dict[str, Any]]:
    items = row.get(relation)
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def principals_from_api(users: list[dict[str, Any]], teams: list[dict[str, Any]]) -> DataversePrincipals:
    """`systemusers` rows (with `systemuserroles_association`) and `teams` rows (with
    `teamroles_association`). Application users carry `applicationid`: service principals."""
    out = DataversePrincipals()
    held: dict[str, set[str]] = {}

    def add(row: dict[str, Any], id_field: str, kind: PrincipalKind, name_field: str, relation: str) -> None:
        dataverse_id = str(row.get(id_field) or "").lower()
        if not dataverse_id:
            return
        oid = str(row.get("azureactivedirectoryobjectid") or dataverse_id).lower()
        out.by_id[dataverse_id] = (oid, kind)
        out.dataverse_ids[oid] = dataverse_id
        if row.get(name_field):
            out.names[oid] = str(row[name_field])
        for role in _expanded(row, relation):
            if role.get("name"):
                held.setdefault(oid, set()).add(str(role["name"]))
                out.role_ids.setdefault(oid, {})[str(role["name"])] = str(role.get("roleid") or "")

    for row in users:
        kind: PrincipalKind = "servicePrincipal" if row.get("applicationid") else "user"
        add(row, "systemuserid", kind, "fullname", "systemuserroles_association")
    for row in teams:
        add(row, "teamid", "group", "name", "teamroles_association")
    out.roles = {p: tuple(sorted(r)) for p, r in sorted(held.items())}
    return out


def client_data(row: dict[str, Any]) -> dict[str, Any]:
    """A `workflows` row's `clientdata` as an object ({} when absent or not JSON)."""
    raw = row.get("clientdata")
    if isinstance(raw, dict):
        return raw
    try:
        parsed = json.loads(raw) if isinstance(raw, str) and raw.strip() else {}
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _logical_name(reference: dict[str, Any]) -> str | None:
    """The `connectionreferences` row a solution flow's reference names
    (`connection.connectionReferenceLogicalName`), if any."""
    raw = reference.get("connection")
    name = raw.get("connectionReferenceLogicalName") if isinstance(raw, dict) else None
    return str(name) if name else None


def _connection_name(reference: dict[str, Any], logical_names: dict[str, str]) -> str | None:
    """For a reference naming a `connectionreference` row, that row's `connectionid`: the row binds the
    flow, and rebinding it moves every flow naming it (docs/fidelity.md), so a `connection.name` the
    clientdata also carries (the recorded clientdata in manage-flows-with-code.md has both) may be
    stale. Else, or when the row is not known, `connection.name` (the same article), or
    `connectionName` (the older form it describes)."""
    raw = reference.get("connection")
    connection: dict[str, Any] = raw if isinstance(raw, dict) else {}
    logical = _logical_name(reference)
    name = (logical_names.get(logical.lower()) if logical else None) or connection.get("name")
    name = name or reference.get("connectionName")
    return str(name) if name else None


def _references(row: dict[str, Any]) -> dict[str, Any]:
    properties = client_data(row).get("properties") or {}
    references = properties.get("connectionReferences")
    return references if isinstance(references, dict) else {}


def needs_connection_references(row: dict[str, Any]) -> bool:
    """Whether a reference names a solution connection reference (its row binds the connection)."""
    return any(isinstance(r, dict) and _logical_name(r) for r in _references(row).values())


def connection_references_from_api(rows: list[dict[str, Any]]) -> dict[str, str]:
    """`connectionreferences` rows -> {logical name (lower case): connection name}."""
    return {
        str(r["connectionreferencelogicalname"]).lower(): str(r["connectionid"])
        for r in rows
        if r.get("connectionreferencelogicalname") and r.get("connectionid")
    }


def connection_reference_from_api(row: dict[str, Any]) -> ConnectionReference:
    """One `connectionreferences` row (columns of the Dataverse table reference `connectionreference`)."""
    return ConnectionReference(
        id=str(row["connectionreferenceid"]),
        logical_name=str(row.get("connectionreferencelogicalname") or ""),
        connection_id=str(row["connectionid"]) if row.get("connectionid") else None,
        connector_id=str(row.get("connectorid") or ""),
    )


def connection_reference_query(logical_name: str) -> str:
    """The row of one logical name (OData string literal: a quote is doubled)."""
    literal = logical_name.replace("'", "''")
    wanted = quote(f"connectionreferencelogicalname eq '{literal}'", safe="")
    return f"{WEB_API}/connectionreferences?$select={CONNECTION_REFERENCE_COLUMNS}&$filter={wanted}"


def flow_from_workflow(
    row: dict[str, Any],
    environment: str,
    principals: DataversePrincipals,
    logical_names: dict[str, str] | None = None,
) -> Flow:
    """One `workflows` row (category 5) -> Flow; the owner is mapped to its Entra object id and solution
    connection references (`logical_names`) to their connections."""
    properties = client_data(row).get("properties") or {}
    keys = {
        str(key): name
        for key, reference in _references(row).items()
        if isinstance(reference, dict) and (name := _connection_name(reference, logical_names or {}))
    }
    solution = {
        str(key): logical
        for key, reference in _references(row).items()
        if isinstance(reference, dict) and (logical := _logical_name(reference))
    }
    owner = row.get("_ownerid_value")
    definition = properties.get("definition")
    return Flow(
        id=str(row["workflowid"]).lower(),
        environment=environment,
        display_name=str(row.get("name") or ""),
        creator=principals.resolve(str(owner))[0] if owner else None,
        connection_references=tuple(sorted(set(keys.values()))),
        definition=definition if isinstance(definition, dict) else {},
        state=FLOW_STATES.get(int(row.get("statecode") or 0), "Stopped"),
        reference_keys=keys,
        solution_references=solution,
    )


def _principal_kind(odata_type: str) -> PrincipalKind:
    return "group" if odata_type.lower().endswith(".team") else "user"


def flow_shares_from_api(
    environment: str,
    flow: str,
    owner: str | None,
    access: dict[str, Any],
    principals: DataversePrincipals,
) -> list[Share]:
    """The owner (`_ownerid_value`) plus every `RetrieveSharedPrincipalsAndAccess` entry. A share
    with `WriteAccess` is a co-owner (CanEdit), anything else run-only (CanView). `permission_id` keeps
    the Dataverse principal id `RevokeAccess` needs."""

    def share(dataverse_id: str, kind: PrincipalKind, role: str) -> Share:
        oid, resolved = principals.resolve(dataverse_id, kind)
        return Share(
            resource_kind="flow",
            resource_id=flow,
            principal_id=oid,
            principal_kind=resolved,
            role=role,
            environment=environment,
            permission_id=dataverse_id.lower(),
        )

    shares = [share(owner, "user", "Owner")] if owner else []
    for entry in access.get("PrincipalAccesses") or []:
        principal = entry.get("Principal") or {}
        dataverse_id = str(
            principal.get("ownerid") or principal.get("systemuserid") or principal.get("teamid") or ""
        )
        if dataverse_id:
            kind = _principal_kind(str(principal.get("@odata.type") or ""))
            role = "CanEdit" if "WriteAccess" in str(entry.get("AccessMask") or "") else "CanView"
            shares.append(share(dataverse_id, kind, role))
    return shares


def workflows_query() -> str:
    return (
        f"{WEB_API}/workflows?$select={WORKFLOW_COLUMNS}"
        f"&$filter={quote(f'category eq {CLOUD_FLOW_CATEGORY}')}"
    )


def shared_principals_query(flow: str) -> str:
    """The function form the Power Automate docs show: `RetrieveSharedPrincipalsAndAccess(Target=@tid)`."""
    target = quote(json.dumps({"@odata.id": f"workflows({flow})"}).replace('"', "'"), safe="")
    return f"{WEB_API}/RetrieveSharedPrincipalsAndAccess(Target=@tid)?@tid={target}"


def role_association_path(dataverse_id: str, kind: PrincipalKind, role_id: str) -> str:
    """The `$ref` of one role association, for DELETE (Web API disassociate): a user's
    `systemuserroles_association`, or an Entra group team's `teamroles_association`."""
    if kind == "group":
        return f"teams({dataverse_id})/teamroles_association({role_id})/$ref"
    return f"systemusers({dataverse_id})/systemuserroles_association({role_id})/$ref"


def revoke_body(flow: str, principal: str, kind: PrincipalKind) -> dict[str, Any]:
    """`RevokeAccess` (the docs' body): the workflow and the principal by its Dataverse id."""
    entity = "team" if kind == "group" else "systemuser"
    return {
        "Target": {"@odata.type": "Microsoft.Dynamics.CRM.workflow", "workflowid": flow},
        "Revokee": {"@odata.type": f"Microsoft.Dynamics.CRM.{entity}", "ownerid": principal},
    }
