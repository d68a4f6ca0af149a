"""Closure: the person -> flow -> secret paths a snapshot still has, each with why it remains."""

from __future__ import annotations

from remediations.core.closure import paths_left, unaccepted
from remediations.core.policy import parse_policy
from tests.unit.kv_builders import policy_entry
from tests.unit.pp_builders import ADMIN, ANALYST, CUSTOMIZER, seed_like


def _by_person(policy_data: dict[str, object] | None = None, snap=None):  # type: ignore[no-untyped-def]
    left = paths_left(snap or seed_like(), parse_policy(policy_data or {}))
    return left, {(p.person, p.secret.rsplit("/", 1)[-1]): p for p in left}


def test_every_editor_of_the_flow_reaches_every_secret_its_connection_reads() -> None:
    left, by = _by_person()
    people = {p.person for p in left}
    assert people == {ADMIN, ANALYST, CUSTOMIZER}
    assert {s for (_, s) in by} == {"db-password", "crm-key", "sftp"}
    assert by[(ADMIN, "crm-key")].reason == "owner"
    assert by[(ANALYST, "crm-key")].reason is None and by[(ANALYST, "crm-key")].via == "can_edit"
    assert by[(CUSTOMIZER, "sftp")].reason is None and by[(CUSTOMIZER, "sftp")].via == "environment_role"
    assert len(unaccepted(left)) == 6  # analyst and customizer, three secrets each
    assert left[0].reason is None  # unaccepted paths first


def test_reasons_come_from_the_policy() -> None:
    _, by = _by_person({"breakGlass": [CUSTOMIZER], "powerPlatform": {"allowedFlowEditors": [ANALYST]}})
    assert by[(CUSTOMIZER, "db-password")].reason == "break-glass"
    assert by[(ANALYST, "db-password")].reason == "accepted by policy"


def test_a_turned_off_flow_still_counts_its_editors_can_turn_it_on() -> None:
    snap = seed_like()
    off = snap.model_copy(
        update={"flows": tuple(f.model_copy(update={"state": "Stopped"}) for f in snap.flows)}
    )
    assert len(unaccepted(paths_left(off, parse_policy({})))) == 6


def test_cut_edges_close_paths_and_unlisted_secrets_count_as_the_whole_vault() -> None:
    snap = seed_like()
    no_get = snap.model_copy(
        update={
            "vaults": tuple(
                v.model_copy(update={"access_policies": (policy_entry(ADMIN, "List"),)}) for v in snap.vaults
            )
        }
    )
    assert paths_left(no_get, parse_policy({})) == []  # no `get`: nothing is read
    unlisted = snap.model_copy(
        update={"vaults": tuple(v.model_copy(update={"secrets": ()}) for v in snap.vaults)}
    )
    _, by = _by_person(snap=unlisted)
    assert by[(CUSTOMIZER, "*")].reason is None  # a refused secret list never hides a path


def test_each_path_describes_person_flow_secret_and_reason() -> None:
    _left, by = _by_person()
    assert by[(ADMIN, "crm-key")].describe().endswith("-> kv/crm-key: owner")
    text = by[(ANALYST, "sftp")].describe()
    assert text.startswith(f"path left: {ANALYST} -> flow ") and "(can_edit)" in text
    assert text.endswith("-> kv/sftp: not accepted by the policy (a failure)")


def test_paths_read_by_name_with_ids_in_brackets() -> None:
    snap = seed_like()
    named = snap.model_copy(
        update={
            "environments": tuple(
                e.model_copy(update={"principal_names": {ANALYST: "Avery Analyst"}})
                for e in snap.environments
            ),
            "flows": tuple(f.model_copy(update={"display_name": "Nightly export"}) for f in snap.flows),
        }
    )
    _, by = _by_person(snap=named)
    text = by[(ANALYST, "sftp")].describe()
    assert text.startswith(
        f"path left: Avery Analyst [{ANALYST}] -> flow 'Nightly export' [f1] (can_edit) -> kv/sftp"
    )
    assert (
        by[(CUSTOMIZER, "sftp")].describe().startswith(f"path left: {CUSTOMIZER} -> ")
    )  # no name read: the id


def test_the_apps_own_identity_is_accepted_as_this_app_not_by_a_policy_entry() -> None:
    left = paths_left(seed_like(), parse_policy({}), remediator=CUSTOMIZER.upper())
    mine = [p for p in left if p.person == CUSTOMIZER]
    assert mine and {p.reason for p in mine} == {"this app"}
    assert len(unaccepted(left)) == 3  # only the analyst's three are left open
    assert {p.reason for p in paths_left(seed_like(), parse_policy({})) if p.person == CUSTOMIZER} == {None}
