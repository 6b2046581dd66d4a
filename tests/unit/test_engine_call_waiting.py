"""The call engine's telecommuter line (rule T6): call waiting, hold and resume.

The remote phone is one SIP leg (the line) carried by the call that set it up;
answering a waiting call or resuming a held one re-joins the line's media to
that call's party (`Bridge`), and whatever was joined before hears nothing.
These tests follow the commands the engine gives the SIP layer, call by call.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from teleoffice.calls.engine import (
    A_LEG,
    AnswerWaiting,
    Bridge,
    Caller,
    CallRecord,
    CallState,
    Command,
    Connect,
    Dial,
    Diversion,
    Hangup,
    Origination,
    Party,
    PlayTone,
    Progress,
    Refusal,
    Reject,
    Release,
    StartTimer,
    StopTimer,
    StopTone,
    TimerName,
    ToneName,
    TrunkTarget,
)
from teleoffice.calls.routing import UserView
from tests.unit.test_call_engine import BOB_DESK, T0, of, records
from tests.unit.test_engine_telecommuter import (
    ALICE,
    CAROL_DESK,
    FROM_BOB,
    FROM_CAROL,
    FROM_OUTSIDE,
    MOBILE_OUT,
    World,
    telecommuting_alice,
    world,
)

LINE = TrunkTarget("pstn", MOBILE_OUT)  # where Alice's remote phone is dialled
# Alice's no-answer time (ALICE.no_answer_timeout) also bounds how long a call waits.
WAIT = ALICE.no_answer_timeout


def dial_in(w: World, caller: Caller, call_id: str, now: float) -> list[Command]:
    return w.engine.new_call(call_id=call_id, caller=caller, dialled="201", now=now)


def record_of(commands: list[Command], call_id: str) -> CallRecord:
    found = [r for r in records(commands) if r.call_id == call_id]
    assert found, f"no record of {call_id} in {commands}"
    return found[-1]


def bridges(commands: list[Command]) -> list[Bridge]:
    return of(Bridge, commands)


def first_call_on_the_line(w: World, caller: Caller = FROM_BOB) -> str:
    """Bob calls Alice at home and she answers: returns the line's leg of c1."""
    [dial] = of(Dial, dial_in(w, caller, "c1", T0))
    assert dial.target == LINE
    w.engine.on_provisional("c1", dial.branch, 180, T0 + 1)
    out = w.engine.on_answer("c1", dial.branch, T0 + 2)
    assert of(Connect, out) == [Connect("c1", dial.branch)]
    return dial.branch


def second_call_waits(w: World, line: str | None = None) -> tuple[str, list[Command]]:
    line = line or first_call_on_the_line(w)
    out = dial_in(w, FROM_OUTSIDE, "c2", T0 + 10)
    assert record_of(out, "c2").state is CallState.WAITING
    return line, out


def second_call_answered(w: World) -> tuple[str, list[Command]]:
    """c1 (Bob) held, c2 (someone outside) joined to the line."""
    line, _ = second_call_waits(w)
    out = w.engine.answer_waiting("alice", "c2", T0 + 12)
    assert not isinstance(out, Refusal), out
    return line, out


# ---- a second call is offered (T6) ----------------------------------------------------------


def test_a_second_call_waits_with_a_tone_in_the_current_call() -> None:
    w = telecommuting_alice()
    line, out = second_call_waits(w)
    # Nothing is dialled: the remote phone is one line, and it is in use.
    assert of(Dial, out) == []
    assert of(Reject, out) == []
    # The caller hears ringing; Alice hears the call-waiting tone in her call.
    assert of(Progress, out) == [Progress("c2", A_LEG, 180)]
    assert of(PlayTone, out) == [PlayTone("c1", line, ToneName.CALL_WAITING)]
    assert of(StartTimer, out) == [StartTimer("c2", TimerName.NO_ANSWER, T0 + 10 + WAIT)]
    record = record_of(out, "c2")
    assert record.state is CallState.WAITING
    assert record.ringing_at == T0 + 10
    assert record.callee_user == "alice"
    assert record.caller == FROM_OUTSIDE.party
    assert "call waiting" in (record.route or "")
    # The call on the line is not touched.
    assert [r.call_id for r in records(out)] == ["c2"]
    assert w.engine.lines["alice"].waiting == "c2"
    assert w.engine.lines["alice"].active == "c1"


def test_answering_the_waiting_call_holds_the_current_one() -> None:
    w = telecommuting_alice()
    line, out = second_call_answered(w)
    assert of(StopTone, out) == [StopTone("c1", line)]
    assert of(StopTimer, out) == [StopTimer("c2", TimerName.NO_ANSWER)]
    # The waiting caller is answered in the line's codec...
    assert of(AnswerWaiting, out) == [AnswerWaiting("c2", "c1", line)]
    # ... the line and Bob are each joined to nothing, then the line to c2's caller.
    assert bridges(out) == [
        Bridge("c1", line, None, None),
        Bridge("c1", A_LEG, None, None),
        Bridge("c1", line, "c2", A_LEG),
    ]
    assert out.index(of(AnswerWaiting, out)[0]) < out.index(bridges(out)[-1])
    held = record_of(out, "c1")
    assert (held.state, held.held) == (CallState.CONNECTED, True)
    answered = record_of(out, "c2")
    assert (answered.state, answered.held) == (CallState.CONNECTED, False)
    assert answered.answered_at == T0 + 12
    assert "call waiting" in (answered.route or "")
    # No leg is hung up and nothing is dialled: everything stays on the one line.
    assert of(Hangup, out) == []
    assert of(Dial, out) == []
    line_state = w.engine.lines["alice"]
    assert (line_state.active, line_state.held, line_state.waiting) == ("c2", ["c1"], None)
    assert w.engine.shares_line("c1")
    assert w.engine.shares_line("c2")
    assert w.engine.line_leg("c1", line)
    assert not w.engine.line_leg("c1", A_LEG)


@pytest.mark.parametrize("action", ["answer", "reject"])
def test_only_a_waiting_call_can_be_answered_or_rejected(action: str) -> None:
    w = telecommuting_alice()
    first_call_on_the_line(w)
    engine = w.engine

    def act(username: str, call_id: str) -> object:
        if action == "answer":
            return engine.answer_waiting(username, call_id, T0 + 5)
        return engine.reject_waiting(username, call_id, T0 + 5)

    for username, call_id in [("alice", "c1"), ("alice", "nope"), ("bob", "c1")]:
        refusal = act(username, call_id)
        assert isinstance(refusal, Refusal)
        assert (refusal.status, refusal.code) == (409, "not_waiting")
    dial_in(w, FROM_OUTSIDE, "c2", T0 + 10)
    # Somebody else cannot take Alice's waiting call.
    refusal = act("bob", "c2")
    assert isinstance(refusal, Refusal)
    assert refusal.status == 409
    assert engine.lines["alice"].waiting == "c2"


# ---- switching between the two calls -----------------------------------------------------


def test_resuming_the_held_call_puts_the_active_one_on_hold() -> None:
    w = telecommuting_alice()
    line, _ = second_call_answered(w)
    out = w.engine.resume("c1")
    assert not isinstance(out, Refusal)
    assert bridges(out) == [
        Bridge("c1", line, None, None),
        Bridge("c2", A_LEG, None, None),
        Bridge("c1", line, "c1", A_LEG),
    ]
    assert (record_of(out, "c2").held, record_of(out, "c1").held) == (True, False)
    assert (w.engine.lines["alice"].active, w.engine.lines["alice"].held) == ("c1", ["c2"])
    # And back again.
    out = w.engine.resume("c2")
    assert not isinstance(out, Refusal)
    assert bridges(out) == [
        Bridge("c1", line, None, None),
        Bridge("c1", A_LEG, None, None),
        Bridge("c1", line, "c2", A_LEG),
    ]
    assert (record_of(out, "c1").held, record_of(out, "c2").held) == (True, False)
    assert of(Hangup, out) == []


def test_resuming_a_call_that_is_not_held_changes_nothing() -> None:
    w = telecommuting_alice()
    second_call_answered(w)
    assert w.engine.resume("c2") == []
    assert w.engine.hold("c1") == []  # already held
    assert w.engine.lines["alice"].active == "c2"


def test_holding_the_active_call_leaves_the_line_silent_until_one_is_resumed() -> None:
    w = telecommuting_alice()
    line, _ = second_call_answered(w)
    out = w.engine.hold("c2")
    assert not isinstance(out, Refusal)
    assert bridges(out) == [Bridge("c1", line, None, None), Bridge("c2", A_LEG, None, None)]
    assert record_of(out, "c2").held
    assert w.engine.lines["alice"].active is None
    resumed = w.engine.resume("c2")
    assert not isinstance(resumed, Refusal)
    assert bridges(resumed)[-1] == Bridge("c1", line, "c2", A_LEG)
    assert not record_of(resumed, "c2").held
    assert w.engine.lines["alice"].calls() == ["c1", "c2"]  # held first, then the active one


def test_hold_and_resume_of_the_only_call_on_the_line() -> None:
    w = telecommuting_alice()
    line = first_call_on_the_line(w)
    out = w.engine.hold("c1")
    assert not isinstance(out, Refusal)
    assert bridges(out) == [Bridge("c1", line, None, None), Bridge("c1", A_LEG, None, None)]
    assert record_of(out, "c1").held
    out = w.engine.resume("c1")
    assert not isinstance(out, Refusal)
    assert bridges(out) == [Bridge("c1", line, None, None), Bridge("c1", line, "c1", A_LEG)]
    assert not record_of(out, "c1").held


# ---- rejected, unanswered, cancelled ----------------------------------------------------------


def test_rejecting_the_waiting_call_gives_it_busy() -> None:
    w = telecommuting_alice()
    line, _ = second_call_waits(w)
    out = w.engine.reject_waiting("alice", "c2", T0 + 11)
    assert not isinstance(out, Refusal)
    assert StopTone("c1", line) in out
    assert of(Reject, out) == [Reject("c2", 486, "Busy Here")]
    record = record_of(out, "c2")
    assert (record.state, record.outcome, record.status) == (CallState.ENDED, "busy", 486)
    assert "rejected while busy" in (record.route or "")
    # The call on the line goes on as it was.
    assert bridges(out) == []
    assert of(Hangup, out) == []
    assert [r.call_id for r in records(out)] == ["c2"]
    assert (w.engine.lines["alice"].active, w.engine.lines["alice"].waiting) == ("c1", None)
    assert set(w.engine.calls) == {"c1"}


def test_rejecting_the_waiting_call_uses_forward_on_busy() -> None:
    w = telecommuting_alice(alice=replace(ALICE, forward_busy="203"))
    line, _ = second_call_waits(w)
    out = w.engine.reject_waiting("alice", "c2", T0 + 11)
    assert not isinstance(out, Refusal)
    assert StopTone("c1", line) in out
    assert of(Reject, out) == []
    [dial] = of(Dial, out)
    assert dial.call_id == "c2"
    assert dial.target == CAROL_DESK
    assert dial.identity == FROM_OUTSIDE.party
    assert dial.diversions == (Diversion(Party("201", "Alice"), "user-busy"),)
    assert w.engine.lines["alice"].waiting is None


def test_an_unanswered_waiting_call_gets_no_answer_treatment() -> None:
    w = telecommuting_alice()
    line, _ = second_call_waits(w)
    out = w.engine.on_timer("c2", TimerName.NO_ANSWER, T0 + 10 + WAIT)
    assert StopTone("c1", line) in out
    # T5: nothing takes it (no forward, no voicemail): the caller hears busy.
    assert of(Reject, out) == [Reject("c2", 486, "Busy Here")]
    record = record_of(out, "c2")
    assert (record.state, record.outcome) == (CallState.ENDED, "no-answer")
    assert w.engine.lines["alice"].waiting is None
    assert w.engine.lines["alice"].active == "c1"


def test_an_unanswered_waiting_call_uses_forward_on_no_answer() -> None:
    w = telecommuting_alice(alice=replace(ALICE, forward_no_answer="203"))
    line, _ = second_call_waits(w)
    out = w.engine.on_timer("c2", TimerName.NO_ANSWER, T0 + 10 + WAIT)
    assert StopTone("c1", line) in out
    assert of(Reject, out) == []
    [dial] = of(Dial, out)
    assert dial.target == CAROL_DESK
    assert dial.diversions == (Diversion(Party("201", "Alice"), "no-answer"),)


def test_the_caller_cancelling_a_waiting_call_stops_the_tone() -> None:
    w = telecommuting_alice()
    line, _ = second_call_waits(w)
    out = w.engine.on_cancel("c2", T0 + 13)
    assert of(StopTone, out) == [StopTone("c1", line)]
    assert of(Reject, out) == [Reject("c2", 487, "Request Terminated")]
    record = record_of(out, "c2")
    assert (record.outcome, record.ended_by) == ("cancelled", "caller")
    assert of(Hangup, out) == []
    assert bridges(out) == []
    assert w.engine.lines["alice"].waiting is None
    # The next caller may wait again.
    again = dial_in(w, FROM_CAROL, "c3", T0 + 20)
    assert of(PlayTone, again) == [PlayTone("c1", line, ToneName.CALL_WAITING)]


# ---- when no call is offered: busy treatment (T6) -------------------------------------------


def test_a_third_call_while_one_waits_is_busy() -> None:
    w = telecommuting_alice()
    second_call_waits(w)
    out = dial_in(w, FROM_CAROL, "c3", T0 + 11)
    assert of(Dial, out) == []
    assert of(PlayTone, out) == []
    assert of(Progress, out) == []
    assert of(Reject, out) == [Reject("c3", 486, "Busy Here")]
    record = record_of(out, "c3")
    assert record.outcome == "busy"
    assert "telecommuter line busy" in (record.route or "")
    assert w.engine.lines["alice"].waiting == "c2"


def test_a_third_call_while_one_waits_uses_forward_on_busy() -> None:
    w = telecommuting_alice(alice=replace(ALICE, forward_busy="203"))
    second_call_waits(w)
    out = dial_in(w, FROM_BOB, "c3", T0 + 11)
    assert [d.target for d in of(Dial, out)] == [CAROL_DESK]
    assert of(PlayTone, out) == []


def test_a_call_once_the_waiting_one_was_answered_may_wait_too() -> None:
    # One held, one talking: the line is in a call, so one more may wait.
    w = telecommuting_alice()
    line, _ = second_call_answered(w)
    out = dial_in(w, FROM_CAROL, "c3", T0 + 20)
    assert of(PlayTone, out) == [PlayTone("c1", line, ToneName.CALL_WAITING)]
    assert record_of(out, "c3").state is CallState.WAITING


def test_without_call_waiting_a_second_call_is_busy() -> None:
    w = telecommuting_alice(alice=replace(ALICE, call_waiting=False))
    first_call_on_the_line(w)
    out = dial_in(w, FROM_OUTSIDE, "c2", T0 + 10)
    assert of(PlayTone, out) == []
    assert of(Progress, out) == []
    assert of(Dial, out) == []
    assert of(Reject, out) == [Reject("c2", 486, "Busy Here")]
    assert w.engine.lines["alice"].waiting is None


def test_no_call_waits_while_the_line_only_rings() -> None:
    w = telecommuting_alice()
    dial_in(w, FROM_BOB, "c1", T0)
    out = dial_in(w, FROM_OUTSIDE, "c2", T0 + 1)
    assert of(PlayTone, out) == []
    assert of(Dial, out) == []
    assert of(Reject, out) == [Reject("c2", 486, "Busy Here")]
    assert "alice" not in w.engine.lines


def placed_by_alice(w: World) -> None:
    plan = w.engine.prepare_call(ALICE, "202", T0)
    assert isinstance(plan, Origination)
    w.engine.originate("c1", plan, T0)


def test_no_call_waits_while_a_callback_is_being_placed() -> None:
    w = telecommuting_alice()
    placed_by_alice(w)
    # The callback rings Alice's line.
    out = dial_in(w, FROM_OUTSIDE, "c2", T0 + 1)
    assert of(PlayTone, out) == []
    assert [r.status for r in of(Reject, out)] == [486]
    # She answered; Bob's phone rings: she is dialling, not talking.
    [to_bob] = of(Dial, w.engine.on_answer("c1", A_LEG, T0 + 3))
    w.engine.on_provisional("c1", to_bob.branch, 180, T0 + 4)
    out = dial_in(w, FROM_OUTSIDE, "c3", T0 + 5)
    assert of(PlayTone, out) == []
    assert [r.status for r in of(Reject, out)] == [486]
    # Bob answers: now a call may wait, its tone played on her line (leg A).
    w.engine.on_answer("c1", to_bob.branch, T0 + 6)
    out = dial_in(w, FROM_OUTSIDE, "c4", T0 + 7)
    assert of(PlayTone, out) == [PlayTone("c1", A_LEG, ToneName.CALL_WAITING)]
    assert of(Reject, out) == []


def test_answering_a_call_waiting_on_a_callback_line() -> None:
    w = telecommuting_alice()
    placed_by_alice(w)
    [to_bob] = of(Dial, w.engine.on_answer("c1", A_LEG, T0 + 3))
    assert to_bob.target == BOB_DESK
    w.engine.on_answer("c1", to_bob.branch, T0 + 6)
    dial_in(w, FROM_OUTSIDE, "c2", T0 + 7)
    out = w.engine.answer_waiting("alice", "c2", T0 + 8)
    assert not isinstance(out, Refusal)
    assert of(AnswerWaiting, out) == [AnswerWaiting("c2", "c1", A_LEG)]
    # Here the line is leg A, and the party on hold is Bob's branch.
    assert bridges(out) == [
        Bridge("c1", A_LEG, None, None),
        Bridge("c1", to_bob.branch, None, None),
        Bridge("c1", A_LEG, "c2", A_LEG),
    ]


# ---- hanging up on a shared line ---------------------------------------------------------------


def test_the_first_caller_leaving_keeps_the_line_for_the_second_call() -> None:
    w = telecommuting_alice()
    line, _ = second_call_answered(w)
    out = w.engine.on_hangup("c1", A_LEG, T0 + 30)  # Bob hangs up while on hold
    # The line leg belongs to c1, but c2 is on it: it is not hung up.
    assert of(Hangup, out) == []
    assert of(Release, out) == []
    record = record_of(out, "c1")
    assert (record.state, record.outcome, record.ended_by) == (
        CallState.ENDED,
        "answered",
        "caller",
    )
    assert record.ended_at == T0 + 30
    assert not record.held
    assert w.engine.is_carrier("c1")
    assert w.engine.shares_line("c1")
    assert w.engine.line_busy("alice")
    assert w.engine.lines["alice"].calls() == ["c2"]
    # c1 is over: no more call control on it.
    for refused in (w.engine.hold("c1"), w.engine.resume("c1")):
        assert isinstance(refused, Refusal)
        assert refused.status == 409
    # The last call on the line ends: now the line goes, and c1 with it.
    out = w.engine.on_hangup("c2", A_LEG, T0 + 40)
    assert of(Hangup, out) == [Hangup("c1", line)]
    assert of(Release, out) == [Release("c1")]
    assert out.index(Hangup("c1", line)) < out.index(Release("c1"))
    record = record_of(out, "c2")
    assert (record.state, record.ended_by) == (CallState.ENDED, "caller")
    assert [r.call_id for r in records(out)] == ["c2"]  # c1 ended long ago
    assert w.engine.calls == {}
    assert w.engine.lines == {}
    assert not w.engine.line_busy("alice")
    assert not w.engine.is_carrier("c1")


def test_the_first_caller_leaving_while_the_second_waits() -> None:
    w = telecommuting_alice()
    line, _ = second_call_waits(w)
    out = w.engine.on_hangup("c1", A_LEG, T0 + 11)
    assert of(Hangup, out) == []
    assert bridges(out) == [Bridge("c1", line, None, None)]  # the line hears nothing now
    assert w.engine.is_carrier("c1")
    # Alice takes the waiting call on the same line.
    answered = w.engine.answer_waiting("alice", "c2", T0 + 12)
    assert not isinstance(answered, Refusal)
    assert of(AnswerWaiting, answered) == [AnswerWaiting("c2", "c1", line)]
    assert bridges(answered)[-1] == Bridge("c1", line, "c2", A_LEG)
    out = w.engine.on_hangup("c2", A_LEG, T0 + 20)
    assert of(Hangup, out) == [Hangup("c1", line)]
    assert of(Release, out) == [Release("c1")]
    assert w.engine.calls == {}


def test_the_waiting_caller_giving_up_after_the_first_left_ends_the_line() -> None:
    w = telecommuting_alice()
    line, _ = second_call_waits(w)
    w.engine.on_hangup("c1", A_LEG, T0 + 11)
    out = w.engine.on_cancel("c2", T0 + 12)
    assert StopTone("c1", line) in out
    assert of(Hangup, out) == [Hangup("c1", line)]
    assert of(Release, out) == [Release("c1")]
    assert w.engine.calls == {}
    assert w.engine.lines == {}


def test_the_remote_phone_hanging_up_ends_every_call_on_the_line() -> None:
    w = telecommuting_alice()
    line, _ = second_call_answered(w)
    out = w.engine.on_hangup("c1", line, T0 + 30)
    # Each call's party is hung up; the line itself sent the BYE.
    assert sorted(of(Hangup, out), key=lambda h: h.call_id) == [
        Hangup("c1", A_LEG),
        Hangup("c2", A_LEG),
    ]
    assert Hangup("c1", line) not in out
    ended = {r.call_id: r for r in records(out)}
    assert set(ended) == {"c1", "c2"}
    assert all(r.state is CallState.ENDED for r in ended.values())
    assert all(r.ended_by == "callee" for r in ended.values())
    assert w.engine.calls == {}
    assert w.engine.lines == {}
    assert not w.engine.line_busy("alice")


def test_the_remote_phone_hanging_up_after_the_carrier_ended() -> None:
    w = telecommuting_alice()
    line, _ = second_call_answered(w)
    w.engine.on_hangup("c1", A_LEG, T0 + 30)
    out = w.engine.on_hangup("c1", line, T0 + 40)
    assert of(Hangup, out) == [Hangup("c2", A_LEG)]
    assert of(Release, out) == [Release("c1")]
    assert [r.call_id for r in records(out)] == ["c2"]
    assert w.engine.calls == {}
    assert w.engine.lines == {}


def test_the_remote_phone_hanging_up_rings_it_again_for_a_waiting_call() -> None:
    w = telecommuting_alice()
    line, _ = second_call_waits(w)
    out = w.engine.on_hangup("c1", line, T0 + 15)
    assert of(Hangup, out) == [Hangup("c1", A_LEG)]
    assert record_of(out, "c1").state is CallState.ENDED
    # The waiting call rings the line afresh, as a call to Alice does.
    [dial] = of(Dial, out)
    assert dial.call_id == "c2"
    assert dial.target == LINE
    assert dial.identity == FROM_OUTSIDE.party
    assert dial.callee == Party("201", "Alice")
    assert dial.diversions == (Diversion(Party("201", "Alice"), "follow-me"),)
    assert StopTimer("c2", TimerName.NO_ANSWER) in out
    assert StartTimer("c2", TimerName.NO_ANSWER, T0 + 15 + WAIT) in out
    assert record_of(out, "c2").state is not CallState.ENDED
    assert of(Reject, out) == []
    assert "alice" not in w.engine.lines
    assert set(w.engine.calls) == {"c2"}
    # Alice answers it: it is now the call on a new line.
    out = w.engine.on_answer("c2", dial.branch, T0 + 18)
    assert of(Connect, out) == [Connect("c2", dial.branch)]
    assert record_of(out, "c2").state is CallState.CONNECTED
    assert (w.engine.lines["alice"].carrier, w.engine.lines["alice"].leg) == ("c2", dial.branch)


def test_the_remote_phone_hanging_up_with_three_calls_on_the_line() -> None:
    w = telecommuting_alice()
    line, _ = second_call_answered(w)
    dial_in(w, FROM_CAROL, "c3", T0 + 20)  # waits while c1 is held and c2 talks
    out = w.engine.on_hangup("c1", line, T0 + 25)
    assert sorted(h.call_id for h in of(Hangup, out)) == ["c1", "c2"]
    assert [d.call_id for d in of(Dial, out)] == ["c3"]
    assert set(w.engine.calls) == {"c3"}


def test_portal_hang_up_of_the_answered_waiting_call_keeps_the_held_one() -> None:
    # The portal's hang-up (T4) of the call Alice took while Bob waits on hold:
    # its caller is hung up, the line and Bob's held call stay.
    w = telecommuting_alice()
    line, _ = second_call_answered(w)
    out = w.engine.hang_up("c2", T0 + 30)
    assert of(Hangup, out) == [Hangup("c2", A_LEG)]
    record = record_of(out, "c2")
    assert (record.state, record.ended_by) == (CallState.ENDED, "system")
    assert set(w.engine.calls) == {"c1"}
    assert w.engine.lines["alice"].held == ["c1"]
    assert w.engine.lines["alice"].active is None
    resumed = w.engine.resume("c1")
    assert not isinstance(resumed, Refusal)
    assert bridges(resumed)[-1] == Bridge("c1", line, "c1", A_LEG)


def test_portal_hang_up_of_the_held_carrier_call_keeps_the_line() -> None:
    # Hanging up Bob (on hold; his call carries the line) from the portal must
    # not cut the line that the other call is talking on.
    w = telecommuting_alice()
    line, _ = second_call_answered(w)
    out = w.engine.hang_up("c1", T0 + 30)
    assert of(Hangup, out) == [Hangup("c1", A_LEG)]
    record = record_of(out, "c1")
    assert (record.state, record.ended_by) == (CallState.ENDED, "system")
    assert w.engine.is_carrier("c1")
    assert w.engine.lines["alice"].active == "c2"
    # Later, the other call ends and takes the line with it.
    out = w.engine.on_hangup("c2", A_LEG, T0 + 40)
    assert of(Hangup, out) == [Hangup("c1", line)]
    assert of(Release, out) == [Release("c1")]
    assert w.engine.lines == {}


# ---- hold and resume on a desk call ----------------------------------------------------------


def desk_call(w: World) -> str:
    """Bob calls Alice's desk phone and she answers: returns her branch."""
    [dial] = of(Dial, dial_in(w, FROM_BOB, "c1", T0))
    w.engine.on_answer("c1", dial.branch, T0 + 2)
    return dial.branch


def test_hold_on_a_desk_call_silences_both_legs_and_resume_rejoins_them() -> None:
    w = world(ALICE, UserView("bob", "202", "Bob"))
    branch = desk_call(w)
    out = w.engine.hold("c1")
    assert not isinstance(out, Refusal)
    assert bridges(out) == [Bridge("c1", A_LEG, None, None), Bridge("c1", branch, None, None)]
    record = record_of(out, "c1")
    assert (record.state, record.held) == (CallState.CONNECTED, True)
    assert w.engine.hold("c1") == []  # already on hold
    out = w.engine.resume("c1")
    assert not isinstance(out, Refusal)
    assert bridges(out) == [Bridge("c1", A_LEG, "c1", branch)]
    assert not record_of(out, "c1").held
    assert w.engine.resume("c1") == []  # not on hold
    # A desk call has no line: nothing of it is shared.
    assert not w.engine.shares_line("c1")
    assert w.engine.lines == {}


def test_hold_and_resume_are_refused_for_a_call_that_is_not_connected() -> None:
    w = world(ALICE, UserView("bob", "202", "Bob"))
    dial_in(w, FROM_BOB, "c1", T0)  # still ringing
    for refusal in (w.engine.hold("c1"), w.engine.resume("c1"), w.engine.hold("nope")):
        assert isinstance(refusal, Refusal)
        assert (refusal.status, refusal.code) == (409, "not_connected")
    assert not w.engine.calls["c1"].record.held
