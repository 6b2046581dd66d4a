"""Toll fraud and call limits in the call engine (issue 9): trunk-to-trunk relaying,
concurrent outside calls per user, calls per user and in total."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from teleoffice.calls.engine import (
    A_LEG,
    CallEngine,
    Caller,
    CallLimits,
    Command,
    Dial,
    Direction,
    Origination,
    Party,
    PhoneTarget,
    Refusal,
    Reject,
    TrunkTarget,
)
from teleoffice.calls.restrictions import DEFAULT_PROFILE, RestrictionProfile
from teleoffice.calls.routing import RestrictingDirectory, TrunkView, UserView
from tests.unit.test_call_engine import last_record, of

ALICE = UserView("alice", "201", "Alice")
BOB = UserView("bob", "202", "Bob")
PSTN = TrunkView("pstn", "9", "5550100")
ALICE_DESK = PhoneTarget("201", "sip:201@192.0.2.10:5060", "UDP", "192.0.2.10", 5060)
BOB_DESK = PhoneTarget("202", "sip:202@192.0.2.20:5060", "UDP", "192.0.2.20", 5060)
FROM_ALICE = Caller(Party("201", "Alice"), user="alice", account="201")
FROM_BOB = Caller(Party("202", "Bob"), user="bob", account="202")
FROM_PSTN = Caller(Party("+4917012345678", "Someone"), trunk="pstn")
T0 = 1000.0


@dataclass
class Directory:
    users: dict[str, UserView] = field(default_factory=lambda: {"201": ALICE, "202": BOB})
    profiles: dict[str, RestrictionProfile] = field(default_factory=dict)
    asked_for: list[str] = field(default_factory=list)

    def user_by_number(self, number: str) -> UserView | None:
        return self.users.get(number)

    def trunks(self) -> list[TrunkView]:
        return [PSTN]

    def restriction_for(self, username: str) -> RestrictionProfile:
        self.asked_for.append(username)
        return self.profiles.get(username, DEFAULT_PROFILE)


def phones(extension: str, now: float) -> list[PhoneTarget]:
    return {"201": [ALICE_DESK], "202": [BOB_DESK]}.get(extension, [])


def engine(
    directory: Directory | None = None, *, allow_trunk_to_trunk: bool = False, **limits: int
) -> CallEngine:
    directory = directory or Directory()
    assert isinstance(directory, RestrictingDirectory)
    return CallEngine(
        directory,
        phones,
        limits=CallLimits(**limits),
        allow_trunk_to_trunk=allow_trunk_to_trunk,
    )


def dial(e: CallEngine, call_id: str, caller: Caller, number: str) -> list[Command]:
    return e.new_call(call_id=call_id, caller=caller, dialled=number, now=T0)


def refusal_of(commands: Sequence[Command]) -> tuple[int, str]:
    [reject] = of(Reject, commands)
    return reject.status, reject.reason


def answer(e: CallEngine, call_id: str, commands: Sequence[Command]) -> None:
    [first] = of(Dial, commands)[:1]
    e.on_answer(call_id, first.branch, T0 + 1)


# ---- trunk to trunk -------------------------------------------------------------------


def test_a_call_from_a_trunk_cannot_leave_through_a_trunk_by_default() -> None:
    e = engine()
    out = dial(e, "c1", FROM_PSTN, "90301234567")
    assert of(Dial, out) == []
    assert refusal_of(out)[0] == 404
    record = last_record(out)
    assert (record.outcome, record.ended_by, record.trunk) == ("not-found", "system", "pstn")
    # ...while it still reaches users.
    assert [d.target for d in of(Dial, dial(e, "c2", FROM_PSTN, "202"))] == [BOB_DESK]


def test_allowed_trunk_to_trunk_presents_the_caller_and_applies_the_default_profile() -> None:
    directory = Directory(profiles={"": RestrictionProfile.build("default", barred=("0900.",))})
    e = engine(directory, allow_trunk_to_trunk=True)
    out = dial(e, "c1", FROM_PSTN, "90301234567")
    [relay] = of(Dial, out)
    assert relay.target == TrunkTarget("pstn", "0301234567")
    # Not the trunk's outside number: the call is the outside caller's own.
    assert relay.identity == Party("+4917012345678", "Someone")
    assert last_record(out).direction is Direction.OUTBOUND
    # The profile of users without one (asked for as nobody's) decides.
    barred = dial(e, "c2", FROM_PSTN, "909001234")
    assert of(Dial, barred) == []
    assert refusal_of(barred)[0] == 403
    assert last_record(barred).outcome == "barred"
    assert "" in directory.asked_for


def test_relayed_calls_are_barred_from_international_numbers_by_default() -> None:
    e = engine(allow_trunk_to_trunk=True)
    out = dial(e, "c1", FROM_PSTN, "900441234567")
    assert of(Dial, out) == []
    assert refusal_of(out) == (403, "Barred by restriction profile default: international")


# ---- outside calls per user -------------------------------------------------------------


def test_outside_calls_of_one_user_are_limited() -> None:
    e = engine(max_outside_calls_per_user=2)
    first = dial(e, "c1", FROM_ALICE, "90301234561")
    assert len(of(Dial, dial(e, "c2", FROM_ALICE, "90301234562"))) == 1
    assert e.outside_calls_of("alice") == 2
    third = dial(e, "c3", FROM_ALICE, "90301234563")
    assert of(Dial, third) == []
    assert refusal_of(third) == (403, "Too Many Outside Calls")
    record = last_record(third)
    assert (record.outcome, record.status, record.ended_by) == ("barred", 403, "system")
    assert record.route is not None
    assert "2 outside calls up" in record.route
    # Calls inside, and other users' outside calls, are not affected.
    assert [d.target for d in of(Dial, dial(e, "c4", FROM_ALICE, "202"))] == [BOB_DESK]
    assert len(of(Dial, dial(e, "c5", FROM_BOB, "90301234565"))) == 1
    # One call ends: another may go out.
    answer(e, "c1", first)
    e.on_hangup("c1", A_LEG, T0 + 5)
    assert e.outside_calls_of("alice") == 1
    assert len(of(Dial, dial(e, "c6", FROM_ALICE, "90301234566"))) == 1


def test_emergency_numbers_from_a_phone_pass_every_limit() -> None:
    e = engine(max_calls=1, max_calls_per_user=1, max_outside_calls_per_user=1)
    assert len(of(Dial, dial(e, "c1", FROM_ALICE, "90301234567"))) == 1
    out = dial(e, "c2", FROM_ALICE, "9112")
    assert [d.target for d in of(Dial, out)] == [TrunkTarget("pstn", "112")]
    assert of(Reject, out) == []
    # Anything else is refused, by the total first.
    assert refusal_of(dial(e, "c3", FROM_ALICE, "90301234568")) == (503, "Too Many Calls")


def test_a_call_placed_from_the_portal_counts_while_its_callback_rings() -> None:
    e = engine(max_outside_calls_per_user=1)
    plan = e.prepare_call(ALICE, "90301234567", T0)
    assert isinstance(plan, Origination)
    # Accepted but not yet seen by the engine (its media is being opened).
    assert e.prepare_call(ALICE, "90301234568", T0, pending=[plan]) == Refusal(
        403,
        "too_many_outside_calls",
        "You have 1 outside calls up, the most allowed at once (1); end one first",
    )
    e.originate("c1", plan, T0)
    refused = e.prepare_call(ALICE, "90301234568", T0)
    assert isinstance(refused, Refusal)
    assert refused.code == "too_many_outside_calls"
    # Inside numbers are still fine; so is the call itself once Alice answers.
    assert isinstance(e.prepare_call(ALICE, "202", T0), Origination)
    placed = e.on_answer("c1", A_LEG, T0 + 2)
    assert [d.target for d in of(Dial, placed)] == [TrunkTarget("pstn", "0301234567")]
    assert e.outside_calls_of("alice") == 1


def test_a_portal_call_over_the_limit_is_refused_after_the_restrictions() -> None:
    e = engine(max_outside_calls_per_user=1)
    dial(e, "c1", FROM_ALICE, "90301234567")
    # A barred number is told as barred, whatever the count.
    barred = e.prepare_call(ALICE, "900441234567", T0)
    assert isinstance(barred, Refusal)
    assert barred.code == "barred"


def test_each_call_forwarded_out_counts_for_the_forwarding_user() -> None:
    bob = UserView("bob", "202", "Bob", forward_always="90900123")
    directory = Directory(users={"201": ALICE, "202": bob})
    e = engine(directory, max_outside_calls_per_user=1)
    directory.profiles["bob"] = RestrictionProfile.build("unrestricted")
    first = dial(e, "c1", FROM_PSTN, "202")
    assert [d.target for d in of(Dial, first)] == [TrunkTarget("pstn", "0900123")]
    assert e.outside_calls_of("bob") == 1
    second = dial(e, "c2", FROM_PSTN, "202")
    assert of(Dial, second) == []
    assert refusal_of(second)[0] == 480
    route = last_record(second).route
    assert route is not None
    assert "forward to 90900123 not placed: too many outside calls" in route


def test_a_transfer_out_is_limited_like_a_call_out() -> None:
    e = engine(max_outside_calls_per_user=1)
    incoming = dial(e, "c1", FROM_BOB, "201")
    answer(e, "c1", incoming)
    dial(e, "c2", FROM_ALICE, "90301234567")
    refused = e.transfer("alice", "c1", "90301234568", T0 + 3)
    assert isinstance(refused, Refusal)
    assert (refused.status, refused.code) == (403, "too_many_outside_calls")
    e.hang_up("c2", T0 + 4)
    assert e.outside_calls_of("alice") == 0
    moved = e.transfer("alice", "c1", "90301234568", T0 + 5)
    assert not isinstance(moved, Refusal)
    assert [d.target for d in of(Dial, moved)] == [TrunkTarget("pstn", "0301234568")]
    assert e.outside_calls_of("alice") == 1


# ---- calls per user and in total ------------------------------------------------------------


def test_calls_a_user_places_are_limited_not_those_they_receive() -> None:
    e = engine(max_calls_per_user=2)
    dial(e, "c1", FROM_ALICE, "202")
    dial(e, "c2", FROM_ALICE, "202")
    third = dial(e, "c3", FROM_ALICE, "202")
    assert refusal_of(third) == (403, "Too Many Calls")
    assert last_record(third).outcome == "barred"
    refused = e.prepare_call(ALICE, "202", T0)
    assert isinstance(refused, Refusal)
    assert (refused.status, refused.code) == (403, "too_many_calls")
    # Calls to Alice do not use up her allowance, nor do they count against Bob's.
    for n in range(3):
        assert len(of(Dial, dial(e, f"in{n}", FROM_PSTN, "201"))) == 1
    assert len(of(Dial, dial(e, "b1", FROM_BOB, "201"))) == 1
    assert e.calls_placed_by("alice") == 2


def test_the_total_is_refused_with_503() -> None:
    e = engine(max_calls=2)
    dial(e, "c1", FROM_ALICE, "202")
    dial(e, "c2", FROM_PSTN, "201")
    out = dial(e, "c3", FROM_PSTN, "202")
    assert of(Dial, out) == []
    assert refusal_of(out) == (503, "Too Many Calls")
    record = last_record(out)
    assert (record.outcome, record.status, record.ended_by) == ("failed", 503, "system")
    assert e.active_count() == 2
    refused = e.prepare_call(BOB, "201", T0)
    assert isinstance(refused, Refusal)
    assert (refused.status, refused.code) == (503, "too_many_calls")


def test_limits_must_allow_at_least_one_call() -> None:
    for name in ("max_calls", "max_calls_per_user", "max_outside_calls_per_user"):
        with pytest.raises(ValueError, match=name):
            CallLimits(**{name: 0})
    assert CallLimits() == CallLimits(2000, 100, 4)
