"""Property: no JSON body, however odd, makes either POST endpoint answer 5xx."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.functions.conftest import VAULT, Call

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
_json = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
_ids = st.sampled_from([VAULT, VAULT.lower(), VAULT + "/..", "x", "", "00000000-0000-0000-0000-000000000000"])
_names = st.sampled_from(["remove_list_permission", "rotate_secret", "nope", ""])
_ticketish = st.fixed_dictionaries(
    {},
    optional={
        "ticketId": st.text(max_size=70) | st.integers(),
        "remediations": st.lists(_names, max_size=3) | _json,
        "targets": st.dictionaries(
            st.sampled_from(["vaults", "secrets", "flows", "connections", "principals", "environments", "x"]),
            st.lists(_ids, max_size=2) | _json,
            max_size=3,
        )
        | _json,
        "dryRun": _json,
        "requester": _json,
        "reason": _json,
        "extra": _json,
    },
)
_alertish = st.fixed_dictionaries(
    {},
    optional={
        "schemaId": st.sampled_from(["azureMonitorCommonAlertSchema", "other"]) | _json,
        "data": st.fixed_dictionaries(
            {},
            optional={
                "essentials": st.fixed_dictionaries(
                    {},
                    optional={
                        "alertId": st.text(max_size=30) | _json,
                        "monitorCondition": st.sampled_from(["Fired", "Resolved", "x"]) | _json,
                        "monitoringService": st.sampled_from(
                            [
                                "Activity Log - Administrative",
                                "Activity Log - Security",
                                "Log Alerts V2",
                                "Platform",
                            ]
                        )
                        | _json,
                        "alertTargetIDs": st.lists(_ids, max_size=2) | _json,
                    },
                )
                | _json,
                "alertContext": st.dictionaries(
                    st.sampled_from(
                        ["operationName", "authorization", "properties", "condition", "caller", "claims"]
                    ),
                    _json | st.just("Microsoft.KeyVault/vaults/write"),
                    max_size=4,
                )
                | _json,
            },
        )
        | _json,
        "AlertType": st.sampled_from(["KV_TORAccess", "X"]) | _json,
        "SystemAlertId": _json,
        "AzureResourceId": _ids | _json,
    },
)
_fuzz = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _post(call: Call, name: str, url: str, body: Any) -> int:
    response = call(name, "POST", url, raw=json.dumps(body).encode())
    assert response.status_code < 500, (body, response.get_body()[:400])
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json"
    return response.status_code


@_fuzz
@given(body=_json | _ticketish)
def test_random_ticket_bodies_never_yield_5xx(call: Call, app_env: dict[str, str], body: Any) -> None:
    _post(call, "tickets", "/api/remediations", body)


@_fuzz
@given(body=_json | _alertish)
def test_random_alert_bodies_never_yield_5xx(call: Call, app_env: dict[str, str], body: Any) -> None:
    _post(call, "alerts", "/api/alerts", body)
