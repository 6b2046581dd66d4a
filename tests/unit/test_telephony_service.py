"""The Telephony service on a real migrated SQLite database: telecommuter mode
(T1, T2, T3, T7), hot desking (T10), calls placed and hung up for a user (T4),
feature codes, and the events pushed to the portal."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest
from argon2 import PasswordHasher

from teleoffice.calls.engine import (
    CallEngine,
    Caller,
    CallRecord,
    CallState,
    Dial,
    Direction,
    Feature,
    FeatureName,
    Party,
    PhoneTarget,
    TrunkTarget,
)
from teleoffice.calls.locations import Location, LocationKind
from teleoffice.calls.routing import UserView
from teleoffice.server.b2bua import B2bua
from teleoffice.server.directory import Directory, Repos
from teleoffice.server.telephony import Telephony, TelephonyError, TelephonyRepos
from teleoffice.sip.transaction import Address, TransactionLayer
from teleoffice.store import (
    AccountRepo,
    DidRepo,
    NotFound,
    RestrictionRepo,
    Sessions,
    TrunkRepo,
    UserRepo,
)
from teleoffice.store.locations import LocationKind as StoredKind
from teleoffice.store.locations import LocationRepo, StoredLocation
from teleoffice.store.telecommuter import TelecommuterRepo
from tests.unit.sipkit import FakeMedia

T = TypeVar("T")

START = 1_900_000_000.0
MOBILE = "9017612345678"  # as Alice dials it from her desk: trunk prefix 9
MOBILE_OUT = "017612345678"
ALICE_DESK = PhoneTarget("201", "sip:201@192.0.2.10:5060", "UDP", "192.0.2.10", 5060)
BOB_DESK = PhoneTarget("202", "sip:202@192.0.2.20:5060", "UDP", "192.0.2.20", 5060)

Event = tuple[dict[str, Any], list[str]]


def cheap_hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@dataclass
class Clock:
    now: float = START

    def __call__(self) -> float:
        return self.now


class SpyB2bua(B2bua):
    """The real B2BUA, remembering how feature codes were answered."""

    done: list[tuple[str, bool, int, str]]

    def feature_done(self, call_id: str, ok: bool, status: int, reason: str, now: float) -> None:
        self.done.append((call_id, ok, status, reason))
        super().feature_done(call_id, ok, status, reason, now)


@dataclass
class Office:
    sessions: Sessions
    users: UserRepo
    directory: Directory
    engine: CallEngine
    b2bua: SpyB2bua
    repos: TelephonyRepos
    telephony: Telephony
    clock: Clock
    events: list[Event] = field(default_factory=list)
    pokes: list[None] = field(default_factory=list)

    def fresh(self) -> Telephony:
        """What a restarted server would build: the same database, a new service."""
        telephony = Telephony(
            engine=self.engine,
            b2bua=self.b2bua,
            directory=self.directory,
            repos=TelephonyRepos(LocationRepo(self.sessions), TelecommuterRepo(self.sessions)),
            clock=self.clock,
        )
        telephony.load()
        return telephony

    def stored(self) -> dict[str, StoredLocation]:
        return LocationRepo(self.sessions).load_all()

    def types_for(self, username: str) -> list[str]:
        return [event["type"] for event, users in self.events if username in users]


@pytest.fixture
def office(sessions: Sessions) -> Office:
    users = UserRepo(sessions, realm="teleoffice", hasher=cheap_hasher())
    users.add_user(
        "alice", extension="201", sip_password="s", display_name="Alice", telecommuter_allowed=True
    )
    users.add_user("bob", extension="202", sip_password="s", display_name="Bob")
    users.add_user("carol", extension="203", sip_password="s", display_name="Carol")
    trunks = TrunkRepo(sessions)
    trunks.add("pstn", host="192.0.2.1", port=5060, prefix="9", outside_number="+4930123400")
    directory = Directory(
        Repos(
            users=users,
            accounts=AccountRepo(sessions),
            trunks=trunks,
            dids=DidRepo(sessions),
            restrictions=RestrictionRepo(sessions),
        )
    )
    registered = {"201": [ALICE_DESK], "202": [BOB_DESK]}

    def contacts(account: str, now: float) -> list[PhoneTarget]:
        return list(registered.get(account, []))

    holder: list[Telephony] = []

    def locate(user: UserView) -> Location:
        return holder[0].location_of(user.username)

    engine = CallEngine(directory, contacts, locate=locate)
    b2bua = SpyB2bua(
        engine=engine,
        transactions=TransactionLayer(),
        local=Address("UDP", "127.0.0.1", 5060),
        domain="127.0.0.1",
        media_host="127.0.0.1",
        trunks=directory.trunk_peer,
        # Late-bound: the service is built after the B2BUA, as in the app.
        on_record=lambda record: holder[0].on_record(record),  # noqa: PLW0108
    )
    b2bua.done = []
    clock = Clock()
    repos = TelephonyRepos(LocationRepo(sessions), TelecommuterRepo(sessions, cheap_hasher()))
    events: list[Event] = []
    pokes: list[None] = []

    def publish(event: Mapping[str, Any], to: Iterable[str]) -> None:
        events.append((dict(event), list(to)))

    telephony = Telephony(
        engine=engine,
        b2bua=b2bua,
        directory=directory,
        repos=repos,
        clock=clock,
        publish=publish,
        poke=lambda: pokes.append(None),
    )
    telephony.load()
    holder.append(telephony)
    return Office(sessions, users, directory, engine, b2bua, repos, telephony, clock, events, pokes)


def refused(coroutine: Coroutine[Any, Any, object]) -> TelephonyError:
    with pytest.raises(TelephonyError) as info:
        run(coroutine)
    return info.value


def at_home(since: float = START) -> Location:
    return Location(LocationKind.TELECOMMUTER, number=MOBILE, since=since)


# ---- starting telecommuter mode (T1, T2, T3) ----------------------------------------------------


def test_start_is_refused_when_the_administrator_has_not_allowed_it(office: Office) -> None:
    error = refused(office.telephony.start_telecommuter("bob", MOBILE))
    assert (error.status, error.code) == (403, "not_allowed")
    assert "administrator" in error.message
    assert office.stored() == {}
    assert office.events == []
    assert office.telephony.location_of("bob") == Location(LocationKind.PHONE, account="202")


@pytest.mark.parametrize("number", ["12345", "202", "not a number", "9"])
def test_start_is_refused_for_a_number_no_trunk_reaches(office: Office, number: str) -> None:
    error = refused(office.telephony.start_telecommuter("alice", number))
    assert (error.status, error.code) == (422, "unroutable")
    assert office.stored() == {}
    assert office.events == []


def test_start_is_refused_for_a_number_the_restrictions_bar(office: Office) -> None:
    error = refused(office.telephony.start_telecommuter("alice", "90044123456789"))
    assert (error.status, error.code) == (403, "barred")
    assert "international" in error.message
    assert office.stored() == {}
    assert office.events == []


def test_start_is_refused_outside_the_administrators_patterns(office: Office) -> None:
    office.repos.telecommuter.set_patterns("alice", ["01."])
    error = refused(office.telephony.start_telecommuter("alice", "90301234567"))
    assert (error.status, error.code) == (403, "number_not_allowed")
    assert "01." in error.message
    assert office.stored() == {}
    # A number among the patterns is fine.
    run(office.telephony.start_telecommuter("alice", MOBILE))
    assert office.telephony.location_of("alice").kind is LocationKind.TELECOMMUTER


def test_start_for_an_unknown_user_is_404(office: Office) -> None:
    error = refused(office.telephony.start_telecommuter("mallory", MOBILE))
    assert error.status == 404


def test_start_moves_the_user_and_stores_it(office: Office) -> None:
    location = run(office.telephony.start_telecommuter("alice", MOBILE))
    assert location == at_home()
    assert office.telephony.location_of("alice") == at_home()
    # T3: her desk phone no longer rings for her.
    assert office.telephony.occupant("201") is None
    assert office.stored() == {
        "alice": StoredLocation(
            StoredKind.TELECOMMUTER, None, MOBILE, datetime.fromtimestamp(START, UTC)
        )
    }


def test_start_stores_the_number_normalised(office: Office) -> None:
    run(office.telephony.start_telecommuter("alice", "9 0176-12345678"))
    assert office.telephony.location_of("alice").number == MOBILE
    assert office.stored()["alice"].number == MOBILE


def test_a_restart_keeps_telecommuter_mode(office: Office) -> None:
    run(office.telephony.start_telecommuter("alice", MOBILE))
    restarted = office.fresh()
    assert restarted.location_of("alice") == at_home()
    assert restarted.occupant("201") is None
    assert restarted.location_of("bob") == Location(LocationKind.PHONE, account="202")


def test_start_publishes_the_move_to_that_user_only(office: Office) -> None:
    run(office.telephony.start_telecommuter("alice", MOBILE))
    view = {
        "kind": "telecommuter",
        "phone": None,
        "number": MOBILE,
        "base_phone": "201",
        "since": datetime.fromtimestamp(START, UTC).isoformat(),
    }
    assert office.events == [
        ({"type": "location.changed", "location": view}, ["alice"]),
        (
            {"type": "telecommuter.changed", "active": True, "number": MOBILE, "location": view},
            ["alice"],
        ),
    ]


def test_calls_to_a_telecommuter_go_out_of_the_trunk(office: Office) -> None:
    run(office.telephony.start_telecommuter("alice", MOBILE))
    from_bob = Caller(Party("202", "Bob"), user="bob", account="202")
    out = office.engine.new_call(call_id="c1", caller=from_bob, dialled="201", now=START)
    [dial] = [c for c in out if isinstance(c, Dial)]
    assert dial.target == TrunkTarget("pstn", MOBILE_OUT)
    assert dial.identity == Party("202", "Bob")


# ---- ending it (T7) -----------------------------------------------------------------------------


def test_end_returns_the_user_to_a_free_base_phone(office: Office) -> None:
    run(office.telephony.start_telecommuter("alice", MOBILE))
    office.clock.now += 3600
    office.events.clear()
    location = run(office.telephony.end_telecommuter("alice"))
    assert location == Location(LocationKind.PHONE, account="201")
    assert office.telephony.occupant("201") == "alice"
    assert office.stored() == {}  # the default again: no row
    assert office.fresh().location_of("alice") == Location(LocationKind.PHONE, account="201")
    changed = [e for e, _ in office.events if e["type"] == "telecommuter.changed"]
    assert [(e["active"], e["number"]) for e in changed] == [(False, None)]
    assert all(users == ["alice"] for _, users in office.events)


def test_end_logs_out_when_a_hot_desker_took_the_base_phone(office: Office) -> None:
    run(office.telephony.start_telecommuter("alice", MOBILE))
    run(office.telephony.log_in("bob", "201"))
    office.clock.now += 60
    location = run(office.telephony.end_telecommuter("alice"))
    assert location.kind is LocationKind.LOGGED_OUT
    assert office.telephony.occupant("201") == "bob"
    stored = office.stored()
    assert stored["alice"].kind is StoredKind.LOGGED_OUT
    assert stored["bob"] == StoredLocation(
        StoredKind.PHONE, "201", None, datetime.fromtimestamp(START, UTC)
    )


def test_end_when_not_on_is_409(office: Office) -> None:
    error = refused(office.telephony.end_telecommuter("alice"))
    assert (error.status, error.code) == (409, "not_active")
    assert office.events == []


# ---- hot desking (T10) --------------------------------------------------------------------------


def test_log_in_on_a_phone_logs_out_the_previous_occupant(office: Office) -> None:
    location = run(office.telephony.log_in("bob", "201"))
    assert location == Location(LocationKind.PHONE, account="201", since=START)
    assert office.telephony.occupant("201") == "bob"
    assert office.telephony.location_of("alice").kind is LocationKind.LOGGED_OUT
    assert office.telephony.occupant("202") is None
    stored = office.stored()
    assert stored["alice"].kind is StoredKind.LOGGED_OUT
    assert (stored["bob"].kind, stored["bob"].account) == (StoredKind.PHONE, "201")
    # Both are told, each about themselves.
    assert office.types_for("alice") == ["location.changed", "telecommuter.changed"]
    assert office.types_for("bob") == ["location.changed", "telecommuter.changed"]
    for event, users in office.events:
        if event["type"] == "location.changed":
            expected = "logged-out" if users == ["alice"] else "phone"
            assert event["location"]["kind"] == expected
    # And it survives a restart.
    restarted = office.fresh()
    assert restarted.occupant("201") == "bob"
    assert restarted.location_of("alice").kind is LocationKind.LOGGED_OUT


def test_log_in_for_an_unknown_user_or_phone_is_refused(office: Office) -> None:
    assert refused(office.telephony.log_in("mallory", "201")).status == 404
    error = refused(office.telephony.log_in("bob", "299"))
    assert (error.status, error.code) == (422, "no_such_phone")
    assert office.stored() == {}
    assert office.events == []


def test_log_out_and_back_in_on_ones_own_phone(office: Office) -> None:
    run(office.telephony.log_out("alice"))
    assert office.telephony.occupant("201") is None
    assert office.stored()["alice"].kind is StoredKind.LOGGED_OUT
    run(office.telephony.log_in("alice", "201"))
    assert office.telephony.occupant("201") == "alice"
    assert office.stored() == {}


def test_a_failed_store_write_leaves_the_book_unchanged(office: Office) -> None:
    # Bob is deleted by another process; this server's directory has not
    # reloaded yet, so it lets the move through, and the store refuses it.
    office.directory.reload()
    office.users.delete("bob")
    with pytest.raises(NotFound):
        run(office.telephony.log_in("bob", "201"))
    assert office.telephony.occupant("201") == "alice"
    assert office.telephony.location_of("alice") == Location(LocationKind.PHONE, account="201")
    assert office.telephony.book.stored() == {}
    assert office.stored() == {}
    assert office.events == []


def test_a_failed_store_write_on_start_changes_nothing(
    office: Office, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(office.telephony.log_in("bob", "203"))  # something already stored
    before = office.telephony.book.stored()
    office.events.clear()

    def broken(changes: Mapping[str, StoredLocation | None]) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(office.repos.locations, "apply", broken)
    with pytest.raises(OSError, match="disk full"):
        run(office.telephony.start_telecommuter("alice", MOBILE))
    assert office.telephony.book.stored() == before
    assert office.telephony.location_of("alice") == Location(LocationKind.PHONE, account="201")
    assert office.telephony.occupant("201") == "alice"
    assert office.events == []


# ---- feature codes ------------------------------------------------------------------------------


def test_log_in_feature_with_the_right_code(office: Office) -> None:
    office.repos.telecommuter.set_login_code("bob", "4321")
    run(office.telephony.run_feature(Feature("f1", FeatureName.LOG_IN, "201", "202", "4321")))
    [(call_id, ok, _, _)] = office.b2bua.done
    assert (call_id, ok) == ("f1", True)
    assert office.telephony.occupant("201") == "bob"
    assert office.stored()["alice"].kind is StoredKind.LOGGED_OUT
    assert office.pokes  # the answer to the phone is sent at once


def test_log_in_feature_with_a_wrong_code_is_refused(office: Office) -> None:
    office.repos.telecommuter.set_login_code("bob", "4321")
    run(office.telephony.run_feature(Feature("f1", FeatureName.LOG_IN, "201", "202", "9999")))
    [(call_id, ok, status, _)] = office.b2bua.done
    assert (call_id, ok, status) == ("f1", False, 403)
    assert office.telephony.occupant("201") == "alice"
    assert office.stored() == {}
    assert office.events == []


def test_log_in_feature_for_a_user_without_a_code_is_refused(office: Office) -> None:
    run(office.telephony.run_feature(Feature("f1", FeatureName.LOG_IN, "201", "202", "0000")))
    assert [(ok, status) for _, ok, status, _ in office.b2bua.done] == [(False, 403)]
    assert office.telephony.occupant("201") == "alice"


def test_log_in_feature_that_the_store_fails_is_refused_and_changes_nothing(
    office: Office, monkeypatch: pytest.MonkeyPatch
) -> None:
    office.repos.telecommuter.set_login_code("bob", "4321")

    def broken(changes: Mapping[str, StoredLocation | None]) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(office.repos.locations, "apply", broken)
    run(office.telephony.run_feature(Feature("f1", FeatureName.LOG_IN, "201", "202", "4321")))
    [(_, ok, status, _)] = office.b2bua.done
    assert not ok
    assert 400 <= status < 700
    assert office.telephony.occupant("201") == "alice"
    assert office.events == []


def test_log_out_feature_logs_out_whoever_is_on_the_phone(office: Office) -> None:
    run(office.telephony.run_feature(Feature("f1", FeatureName.LOG_OUT, "202")))
    assert [ok for _, ok, _, _ in office.b2bua.done] == [True]
    assert office.telephony.location_of("bob").kind is LocationKind.LOGGED_OUT
    assert office.telephony.occupant("202") is None
    # Nobody is left on that phone now.
    run(office.telephony.run_feature(Feature("f2", FeatureName.LOG_OUT, "202")))
    assert [(ok, status) for _, ok, status, _ in office.b2bua.done[1:]] == [(False, 404)]


def test_an_unknown_feature_code_is_refused_with_404(office: Office) -> None:
    run(office.telephony.run_feature(Feature("f1", FeatureName.UNKNOWN, "201")))
    assert [(ok, status) for _, ok, status, _ in office.b2bua.done] == [(False, 404)]
    assert office.events == []


# ---- calls placed and hung up for a user (T4) ---------------------------------------------------


def media_ready(office: Office, call_id: str) -> None:
    office.b2bua.take_media_requests()
    office.b2bua.media_ready(call_id, FakeMedia(40000), office.clock.now)


def test_place_call_rings_the_users_own_phone_first(office: Office) -> None:
    call_id = office.telephony.place_call("alice", "202")
    assert office.pokes  # sent at once, not at the next network input
    media_ready(office, call_id)
    [record] = office.telephony.calls_of("alice")
    assert (record.call_id, record.state, record.callee) == (
        call_id,
        CallState.CALLING,
        Party("202", "Bob"),
    )
    # Announced as calling (once the engine takes it up, perhaps updated again).
    types = office.types_for("alice")
    assert types[0] == "call.calling"
    assert set(types[1:]) <= {"call.updated"}
    assert office.telephony.snapshot("alice")["calls"][0]["id"] == call_id


def test_place_call_refusals_become_errors(office: Office) -> None:
    with pytest.raises(TelephonyError) as info:
        office.telephony.place_call("alice", "90044123456789")
    assert (info.value.status, info.value.code) == (403, "barred")
    with pytest.raises(TelephonyError) as info:
        office.telephony.place_call("alice", "7777")
    assert info.value.status == 422
    with pytest.raises(TelephonyError) as info:
        office.telephony.place_call("mallory", "202")
    assert info.value.status == 404
    run(office.telephony.log_out("alice"))
    with pytest.raises(TelephonyError) as info:
        office.telephony.place_call("alice", "202")
    assert (info.value.status, info.value.code) == (409, "logged_out")
    assert office.b2bua.calls == {}
    assert office.b2bua.take_media_requests() == []


def test_hang_up_of_another_users_call_is_404(office: Office) -> None:
    call_id = office.telephony.place_call("alice", "202")
    media_ready(office, call_id)
    with pytest.raises(TelephonyError) as info:
        office.telephony.hang_up("carol", call_id)
    assert (info.value.status, info.value.code) == (404, "not_found")
    assert call_id in office.b2bua.calls  # untouched
    with pytest.raises(TelephonyError) as info:
        office.telephony.hang_up("alice", "no-such-call")
    assert info.value.status == 404


def test_hang_up_of_ones_own_call(office: Office) -> None:
    call_id = office.telephony.place_call("alice", "202")
    media_ready(office, call_id)
    office.telephony.hang_up("alice", call_id)
    assert office.b2bua.calls == {}
    assert office.telephony.calls_of("alice") == []
    assert office.types_for("alice")[-1] == "call.ended"


def test_a_call_just_placed_can_be_hung_up_at_once(office: Office) -> None:
    # DELETE /api/calls/{id} with the id POST /api/calls returned, before the
    # media session of the call is open: the B2BUA can end such a call.
    call_id = office.telephony.place_call("alice", "202")
    office.telephony.hang_up("alice", call_id)
    assert office.b2bua.calls == {}


# ---- call events --------------------------------------------------------------------------------


def record(state: CallState, **changes: Any) -> CallRecord:
    base = CallRecord(
        call_id="c9",
        direction=Direction.INTERNAL,
        caller=Party("202", "Bob"),
        callee=Party("201", "Alice"),
        dialled="201",
        route="extension 201",
        trunk=None,
        caller_user="bob",
        callee_user="alice",
        state=state,
        started_at=START,
    )
    return replace(base, **changes)


def test_call_records_become_events_for_both_parties(office: Office) -> None:
    telephony = office.telephony
    telephony.on_record(record(CallState.CALLING))
    telephony.on_record(record(CallState.RINGING, ringing_at=START + 1))
    telephony.on_record(record(CallState.RINGING, route="extension 201, forwarded"))
    telephony.on_record(record(CallState.CONNECTED, answered_at=START + 3))
    assert [r.call_id for r in telephony.calls_of("alice")] == ["c9"]
    assert [r.call_id for r in telephony.calls_of("bob")] == ["c9"]
    assert telephony.calls_of("carol") == []
    telephony.on_record(record(CallState.ENDED, ended_at=START + 60, outcome="answered"))
    expected = ["call.calling", "call.ringing", "call.updated", "call.answered", "call.ended"]
    assert office.types_for("alice") == expected
    assert office.types_for("bob") == expected
    assert telephony.calls_of("alice") == []
    directions = {
        users[0]: event["call"]["direction"]
        for event, users in office.events
        if event["type"] == "call.calling"
    }
    assert directions == {"bob": "outgoing", "alice": "incoming"}


def test_call_records_without_users_publish_nothing(office: Office) -> None:
    office.telephony.on_record(record(CallState.CALLING, caller_user=None, callee_user=None))
    assert office.events == []
