"""The `azure.core` pipeline for the APIs with no SDK in our dependencies (Microsoft Graph, the Power
Platform admin APIs): a bearer token for one audience and no RetryPolicy, because retries are ours,
around whole idempotent operations (adapters/retry.py). Failures: errors.failure_from_response."""

from __future__ import annotations

from typing import Any

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    ProxyPolicy,
    UserAgentPolicy,
)
from azure.core.rest import HttpRequest


def bearer_pipeline(
    base_url: str, credential: TokenCredential, scope: str, **client_kwargs: Any
) -> PipelineClient[HttpRequest, Any]:
    """No RetryPolicy in the pipeline: retries are ours (adapters/retry.py). `client_kwargs` carry the
    shared transport (adapters/http.py), so every adapter reuses one connection pool."""
    return PipelineClient(
        base_url,
        policies=[
            HeadersPolicy({"Accept": "application/json"}),
            UserAgentPolicy("vaultguard"),
            ProxyPolicy(),
            BearerTokenCredentialPolicy(credential, scope),
        ],
        **client_kwargs,
    )
