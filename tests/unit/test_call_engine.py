"""The call engine: events in, commands out (forking, answer, failure, cancel, hangup)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teleoffice.calls.engine import (
    A_LEG,
    CallEngine,
    Caller,
    CallRecord,
    CallState,
    CallUpdated,
    CancelBranch,
    Command,
    Connect,
    Dial,
    Direction,
    Hangup,
    Party,
    PhoneTarget,
    Progress,
    Reject,
    StartTimer,
    StopTimer,
    TimerName,
    TrunkTarget,
    best_failure,
)
from teleoffice.calls.routing import TrunkView, UserView

T = TypeVar("T")

ALICE = UserView("alice", "201", "Alice Liddell", no_answer_timeout=20)
BOB = UserView("bob", "202", "Bob Builder")  # default no-answer time, 15 s
CAROL = UserView("carol", "203", None)  # no phone registered
DAVE = UserView("dave", "204", "Dave", no_answer_timeout=10)  # three phones

PSTN = TrunkView("pstn", "9", "+4930123400")
BACKUP = TrunkView("backup", "8")  # no outside number configured

ALICE_DESK = PhoneTarget("201", "sip:201@192.0.2.10:5060", "UDP", "192.0.2.10", 5060)
BOB_DESK = PhoneTarget("202", "sip:202@192.0.2.20:5060", "UDP", "192.0.2.20", 5060)
BOB_SOFT = PhoneTarget(
    "202", "sip:202@198.51.100.7:40000;transport=tcp", "TCP", "198.51.100.7", 40000
)
DAVE_PHONES = [
    PhoneTarget("204", f"sip:204@192.0.2.4{i}:5060", "UDP", f"192.0.2.4{i}", 5060) for i in range(3)
]

FROM_ALICE = Caller(Party("201", "Alice Liddell"), user="alice")
FROM_PSTN = Caller(Party("+4917012345678"), trunk="pstn")

T0 = 1000.0


@dataclass
class FakeDirectory:
    users: dict[str, UserView] = field(default_factory=dict)
    trunk_list: list[TrunkView] = field(default_factory=list)

    def user_by_number(self, number: str) -> UserView | None:
        return self.users.get(number)

    def trunks(self) -> list[TrunkView]:
        return list(self.trunk_list)


@dataclass
class FakeContacts:
    by_extension: dict[str, list[PhoneTarget]] = field(default_factory=dict)
    asked: list[tuple[str, float]] = field(default_factory=list)

    def __call__(self, extension: str, now: float) -> list[PhoneTarget]:
        self.asked.append((extension, now))
        return list(self.by_extension.get(extension, []))


def make_engine() -> tuple[CallEngine, FakeContacts]:
    directory = FakeDirectory(
        users={
            "201": ALICE,
            "202": BOB,
            "+4930123402": BOB,  # Bob's DID
            "203": CAROL,
            "204": DAVE,
        },
        trunk_list=[PSTN, BACKUP],
    )
    contacts = FakeContacts(
        {"201": [ALICE_DESK], "202": [BOB_DESK, BOB_SOFT], "204": list(DAVE_PHONES)}
    )
    return CallEngine(directory, contacts), contacts


def of(kind: type[T], commands: Sequence[Command]) -> list[T]:
    return [c for c in commands if isinstance(c, kind)]


def records(commands: Sequence[Command]) -> list[CallRecord]:
    return [c.record for c in of(CallUpdated, commands)]


def last_record(commands: Sequence[Command]) -> CallRecord:
    found = records(commands)
    assert found, f"no CallUpdated in {commands}"
    return found[-1]


def assert_ended(
    engine: CallEngine,
    commands: Sequence[Command],
    *,
    outcome: str,
    status: int,
    ended_by: str,
    at: float,
) -> CallRecord:
    record = last_record(commands)
    assert record.state is CallState.ENDED
    assert record.ended_at == at
    assert record.outcome == outcome
    assert record.status == status
    assert record.ended_by == ended_by
    assert record.call_id not in engine.calls
    assert engine.active_count() == 0
    return record


@dataclass
class BobCall:
    """Alice calls Bob, whose two phones ring in parallel."""

    engine: CallEngine
    contacts: FakeContacts
    commands: list[Command]
    desk: str  # branch id of Bob's desk phone
    soft: str  # branch id of Bob's softphone
    call_id: str = "call-1"


def call_bob(dialled: str = "202", caller: Caller = FROM_ALICE) -> BobCall:
    engine, contacts = make_engine()
    commands = engine.new_call(call_id="call-1", caller=caller, dialled=dialled, now=T0)
    dials = of(Dial, commands)
    assert [d.target for d in dials] == [BOB_DESK, BOB_SOFT]
    return BobCall(engine, contacts, commands, dials[0].branch, dials[1].branch)


def connected_bob() -> BobCall:
    c = call_bob()
    c.engine.on_provisional(c.call_id, c.desk, 180, T0 + 1)
    c.engine.on_answer(c.call_id, c.desk, T0 + 5)
    return c


# ---- placing a call to a user -----------------------------------------------


def test_call_to_user_dials_every_contact_with_the_callers_identity() -> None:
    c = call_bob()
    dials = of(Dial, c.commands)
    assert len(dials) == 2
    assert c.desk != c.soft
    for dial in dials:
        assert dial.call_id == "call-1"
        assert dial.identity == Party("201", "Alice Liddell")
        assert dial.callee == Party("202", "Bob Builder")
    assert c.contacts.asked == [("202", T0)]


def test_call_to_user_starts_the_no_answer_timer_at_the_users_time() -> None:
    c = call_bob()
    assert of(StartTimer, c.commands) == [StartTimer("call-1", TimerName.NO_ANSWER, T0 + 15)]
    engine, _ = make_engine()
    from_bob = Caller(Party("202", "Bob Builder"), user="bob")
    commands = engine.new_call(call_id="c2", caller=from_bob, dialled="201", now=T0)
    assert of(StartTimer, commands) == [StartTimer("c2", TimerName.NO_ANSWER, T0 + 20)]


def test_call_to_user_is_recorded_as_calling() -> None:
    c = call_bob()
    assert of(Reject, c.commands) == []
    assert c.engine.active_count() == 1
    record = last_record(c.commands)
    assert record.call_id == "call-1"
    assert record.state is CallState.CALLING
    assert record.direction is Direction.INTERNAL
    assert record.caller == Party("201", "Alice Liddell")
    assert record.callee == Party("202", "Bob Builder")
    assert record.dialled == "202"
    assert record.route == "extension 202"
    assert record.trunk is None
    assert record.caller_user == "alice"
    assert record.callee_user == "bob"
    assert record.started_at == T0
    assert record.ringing_at is None
    assert record.answered_at is None
    assert record.ended_at is None


def test_user_with_no_contacts_gets_480_unavailable() -> None:
    engine, contacts = make_engine()
    commands = engine.new_call(call_id="c", caller=FROM_ALICE, dialled="203", now=T0)
    assert of(Dial, commands) == []
    assert of(StartTimer, commands) == []
    assert of(Reject, commands) == [Reject("c", 480, "Temporarily Unavailable")]
    assert contacts.asked == [("203", T0)]
    record = assert_ended(
        engine, commands, outcome="unavailable", status=480, ended_by="system", at=T0
    )
    assert record.callee_user == "carol"


@pytest.mark.parametrize("dialled", ["299", "alice", "sip:202@pbx.example.com", ""])
def test_unroutable_number_gets_404_and_is_not_kept(dialled: str) -> None:
    engine, contacts = make_engine()
    commands = engine.new_call(call_id="c", caller=FROM_ALICE, dialled=dialled, now=T0)
    assert of(Dial, commands) == []
    assert [r.status for r in of(Reject, commands)] == [404]
    assert contacts.asked == []
    assert_ended(engine, commands, outcome="not-found", status=404, ended_by="system", at=T0)


# ---- ringing ----------------------------------------------------------------


def test_first_180_reports_progress_and_ringing_once() -> None:
    c = call_bob()
    first = c.engine.on_provisional(c.call_id, c.desk, 180, T0 + 1)
    assert of(Progress, first) == [Progress("call-1", c.desk, 180)]
    record = last_record(first)
    assert record.state is CallState.RINGING
    assert record.ringing_at == T0 + 1

    again = c.engine.on_provisional(c.call_id, c.desk, 180, T0 + 2)
    other = c.engine.on_provisional(c.call_id, c.soft, 180, T0 + 3)
    assert records(again) == []
    assert records(other) == []
    assert c.engine.calls["call-1"].state is CallState.RINGING
    assert c.engine.calls["call-1"].record.ringing_at == T0 + 1


def test_183_is_forwarded() -> None:
    c = call_bob()
    c.engine.on_provisional(c.call_id, c.desk, 180, T0 + 1)
    commands = c.engine.on_provisional(c.call_id, c.soft, 183, T0 + 2)
    assert of(Progress, commands) == [Progress("call-1", c.soft, 183)]


# ---- answer -----------------------------------------------------------------


def test_first_answer_connects_and_cancels_the_other_branch() -> None:
    c = call_bob()
    c.engine.on_provisional(c.call_id, c.soft, 180, T0 + 1)
    commands = c.engine.on_answer(c.call_id, c.desk, T0 + 4)
    assert of(Connect, commands) == [Connect("call-1", c.desk)]
    assert of(CancelBranch, commands) == [CancelBranch("call-1", c.soft)]
    assert of(StopTimer, commands) == [StopTimer("call-1", TimerName.NO_ANSWER)]
    assert of(Reject, commands) == []
    assert of(Hangup, commands) == []
    record = last_record(commands)
    assert record.state is CallState.CONNECTED
    assert record.answered_at == T0 + 4
    assert record.ringing_at == T0 + 1
    assert record.ended_at is None
    assert c.engine.active_count() == 1


def test_answer_without_provisional_still_has_a_ringing_time() -> None:
    c = call_bob()
    record = last_record(c.engine.on_answer(c.call_id, c.soft, T0 + 2))
    assert record.ringing_at == T0 + 2
    assert record.answered_at == T0 + 2


def test_late_2xx_from_the_cancelled_branch_is_hung_up() -> None:
    c = connected_bob()
    assert c.engine.on_answer(c.call_id, c.soft, T0 + 6) == [Hangup("call-1", c.soft)]
    # ... and that branch's 487 or BYE changes nothing; the call stays up.
    assert c.engine.on_failure(c.call_id, c.soft, 487, T0 + 7) == []
    assert c.engine.on_hangup(c.call_id, c.soft, T0 + 7) == []
    assert c.engine.calls["call-1"].state is CallState.CONNECTED


def test_provisional_after_answer_is_not_relayed() -> None:
    c = connected_bob()
    assert c.engine.on_provisional(c.call_id, c.soft, 180, T0 + 6) == []


# ---- failures ---------------------------------------------------------------


def test_all_branches_busy_rejects_486_busy() -> None:
    c = call_bob()
    assert c.engine.on_failure(c.call_id, c.desk, 486, T0 + 1) == []
    commands = c.engine.on_failure(c.call_id, c.soft, 486, T0 + 2)
    assert of(Reject, commands) == [Reject("call-1", 486, "Busy Here")]
    assert of(StopTimer, commands) == [StopTimer("call-1", TimerName.NO_ANSWER)]
    assert of(CancelBranch, commands) == []
    assert_ended(c.engine, commands, outcome="busy", status=486, ended_by="callee", at=T0 + 2)


@pytest.mark.parametrize(("first", "second"), [(480, 486), (486, 480)])
def test_mixed_480_and_486_give_busy(first: int, second: int) -> None:
    c = call_bob()
    c.engine.on_failure(c.call_id, c.desk, first, T0 + 1)
    commands = c.engine.on_failure(c.call_id, c.soft, second, T0 + 2)
    assert [r.status for r in of(Reject, commands)] == [486]
    assert_ended(c.engine, commands, outcome="busy", status=486, ended_by="callee", at=T0 + 2)


def test_all_branches_unavailable_gives_480() -> None:
    c = call_bob()
    c.engine.on_failure(c.call_id, c.desk, 480, T0 + 1)
    commands = c.engine.on_failure(c.call_id, c.soft, 408, T0 + 2)
    assert [r.status for r in of(Reject, commands)] == [480]
    assert_ended(
        c.engine, commands, outcome="unavailable", status=480, ended_by="callee", at=T0 + 2
    )


def test_603_on_one_branch_ends_the_call_at_once_and_cancels_the_others() -> None:
    c = call_bob()
    c.engine.on_provisional(c.call_id, c.soft, 180, T0 + 1)
    commands = c.engine.on_failure(c.call_id, c.desk, 603, T0 + 2)
    assert of(CancelBranch, commands) == [CancelBranch("call-1", c.soft)]
    assert [r.status for r in of(Reject, commands)] == [603]
    assert of(StopTimer, commands) == [StopTimer("call-1", TimerName.NO_ANSWER)]
    assert_ended(c.engine, commands, outcome="declined", status=603, ended_by="callee", at=T0 + 2)


def test_failure_of_one_branch_keeps_the_others_ringing() -> None:
    c = call_bob()
    assert c.engine.on_failure(c.call_id, c.desk, 486, T0 + 1) == []
    commands = c.engine.on_answer(c.call_id, c.soft, T0 + 3)
    assert of(Connect, commands) == [Connect("call-1", c.soft)]
    assert of(CancelBranch, commands) == []


def test_a_providers_503_is_not_relayed_to_the_phone_as_503() -> None:
    # RFC 3261 section 16.7 step 6: a 503 chosen as the best response becomes
    # 500, or the caller's phone takes the PBX itself for out of service and
    # fails over or backs off from it (section 21.5.4).
    engine, _ = make_engine()
    commands = engine.new_call(call_id="c", caller=FROM_ALICE, dialled="95551234", now=T0)
    (dial,) = of(Dial, commands)
    commands = engine.on_failure("c", dial.branch, 503, T0 + 1)
    assert [r.status for r in of(Reject, commands)] == [500]


@pytest.mark.parametrize(
    ("statuses", "best"),
    [
        ([486, 603, 480], 603),
        ([480, 600], 600),
        ([480, 486], 486),
        ([408, 480], 480),
        ([404, 500], 404),
        ([487, 408], 487),
        ([], 480),
    ],
)
def test_best_failure(statuses: list[int], best: int) -> None:
    assert best_failure(statuses) == best


# ---- caller gives up, nobody answers ----------------------------------------


def test_caller_cancel_while_ringing_cancels_every_branch() -> None:
    c = call_bob()
    c.engine.on_provisional(c.call_id, c.desk, 180, T0 + 1)
    commands = c.engine.on_cancel(c.call_id, T0 + 3)
    assert sorted(b.branch for b in of(CancelBranch, commands)) == sorted([c.desk, c.soft])
    assert of(Reject, commands) == [Reject("call-1", 487, "Request Terminated")]
    assert of(StopTimer, commands) == [StopTimer("call-1", TimerName.NO_ANSWER)]
    assert_ended(c.engine, commands, outcome="cancelled", status=487, ended_by="caller", at=T0 + 3)


def test_caller_cancel_only_cancels_live_branches() -> None:
    c = call_bob()
    c.engine.on_failure(c.call_id, c.desk, 486, T0 + 1)
    commands = c.engine.on_cancel(c.call_id, T0 + 2)
    assert of(CancelBranch, commands) == [CancelBranch("call-1", c.soft)]


def test_bye_from_caller_before_answer_is_a_cancel() -> None:
    c = call_bob()
    commands = c.engine.on_hangup(c.call_id, A_LEG, T0 + 2)
    assert len(of(CancelBranch, commands)) == 2
    assert [r.status for r in of(Reject, commands)] == [487]
    assert_ended(c.engine, commands, outcome="cancelled", status=487, ended_by="caller", at=T0 + 2)


def test_cancel_after_answer_does_nothing() -> None:
    c = connected_bob()
    assert c.engine.on_cancel(c.call_id, T0 + 6) == []
    assert c.engine.calls["call-1"].state is CallState.CONNECTED


def test_no_answer_timer_cancels_and_rejects_480() -> None:
    c = call_bob()
    c.engine.on_provisional(c.call_id, c.desk, 180, T0 + 1)
    commands = c.engine.on_timer(c.call_id, TimerName.NO_ANSWER, T0 + 15)
    assert sorted(b.branch for b in of(CancelBranch, commands)) == sorted([c.desk, c.soft])
    assert [r.status for r in of(Reject, commands)] == [480]
    assert_ended(c.engine, commands, outcome="no-answer", status=480, ended_by="system", at=T0 + 15)


def test_timer_after_answer_does_nothing() -> None:
    c = connected_bob()
    assert c.engine.on_timer(c.call_id, TimerName.NO_ANSWER, T0 + 15) == []
    assert c.engine.calls["call-1"].state is CallState.CONNECTED


# ---- hanging up -------------------------------------------------------------


def test_bye_from_caller_after_connect_hangs_up_the_answered_branch() -> None:
    c = connected_bob()
    commands = c.engine.on_hangup(c.call_id, A_LEG, T0 + 65)
    assert of(Hangup, commands) == [Hangup("call-1", c.desk)]
    assert of(Reject, commands) == []
    record = assert_ended(
        c.engine, commands, outcome="answered", status=200, ended_by="caller", at=T0 + 65
    )
    assert record.answered_at == T0 + 5


def test_bye_from_callee_after_connect_hangs_up_the_caller() -> None:
    c = connected_bob()
    commands = c.engine.on_hangup(c.call_id, c.desk, T0 + 65)
    assert of(Hangup, commands) == [Hangup("call-1", A_LEG)]
    assert_ended(c.engine, commands, outcome="answered", status=200, ended_by="callee", at=T0 + 65)


def test_bye_from_a_branch_that_did_not_answer_is_ignored() -> None:
    c = connected_bob()
    assert c.engine.on_hangup(c.call_id, c.soft, T0 + 6) == []
    assert c.engine.active_count() == 1


# ---- trunks -----------------------------------------------------------------


def test_call_out_of_a_trunk_presents_the_outside_number() -> None:
    engine, contacts = make_engine()
    commands = engine.new_call(call_id="c", caller=FROM_ALICE, dialled="9 030 1234-567", now=T0)
    (dial,) = of(Dial, commands)
    assert dial.target == TrunkTarget("pstn", "0301234567")
    assert dial.identity == Party("+4930123400", "Alice Liddell")
    assert dial.callee == Party("0301234567")
    assert contacts.asked == []
    record = last_record(commands)
    assert record.direction is Direction.OUTBOUND
    assert record.route == "trunk pstn"
    assert record.trunk == "pstn"
    assert record.callee == Party("0301234567")
    assert record.dialled == "9 030 1234-567"
    assert record.caller_user == "alice"
    assert record.callee_user is None
    assert record.state is CallState.CALLING


def test_call_out_of_a_trunk_without_outside_number_presents_the_extension() -> None:
    engine, _ = make_engine()
    commands = engine.new_call(call_id="c", caller=FROM_ALICE, dialled="85551234", now=T0)
    (dial,) = of(Dial, commands)
    assert dial.target == TrunkTarget("backup", "5551234")
    assert dial.identity == Party("201", "Alice Liddell")
    assert last_record(commands).route == "trunk backup"


def test_outbound_trunk_call_full_life() -> None:
    engine, _ = make_engine()
    commands = engine.new_call(call_id="c", caller=FROM_ALICE, dialled="95551234", now=T0)
    (dial,) = of(Dial, commands)
    ringing = engine.on_provisional("c", dial.branch, 183, T0 + 1)
    assert last_record(ringing).state is CallState.RINGING
    assert of(Connect, engine.on_answer("c", dial.branch, T0 + 4)) == [Connect("c", dial.branch)]
    commands = engine.on_hangup("c", dial.branch, T0 + 30)
    assert of(Hangup, commands) == [Hangup("c", A_LEG)]
    record = assert_ended(
        engine, commands, outcome="answered", status=200, ended_by="callee", at=T0 + 30
    )
    assert record.direction is Direction.OUTBOUND


@pytest.mark.parametrize("dialled", ["+4930123402", "202"])
def test_inbound_call_from_a_trunk_reaches_the_user(dialled: str) -> None:
    c = call_bob(dialled=dialled, caller=FROM_PSTN)
    for dial in of(Dial, c.commands):
        assert dial.identity == Party("+4917012345678")
        assert dial.callee == Party("202", "Bob Builder")
    record = last_record(c.commands)
    assert record.direction is Direction.INBOUND
    assert record.trunk == "pstn"
    assert record.dialled == dialled
    assert record.callee_user == "bob"
    assert record.caller_user is None
    assert record.route == "extension 202"


@pytest.mark.parametrize("dialled", ["95551234", "85551234", "0301234567"])
def test_call_from_a_trunk_never_reaches_a_trunk(dialled: str) -> None:
    engine, _ = make_engine()
    commands = engine.new_call(call_id="c", caller=FROM_PSTN, dialled=dialled, now=T0)
    assert of(Dial, commands) == []
    assert [r.status for r in of(Reject, commands)] == [404]
    record = assert_ended(
        engine, commands, outcome="not-found", status=404, ended_by="system", at=T0
    )
    assert record.direction is Direction.INBOUND


# ---- several calls, unknown events --------------------------------------------


def test_calls_are_independent_and_branch_ids_unique() -> None:
    engine, _ = make_engine()
    one = engine.new_call(call_id="one", caller=FROM_ALICE, dialled="202", now=T0)
    two = engine.new_call(call_id="two", caller=FROM_PSTN, dialled="202", now=T0 + 1)
    branches = [d.branch for d in of(Dial, one) + of(Dial, two)]
    assert len(set(branches)) == 4
    assert engine.active_count() == 2
    engine.on_cancel("one", T0 + 2)
    assert engine.active_count() == 1
    assert set(engine.calls) == {"two"}


@pytest.mark.parametrize(
    "event",
    [
        lambda e: e.on_provisional("nope", "b1", 180, T0),
        lambda e: e.on_answer("nope", "b1", T0),
        lambda e: e.on_failure("nope", "b1", 486, T0),
        lambda e: e.on_cancel("nope", T0),
        lambda e: e.on_hangup("nope", A_LEG, T0),
        lambda e: e.on_timer("nope", TimerName.NO_ANSWER, T0),
        lambda e: e.on_provisional("call-1", "b999", 180, T0),
        lambda e: e.on_answer("call-1", "b999", T0),
        lambda e: e.on_failure("call-1", "b999", 486, T0),
        lambda e: e.on_hangup("call-1", "b999", T0),
    ],
)
def test_events_for_unknown_calls_or_branches_are_ignored(
    event: Callable[[CallEngine], list[Command]],
) -> None:
    c = call_bob()
    assert event(c.engine) == []
    assert c.engine.calls["call-1"].state is CallState.CALLING
    assert c.engine.active_count() == 1


@pytest.mark.parametrize(
    "event",
    [
        lambda c: c.engine.on_provisional(c.call_id, c.desk, 180, T0 + 30),
        lambda c: c.engine.on_failure(c.call_id, c.desk, 487, T0 + 30),
        lambda c: c.engine.on_cancel(c.call_id, T0 + 30),
        lambda c: c.engine.on_hangup(c.call_id, A_LEG, T0 + 30),
        lambda c: c.engine.on_hangup(c.call_id, c.desk, T0 + 30),
        lambda c: c.engine.on_timer(c.call_id, TimerName.NO_ANSWER, T0 + 30),
    ],
)
def test_events_after_the_call_ended_are_ignored(
    event: Callable[[BobCall], list[Command]],
) -> None:
    c = call_bob()
    c.engine.on_cancel(c.call_id, T0 + 2)
    assert event(c) == []
    assert c.engine.active_count() == 0


def _cancelled_by_caller(c: BobCall) -> str:
    c.engine.on_cancel(c.call_id, T0 + 2)
    return c.desk


def _cancelled_by_timer(c: BobCall) -> str:
    c.engine.on_timer(c.call_id, TimerName.NO_ANSWER, T0 + 15)
    return c.soft


def _cancelled_by_decline(c: BobCall) -> str:
    c.engine.on_failure(c.call_id, c.desk, 603, T0 + 2)
    return c.soft


def _cancelled_by_answer_then_bye(c: BobCall) -> str:
    c.engine.on_answer(c.call_id, c.desk, T0 + 2)
    c.engine.on_hangup(c.call_id, A_LEG, T0 + 3)
    return c.soft


@pytest.mark.parametrize(
    "end",
    [
        _cancelled_by_caller,
        _cancelled_by_timer,
        _cancelled_by_decline,
        _cancelled_by_answer_then_bye,
    ],
    ids=["caller-cancel", "no-answer", "declined", "answered-then-bye"],
)
def test_2xx_crossing_our_cancel_after_the_call_ended_is_left_to_the_sip_layer(
    end: Callable[[BobCall], str],
) -> None:
    # Once a call has ended the engine forgets it: a 2xx that lost the race
    # with our CANCEL is ACKed and BYEd by the B2BUA itself (its orphan
    # handling), so the engine neither fails nor revives the call.
    c = call_bob()
    cancelled = end(c)
    assert c.engine.active_count() == 0
    assert c.engine.on_answer(c.call_id, cancelled, T0 + 20) == []
    assert c.engine.active_count() == 0


# ---- any sequence of events -------------------------------------------------

# (kind, branch index, status); the index is taken modulo the number of branches
Event = tuple[str, int, int]

events_strategy = st.lists(
    st.one_of(
        st.tuples(st.just("provisional"), st.integers(0, 2), st.sampled_from([180, 183])),
        st.tuples(st.just("answer"), st.integers(0, 2), st.just(200)),
        st.tuples(
            st.just("failure"),
            st.integers(0, 2),
            st.sampled_from([404, 408, 480, 486, 487, 500, 503, 600, 603]),
        ),
        st.tuples(st.just("cancel"), st.just(0), st.just(0)),
        st.tuples(st.just("hangup-a"), st.just(0), st.just(0)),
        st.tuples(st.just("hangup-b"), st.integers(0, 2), st.just(0)),
        st.tuples(st.just("timer"), st.just(0), st.just(0)),
    ),
    max_size=12,
)


def _apply(engine: CallEngine, event: Event, branches: list[str], now: float) -> list[Command]:
    kind, index, status = event
    branch = branches[index % len(branches)]
    if kind == "provisional":
        return engine.on_provisional("x", branch, status, now)
    if kind == "answer":
        return engine.on_answer("x", branch, now)
    if kind == "failure":
        return engine.on_failure("x", branch, status, now)
    if kind == "cancel":
        return engine.on_cancel("x", now)
    if kind == "hangup-a":
        return engine.on_hangup("x", A_LEG, now)
    if kind == "hangup-b":
        return engine.on_hangup("x", branch, now)
    assert kind == "timer"
    return engine.on_timer("x", TimerName.NO_ANSWER, now)


@settings(max_examples=300, deadline=None)
@given(dialled=st.sampled_from(["201", "202", "204"]), events=events_strategy)
def test_any_sequence_of_events_keeps_the_call_consistent(
    dialled: str, events: list[Event]
) -> None:
    engine, _ = make_engine()
    out = engine.new_call(call_id="x", caller=FROM_PSTN, dialled=dialled, now=T0)
    branches = [d.branch for d in of(Dial, out)]
    assert branches
    now = T0
    # The no-answer timer always fires in the end unless the call stopped it.
    for event in [*events, ("timer", 0, 0)]:
        now += 1
        out += _apply(engine, event, branches, now)
        call = engine.calls.get("x")
        assert call is None or call.state is not CallState.ENDED
        if call is not None:
            assert out
            assert last_record(out) == call.record

    call = engine.calls.get("x")
    assert call is None or call.state is CallState.CONNECTED
    connects = [i for i, c in enumerate(out) if isinstance(c, Connect)]
    rejects = [i for i, c in enumerate(out) if isinstance(c, Reject)]
    assert len(connects) <= 1
    assert len(rejects) <= 1
    assert not (connects and rejects and rejects[0] > connects[0])
    assert all(c.branch in branches for c in of(Connect, out))
    if call is None:
        assert engine.active_count() == 0
        record = last_record(out)
        assert record.state is CallState.ENDED
        assert record.ended_at is not None
        assert record.outcome is not None
        assert record.status is not None
        assert record.ended_by is not None
        assert (record.outcome == "answered") == bool(connects)
    else:
        assert connects
        assert engine.active_count() == 1
