"""Closure: the person -> flow -> secret paths a snapshot still has, each with why it remains."""

from __future__ import annotations

from remediations.core.closure import PathClosed, PathLeft, closure, paths_left, unaccepted
from remediations.core.model import Identity, InventoryError, Share, Snapshot
from remediations.core.policy import parse_policy
from tests.unit.kv_builders import TENANT, policy_entry
from tests.unit.pp_builders import ADMIN, ANALYST, CUSTOMIZER, seed_like, share


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


def _off(snap: Snapshot | None = None, **update: object) -> Snapshot:
    """The seed in miniature with its flow turned off (quarantine_flow) and the System Customizer known
    to the directory as a user; `update`: more snapshot fields."""
    snap = snap or seed_like()
    return snap.model_copy(
        update={
            "flows": tuple(f.model_copy(update={"state": "Stopped"}) for f in snap.flows),
            "identities": (Identity(object_id=CUSTOMIZER, kind="user"),),
            **update,
        }
    )


def _customizer(snap: Snapshot) -> tuple[list[PathLeft], list[PathClosed]]:
    found = closure(snap, parse_policy({}))
    return [p for p in found.left if p.person == CUSTOMIZER], [
        p for p in found.closed if p.person == CUSTOMIZER
    ]


def _with_connection_shares(*shares: Share) -> Snapshot:
    snap = seed_like()
    return snap.model_copy(update={"shares": (*snap.shares, *shares)})


def test_an_editor_of_a_turned_off_flow_who_cannot_use_its_connection_is_a_path_closed() -> None:
    """The System Customizer can edit the flow but may not use the admin's connection: turning the flow
    on is refused (ConnectionAuthorizationFailed), so none of the three paths is left."""
    left, closed = _customizer(_off())
    assert left == []
    assert {(p.via, p.why) for p in closed} == {
        ("environment_role", "flow off; editor cannot use its connection")
    }
    assert {p.secret.rsplit("/", 1)[-1] for p in closed} == {"db-password", "crm-key", "sftp"}
    text = closed[0].describe()
    assert text.startswith(f"path closed: {CUSTOMIZER} -> flow ")
    assert text.endswith(": flow off; editor cannot use its connection")
    # the co-owner (a CanEdit share) stays: the connection is theirs "in the context of this flow"
    assert len(unaccepted(paths_left(_off(), parse_policy({})))) == 3
    assert {p.person for p in unaccepted(paths_left(_off(), parse_policy({})))} == {ANALYST}


def test_a_flow_that_is_on_keeps_every_editors_path() -> None:
    on = seed_like().model_copy(update={"identities": (Identity(object_id=CUSTOMIZER, kind="user"),)})
    left, closed = _customizer(on)
    assert len(left) == 3 and closed == []


def test_the_connections_owner_can_turn_the_flow_on() -> None:
    snap = seed_like()
    owned = snap.model_copy(
        update={
            "connections": tuple(c.model_copy(update={"created_by": CUSTOMIZER}) for c in snap.connections)
        }
    )
    left, closed = _customizer(_off(owned))
    assert len(left) == 3 and closed == []
    assert {p.reason for p in left} == {None}  # left, and nothing accepts it


def test_a_user_the_connection_is_shared_with_can_turn_the_flow_on() -> None:
    left, closed = _customizer(
        _off(_with_connection_shares(share("connection", "c-admin", CUSTOMIZER, "CanView")))
    )
    assert len(left) == 3 and closed == []


def test_a_member_of_a_group_the_connection_is_shared_with_can_turn_the_flow_on() -> None:
    group = share("connection", "c-admin", "ops-group", "CanView").model_copy(
        update={"principal_kind": "group"}
    )
    snap = _with_connection_shares(group)
    left, closed = _customizer(_off(snap, group_members={"ops-group": (CUSTOMIZER,)}))
    assert len(left) == 3 and closed == []
    # not a member: closed; members not read (a refused Graph call): cannot be ruled out, left
    left, closed = _customizer(_off(snap, group_members={"ops-group": (ANALYST,)}))
    assert left == [] and len(closed) == 3
    left, closed = _customizer(_off(snap))
    assert len(left) == 3 and closed == []


def test_a_connection_shared_with_the_tenant_is_usable_by_every_editor() -> None:
    left, closed = _customizer(
        _off(_with_connection_shares(share("connection", "c-admin", TENANT, "CanView")))
    )
    assert len(left) == 3 and closed == []


def test_what_the_snapshot_cannot_tell_keeps_the_path() -> None:
    """Connection shares not read, or an editor the directory did not resolve (it may be a group team
    whose members were not read): the path is left, never closed on a guess."""
    unread = InventoryError(
        resource_id="c-admin", operation="list connection permissions", status=403, message="HTTP 403"
    )
    left, _ = _customizer(_off(errors=(unread,)))
    assert len(left) == 3
    left, _ = _customizer(_off(identities=()))
    assert len(left) == 3
    group_team = _off(identities=(Identity(object_id=CUSTOMIZER, kind="group"),))
    left, _ = _customizer(group_team)
    assert len(left) == 3
    # a group team whose members were read: left only when one of them may use the connection
    left, closed = _customizer(group_team.model_copy(update={"group_members": {CUSTOMIZER: ("someone",)}}))
    assert left == [] and len(closed) == 3
    left, _ = _customizer(group_team.model_copy(update={"group_members": {CUSTOMIZER: (ADMIN,)}}))
    assert len(left) == 3


def test_a_co_owner_who_also_holds_a_role_keeps_the_path() -> None:
    """Two relations to one flow: the CanEdit share (co-owner) leaves it, whatever the role says."""
    snap = _off(_with_connection_shares(share("flow", "f1", CUSTOMIZER, "CanEdit")))
    left, closed = _customizer(snap)
    assert {p.via for p in left} == {"can_edit"} and len(left) == 3 and closed == []


def test_a_run_only_user_of_a_turned_off_flow_cannot_turn_it_on() -> None:
    runner = share("flow", "f1", CUSTOMIZER, "CanView")
    snap = _with_connection_shares(runner, share("connection", "c-admin", CUSTOMIZER, "CanView"))
    snap = snap.model_copy(update={"environments": ()})  # no role: only the run-only share
    left, closed = _customizer(_off(snap))
    assert left == [] and {(p.via, p.why) for p in closed} == {
        ("can_run", "flow off; a run-only user cannot turn it on")
    }
    on_left, _ = _customizer(snap)
    assert {p.via for p in on_left} == {"can_run"}


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
