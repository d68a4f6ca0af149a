"""Microsoft Graph application password credentials: `addPassword`, `removePassword`, and the list of
credential key ids (`GET /applications/{id}?$select=passwordCredentials`), for the app-credential
rotator. The `secretText` Graph returns once is wrapped in a `SecretValue` at once and never logged.

Permissions: Application.ReadWrite.OwnedBy (the app must own the application) or Application.ReadWrite.All.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import quote

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.rest import HttpRequest, HttpResponse

from remediations.adapters.errors import failure_from_response
from remediations.adapters.graph_api import GRAPH, GRAPH_SCOPE
from remediations.adapters.rest import bearer_pipeline
from remediations.adapters.retry import with_retry
from remediations.core.secret_value import SecretValue


def _raise_for(operation: str, response: HttpResponse) -> None:
    raise failure_from_response(operation, response)  # error bodies never carry a secretText


class Applications:
    def __init__(self, credential: TokenCredential, **client_kwargs: Any) -> None:
        self._client: PipelineClient[HttpRequest, Any] = bearer_pipeline(
            GRAPH, credential, GRAPH_SCOPE, **client_kwargs
        )

    def _url(self, app_object_id: str, tail: str = "") -> str:
        return f"{GRAPH}/v1.0/applications/{quote(app_object_id, safe='')}{tail}"

    def password_key_ids(self, app_object_id: str) -> list[str]:
        def get() -> list[str]:
            response = self._client.send_request(
                HttpRequest("GET", self._url(app_object_id, "?$select=id,passwordCredentials"))
            )
            if response.status_code != 200:
                _raise_for(f"get application {app_object_id}", response)
            credentials = json.loads(response.text()).get("passwordCredentials") or []
            return [str(c["keyId"]).lower() for c in credentials if c.get("keyId")]

        return with_retry(f"get application {app_object_id}", get)

    def add_password(self, app_object_id: str, display_name: str, end: datetime) -> tuple[str, SecretValue]:
        """A new client secret: (keyId, secret). Not retried: every call creates a credential."""

        def post() -> tuple[str, SecretValue]:
            body = {
                "passwordCredential": {
                    "displayName": display_name,
                    "endDateTime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            }
            response = self._client.send_request(
                HttpRequest("POST", self._url(app_object_id, "/addPassword"), json=body)
            )
            if response.status_code not in (200, 201):
                _raise_for(f"addPassword on application {app_object_id}", response)
            payload = json.loads(response.text())
            return str(payload["keyId"]).lower(), SecretValue(str(payload["secretText"]))

        return with_retry(f"addPassword on application {app_object_id}", post, attempts=1)

    def remove_password(self, app_object_id: str, key_id: str) -> None:
        def post() -> None:
            response = self._client.send_request(
                HttpRequest("POST", self._url(app_object_id, "/removePassword"), json={"keyId": key_id})
            )
            if response.status_code not in (200, 204):
                _raise_for(f"removePassword {key_id} on application {app_object_id}", response)

        with_retry(f"removePassword {key_id} on application {app_object_id}", post)

    def close(self) -> None:
        self._client.close()
