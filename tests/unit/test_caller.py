"""The App Service Authentication principal: header parsing, write authorization, attribution."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remediations.shell.audit import AttributedAuditSink, AuditRecord, MemoryAuditSink
from remediations.triggers.caller import (
    ANONYMOUS,
    PRINCIPAL_HEADERS,
    Caller,
    asks_for_changes,
    attribute,
    authorize_write,
    caller_from,
    parse_caller,
)
from remediations.triggers.problems import ProblemError

OID = "7d1e9a34-6c2b-4f0e-9a51-2b3c4d5e6f70"
ROLE_TYP = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
NAME_TYP = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"


def principal(claims: list[dict[str, Any]] | None = None, **fields: Any) -> str:
    """X-MS-CLIENT-PRINCIPAL as Easy Auth sends it for an Entra ID (v2) token."""
    document = {
        "auth_typ": "aad",
        "claims": claims
        if claims is not None
        else [
            {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": OID},
            {"typ": NAME_TYP, "val": "alice@contoso.example"},
            {"typ": "roles", "val": "Remediator"},
            {"typ": ROLE_TYP, "val": "Auditor"},
            {"typ": "groups", "val": "f08bbbea-b793-4a36-a5fc-136c18d8aa8f"},
        ],
        "name_typ": NAME_TYP,
        "role_typ": ROLE_TYP,
        **fields,
    }
    return base64.b64encode(json.dumps(document).encode()).decode()


def easy_auth(**overrides: str) -> dict[str, str]:
    headers = {
        "X-MS-CLIENT-PRINCIPAL-ID": OID,
        "X-MS-CLIENT-PRINCIPAL-NAME": "alice@contoso.example",
        "X-MS-CLIENT-PRINCIPAL-IDP": "aad",
        "X-MS-CLIENT-PRINCIPAL": principal(),
    }
    headers.update(overrides)
    return headers


def malformed(headers: dict[str, str]) -> str:
    with pytest.raises(ProblemError) as caught:
        parse_caller(headers)
    problem = caught.value.problem
    assert (problem.status, problem.kind) == (400, "malformed-principal")
    return problem.detail


def test_no_principal_headers_is_no_caller() -> None:
    assert parse_caller({}) is None
    assert parse_caller({"content-type": "application/json", "x-functions-key": "k"}) is None


def test_an_entra_id_principal_gives_id_name_provider_auth_type_and_app_roles() -> None:
    caller = parse_caller(easy_auth())
    assert caller == Caller(
        objectId=OID,
        name="alice@contoso.example",
        identityProvider="aad",
        authType="aad",
        # v2 tokens carry `roles` while role_typ names the long type: both are app roles; groups are not.
        roles=["Auditor", "Remediator"],
    )
    assert caller.display == f"alice@contoso.example ({OID})"


def test_header_names_are_matched_in_any_case() -> None:
    lowered = {k.lower(): v for k, v in easy_auth().items()}
    assert parse_caller(lowered) == parse_caller(easy_auth())


def test_the_principal_alone_is_enough_and_the_object_id_claim_wins() -> None:
    caller = parse_caller(
        {"x-ms-client-principal": principal(), "x-ms-client-principal-id": "some-other-provider-id"}
    )
    assert caller is not None
    assert caller.objectId == OID
    assert caller.name == "alice@contoso.example"  # the claim of name_typ
    assert caller.identityProvider == "aad"  # auth_typ stands in for the IDP header


def test_an_app_calling_as_itself_is_named_by_its_id() -> None:
    app = [{"typ": "oid", "val": OID}, {"typ": "roles", "val": "Remediator"}]
    caller = parse_caller({"X-MS-CLIENT-PRINCIPAL": principal(app), "X-MS-CLIENT-PRINCIPAL-IDP": "aad"})
    assert caller is not None
    assert (caller.objectId, caller.name, caller.roles) == (OID, None, ["Remediator"])
    assert caller.display == OID


def test_the_id_headers_without_a_principal_are_a_caller_without_roles() -> None:
    headers = easy_auth()
    del headers["X-MS-CLIENT-PRINCIPAL"]
    caller = parse_caller(headers)
    assert caller is not None
    assert (caller.objectId, caller.name, caller.authType, caller.roles) == (
        OID,
        "alice@contoso.example",
        None,
        [],
    )


def test_url_safe_and_unpadded_base64_is_read() -> None:
    raw = principal().rstrip("=").replace("+", "-").replace("/", "_")
    assert parse_caller({"X-MS-CLIENT-PRINCIPAL": raw}) == parse_caller(
        {"X-MS-CLIENT-PRINCIPAL": principal()}
    )


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({"X-MS-CLIENT-PRINCIPAL": "not base64 at all!"}, "base64"),
        ({"X-MS-CLIENT-PRINCIPAL": base64.b64encode(b"{not json").decode()}, "JSON"),
        ({"X-MS-CLIENT-PRINCIPAL": base64.b64encode(b"\xff\xfe").decode()}, "UTF-8"),
        ({"X-MS-CLIENT-PRINCIPAL": base64.b64encode(b"[1, 2]").decode()}, "JSON object"),
        ({"X-MS-CLIENT-PRINCIPAL": principal(claims={"typ": "oid"})}, "claims"),  # type: ignore[arg-type]
        ({"X-MS-CLIENT-PRINCIPAL": principal([{"typ": "oid", "val": 10000}])}, "claim"),
        ({"X-MS-CLIENT-PRINCIPAL": principal(["oid"])}, "claim"),  # type: ignore[list-item]
        ({"X-MS-CLIENT-PRINCIPAL": principal(role_typ=7)}, "role_typ"),
        ({"X-MS-CLIENT-PRINCIPAL": "A" * (64 * 1024 + 4)}, "longer"),
        ({"X-MS-CLIENT-PRINCIPAL": principal([])}, "no caller id"),
        ({"X-MS-CLIENT-PRINCIPAL-NAME": "alice@contoso.example"}, "no caller id"),
        (easy_auth(**{"X-MS-CLIENT-PRINCIPAL-NAME": "alice\r\nforged: line"}), "control"),
        (easy_auth(**{"X-MS-CLIENT-PRINCIPAL-ID": "x" * 300}), "too long"),
        ({"X-MS-CLIENT-PRINCIPAL": principal([{"typ": "oid", "val": "a\x00b"}])}, "control"),
    ],
)
def test_a_malformed_principal_is_a_400_problem_that_echoes_nothing(
    headers: dict[str, str], says: str
) -> None:
    detail = malformed(headers)
    assert says in detail
    assert "alice" not in detail and "forged" not in detail


def test_untrusted_headers_are_ignored_with_a_note_and_never_parsed() -> None:
    assert caller_from(easy_auth(), trusted=True)[0] == parse_caller(easy_auth())
    caller, notes = caller_from({"X-MS-CLIENT-PRINCIPAL": "garbage!"}, trusted=False)
    assert caller is None
    assert len(notes) == 1 and "ignored" in notes[0]
    assert caller_from({"content-type": "application/json"}, trusted=False) == (None, ())


@pytest.mark.parametrize(
    ("payload", "writes"),
    [
        ({}, False),
        ({"dryRun": True}, False),
        ({"dryRun": False}, True),
        ({"dryRun": "false"}, True),  # not a boolean: judged before validation, so treated as a write
        ({"dryRun": None}, True),
        ([{"dryRun": False}], False),
        ("text", False),
    ],
)
def test_only_a_body_that_turns_dry_run_off_asks_for_changes(payload: object, writes: bool) -> None:
    assert asks_for_changes(payload) is writes


def test_writes_need_a_caller_only_where_required() -> None:
    authorize_write(None, required=False, allowed_roles=())
    caller = parse_caller(easy_auth())
    authorize_write(caller, required=True, allowed_roles=())
    for required, roles in ((True, ()), (False, ("Remediator",))):
        with pytest.raises(ProblemError) as caught:
            authorize_write(None, required=required, allowed_roles=roles)
        problem = caught.value.problem
        assert (problem.status, problem.kind) == (401, "authentication-required")
        assert problem.headers == {"WWW-Authenticate": "Bearer"}


def test_writes_need_one_of_the_allowed_app_roles() -> None:
    caller = parse_caller(easy_auth())
    authorize_write(caller, required=True, allowed_roles=("Remediator", "Owner"))
    with pytest.raises(ProblemError) as caught:
        authorize_write(caller, required=True, allowed_roles=("Owner", "remediator"))  # exact match only
    problem = caught.value.problem
    assert (problem.status, problem.kind) == (403, "forbidden")
    assert "Owner" in problem.detail and "Auditor" not in problem.detail


def test_attribution_names_the_principal_and_keeps_a_disagreeing_body_requester_aside() -> None:
    caller = parse_caller(easy_auth())
    assert caller is not None
    spoofed = attribute(caller, "ceo@contoso.example")
    assert spoofed.requester == spoofed.audit_caller == caller.display
    assert spoofed.declared_requester == "ceo@contoso.example"
    for same in (
        "alice@contoso.example",
        "ALICE@contoso.example",
        OID,
        caller.display,
        " alice@contoso.example ",
    ):
        assert attribute(caller, same).declared_requester is None, same
    assert attribute(caller, None).declared_requester is None


def test_without_a_caller_the_requester_is_as_declared() -> None:
    assert attribute(None, "secops@contoso.example").requester == "secops@contoso.example"
    assert attribute(None, None).audit_caller == ANONYMOUS
    assert attribute(None, None, ("note",)).notes == ("note",)


def _row(run: str, caller: str) -> AuditRecord:
    return AuditRecord(
        correlation_id=run,
        action_id="a1",
        sequence=0,
        state="pending",
        remediation_id="remove_list_permission",
        target="/subscriptions/x",
        trigger="ticket",
        caller=caller,
        recorded_at=datetime.now(UTC),
    )


def test_the_audit_sink_stamps_the_caller_on_its_own_run_only() -> None:
    inner = MemoryAuditSink()
    sink = AttributedAuditSink(inner, "run-1", caller_object_id=OID, declared_requester="ceo@contoso.example")
    sink.record(_row("run-1", "alice"))
    sink.record(_row("run-0", "bob"))  # e.g. an earlier run's write, reconciled by this one
    [mine] = sink.records("run-1")
    [theirs] = inner.records("run-0")
    assert (mine.caller_object_id, mine.declared_requester) == (OID, "ceo@contoso.example")
    assert (theirs.caller, theirs.caller_object_id, theirs.declared_requester) == ("bob", None, None)


_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20)
_json = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=15,
)
_principalish = st.fixed_dictionaries(
    {},
    optional={
        "auth_typ": _json,
        "name_typ": _json,
        "role_typ": _json,
        "claims": st.lists(
            st.fixed_dictionaries(
                {}, optional={"typ": st.sampled_from(["oid", "roles", "x"]) | _json, "val": _json}
            ),
            max_size=4,
        )
        | _json,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    document=_principalish | _json,
    other=st.dictionaries(st.sampled_from(PRINCIPAL_HEADERS[1:]), st.text(max_size=30)),
)
def test_no_principal_however_odd_is_anything_but_a_caller_or_a_400(
    document: object, other: dict[str, str]
) -> None:
    headers = {**other, "X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(document).encode()).decode()}
    try:
        caller = parse_caller(headers)
    except ProblemError as error:
        assert error.problem.status == 400
    else:
        assert caller is not None and caller.objectId
