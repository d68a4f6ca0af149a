"""Fixtures for the trigger tests: app settings on Azurite and the emulator, in-process calls.

The emulated tenant holds the vault the alert samples and tickets name (`VAULT`), in the samples'
subscription, with one non-compliant access policy (`FLOW_SP` may `List`) and the admin user of the
samples' `claims`. `app_env` resets that vault before each test (the emulator is per module).
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from emulator import Emulator
from emulator.azure.state import AccessPolicy, Secret, SecretVersion
from emulator.scenario import load_scenario
from remediations.core.policy import Policy
from remediations.shell import policy_file

SUBSCRIPTION = "5f1c2b3a-8d4e-4f60-9a7b-1c2d3e4f5a6b"
SUBSCRIPTIONS = (SUBSCRIPTION,)
VAULT = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-finance-automation"
    "/providers/Microsoft.KeyVault/vaults/kv-fin-flows"
)
VAULT_NAME = "kv-fin-flows"
ADMIN_USER = "3b9f6c1e-2a4d-4e8b-9c7f-0d1e2f3a4b5c"  # the caller in the samples' claims
FLOW_SP = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"  # the identity behind a flow's Key Vault connection
SCENARIO: dict[str, Any] = {
    "subscriptions": [{"subscriptionId": SUBSCRIPTION, "displayName": "finance"}],
    "users": [{"id": ADMIN_USER, "userPrincipalName": "admin@contoso.example", "displayName": "Admin"}],
    "applications": [
        {
            "appId": "1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d",
            "displayName": "flow-keyvault-connection",
            "servicePrincipalId": FLOW_SP,
        }
    ],
    "vaults": [
        {
            "name": VAULT_NAME,
            "resourceGroup": "rg-finance-automation",
            "subscriptionId": SUBSCRIPTION,
            "accessPolicies": [
                {"objectId": FLOW_SP, "permissions": {"secrets": ["Get", "List"]}},
                {"objectId": ADMIN_USER, "permissions": {"secrets": ["Get", "Set", "Delete"]}},
            ],
            "secrets": [{"name": "sql-password", "value": "emulated-secret-value-1"}],
        }
    ],
}


@pytest.fixture(scope="module")
def cloud() -> Iterator[Emulator]:
    with Emulator(load_scenario(copy.deepcopy(SCENARIO))) as emulator:
        yield emulator


def reset_vault(emu: Emulator) -> None:
    """Put the sample vault's access policies back as the scenario has them."""
    fresh = load_scenario(copy.deepcopy(SCENARIO)).azure.vaults[VAULT_NAME]
    with emu.state.lock:
        emu.state.azure.vaults[VAULT_NAME].access_policies = fresh.access_policies


@contextmanager
def app_may_rotate(emu: Emulator, values: dict[str, str]) -> Iterator[None]:
    """The app's identity may get/list/set secrets in the sample vault, which holds one version of each
    of `values` besides its own secrets; its secrets are put back afterwards (access policies are
    reset by `app_env`)."""
    az = emu.state.azure
    stamp = int(time.time()) - 1000
    with emu.state.lock:
        vault = az.vaults[VAULT_NAME]
        saved = {name: copy.deepcopy(secret) for name, secret in vault.secrets.items()}
        vault.access_policies.append(
            AccessPolicy(az.tenant_id, az.admin_object_id, permissions={"secrets": ["Get", "List", "Set"]})
        )
        for name, value in values.items():
            version = SecretVersion(version=uuid.uuid4().hex, value=value, created=stamp, updated=stamp)
            vault.secrets[name] = Secret(name, [version])
    try:
        yield
    finally:
        with emu.state.lock:
            vault.secrets.clear()
            vault.secrets.update(saved)


def secrets_of(emu: Emulator, object_id: str) -> list[str]:
    with emu.state.lock:
        vault = emu.state.azure.vaults[VAULT_NAME]
        return [
            p for e in vault.access_policies if e.object_id == object_id for p in e.permissions["secrets"]
        ]


def policy_writes_since(emu: Emulator, mark: int = 0) -> int:
    """Access-policy PUTs the emulator answered since `mark` (the only writes these remediations make)."""
    return len([r for r in emu.requests.since(mark) if r.method == "PUT" and "/accessPolicies/" in r.path])


@pytest.fixture
def app_env(storage_env: dict[str, str], cloud: Emulator, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """storage_env, a run table of its own, the emulator's client environment, the samples'
    subscription to sweep. Deployment defaults: dry run (setting unset, default policy)."""
    reset_vault(cloud)
    env = dict(storage_env)
    env.update(cloud.env)
    env["VAULTGUARD_RUNS_TABLE"] = f"runs{uuid.uuid4().hex[:10]}"
    env["VAULTGUARD_SUBSCRIPTION_IDS"] = ",".join(SUBSCRIPTIONS)
    env["VAULTGUARD_SWEEP_SCHEDULE"] = "0 0 */6 * * *"
    env["VAULTGUARD_DEEP_SWEEP_SCHEDULE"] = "0 0 3 * * *"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("APPLICATIONINSIGHTS_CONNECTION_STRING", "VAULTGUARD_DRY_RUN", "VAULTGUARD_POLICY_JSON"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("VAULTGUARD_POLICY_FILE", raising=False)
    return env


@pytest.fixture
def policy_file_reads(
    app_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[[dict[str, Any]], list[str]]:
    """policy_file_reads(policy) -> the list of policy file reads from then on: the deployment's policy
    is `policy`, in the file `VAULTGUARD_POLICY_FILE` names, and each read of it is appended."""
    reads: list[str] = []
    read = policy_file.load_policy_file

    def counted(path: str | Path) -> Policy:
        reads.append(str(path))
        return read(path)

    def use(policy: dict[str, Any]) -> list[str]:
        file = tmp_path / "policy.json"
        file.write_text(json.dumps(policy))
        monkeypatch.setenv("VAULTGUARD_POLICY_FILE", str(file))
        monkeypatch.setattr(policy_file, "load_policy_file", counted)
        return reads

    return use


@pytest.fixture
def enforce(app_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """app_env with the deployment out of dry run: setting and policy both say enforce."""
    monkeypatch.setenv("VAULTGUARD_DRY_RUN", "false")
    monkeypatch.setenv("VAULTGUARD_POLICY_JSON", json.dumps({"dryRun": False}))
    return {**app_env, "VAULTGUARD_DRY_RUN": "false"}


Call = Callable[..., func.HttpResponse]


@pytest.fixture
def call(functions: dict[str, Any]) -> Call:
    """call("tickets", "POST", "/api/remediations", body={...}) -> HttpResponse, in-process."""

    def _call(
        name: str,
        method: str,
        url: str,
        *,
        body: object = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        route_params: dict[str, str] | None = None,
    ) -> func.HttpResponse:
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        all_headers = {"content-type": "application/json"}
        all_headers.update(headers or {})
        request = func.HttpRequest(
            method=method,
            url=f"http://localhost{url}",
            headers=all_headers,
            params=params or {},
            route_params=route_params or {},
            body=data,
        )
        response = functions[name].get_user_function()(request)
        assert isinstance(response, func.HttpResponse)
        return response

    return _call


def ticket_body(ticket_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ticketId": ticket_id or f"CHG-{uuid.uuid4().hex[:12]}",
        "remediations": ["remove_list_permission"],
        "targets": {"vaults": [VAULT]},
        "requester": "secops@contoso.example",
        "reason": "flow edit exposed secrets",
    }
    body.update(overrides)
    return body


def problem(response: func.HttpResponse) -> dict[str, Any]:
    assert response.mimetype == "application/problem+json", response.get_body()[:300]
    body: dict[str, Any] = json.loads(response.get_body())
    assert body["status"] == response.status_code
    assert {"type", "title", "status", "detail"} <= set(body)
    text = response.get_body().decode()
    assert "Traceback" not in text and 'File "' not in text
    return body
