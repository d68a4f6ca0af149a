"""The `powerPlatform` section of a scenario file.
Errors name the field path (`powerPlatform.flows[2].creator`).

    "powerPlatform": {
      "admins": ["<object id>"],                 Power Platform / Global admins (may use scopes/admin)
      "managementApps": ["<application id>"],    registered management apps (app-only admin calls)
      "groups": {"<group id>": ["<member object id>"]},   optional, for shares to groups: added to the
                                                          Azure directory (top-level `groups`), the one
                                                          source of memberships
      "environments": [{"name": "<guid or Default-<tenant>>", "displayName": "...", "sku": "Production",
                        "isDefault": false, "location": "europe",
                        "roles": [{"principal": "<object id>", "role": "System Customizer",
                                   "type": "User"}],
                        "applicationUsers": ["<application id>"]}],   Dataverse application users
      "connections": [{"name": "<id>", "environment": "<env>", "api": "shared_keyvault", "displayName": "...",
                       "createdBy": "<object id>",
                       "authType": "oauth|servicePrincipal|certificate|managedIdentity",
                       "identity": "<object id Key Vault sees; default createdBy>",
                       "parameters": {"vaultName": "kv-shared-prod"},
                       "shares": [{"principal": "<object id>", "role": "CanView", "type": "User"}]}],
      "flows": [{"name": "<guid>", "environment": "<env>", "displayName": "...", "creator": "<object id>",
                 "state": "Started", "definition": {<Logic Apps workflow definition>},
                 "connectionReferences": {"shared_keyvault": {"connectionName": "<connection name>",
                                          "id": "/providers/Microsoft.PowerApps/apis/shared_keyvault",
                                          "connectionReferenceLogicalName": "<solution flows: the row>"}},
                 "shares": [{"principal": "<object id>", "role": "CanEdit|CanView", "type": "User|Group"}]}],
      "dlpPolicies": [<v2 policy: {"policyDefinition": {...}, "connectorConfigurationsDefinition": {...}}>]
    }

Principals are object ids of identities of the Azure section; display names and emails for the
permissions APIs come from there (`directory`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emulator.powerplatform import activation, dlp
from emulator.powerplatform.state import (
    CONNECTION_ROLES,
    ENVIRONMENT_ROLES,
    PRINCIPAL_TYPES,
    Connection,
    Environment,
    Flow,
    RoleAssignment,
    Share,
)

if TYPE_CHECKING:
    from emulator.state import State

_ROOT = "powerPlatform"
_TOP = {
    "admins",
    "managementApps",
    "groups",
    "environments",
    "connections",
    "flows",
    "dlpPolicies",
    "directory",
}


class PowerPlatformScenarioError(ValueError):
    pass


def _fail(path: str, message: str) -> PowerPlatformScenarioError:
    return PowerPlatformScenarioError(f"{path}: {message}")


def _object(value: Any, path: str, allowed: set[str], required: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "must be an object")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise _fail(path, f"unknown field(s) {', '.join(unknown)}")
    for key in sorted(required):
        if key not in value:
            raise _fail(f"{path}.{key}", "is required")
    return value


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(path, "must be a non-empty string")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(path, "must be a list")
    return value


def _shares(value: Any, path: str, roles: tuple[str, ...]) -> list[Share]:
    shares = []
    for i, item in enumerate(_list(value, path)):
        where = f"{path}[{i}]"
        _object(item, where, {"principal", "role", "type", "name"}, {"principal", "role"})
        principal = _str(item["principal"], f"{where}.principal")
        if item["role"] not in roles:
            raise _fail(f"{where}.role", f"must be one of {', '.join(roles)}")
        kind = item.get("type", "User")
        if kind not in PRINCIPAL_TYPES:
            raise _fail(f"{where}.type", f"must be one of {', '.join(PRINCIPAL_TYPES)}")
        shares.append(
            Share(
                name=str(item.get("name") or principal),
                principal_id=principal,
                role=item["role"],
                principal_type=kind,
            )
        )
    return shares


def _check_principal(state: State, principal: str, path: str) -> None:
    """When the Azure section declared identities, a principal must be one of them (or a group/tenant)."""
    directory = state.powerplatform.directory
    if directory and principal not in directory and principal != state.azure.tenant_id:
        raise _fail(path, f"unknown principal '{principal}' (not an identity of the scenario)")


def sync_directory(state: State) -> None:
    """Display facts (name, UPN, type, appId) of the Azure section's identities, by object id."""
    for principal in getattr(state.azure, "principals", {}).values():
        entry = {"displayName": principal.display_name, "type": principal.kind}
        if principal.user_principal_name:
            entry["email"] = principal.user_principal_name
        if principal.app_id:
            entry["appId"] = principal.app_id
        state.powerplatform.directory.setdefault(principal.id, entry)


def load(state: State, data: Any) -> None:
    """Validates the `powerPlatform` section and loads it into `state.powerplatform`."""
    pp = state.powerplatform
    root = _object(data, _ROOT, _TOP, set())
    groups = root.get("groups", {})
    if not isinstance(groups, dict):
        raise _fail(f"{_ROOT}.groups", "must be an object of group id -> member ids")
    for group, members in groups.items():
        # One directory: Graph (`transitiveMembers`) and Power Platform's share checks both read it.
        state.azure.add_group_members(group, [str(m) for m in _list(members, f"{_ROOT}.groups.{group}")])
    sync_directory(state)
    for key, value in (root.get("directory") or {}).items():  # extra display facts (tests, generator)
        pp.directory[str(key)] = dict(value)
    pp.admins |= {
        _str(v, f"{_ROOT}.admins[{i}]")
        for i, v in enumerate(_list(root.get("admins", []), f"{_ROOT}.admins"))
    }
    pp.management_apps |= {
        _str(v, f"{_ROOT}.managementApps[{i}]")
        for i, v in enumerate(_list(root.get("managementApps", []), f"{_ROOT}.managementApps"))
    }

    for i, item in enumerate(_list(root.get("environments", []), f"{_ROOT}.environments")):
        where = f"{_ROOT}.environments[{i}]"
        _object(
            item,
            where,
            {
                "name",
                "displayName",
                "sku",
                "isDefault",
                "location",
                "azureRegion",
                "createdBy",
                "createdTime",
                "roles",
                "applicationUsers",
            },
            {"name", "displayName"},
        )
        name = _str(item["name"], f"{where}.name")
        if name in pp.environments:
            raise _fail(f"{where}.name", f"duplicate environment '{name}'")
        env = Environment(
            name=name,
            display_name=_str(item["displayName"], f"{where}.displayName"),
            sku=item.get("sku", "Production"),
            is_default=bool(item.get("isDefault", False)),
            location=item.get("location", "europe"),
            azure_region=item.get("azureRegion", "westeurope"),
            created_by=item.get("createdBy"),
            created_time=item.get("createdTime", "2024-01-01T00:00:00Z"),
        )
        for j, role in enumerate(_list(item.get("roles", []), f"{where}.roles")):
            rwhere = f"{where}.roles[{j}]"
            _object(role, rwhere, {"principal", "role", "type"}, {"principal", "role"})
            if role["role"] not in ENVIRONMENT_ROLES:
                raise _fail(f"{rwhere}.role", f"must be one of {', '.join(ENVIRONMENT_ROLES)}")
            principal = _str(role["principal"], f"{rwhere}.principal")
            _check_principal(state, principal, f"{rwhere}.principal")
            env.roles.append(
                RoleAssignment(
                    principal_id=principal, role=role["role"], principal_type=role.get("type", "User")
                )
            )
        env.application_users = {
            _str(v, f"{where}.applicationUsers[{j}]").lower()
            for j, v in enumerate(_list(item.get("applicationUsers", []), f"{where}.applicationUsers"))
        }
        pp.environments[name] = env

    for i, item in enumerate(_list(root.get("connections", []), f"{_ROOT}.connections")):
        where = f"{_ROOT}.connections[{i}]"
        _object(
            item,
            where,
            {
                "name",
                "environment",
                "api",
                "displayName",
                "createdBy",
                "authType",
                "identity",
                "parameters",
                "shares",
                "createdTime",
            },
            {"name", "environment", "createdBy"},
        )
        name = _str(item["name"], f"{where}.name")
        if name in pp.connections:
            raise _fail(f"{where}.name", f"duplicate connection '{name}'")
        env_name = _str(item["environment"], f"{where}.environment")
        if env_name not in pp.environments:
            raise _fail(f"{where}.environment", f"unknown environment '{env_name}'")
        creator = _str(item["createdBy"], f"{where}.createdBy")
        _check_principal(state, creator, f"{where}.createdBy")
        auth = item.get("authType", "oauth")
        if auth not in ("oauth", "servicePrincipal", "certificate", "managedIdentity"):
            raise _fail(
                f"{where}.authType", "must be oauth, servicePrincipal, certificate or managedIdentity"
            )
        identity = _str(item.get("identity", creator), f"{where}.identity")
        _check_principal(state, identity, f"{where}.identity")
        parameters = item.get("parameters", {})
        if not isinstance(parameters, dict):
            raise _fail(f"{where}.parameters", "must be an object")
        api = item.get("api", "shared_keyvault")
        if api == "shared_keyvault" and not parameters.get("vaultName"):
            raise _fail(f"{where}.parameters.vaultName", "is required for shared_keyvault connections")
        connection = Connection(
            name=name,
            environment=env_name,
            api=api,
            display_name=item.get("displayName", parameters.get("vaultName", name)),
            created_by=creator,
            identity=identity,
            auth_type=auth,
            parameters=dict(parameters),
            created_time=item.get("createdTime", "2024-01-01T00:00:00Z"),
        )
        connection.shares[creator] = Share(name=creator, principal_id=creator, role="Owner")
        for j, share in enumerate(_shares(item.get("shares", []), f"{where}.shares", CONNECTION_ROLES)):
            _check_principal(state, share.principal_id, f"{where}.shares[{j}].principal")
            if share.principal_id != creator:
                share.name = share.principal_id
                connection.shares[share.name] = share
        pp.connections[name] = connection

    for i, item in enumerate(_list(root.get("flows", []), f"{_ROOT}.flows")):
        where = f"{_ROOT}.flows[{i}]"
        _object(
            item,
            where,
            {
                "name",
                "environment",
                "displayName",
                "creator",
                "state",
                "definition",
                "connectionReferences",
                "shares",
                "createdTime",
            },
            {"name", "environment", "displayName", "creator", "definition"},
        )
        name = _str(item["name"], f"{where}.name")
        if name in pp.flows:
            raise _fail(f"{where}.name", f"duplicate flow '{name}'")
        env_name = _str(item["environment"], f"{where}.environment")
        if env_name not in pp.environments:
            raise _fail(f"{where}.environment", f"unknown environment '{env_name}'")
        creator = _str(item["creator"], f"{where}.creator")
        _check_principal(state, creator, f"{where}.creator")
        definition = item["definition"]
        if (
            not isinstance(definition, dict)
            or not isinstance(definition.get("actions", {}), dict)
            or not isinstance(definition.get("triggers", {}), dict)
        ):
            raise _fail(
                f"{where}.definition", "must be a workflow definition with triggers and actions objects"
            )
        references = item.get("connectionReferences", {})
        if not isinstance(references, dict):
            raise _fail(f"{where}.connectionReferences", "must be an object")
        for key, reference in references.items():
            rwhere = f"{where}.connectionReferences.{key}"
            allowed = {"connectionName", "id", "source", "tier", "connectionReferenceLogicalName"}
            _object(reference, rwhere, allowed, {"connectionName", "id"})
            if reference["connectionName"] not in pp.connections:
                raise _fail(f"{rwhere}.connectionName", f"unknown connection '{reference['connectionName']}'")
        state_ = item.get("state", "Started")
        if state_ not in ("Started", "Stopped", "Suspended"):
            raise _fail(f"{where}.state", "must be Started, Stopped or Suspended")
        created = item.get("createdTime", "2024-01-01T00:00:00Z")
        flow = Flow(
            name=name,
            environment=env_name,
            display_name=_str(item["displayName"], f"{where}.displayName"),
            creator=creator,
            definition=definition,
            connection_references=dict(references),
            state=state_,
            created_time=created,
            last_modified_time=created,
        )
        flow.shares[creator] = Share(name=creator, principal_id=creator, role="Owner")
        for j, share in enumerate(
            _shares(item.get("shares", []), f"{where}.shares", ("Owner", "CanEdit", "CanView"))
        ):
            _check_principal(state, share.principal_id, f"{where}.shares[{j}].principal")
            share.name = share.principal_id
            flow.shares[share.principal_id] = share
        # seeded flows were activated by their creator: what the creator may use is in their context
        principals = activation.caller_principals(state, creator)
        flow.context_connections = {
            c.name
            for c in activation.referenced_connections(state, flow.connection_references)
            if c.usable_by(principals)
        }
        pp.flows[name] = flow

    for i, item in enumerate(_list(root.get("dlpPolicies", []), f"{_ROOT}.dlpPolicies")):
        where = f"{_ROOT}.dlpPolicies[{i}]"
        try:
            dlp.validate_policy(item, where)
        except ValueError as error:
            raise PowerPlatformScenarioError(str(error)) from None
        name = str(item["policyDefinition"].get("name") or f"policy-{i}")
        pp.dlp_policies[name] = dlp.normalise(state, item, name, None, "scenario")
    dlp.suspend_violating_flows(state)
