"""Helpers for emulator tests: raw HTTPS calls through the proxy, admin tokens."""

from __future__ import annotations

from typing import Any

import requests

from emulator import Emulator


class Raw:
    """Plain HTTPS calls through the emulator's proxy, for APIs without an installed SDK."""

    def __init__(self, emu: Emulator, token: str | None = None) -> None:
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.proxies = {"https": emu.proxy_url}
        self.session.verify = emu.ca_bundle
        self.token = token

    def call(self, method: str, url: str, json: Any = None, **kwargs: Any) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return self.session.request(method, url, json=json, headers=headers, timeout=10, **kwargs)


def admin_token(emu: Emulator, scope: str = "https://management.azure.com/.default") -> str:
    az = emu.state.azure
    response = Raw(emu).call(
        "POST",
        f"https://login.microsoftonline.com/{az.tenant_id}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": az.admin_client_id,
            "client_secret": az.admin_client_secret,
            "scope": scope,
        },
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def create_resource_group(arm: Raw, subscription_id: str, name: str) -> None:
    response = arm.call(
        "PUT",
        f"https://management.azure.com/subscriptions/{subscription_id}/resourcegroups/"
        f"{name}?api-version=2021-04-01",
        json={"location": "eastus"},
    )
    assert response.status_code in (200, 201), response.text
