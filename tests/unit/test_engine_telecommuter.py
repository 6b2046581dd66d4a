"""The call engine with locations: telecommuter routing (T5, T6, T7), calls placed
for a user (T4), feature codes and phones nobody is logged in on (T10, T11)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from teleoffice.calls.engine import (
    A_LEG,
    CallEngine,
    Caller,
    CallState,
    CallUpdated,
    CancelBranch,
    Command,
    Connect,
    Dial,
    Direction,
    Diversion,
    Feature,
    FeatureName,
    Hangup,
    Origination,
    Party,
    PhoneTarget,
    Refusal,
    Reject,
    StartTimer,
    StopTimer,
    TimerName,
    TrunkTarget,
)
from teleoffice.calls.locations import LOGGED_OUT, Location, LocationKind
from teleoffice.calls.restrictions import BUILTIN_PROFILES, RestrictionProfile
from teleoffice.calls.routing import UserView
from tests.unit.test_call_engine import (
    ALICE_DESK,
    BOB_DESK,
    PSTN,
    T0,
    FakeContacts,
    FakeDirectory,
    last_record,
    of,
    records,
)

ALICE = UserView("alice", "201", "Alice", no_answer_timeout=20)
BOB = UserView("bob", "202", "Bob")
CAROL = UserView("carol", "203", "Carol", no_answer_timeout=30)
CAROL_DESK = PhoneTarget("203", "sip:203@192.0.2.30:5060", "UDP", "192.0.2.30", 5060)
ROOM_PHONE = PhoneTarget("room1", "sip:room1@192.0.2.99:5060", "UDP", "192.0.2.99", 5060)

# Alice's mobile, as she dials it from her desk (trunk prefix 9) and as it
# leaves the trunk.
MOBILE = "9017612345678"
MOBILE_OUT = "017612345678"
AT_HOME = Location(LocationKind.TELECOMMUTER, number=MOBILE, since=T0)

FROM_BOB = Caller(Party("202", "Bob"), user="bob", account="202")
FROM_CAROL = Caller(Party("203", "Carol"), user="carol", account="203")
FROM_OUTSIDE = Caller(Party("+4917099887766", "Someone"), trunk="pstn")


@dataclass
class World:
    """An engine over a fake directory whose users are where `where` says
    (everybody else on the base phone named by their extension)."""

    engine: CallEngine
    contacts: FakeContacts
    where: dict[str, Location] = field(default_factory=dict)
    profiles: dict[str, str] = field(default_factory=dict)


def world(
    *users: UserView,
    where: dict[str, Location] | None = None,
    profiles: dict[str, str] | None = None,
) -> World:
    directory = FakeDirectory({u.extension: u for u in users}, [PSTN])
    contacts = FakeContacts(
        {"201": [ALICE_DESK], "202": [BOB_DESK], "203": [CAROL_DESK], "room1": [ROOM_PHONE]}
    )
    w = World(CallEngine(directory, contacts), contacts, dict(where or {}), dict(profiles or {}))

    def locate(user: UserView) -> Location:
        return w.where.get(user.username, Location(LocationKind.PHONE, account=user.extension))

    def restriction(username: str) -> RestrictionProfile:
        name = w.profiles.get(username, "default")
        return next(p for p in BUILTIN_PROFILES if p.name == name)

    w.engine = CallEngine(directory, contacts, restrictions=restriction, locate=locate)
    return w


def telecommuting_alice(*others: UserView, alice: UserView = ALICE) -> World:
    return world(alice, BOB, CAROL, *others, where={"alice": AT_HOME})


def call(w: World, caller: Caller, dialled: str, call_id: str = "c1") -> list[Command]:
    return w.engine.new_call(call_id=call_id, caller=caller, dialled=dialled, now=T0)


# ---- incoming calls follow the user (T5) ----------------------------------------------


def test_call_to_a_telecommuter_dials_the_trunk_with_the_original_caller() -> None:
    w = telecommuting_alice()
    out = call(w, FROM_BOB, "201")
    [dial] = of(Dial, out)
    assert dial.target == TrunkTarget("pstn", MOBILE_OUT)
    # The remote phone sees Bob, not the company number, and a follow-me
    # diversion saying the call was for Alice.
    assert dial.identity == Party("202", "Bob")
    assert dial.callee == Party("201", "Alice")
    assert dial.diversions == (Diversion(Party("201", "Alice"), "follow-me"),)
    assert of(StartTimer, out) == [StartTimer("c1", TimerName.NO_ANSWER, T0 + 20)]
    assert of(Reject, out) == []
    record = last_record(out)
    assert record.state is CallState.CALLING
    assert record.callee_user == "alice"
    assert record.route == f"extension 201, telecommuter {MOBILE}"
    # Alice's desk phone is not rung, nor even looked up.
    assert w.contacts.asked == []


def test_call_from_outside_to_a_telecommuter_presents_the_outside_caller() -> None:
    w = telecommuting_alice()
    out = call(w, FROM_OUTSIDE, "201")
    [dial] = of(Dial, out)
    assert dial.target == TrunkTarget("pstn", MOBILE_OUT)
    assert dial.identity == Party("+4917099887766", "Someone")
    assert dial.diversions == (Diversion(Party("201", "Alice"), "follow-me"),)
    assert last_record(out).direction is Direction.INBOUND


def test_a_forward_to_a_telecommuter_keeps_the_earlier_diversions_first() -> None:
    w = world(ALICE, BOB, replace(CAROL, forward_always="201"), where={"alice": AT_HOME})
    out = call(w, FROM_BOB, "203")
    [dial] = of(Dial, out)
    assert dial.target == TrunkTarget("pstn", MOBILE_OUT)
    assert dial.identity == Party("202", "Bob")
    assert dial.diversions == (
        Diversion(Party("203", "Carol"), "unconditional"),
        Diversion(Party("201", "Alice"), "follow-me"),
    )


def test_incoming_calls_do_not_follow_to_a_number_the_profile_now_bars() -> None:
    # Alice started the mode on a number abroad; her administrator has since
    # barred international calls (she now has `default`).  The follow-me leg
    # is a call out of the trunk that Alice causes and pays for, like a forward
    # (T11: restrictions apply to every way of placing a call, forwards too;
    # `prepare_call` re-checks the callback for the same reason).
    abroad = Location(LocationKind.TELECOMMUTER, number="90044123456789", since=T0)
    w = world(ALICE, BOB, where={"alice": abroad})
    out = call(w, FROM_BOB, "201")
    assert of(Dial, out) == []
    assert [r.status for r in of(Reject, out)] == [486]


def test_telecommuter_answers_and_the_call_connects() -> None:
    w = telecommuting_alice()
    [dial] = of(Dial, call(w, FROM_BOB, "201"))
    w.engine.on_provisional("c1", dial.branch, 180, T0 + 1)
    out = w.engine.on_answer("c1", dial.branch, T0 + 4)
    assert of(Connect, out) == [Connect("c1", dial.branch)]
    assert last_record(out).state is CallState.CONNECTED
    assert w.engine.line_busy("alice")


def test_a_telecommuter_number_without_a_route_gets_busy_treatment() -> None:
    unroutable = Location(LocationKind.TELECOMMUTER, number="7777", since=T0)
    w = world(ALICE, BOB, where={"alice": unroutable})
    out = call(w, FROM_BOB, "201")
    assert of(Dial, out) == []
    assert [(r.status, r.reason) for r in of(Reject, out)] == [(486, "Busy Here")]
    assert "telecommuter number 7777 has no route" in (last_record(out).route or "")


# ---- one line (T6) ---------------------------------------------------------------------


def test_a_second_call_while_the_line_rings_is_busy() -> None:
    w = telecommuting_alice()
    call(w, FROM_BOB, "201", "c1")
    assert w.engine.line_busy("alice")
    out = call(w, FROM_CAROL, "201", "c2")
    assert of(Dial, out) == []
    assert [(r.call_id, r.status) for r in of(Reject, out)] == [("c2", 486)]
    record = last_record(out)
    assert (record.outcome, record.state) == ("busy", CallState.ENDED)
    assert "telecommuter line busy" in (record.route or "")
    assert "c1" in w.engine.calls  # the first call is untouched


def test_a_second_call_while_connected_is_busy_without_call_waiting() -> None:
    w = telecommuting_alice(alice=replace(ALICE, call_waiting=False))
    [dial] = of(Dial, call(w, FROM_BOB, "201", "c1"))
    w.engine.on_answer("c1", dial.branch, T0 + 2)
    out = call(w, FROM_OUTSIDE, "201", "c2")
    assert of(Dial, out) == []
    assert [r.status for r in of(Reject, out)] == [486]


def test_a_second_call_goes_to_forward_on_busy_when_set() -> None:
    w = telecommuting_alice(alice=replace(ALICE, forward_busy="203"))
    call(w, FROM_BOB, "201", "c1")
    out = call(w, FROM_OUTSIDE, "201", "c2")
    [dial] = of(Dial, out)
    assert dial.target == CAROL_DESK
    assert dial.identity == FROM_OUTSIDE.party
    assert dial.diversions == (Diversion(Party("201", "Alice"), "user-busy"),)
    assert of(Reject, out) == []


def test_the_line_is_free_again_once_the_call_ended() -> None:
    w = telecommuting_alice()
    [dial] = of(Dial, call(w, FROM_BOB, "201", "c1"))
    w.engine.on_answer("c1", dial.branch, T0 + 2)
    w.engine.on_hangup("c1", A_LEG, T0 + 30)
    assert not w.engine.line_busy("alice")
    out = call(w, FROM_CAROL, "201", "c2")
    assert [d.target for d in of(Dial, out)] == [TrunkTarget("pstn", MOBILE_OUT)]


def test_a_failed_telecommuter_leg_frees_the_line() -> None:
    w = telecommuting_alice()
    [dial] = of(Dial, call(w, FROM_BOB, "201", "c1"))
    out = w.engine.on_failure("c1", dial.branch, 486, T0 + 2)
    assert [r.status for r in of(Reject, out)] == [486]
    assert not w.engine.line_busy("alice")


def test_no_answer_from_the_telecommuter_gives_no_answer_treatment() -> None:
    w = telecommuting_alice()
    [dial] = of(Dial, call(w, FROM_BOB, "201"))
    out = w.engine.on_timer("c1", TimerName.NO_ANSWER, T0 + 20)
    assert of(CancelBranch, out) == [CancelBranch("c1", dial.branch)]
    # T5: no forward and no voicemail, so the caller hears busy.
    assert [r.status for r in of(Reject, out)] == [486]
    assert last_record(out).outcome == "no-answer"
    assert not w.engine.line_busy("alice")


def test_no_answer_from_the_telecommuter_uses_forward_on_no_answer() -> None:
    w = telecommuting_alice(alice=replace(ALICE, forward_no_answer="203"))
    [dial] = of(Dial, call(w, FROM_BOB, "201"))
    out = w.engine.on_timer("c1", TimerName.NO_ANSWER, T0 + 20)
    assert of(CancelBranch, out) == [CancelBranch("c1", dial.branch)]
    [forward] = of(Dial, out)
    assert forward.target == CAROL_DESK
    # The follow-me leg is gone: what reaches Carol is Alice's forward.
    assert forward.diversions == (Diversion(Party("201", "Alice"), "no-answer"),)
    assert of(Reject, out) == []


# ---- logged out (T7) ---------------------------------------------------------------------


def test_a_logged_out_user_gets_busy_treatment() -> None:
    w = world(ALICE, BOB, where={"alice": LOGGED_OUT})
    out = call(w, FROM_BOB, "201")
    assert of(Dial, out) == []
    assert [(r.status, r.reason) for r in of(Reject, out)] == [(486, "Busy Here")]
    record = last_record(out)
    assert record.outcome == "busy"
    assert record.route == "extension 201, logged out"
    assert w.contacts.asked == []


def test_a_logged_out_user_with_forward_on_busy_is_forwarded() -> None:
    w = world(replace(ALICE, forward_busy="203"), BOB, CAROL, where={"alice": LOGGED_OUT})
    out = call(w, FROM_BOB, "201")
    [dial] = of(Dial, out)
    assert dial.target == CAROL_DESK
    assert dial.diversions == (Diversion(Party("201", "Alice"), "user-busy"),)


def test_a_hot_desker_is_rung_on_the_phone_they_are_logged_in_on() -> None:
    w = world(ALICE, BOB, where={"alice": Location(LocationKind.PHONE, account="room1")})
    out = call(w, FROM_BOB, "201")
    assert [d.target for d in of(Dial, out)] == [ROOM_PHONE]
    assert w.contacts.asked == [("room1", T0)]


# ---- prepare_call: everything that refuses before any SIP (T4, T11) ------------------------


def test_prepare_call_for_a_telecommuter_rings_their_number_first() -> None:
    w = telecommuting_alice()
    plan = w.engine.prepare_call(ALICE, "202", T0)
    assert plan == Origination(
        ALICE, "202", TrunkTarget("pstn", MOBILE_OUT), Party("202", "Bob"), "alice"
    )
    assert w.engine.active_count() == 0  # nothing placed yet


def test_prepare_call_at_a_desk_rings_the_users_phone_first() -> None:
    w = world(ALICE, BOB)
    plan = w.engine.prepare_call(ALICE, "90301234567", T0)
    assert plan == Origination(ALICE, "90301234567", ALICE_DESK, Party("0301234567"), None)


def test_prepare_call_refuses_a_barred_number_before_anything_else() -> None:
    # Even a logged-out user with a busy line hears about the restriction first:
    # a barred number places no call at all (T4).
    w = world(ALICE, BOB, where={"alice": LOGGED_OUT})
    refusal = w.engine.prepare_call(ALICE, "90044123456789", T0)
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.code) == (403, "barred")
    assert "default" in refusal.message
    assert "international" in refusal.message
    assert w.engine.active_count() == 0
    assert w.contacts.asked == []


def test_prepare_call_applies_the_profile_to_internal_numbers_too() -> None:
    w = world(ALICE, BOB, profiles={"alice": "internal-only"})
    refusal = w.engine.prepare_call(ALICE, "90301234567", T0)
    assert isinstance(refusal, Refusal)
    assert refusal.status == 403
    assert isinstance(w.engine.prepare_call(ALICE, "202", T0), Origination)


def test_prepare_call_does_not_treat_the_portal_as_a_phone_for_emergency() -> None:
    # Emergency numbers are always allowed from a phone only (T11).
    w = world(ALICE, BOB, profiles={"alice": "internal-only"})
    refusal = w.engine.prepare_call(ALICE, "9112", T0)
    assert isinstance(refusal, Refusal)
    assert refusal.status == 403


@pytest.mark.parametrize("to", ["7777", "not a number", "sip:bob@example.com", ""])
def test_prepare_call_refuses_an_unroutable_number(to: str) -> None:
    w = world(ALICE, BOB)
    refusal = w.engine.prepare_call(ALICE, to, T0)
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.code) == (422, "unroutable")


def test_prepare_call_refuses_a_logged_out_user() -> None:
    w = world(ALICE, BOB, where={"alice": LOGGED_OUT})
    refusal = w.engine.prepare_call(ALICE, "202", T0)
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.code) == (409, "logged_out")


def test_prepare_call_refuses_while_the_telecommuter_line_is_busy() -> None:
    w = telecommuting_alice()
    call(w, FROM_BOB, "201")
    refusal = w.engine.prepare_call(ALICE, "203", T0)
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.code) == (409, "line_busy")


def test_prepare_call_refuses_a_second_call_during_a_callback() -> None:
    w = telecommuting_alice()
    plan = w.engine.prepare_call(ALICE, "202", T0)
    assert isinstance(plan, Origination)
    w.engine.originate("c1", plan, T0)
    refusal = w.engine.prepare_call(ALICE, "203", T0 + 1)
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.code) == (409, "line_busy")


def test_prepare_call_refuses_when_the_phone_is_not_registered() -> None:
    w = world(ALICE, BOB)
    w.contacts.by_extension["201"] = []
    refusal = w.engine.prepare_call(ALICE, "202", T0)
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.code) == (409, "unreachable")
    assert "201" in refusal.message


def test_prepare_call_refuses_a_telecommuter_number_the_profile_now_bars() -> None:
    abroad = Location(LocationKind.TELECOMMUTER, number="90044123456789", since=T0)
    w = world(ALICE, BOB, where={"alice": abroad})
    refusal = w.engine.prepare_call(ALICE, "202", T0)
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.code) == (403, "barred")


def test_prepare_call_refuses_a_telecommuter_number_without_a_route() -> None:
    w = world(ALICE, BOB, where={"alice": Location(LocationKind.TELECOMMUTER, number="7777")})
    refusal = w.engine.prepare_call(ALICE, "202", T0)
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.code) == (409, "unreachable")


# ---- originate: the callback first, the destination after a real answer ----------------------


def originate(w: World, to: str = "202", call_id: str = "c1") -> list[Command]:
    plan = w.engine.prepare_call(ALICE, to, T0)
    assert isinstance(plan, Origination), plan
    return w.engine.originate(call_id, plan, T0)


def answered_callback(w: World, to: str = "202") -> tuple[list[Command], Dial]:
    """The callback is answered; returns the commands and the Dial to the destination."""
    originate(w, to)
    out = w.engine.on_answer("c1", A_LEG, T0 + 5)
    [dial] = of(Dial, out)
    return out, dial


def test_originate_dials_only_the_users_line_showing_the_destination() -> None:
    w = telecommuting_alice()
    out = originate(w)
    assert of(Dial, out) == [
        Dial(
            "c1", A_LEG, TrunkTarget("pstn", MOBILE_OUT), Party("202", "Bob"), Party("201", "Alice")
        )
    ]
    assert of(StartTimer, out) == [StartTimer("c1", TimerName.NO_ANSWER, T0 + 20)]
    record = last_record(out)
    assert record.state is CallState.CALLING
    assert record.caller_user == "alice"
    assert record.callee == Party("202", "Bob")
    assert record.route == f"callback to {MOBILE_OUT}"
    assert w.engine.line_busy("alice")


def test_originate_from_a_desk_phone_rings_that_phone() -> None:
    w = world(ALICE, BOB)
    out = originate(w)
    [dial] = of(Dial, out)
    assert (dial.branch, dial.target) == (A_LEG, ALICE_DESK)
    assert dial.identity == Party("202", "Bob")
    assert last_record(out).route == "click-to-dial from phone 201"
    assert not w.engine.line_busy("alice")  # a desk phone is not a telecommuter line


def test_nothing_goes_to_the_destination_while_the_callback_rings() -> None:
    w = telecommuting_alice()
    originate(w)
    assert w.engine.on_provisional("c1", A_LEG, 180, T0 + 1) == []
    assert w.engine.on_provisional("c1", A_LEG, 183, T0 + 2) == []
    assert w.engine.calls["c1"].branches == {}


def test_answering_the_callback_dials_the_destination_as_the_user() -> None:
    w = telecommuting_alice()
    out, dial = answered_callback(w)
    assert out[0] == StopTimer("c1", TimerName.NO_ANSWER)
    assert dial.branch != A_LEG
    assert dial.target == BOB_DESK
    assert dial.identity == Party("201", "Alice")
    assert dial.callee == Party("202", "Bob")
    # Bob's no-answer time runs from the answer of the callback.
    assert of(StartTimer, out) == [StartTimer("c1", TimerName.NO_ANSWER, T0 + 5 + 15)]


def test_an_outside_destination_sees_the_company_number() -> None:
    w = telecommuting_alice()
    out, dial = answered_callback(w, "90301234567")
    assert dial.target == TrunkTarget("pstn", "0301234567")
    assert dial.identity == Party("+4930123400", "Alice")
    record = last_record(out)
    assert record.direction is Direction.OUTBOUND
    assert record.trunk == "pstn"


def test_the_destination_answers_and_the_call_connects() -> None:
    w = telecommuting_alice()
    _, dial = answered_callback(w)
    w.engine.on_provisional("c1", dial.branch, 180, T0 + 6)
    out = w.engine.on_answer("c1", dial.branch, T0 + 9)
    assert of(Connect, out) == [Connect("c1", dial.branch)]
    record = last_record(out)
    assert record.state is CallState.CONNECTED
    assert record.answered_at == T0 + 9


@pytest.mark.parametrize(
    ("status", "outcome"), [(486, "busy"), (408, "no-answer"), (503, "failed")]
)
def test_a_failed_callback_dials_nothing_onward(status: int, outcome: str) -> None:
    w = telecommuting_alice()
    originate(w)
    out = w.engine.on_failure("c1", A_LEG, status, T0 + 3)
    assert of(Dial, out) == []
    assert [r.status for r in of(Reject, out)] == [status]
    record = last_record(out)
    assert (record.state, record.outcome) == (CallState.ENDED, outcome)
    assert "not answered by the user" in (record.route or "")
    assert w.engine.active_count() == 0
    assert not w.engine.line_busy("alice")


def test_an_unanswered_callback_is_cancelled_and_nothing_is_dialled() -> None:
    w = telecommuting_alice()
    originate(w)
    out = w.engine.on_timer("c1", TimerName.NO_ANSWER, T0 + 20)
    assert of(CancelBranch, out) == [CancelBranch("c1", A_LEG)]
    assert of(Dial, out) == []
    record = last_record(out)
    assert (record.outcome, record.status, record.ended_by) == ("no-answer", 480, "system")
    # A 2xx crossing the CANCEL is hung up, and still nothing goes onward.
    late = w.engine.on_answer("c1", A_LEG, T0 + 21)
    assert late == [Hangup("c1", A_LEG)]
    assert w.engine.active_count() == 0


def test_a_busy_destination_ends_the_call_with_busy() -> None:
    # The engine rejects; the B2BUA turns that into a busy tone on leg A.
    w = telecommuting_alice()
    _, dial = answered_callback(w, "90301234567")
    out = w.engine.on_failure("c1", dial.branch, 486, T0 + 8)
    assert [(r.status, r.reason) for r in of(Reject, out)] == [(486, "Busy Here")]
    assert last_record(out).outcome == "busy"
    assert not w.engine.line_busy("alice")


def test_a_busy_internal_destination_uses_its_forward_on_busy() -> None:
    w = world(ALICE, replace(BOB, forward_busy="203"), CAROL, where={"alice": AT_HOME})
    _, dial = answered_callback(w)
    out = w.engine.on_failure("c1", dial.branch, 486, T0 + 8)
    [forward] = of(Dial, out)
    assert forward.target == CAROL_DESK
    assert forward.identity == Party("201", "Alice")


def test_a_logged_out_destination_is_busy_after_the_callback() -> None:
    w = world(ALICE, BOB, where={"alice": AT_HOME, "bob": LOGGED_OUT})
    originate(w)
    out = w.engine.on_answer("c1", A_LEG, T0 + 5)
    assert of(Dial, out) == []
    assert [r.status for r in of(Reject, out)] == [486]


# ---- hang_up from the portal, in every phase ---------------------------------------------------


def test_hang_up_while_the_callback_rings_cancels_it() -> None:
    w = telecommuting_alice()
    originate(w)
    out = w.engine.hang_up("c1", T0 + 2)
    assert of(CancelBranch, out) == [CancelBranch("c1", A_LEG)]
    assert of(Hangup, out) == []
    record = last_record(out)
    assert (record.outcome, record.ended_by, record.status) == ("cancelled", "system", 487)
    assert w.engine.active_count() == 0
    assert not w.engine.line_busy("alice")


def test_hang_up_while_the_destination_rings_ends_both() -> None:
    w = telecommuting_alice()
    _, dial = answered_callback(w)
    out = w.engine.hang_up("c1", T0 + 7)
    assert of(Hangup, out) == [Hangup("c1", A_LEG)]
    assert of(CancelBranch, out) == [CancelBranch("c1", dial.branch)]
    assert last_record(out).outcome == "cancelled"
    assert w.engine.active_count() == 0


def test_hang_up_of_a_connected_call_sends_bye_both_ways() -> None:
    w = telecommuting_alice()
    _, dial = answered_callback(w)
    w.engine.on_answer("c1", dial.branch, T0 + 9)
    out = w.engine.hang_up("c1", T0 + 60)
    assert of(Hangup, out) == [Hangup("c1", A_LEG), Hangup("c1", dial.branch)]
    assert of(CancelBranch, out) == []
    assert of(Reject, out) == []
    record = last_record(out)
    assert (record.outcome, record.ended_by, record.ended_at) == ("answered", "system", T0 + 60)
    assert not w.engine.line_busy("alice")


def test_hang_up_of_an_incoming_call_ringing_the_telecommuter() -> None:
    w = telecommuting_alice()
    [dial] = of(Dial, call(w, FROM_BOB, "201"))
    out = w.engine.hang_up("c1", T0 + 3)
    # The caller's leg is ours as UAS: it gets a final response, not a BYE.
    assert of(Hangup, out) == []
    assert of(CancelBranch, out) == [CancelBranch("c1", dial.branch)]
    assert [r.status for r in of(Reject, out)] == [487]
    assert not w.engine.line_busy("alice")


def test_hang_up_of_a_connected_incoming_call() -> None:
    w = telecommuting_alice()
    [dial] = of(Dial, call(w, FROM_BOB, "201"))
    w.engine.on_answer("c1", dial.branch, T0 + 3)
    out = w.engine.hang_up("c1", T0 + 9)
    assert of(Hangup, out) == [Hangup("c1", A_LEG), Hangup("c1", dial.branch)]


def test_hang_up_of_an_unknown_call_does_nothing() -> None:
    assert world(ALICE).engine.hang_up("nope", T0) == []


def test_the_user_hanging_up_the_callback_while_the_destination_rings() -> None:
    w = telecommuting_alice()
    _, dial = answered_callback(w)
    out = w.engine.on_hangup("c1", A_LEG, T0 + 7)
    assert of(CancelBranch, out) == [CancelBranch("c1", dial.branch)]
    assert last_record(out).ended_by == "caller"
    assert w.engine.active_count() == 0


# ---- feature codes (T10) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialled", "feature"),
    [
        ("*11201*4321", Feature("c1", FeatureName.LOG_IN, "202", "201", "4321")),
        (
            "*1112345678*1234567890123456",
            Feature("c1", FeatureName.LOG_IN, "202", "12345678", "1234567890123456"),
        ),
        ("*12", Feature("c1", FeatureName.LOG_OUT, "202")),
        ("*99", Feature("c1", FeatureName.UNKNOWN, "202")),
        ("*11201", Feature("c1", FeatureName.UNKNOWN, "202")),
        ("*11201*", Feature("c1", FeatureName.UNKNOWN, "202")),
        ("*12*", Feature("c1", FeatureName.UNKNOWN, "202")),
        ("*", Feature("c1", FeatureName.UNKNOWN, "202")),
    ],
)
def test_feature_codes_from_a_phone(dialled: str, feature: Feature) -> None:
    w = world(ALICE, BOB)
    out = call(w, FROM_BOB, dialled)
    # Only the feature: no call, nothing rings, nothing for the call log (the
    # login code is a secret).
    assert out == [feature]
    assert of(CallUpdated, out) == []
    assert w.engine.active_count() == 0


def test_feature_codes_work_from_a_phone_nobody_is_logged_in_on() -> None:
    w = world(ALICE, BOB)
    nobody = Caller(Party("room1"), account="room1")
    assert call(w, nobody, "*11201*4321") == [
        Feature("c1", FeatureName.LOG_IN, "room1", "201", "4321")
    ]


def test_feature_codes_are_never_taken_from_a_trunk() -> None:
    w = world(ALICE, BOB)
    out = call(w, FROM_OUTSIDE, "*11201*4321")
    assert of(Feature, out) == []
    assert of(Dial, out) == []
    assert [r.status for r in of(Reject, out)] == [404]
    # What is logged is a failed call to a star string; the code part of a
    # feature never appears because no feature ran.
    assert last_record(out).outcome == "not-found"


def test_a_call_the_pbx_places_is_never_a_feature() -> None:
    # A portal call has no phone account: a star number is just unroutable.
    w = world(ALICE, BOB)
    refusal = w.engine.prepare_call(ALICE, "*12", T0)
    assert isinstance(refusal, Refusal)
    assert refusal.status == 422


# ---- a phone nobody is logged in on (T10, T11) ----------------------------------------------


NOBODY = Caller(Party("room1"), account="room1")


def test_a_phone_with_nobody_logged_in_can_call_emergency_numbers() -> None:
    w = world(ALICE, BOB)
    out = call(w, NOBODY, "9112")
    [dial] = of(Dial, out)
    assert dial.target == TrunkTarget("pstn", "112")
    assert of(Reject, out) == []


@pytest.mark.parametrize("dialled", ["202", "90301234567", "9999999", "7777"])
def test_a_phone_with_nobody_logged_in_can_call_nothing_else(dialled: str) -> None:
    w = world(ALICE, BOB)
    out = call(w, NOBODY, dialled)
    assert of(Dial, out) == []
    [reject] = of(Reject, out)
    assert reject.status == 403
    assert "*11" in reject.reason
    record = last_record(out)
    assert (record.outcome, record.caller_user) == ("barred", None)
    assert w.engine.active_count() == 0
    assert records(out)[-1].state is CallState.ENDED
