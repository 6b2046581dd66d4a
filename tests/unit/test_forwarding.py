"""Forwarding and do-not-disturb in the call engine (rules T5, T6, T9, T11)."""

from __future__ import annotations

from dataclasses import replace

from teleoffice.calls.engine import (
    MAX_FORWARD_HOPS,
    CallEngine,
    Caller,
    CancelBranch,
    Command,
    Dial,
    Party,
    PhoneTarget,
    Reject,
    StartTimer,
    TimerName,
    TrunkTarget,
)
from teleoffice.calls.restrictions import BUILTIN_PROFILES, RestrictionProfile
from teleoffice.calls.routing import UserView
from tests.unit.test_call_engine import (
    ALICE_DESK,
    BOB_DESK,
    BOB_SOFT,
    FROM_ALICE,
    FROM_PSTN,
    PSTN,
    T0,
    FakeContacts,
    FakeDirectory,
    last_record,
    of,
)

ALICE = UserView("alice", "201", "Alice")
BOB = UserView("bob", "202", "Bob")
CAROL = UserView("carol", "203", "Carol", no_answer_timeout=30)
CAROL_DESK = PhoneTarget("203", "sip:203@192.0.2.30:5060", "UDP", "192.0.2.30", 5060)


def engine_with(*users: UserView, restrictions: dict[str, str] | None = None) -> CallEngine:
    directory = FakeDirectory({u.extension: u for u in users}, [PSTN])
    contacts = FakeContacts({"201": [ALICE_DESK], "202": [BOB_DESK, BOB_SOFT], "203": [CAROL_DESK]})
    profiles = restrictions or {}

    def restriction(username: str) -> RestrictionProfile:
        name = profiles.get(username, "unrestricted")
        return next(p for p in BUILTIN_PROFILES if p.name == name)

    return CallEngine(directory, contacts, restrictions=restriction)


def call_bob(engine: CallEngine, caller: Caller = FROM_ALICE) -> list[Command]:
    return engine.new_call(call_id="c1", caller=caller, dialled="202", now=T0)


def test_dnd_without_forward_is_busy_without_ringing() -> None:
    engine = engine_with(ALICE, replace(BOB, dnd=True), CAROL)
    out = call_bob(engine)
    assert of(Dial, out) == []
    assert [(r.status, r.reason) for r in of(Reject, out)] == [(486, "Busy Here")]
    record = last_record(out)
    assert (record.outcome, record.callee, record.callee_user) == (
        "busy",
        Party("202", "Bob"),
        "bob",
    )
    assert record.route == "extension 202, do not disturb"


def test_dnd_uses_forward_on_busy() -> None:
    engine = engine_with(ALICE, replace(BOB, dnd=True, forward_busy="203"), CAROL)
    out = call_bob(engine)
    [dial] = of(Dial, out)
    assert dial.target == CAROL_DESK
    assert dial.identity == FROM_ALICE.party
    assert dial.callee == Party("203", "Carol")
    assert of(StartTimer, out)[-1].at == T0 + 30  # Carol's no-answer time
    assert last_record(out).route == "extension 202, do not disturb, forwarded to 203"


def test_forward_always_never_rings_the_user_and_keeps_the_callee() -> None:
    engine = engine_with(ALICE, replace(BOB, forward_always="203", dnd=True), CAROL)
    out = call_bob(engine)
    [dial] = of(Dial, out)
    assert dial.target == CAROL_DESK
    assert dial.identity == Party("201", "Alice Liddell")
    record = last_record(out)
    assert record.callee == Party("202", "Bob")
    assert record.route == "extension 202, forwarded to 203"
    out = engine.on_answer("c1", dial.branch, T0 + 2)
    assert last_record(out).answered_at == T0 + 2


def test_busy_phones_forward_on_busy_and_late_failures_do_not_count() -> None:
    engine = engine_with(ALICE, replace(BOB, forward_busy="203"), CAROL)
    desk, soft = of(Dial, call_bob(engine))
    assert engine.on_failure("c1", desk.branch, 486, T0 + 1) == []
    out = engine.on_failure("c1", soft.branch, 486, T0 + 1)
    [dial] = of(Dial, out)
    assert dial.target == CAROL_DESK
    assert of(Reject, out) == []
    # Carol's phone says busy: she has no forward, so the caller hears busy.
    out = engine.on_failure("c1", dial.branch, 486, T0 + 2)
    assert [r.status for r in of(Reject, out)] == [486]


def test_global_busy_forwards_at_once_and_cancels_the_rest() -> None:
    engine = engine_with(ALICE, replace(BOB, forward_busy="203"), CAROL)
    desk, soft = of(Dial, call_bob(engine))
    out = engine.on_failure("c1", desk.branch, 600, T0 + 1)
    assert of(CancelBranch, out) == [CancelBranch("c1", soft.branch)]
    [dial] = of(Dial, out)
    # The cancelled branch's 487 belongs to the old stage and changes nothing.
    assert engine.on_failure("c1", soft.branch, 487, T0 + 1) == []
    out = engine.on_failure("c1", dial.branch, 404, T0 + 2)
    assert [r.status for r in of(Reject, out)] == [404]


def test_no_answer_forwards_to_a_trunk_with_the_outside_identity() -> None:
    engine = engine_with(ALICE, replace(BOB, forward_no_answer="90301234567"))
    dials = of(Dial, call_bob(engine))
    out = engine.on_timer("c1", TimerName.NO_ANSWER, T0 + 15)
    assert {c.branch for c in of(CancelBranch, out)} == {d.branch for d in dials}
    [dial] = of(Dial, out)
    assert dial.target == TrunkTarget("pstn", "0301234567")
    assert dial.identity == Party(PSTN.outside_number or "", "Alice Liddell")
    assert last_record(out).route == "extension 202, forwarded to 90301234567"
    # A trunk's busy is not forwarded again.
    out = engine.on_failure("c1", dial.branch, 486, T0 + 20)
    assert [r.status for r in of(Reject, out)] == [486]


def test_outside_caller_forwarded_out_keeps_their_number() -> None:
    engine = engine_with(replace(BOB, forward_always="90301234567"))
    out = engine.new_call(call_id="c1", caller=FROM_PSTN, dialled="202", now=T0)
    [dial] = of(Dial, out)
    assert dial.identity == FROM_PSTN.party


def test_no_answer_without_forward_is_480() -> None:
    engine = engine_with(ALICE, BOB)
    call_bob(engine)
    out = engine.on_timer("c1", TimerName.NO_ANSWER, T0 + 15)
    assert [r.status for r in of(Reject, out)] == [480]
    assert last_record(out).outcome == "no-answer"


def test_unregistered_user_gets_no_answer_treatment() -> None:
    dave = UserView("dave", "204", "Dave", forward_no_answer="203")
    engine = engine_with(ALICE, dave, CAROL)
    out = engine.new_call(call_id="c1", caller=FROM_ALICE, dialled="204", now=T0)
    assert [d.target for d in of(Dial, out)] == [CAROL_DESK]


def test_barred_forward_gives_the_normal_failure_and_says_why() -> None:
    bob = replace(BOB, forward_busy="900441234567")
    engine = engine_with(ALICE, bob, restrictions={"bob": "default"})
    desk, soft = of(Dial, call_bob(engine))
    engine.on_failure("c1", desk.branch, 486, T0 + 1)
    out = engine.on_failure("c1", soft.branch, 486, T0 + 1)
    assert of(Dial, out) == []
    assert [r.status for r in of(Reject, out)] == [486]
    route = last_record(out).route or ""
    assert route.startswith("extension 202, forward to 900441234567 not placed: ")
    assert "international" in route


def test_forward_is_checked_against_the_forwarding_user() -> None:
    # Alice may only call inside; Bob may call out: the forward out is Bob's call.
    bob = replace(BOB, forward_always="90301234567")
    engine = engine_with(ALICE, bob, restrictions={"alice": "internal-only"})
    assert len(of(Dial, call_bob(engine))) == 1
    engine = engine_with(ALICE, bob, restrictions={"bob": "internal-only"})
    out = call_bob(engine)
    assert [r.status for r in of(Reject, out)] == [480]


def test_unroutable_forward() -> None:
    engine = engine_with(ALICE, replace(BOB, forward_always="777"))
    out = call_bob(engine)
    assert [r.status for r in of(Reject, out)] == [480]
    assert "forward to 777 not placed: no such number" in (last_record(out).route or "")


def test_loop_stops_at_the_first_user_reached_twice() -> None:
    engine = engine_with(
        ALICE, replace(BOB, forward_always="203"), replace(CAROL, forward_always="202")
    )
    out = call_bob(engine)
    assert of(Dial, out) == []
    assert [r.status for r in of(Reject, out)] == [480]
    assert last_record(out).route == (
        "extension 202, forwarded to 203, forward to 202 not placed: loop"
    )


def test_hop_limit() -> None:
    users = [UserView(f"u{i}", str(300 + i), None, forward_always=str(301 + i)) for i in range(10)]
    engine = engine_with(*users)
    out = engine.new_call(call_id="c1", caller=FROM_ALICE, dialled="300", now=T0)
    assert of(Dial, out) == []
    assert [r.status for r in of(Reject, out)] == [480]
    route = last_record(out).route or ""
    assert route.count("forwarded to") == MAX_FORWARD_HOPS
    assert route.endswith(f"not placed: more than {MAX_FORWARD_HOPS} forwards")


def test_caller_cancel_during_forward_cancels_the_new_leg() -> None:
    engine = engine_with(ALICE, replace(BOB, forward_always="203"), CAROL)
    [dial] = of(Dial, call_bob(engine))
    out = engine.on_cancel("c1", T0 + 1)
    assert of(CancelBranch, out) == [CancelBranch("c1", dial.branch)]
    assert engine.active_count() == 0
