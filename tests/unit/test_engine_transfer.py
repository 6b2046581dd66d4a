"""Blind transfer in the call engine (T4, checked like a call of the user's, T11).

Two shapes.  When the user was called, their leg is a branch: it is hung up,
and the target is rung like any call to it (forks, forwards, DND) while the
caller (leg A) hears ringback.  When the user placed the call, their leg is A:
it is hung up and a single target takes its place (a new leg A, offered the
codec the party already talks), while the party (a branch) hears ringback.
A target that does not take the call leaves the party a tone (`Abandon`).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from teleoffice.calls.engine import (
    A_LEG,
    TRANSFER_RING_SECONDS,
    Abandon,
    Bridge,
    Caller,
    CallRecord,
    CallState,
    CancelBranch,
    Command,
    Connect,
    Dial,
    Hangup,
    Origination,
    Party,
    PhoneTarget,
    PlayTone,
    Progress,
    Refusal,
    Reject,
    StartTimer,
    StopTimer,
    StopTone,
    TimerName,
    ToneName,
    TrunkTarget,
)
from teleoffice.calls.locations import LOGGED_OUT, Location, LocationKind
from teleoffice.calls.routing import UserView
from tests.unit.test_call_engine import BOB_DESK, T0, of, records
from tests.unit.test_engine_telecommuter import (
    ALICE,
    AT_HOME,
    BOB,
    CAROL,
    CAROL_DESK,
    FROM_BOB,
    FROM_CAROL,
    FROM_OUTSIDE,
    World,
    world,
)

CAROL_SOFT = PhoneTarget("203", "sip:203@198.51.100.30:5060", "UDP", "198.51.100.30", 5060)
FROM_ALICE = Caller(Party("201", "Alice"), user="alice", account="201")
OUTSIDE = "90301234567"  # a national number through trunk "pstn" (prefix 9)
OUTSIDE_TARGET = TrunkTarget("pstn", "0301234567")
COMPANY_NUMBER = "+4930123400"  # the trunk's outside number
CAROL_MOBILE = "9015199999999"
NOW = T0 + 60  # when the transfers happen


def record_of(commands: list[Command], call_id: str = "c1") -> CallRecord:
    found = [r for r in records(commands) if r.call_id == call_id]
    assert found, f"no record of {call_id} in {commands}"
    return found[-1]


def transferred(w: World, username: str, to: str, call_id: str = "c1") -> list[Command]:
    out = w.engine.transfer(username, call_id, to, NOW)
    assert not isinstance(out, Refusal), out
    return out


def refused(w: World, username: str, to: str, call_id: str = "c1") -> Refusal:
    out = w.engine.transfer(username, call_id, to, NOW)
    assert isinstance(out, Refusal), out
    return out


def call_answered(w: World, caller: Caller, dialled: str) -> str:
    """`caller` dials, the first phone answers: returns the answering branch."""
    dial = of(Dial, w.engine.new_call(call_id="c1", caller=caller, dialled=dialled, now=T0))[0]
    w.engine.on_answer("c1", dial.branch, T0 + 3)
    return dial.branch


def alice_was_called(w: World) -> str:
    """Bob calls Alice, who answers on her desk phone: returns her branch."""
    return call_answered(w, FROM_BOB, "201")


def alice_called_bob(w: World) -> str:
    """Alice dials Bob from her desk phone, Bob answers: returns his branch."""
    return call_answered(w, FROM_ALICE, "202")


def office(*changed: UserView, where: dict[str, Location] | None = None) -> World:
    users = {u.username: u for u in (ALICE, BOB, CAROL)}
    users.update({u.username: u for u in changed})
    return world(*users.values(), where=where)


def assert_untouched(w: World, branch: str) -> None:
    call = w.engine.calls["c1"]
    assert call.record.state is CallState.CONNECTED
    assert call.connected == branch
    assert call.transfer_party is None
    assert "transferred" not in (call.record.route or "")


# ---- refusals: nothing changes -------------------------------------------------------------


def test_a_barred_target_is_refused_and_nothing_is_hung_up() -> None:
    w = office()
    branch = alice_was_called(w)
    refusal = refused(w, "alice", "90044123456789")
    assert (refusal.status, refusal.code) == (403, "barred")
    assert "international" in refusal.message
    assert_untouched(w, branch)
    # The call can still be transferred somewhere allowed.
    assert of(Hangup, transferred(w, "alice", "203")) == [Hangup("c1", branch)]


def test_the_transferring_users_profile_applies_not_the_partys() -> None:
    w = office()
    w.profiles["alice"] = "internal-only"
    branch = alice_was_called(w)
    refusal = refused(w, "alice", OUTSIDE)
    assert refusal.status == 403
    assert "internal-only" in refusal.message
    assert_untouched(w, branch)


@pytest.mark.parametrize("to", ["7777", "", "not a number"])
def test_an_unroutable_target_is_refused(to: str) -> None:
    w = office()
    branch = alice_was_called(w)
    refusal = refused(w, "alice", to)
    assert (refusal.status, refusal.code) == (422, "unroutable")
    assert_untouched(w, branch)


def test_a_transfer_to_oneself_is_refused() -> None:
    w = office()
    branch = alice_was_called(w)
    refusal = refused(w, "alice", "201")
    assert (refusal.status, refusal.code) == (422, "self")
    assert_untouched(w, branch)


def test_a_call_that_is_not_connected_cannot_be_transferred() -> None:
    w = office()
    w.engine.new_call(call_id="c1", caller=FROM_BOB, dialled="201", now=T0)  # ringing
    for call_id in ("c1", "nope"):
        refusal = refused(w, "alice", "203", call_id)
        assert (refusal.status, refusal.code) == (409, "not_connected")
    assert w.engine.calls["c1"].record.state is not CallState.CONNECTED


def test_somebody_elses_call_cannot_be_transferred() -> None:
    w = office()
    branch = alice_was_called(w)
    refusal = refused(w, "carol", "203")
    assert (refusal.status, refusal.code) == (404, "not_found")
    assert_untouched(w, branch)


def test_a_call_being_transferred_cannot_be_transferred_again() -> None:
    w = office()
    alice_was_called(w)
    transferred(w, "alice", "203")
    refusal = refused(w, "alice", OUTSIDE)
    assert (refusal.status, refusal.code) == (409, "transferring")


def telecommuting(w: World) -> str:
    """Alice at home takes Bob's call, then an outside call waits: returns the line leg."""
    w.where["alice"] = AT_HOME
    [dial] = of(Dial, w.engine.new_call(call_id="c1", caller=FROM_BOB, dialled="201", now=T0))
    w.engine.on_answer("c1", dial.branch, T0 + 2)
    w.engine.new_call(call_id="c2", caller=FROM_OUTSIDE, dialled="201", now=T0 + 10)
    return dial.branch


def test_a_line_with_a_waiting_call_cannot_transfer() -> None:
    w = office()
    line = telecommuting(w)
    refusal = refused(w, "alice", "203")
    assert (refusal.status, refusal.code) == (409, "line_busy")
    assert_untouched(w, line)


def test_a_line_with_two_calls_cannot_transfer_either_of_them() -> None:
    w = office()
    line = telecommuting(w)
    assert not isinstance(w.engine.answer_waiting("alice", "c2", T0 + 12), Refusal)
    for call_id in ("c1", "c2"):
        refusal = refused(w, "alice", "203", call_id)
        assert (refusal.status, refusal.code) == (409, "line_busy")
    assert w.engine.lines["alice"].calls() == ["c1", "c2"]
    assert w.engine.calls["c1"].connected == line


@pytest.mark.parametrize(
    ("carol", "where", "phones", "code"),
    [
        (replace(CAROL, dnd=True), None, [CAROL_DESK], "target_busy"),
        (CAROL, LOGGED_OUT, [CAROL_DESK], "target_unavailable"),
        (CAROL, None, [], "target_unavailable"),
    ],
    ids=["dnd", "logged-out", "unregistered"],
)
def test_a_target_that_cannot_take_the_call_is_refused_when_the_user_placed_it(
    carol: UserView, where: Location | None, phones: list[PhoneTarget], code: str
) -> None:
    w = office(carol, where={"carol": where} if where else None)
    w.contacts.by_extension["203"] = phones
    branch = alice_called_bob(w)
    refusal = refused(w, "alice", "203")
    assert (refusal.status, refusal.code) == (409, code)
    assert "203" in refusal.message
    assert_untouched(w, branch)


def test_a_telecommuting_target_whose_line_is_busy_is_refused() -> None:
    carol_home = Location(LocationKind.TELECOMMUTER, number=CAROL_MOBILE)
    w = office(where={"carol": carol_home})
    # Somebody outside is talking to Carol at home.
    w.engine.new_call(call_id="c9", caller=FROM_OUTSIDE, dialled="203", now=T0)
    branch = alice_called_bob(w)
    refusal = refused(w, "alice", "203")
    assert (refusal.status, refusal.code) == (409, "target_unavailable")
    assert_untouched(w, branch)


# ---- the user was called: the target is rung like any call ------------------------------------


def test_transfer_of_a_call_the_user_took_rings_every_phone_of_the_target() -> None:
    w = office()
    w.contacts.by_extension["203"] = [CAROL_DESK, CAROL_SOFT]
    branch = alice_was_called(w)
    out = transferred(w, "alice", "203")
    # Alice's leg goes at once; Bob hears ringback.
    assert out[0] == Hangup("c1", branch)
    assert of(Hangup, out) == [Hangup("c1", branch)]
    assert of(PlayTone, out) == [PlayTone("c1", A_LEG, ToneName.RINGBACK)]
    dials = of(Dial, out)
    assert [d.target for d in dials] == [CAROL_DESK, CAROL_SOFT]
    # Carol sees Bob calling her (he is the one who stays).
    assert {(d.identity, d.callee) for d in dials} == {(FROM_BOB.party, Party("203", "Carol"))}
    assert len({d.branch for d in dials} | {branch}) == 3
    assert of(StartTimer, out) == [
        StartTimer("c1", TimerName.NO_ANSWER, NOW + CAROL.no_answer_timeout)
    ]
    assert of(Reject, out) == []
    assert of(Abandon, out) == []
    record = record_of(out)
    assert record.state is CallState.CONNECTED
    assert "transferred by alice to 203" in (record.route or "")

    # Bob was answered long ago: Carol's ringing is not reported to him.
    assert of(Progress, w.engine.on_provisional("c1", dials[0].branch, 180, NOW + 1)) == []

    out = w.engine.on_answer("c1", dials[1].branch, NOW + 4)
    assert StopTimer("c1", TimerName.NO_ANSWER) in out
    assert of(CancelBranch, out) == [CancelBranch("c1", dials[0].branch)]
    assert of(StopTone, out) == [StopTone("c1", A_LEG)]
    assert of(Connect, out) == [Connect("c1", dials[1].branch)]
    assert of(Bridge, out) == [Bridge("c1", A_LEG, "c1", dials[1].branch)]
    record = record_of(out)
    assert record.state is CallState.CONNECTED
    assert "transfer answered" in (record.route or "")
    call = w.engine.calls["c1"]
    assert (call.connected, call.transfer_party) == (dials[1].branch, None)

    # A late answer of the other phone is hung up; Bob and Carol talk on.
    assert w.engine.on_answer("c1", dials[0].branch, NOW + 5) == [Hangup("c1", dials[0].branch)]
    # Bob hangs up: Carol's leg gets the BYE.
    out = w.engine.on_hangup("c1", A_LEG, NOW + 90)
    assert of(Hangup, out) == [Hangup("c1", dials[1].branch)]
    assert (record_of(out).outcome, record_of(out).ended_by) == ("answered", "caller")
    assert w.engine.calls == {}


def test_the_transferring_users_old_leg_hanging_up_changes_nothing() -> None:
    w = office()
    branch = alice_was_called(w)
    transferred(w, "alice", "203")
    assert w.engine.on_hangup("c1", branch, NOW + 1) == []
    assert w.engine.calls["c1"].transfer_party == A_LEG


def test_a_busy_target_leaves_the_caller_a_busy_tone() -> None:
    w = office()
    alice_was_called(w)
    [dial] = of(Dial, transferred(w, "alice", "203"))
    out = w.engine.on_failure("c1", dial.branch, 486, NOW + 2)
    # Bob was answered: no final response for him, a tone and then BYE.
    assert of(Abandon, out) == [Abandon("c1", A_LEG, ToneName.BUSY)]
    assert of(Reject, out) == []
    record = record_of(out)
    assert (record.state, record.outcome, record.status) == (CallState.ENDED, "failed", 486)
    assert "transfer failed (486)" in (record.route or "")
    assert w.engine.calls == {}


def test_a_target_that_fails_otherwise_leaves_congestion() -> None:
    w = office()
    alice_was_called(w)
    [dial] = of(Dial, transferred(w, "alice", "203"))
    out = w.engine.on_failure("c1", dial.branch, 503, NOW + 2)
    assert of(Abandon, out) == [Abandon("c1", A_LEG, ToneName.CONGESTION)]
    assert record_of(out).outcome == "failed"


def test_one_busy_fork_of_the_target_is_not_the_end() -> None:
    w = office()
    w.contacts.by_extension["203"] = [CAROL_DESK, CAROL_SOFT]
    alice_was_called(w)
    first, second = of(Dial, transferred(w, "alice", "203"))
    assert w.engine.on_failure("c1", first.branch, 486, NOW + 2) == []
    out = w.engine.on_failure("c1", second.branch, 486, NOW + 3)
    assert of(Abandon, out) == [Abandon("c1", A_LEG, ToneName.BUSY)]


def test_a_dnd_target_of_a_call_the_user_took_leaves_the_caller_busy() -> None:
    w = office(replace(CAROL, dnd=True))
    alice_was_called(w)
    out = transferred(w, "alice", "203")
    assert of(Dial, out) == []
    assert of(Abandon, out) == [Abandon("c1", A_LEG, ToneName.BUSY)]
    assert record_of(out).state is CallState.ENDED


def test_an_unanswered_target_leaves_the_caller_congestion() -> None:
    w = office()
    w.contacts.by_extension["203"] = [CAROL_DESK, CAROL_SOFT]
    alice_was_called(w)
    dials = of(Dial, transferred(w, "alice", "203"))
    out = w.engine.on_timer("c1", TimerName.NO_ANSWER, NOW + CAROL.no_answer_timeout)
    assert sorted(c.branch for c in of(CancelBranch, out)) == sorted(d.branch for d in dials)
    assert of(Abandon, out) == [Abandon("c1", A_LEG, ToneName.CONGESTION)]
    assert record_of(out).outcome == "failed"
    assert w.engine.calls == {}


def test_the_caller_hanging_up_while_the_target_rings_cancels_it() -> None:
    w = office()
    w.contacts.by_extension["203"] = [CAROL_DESK, CAROL_SOFT]
    alice_was_called(w)
    dials = of(Dial, transferred(w, "alice", "203"))
    out = w.engine.on_hangup("c1", A_LEG, NOW + 3)
    assert of(CancelBranch, out) == [CancelBranch("c1", d.branch) for d in dials]
    assert of(Abandon, out) == []
    record = record_of(out)
    assert (record.state, record.ended_by) == (CallState.ENDED, "caller")
    assert w.engine.calls == {}


def test_transfer_of_a_call_the_user_took_to_an_outside_number() -> None:
    w = office()
    alice_was_called(w)
    out = transferred(w, "alice", OUTSIDE)
    [dial] = of(Dial, out)
    assert dial.target == OUTSIDE_TARGET
    assert dial.callee == Party("0301234567")
    # The target is offered what Bob already talks (no transcoding).
    assert dial.media_like == A_LEG
    assert of(StartTimer, out) == [
        StartTimer("c1", TimerName.NO_ANSWER, NOW + TRANSFER_RING_SECONDS)
    ]
    out = w.engine.on_answer("c1", dial.branch, NOW + 5)
    assert of(Connect, out) == [Connect("c1", dial.branch)]
    assert of(Bridge, out) == [Bridge("c1", A_LEG, "c1", dial.branch)]


def test_an_outside_target_sees_the_company_number_for_an_internal_party() -> None:
    # As for forwards: an extension means nothing outside, so a call out of the
    # trunk presents the trunk's outside number (with the party's name).
    w = office()
    alice_was_called(w)
    [dial] = of(Dial, transferred(w, "alice", OUTSIDE))
    assert dial.identity == Party(COMPANY_NUMBER, "Bob")


def test_an_outside_target_sees_an_outside_party_as_themselves() -> None:
    w = office()
    call_answered(w, FROM_OUTSIDE, "201")
    [dial] = of(Dial, transferred(w, "alice", OUTSIDE))
    assert dial.identity == FROM_OUTSIDE.party


def test_a_busy_outside_target_is_not_the_transferring_users_busy() -> None:
    # Alice's forward-on-busy is for calls to Alice; the outside number she
    # transferred Bob to being busy must leave Bob a busy tone, not ring Carol.
    w = office(replace(ALICE, forward_busy="203", forward_no_answer="203"))
    alice_was_called(w)
    [dial] = of(Dial, transferred(w, "alice", OUTSIDE))
    out = w.engine.on_failure("c1", dial.branch, 486, NOW + 2)
    assert of(Dial, out) == []
    assert of(Abandon, out) == [Abandon("c1", A_LEG, ToneName.BUSY)]


def test_an_unanswered_outside_target_is_not_the_transferring_users_no_answer() -> None:
    w = office(replace(ALICE, forward_busy="203", forward_no_answer="203"))
    alice_was_called(w)
    [dial] = of(Dial, transferred(w, "alice", OUTSIDE))
    out = w.engine.on_timer("c1", TimerName.NO_ANSWER, NOW + TRANSFER_RING_SECONDS)
    assert of(CancelBranch, out) == [CancelBranch("c1", dial.branch)]
    assert of(Dial, out) == []
    assert of(Abandon, out) == [Abandon("c1", A_LEG, ToneName.CONGESTION)]


# ---- the user placed the call: a single target replaces leg A -----------------------------------


def test_transfer_of_a_call_the_user_placed_replaces_leg_a() -> None:
    w = office()
    w.contacts.by_extension["203"] = [CAROL_DESK, CAROL_SOFT]
    bob = alice_called_bob(w)
    out = transferred(w, "alice", "203")
    assert out[0] == Hangup("c1", A_LEG)
    assert of(Hangup, out) == [Hangup("c1", A_LEG)]
    assert of(PlayTone, out) == [PlayTone("c1", bob, ToneName.RINGBACK)]
    # One destination (the first phone), in leg A's place, offered Bob's codec;
    # Carol sees Bob, the party who stays.
    assert of(Dial, out) == [
        Dial("c1", A_LEG, CAROL_DESK, Party("202", "Bob"), Party("203"), media_like=bob)
    ]
    assert of(StartTimer, out) == [
        StartTimer("c1", TimerName.NO_ANSWER, NOW + TRANSFER_RING_SECONDS)
    ]
    assert record_of(out).state is CallState.CONNECTED

    assert w.engine.on_provisional("c1", A_LEG, 180, NOW + 1) == []
    out = w.engine.on_answer("c1", A_LEG, NOW + 4)
    assert StopTimer("c1", TimerName.NO_ANSWER) in out
    assert of(StopTone, out) == [StopTone("c1", bob)]
    assert of(Bridge, out) == [Bridge("c1", A_LEG, "c1", bob)]
    assert of(Connect, out) == []  # Bob's branch is connected already
    assert of(Hangup, out) == []
    assert w.engine.calls["c1"].transfer_party is None
    # Carol (now leg A) hangs up: Bob gets the BYE.
    out = w.engine.on_hangup("c1", A_LEG, NOW + 60)
    assert of(Hangup, out) == [Hangup("c1", bob)]
    assert w.engine.calls == {}


def test_the_party_of_a_placed_call_hanging_up_cancels_the_target() -> None:
    w = office()
    bob = alice_called_bob(w)
    transferred(w, "alice", "203")
    # Alice's old leg A going away (her BYE crossing ours) changes nothing.
    assert w.engine.on_hangup("c1", A_LEG, NOW + 1) == []
    out = w.engine.on_hangup("c1", bob, NOW + 2)
    assert of(CancelBranch, out) == [CancelBranch("c1", A_LEG)]
    assert of(Abandon, out) == []
    record = record_of(out)
    assert (record.state, record.ended_by) == (CallState.ENDED, "callee")
    assert w.engine.calls == {}
    # The target's answer crossing the CANCEL is hung up.
    assert w.engine.on_answer("c1", A_LEG, NOW + 3) == [Hangup("c1", A_LEG)]


@pytest.mark.parametrize(("status", "tone"), [(486, ToneName.BUSY), (404, ToneName.CONGESTION)])
def test_a_failed_single_target_leaves_the_party_a_tone(status: int, tone: ToneName) -> None:
    w = office()
    bob = alice_called_bob(w)
    transferred(w, "alice", "203")
    out = w.engine.on_failure("c1", A_LEG, status, NOW + 2)
    assert of(Abandon, out) == [Abandon("c1", bob, tone)]
    assert of(Reject, out) == []
    record = record_of(out)
    assert (record.outcome, record.status) == ("failed", status)
    assert w.engine.calls == {}


def test_an_unanswered_single_target_is_cancelled_after_the_transfer_ring_time() -> None:
    w = office()
    bob = alice_called_bob(w)
    transferred(w, "alice", OUTSIDE)
    out = w.engine.on_timer("c1", TimerName.NO_ANSWER, NOW + TRANSFER_RING_SECONDS)
    assert of(CancelBranch, out) == [CancelBranch("c1", A_LEG)]
    assert of(Abandon, out) == [Abandon("c1", bob, ToneName.CONGESTION)]
    assert record_of(out).outcome == "failed"
    assert w.engine.calls == {}


def test_a_placed_call_transferred_out_of_the_trunk() -> None:
    w = office()
    bob = alice_called_bob(w)
    [dial] = of(Dial, transferred(w, "alice", OUTSIDE))
    assert (dial.branch, dial.target, dial.media_like) == (A_LEG, OUTSIDE_TARGET, bob)


def test_a_single_target_follows_a_forward_always_once() -> None:
    w = office(replace(CAROL, forward_always=OUTSIDE))
    alice_called_bob(w)
    [dial] = of(Dial, transferred(w, "alice", "203"))
    assert dial.target == OUTSIDE_TARGET
    w = office(replace(CAROL, forward_always="202"))
    call_answered(w, FROM_ALICE, "90307654321")  # Alice talks to someone outside
    [dial] = of(Dial, transferred(w, "alice", "203"))
    assert dial.target == BOB_DESK


def test_a_telecommuting_single_target_is_rung_at_home_and_its_line_is_busy() -> None:
    carol_home = Location(LocationKind.TELECOMMUTER, number=CAROL_MOBILE)
    w = office(where={"carol": carol_home})
    alice_called_bob(w)
    [dial] = of(Dial, transferred(w, "alice", "203"))
    assert dial.target == TrunkTarget("pstn", CAROL_MOBILE[1:])
    # T6: Carol's remote phone now carries this call; it is one line.
    assert w.engine.line_busy("carol")


# ---- transfers on a telecommuter line free the line ------------------------------------------


def test_transferring_a_call_taken_at_home_frees_the_line() -> None:
    w = office(where={"alice": AT_HOME})
    line = alice_was_called(w)
    assert w.engine.line_busy("alice")
    out = transferred(w, "alice", "203")
    assert of(Hangup, out) == [Hangup("c1", line)]
    assert "alice" not in w.engine.lines
    assert not w.engine.shares_line("c1")
    assert not w.engine.line_busy("alice")
    # Alice may place a call again, and calls to her reach her line.
    assert isinstance(w.engine.prepare_call(ALICE, "202", NOW + 1), Origination)
    out = w.engine.new_call(call_id="c2", caller=FROM_CAROL, dialled="201", now=NOW + 2)
    assert of(Reject, out) == []
    assert [d.call_id for d in of(Dial, out)] == ["c2"]


def test_transferring_a_call_placed_from_home_frees_the_line() -> None:
    w = office(where={"alice": AT_HOME})
    plan = w.engine.prepare_call(ALICE, "202", T0)
    assert isinstance(plan, Origination)
    w.engine.originate("c1", plan, T0)
    [to_bob] = of(Dial, w.engine.on_answer("c1", A_LEG, T0 + 3))
    w.engine.on_answer("c1", to_bob.branch, T0 + 5)
    assert w.engine.lines["alice"].leg == A_LEG
    out = transferred(w, "alice", "203")
    assert of(Hangup, out) == [Hangup("c1", A_LEG)]
    assert of(PlayTone, out) == [PlayTone("c1", to_bob.branch, ToneName.RINGBACK)]
    [dial] = of(Dial, out)
    assert (dial.branch, dial.target, dial.media_like) == (A_LEG, CAROL_DESK, to_bob.branch)
    assert w.engine.lines == {}
    assert not w.engine.line_busy("alice")
    assert isinstance(w.engine.prepare_call(ALICE, "203", NOW + 1), Origination)


def test_the_portal_hanging_up_a_call_while_its_target_rings() -> None:
    w = office()
    alice_was_called(w)
    [dial] = of(Dial, transferred(w, "alice", "203"))
    out = w.engine.hang_up("c1", NOW + 2)
    assert of(CancelBranch, out) == [CancelBranch("c1", dial.branch)]
    assert of(Hangup, out) == [Hangup("c1", A_LEG)]
    assert record_of(out).state is CallState.ENDED
    assert w.engine.calls == {}
