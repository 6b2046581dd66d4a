"""The call engine and voicemail (rule T12): which calls reach a mailbox, and how."""

from __future__ import annotations

from dataclasses import replace

from teleoffice.calls.engine import (
    A_LEG,
    CallEngine,
    Caller,
    CallState,
    Dial,
    Origination,
    Party,
    Refusal,
    Reject,
    TimerName,
    TrunkTarget,
    Voicemail,
)
from teleoffice.calls.locations import LOGGED_OUT, Location, LocationKind
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
)

ALICE = UserView("alice", "201", "Alice", voicemail=True)
BOB = UserView("bob", "202", "Bob", voicemail=True)
CAROL = UserView("carol", "203", "Carol")  # no mailbox
FROM_ALICE = Caller(Party("201", "Alice"), user="alice", account="201")
FROM_CAROL = Caller(Party("203", "Carol"), user="carol", account="203")
VOICEMAIL = "*17"


def engine(
    *users: UserView, where: dict[str, Location] | None = None, phones: bool = True
) -> CallEngine:
    directory = FakeDirectory({u.extension: u for u in users}, [PSTN])
    contacts = FakeContacts({"201": [ALICE_DESK], "202": [BOB_DESK]} if phones else {})
    places = where or {}

    def locate(user: UserView) -> Location:
        return places.get(user.username, Location(LocationKind.PHONE, account=user.extension))

    mailboxes = {u.username for u in users if u.voicemail}
    return CallEngine(
        directory,
        contacts,
        locate=locate,
        voicemail_number=VOICEMAIL,
        has_mailbox=mailboxes.__contains__,
    )


def test_no_answer_reaches_the_mailbox_after_the_users_time() -> None:
    e = engine(ALICE, BOB)
    assert len(of(Dial, e.new_call(call_id="c1", caller=FROM_ALICE, dialled="202", now=T0))) == 1
    out = e.on_timer("c1", TimerName.NO_ANSWER, T0 + 15)
    [vm] = of(Voicemail, out)
    assert (vm.mailbox, vm.deposit, vm.busy) == ("bob", True, False)
    assert vm.caller == FROM_ALICE.party
    assert of(Reject, out) == []  # answered by teleoffice, not refused
    record = last_record(out)
    assert record.state is CallState.CONNECTED
    assert "voicemail of 202" in (record.route or "")


def test_busy_phones_reach_the_mailbox_saying_the_user_is_on_the_phone() -> None:
    e = engine(ALICE, BOB)
    [dial] = of(Dial, e.new_call(call_id="c1", caller=FROM_ALICE, dialled="202", now=T0))
    [vm] = of(Voicemail, e.on_failure("c1", dial.branch, 486, T0 + 1))
    assert vm.busy is True


def test_do_not_disturb_and_logged_out_reach_it_without_saying_why() -> None:
    for bob, where in ((replace(BOB, dnd=True), {}), (BOB, {"bob": LOGGED_OUT})):
        e = engine(ALICE, bob, where=where)
        out = e.new_call(call_id="c1", caller=FROM_ALICE, dialled="202", now=T0)
        assert of(Dial, out) == []
        [vm] = of(Voicemail, out)
        assert vm.busy is False


def test_a_forward_comes_first_and_the_mailbox_takes_one_that_cannot_be_placed() -> None:
    e = engine(ALICE, replace(BOB, dnd=True, forward_busy="201"), CAROL)
    out = e.new_call(call_id="c1", caller=Caller(Party("203"), user="carol"), dialled="202", now=T0)
    assert [d.target for d in of(Dial, out)] == [ALICE_DESK]
    assert of(Voicemail, out) == []
    # A forward back to the caller's own chain would loop: the mailbox takes it.
    e = engine(ALICE, replace(BOB, dnd=True, forward_busy="202"))
    [vm] = of(Voicemail, e.new_call(call_id="c1", caller=FROM_ALICE, dialled="202", now=T0))
    assert vm.mailbox == "bob"


def test_a_user_without_a_mailbox_gets_busy() -> None:
    e = engine(ALICE, CAROL, phones=False)
    out = e.new_call(call_id="c1", caller=FROM_ALICE, dialled="203", now=T0)
    assert of(Voicemail, out) == []
    assert [r.status for r in of(Reject, out)] == [480]


def test_dialling_the_voicemail_number_opens_ones_own_mailbox() -> None:
    e = engine(ALICE, BOB)
    out = e.new_call(call_id="c1", caller=FROM_ALICE, dialled=VOICEMAIL, now=T0)
    [vm] = of(Voicemail, out)
    assert (vm.mailbox, vm.deposit) == ("alice", False)
    assert of(Dial, out) == []
    # From a trunk the number means nothing (nobody's mailbox is opened).
    outside = Caller(Party("+4930123"), trunk="pstn")
    out = e.new_call(call_id="c2", caller=outside, dialled=VOICEMAIL, now=T0)
    assert of(Voicemail, out) == []


def test_no_mailbox_no_menu() -> None:
    e = engine(ALICE, CAROL)
    out = e.new_call(call_id="c1", caller=FROM_CAROL, dialled=VOICEMAIL, now=T0)
    assert of(Voicemail, out) == []
    assert [r.status for r in of(Reject, out)] == [404]


def test_the_portal_reaches_the_mailbox_through_the_callback() -> None:
    mobile = Location(LocationKind.TELECOMMUTER, number="9017612345678", since=T0)
    e = engine(ALICE, BOB, where={"alice": mobile})
    plan = e.prepare_call(ALICE, VOICEMAIL, T0)
    assert isinstance(plan, Origination)
    assert plan.target == TrunkTarget("pstn", "017612345678")
    out = e.originate("c1", plan, T0)
    assert [d.branch for d in of(Dial, out)] == [A_LEG]
    [vm] = of(Voicemail, e.on_answer("c1", A_LEG, T0 + 2))
    assert (vm.mailbox, vm.deposit) == ("alice", False)
    refused = engine(ALICE, CAROL).prepare_call(CAROL, VOICEMAIL, T0)
    assert isinstance(refused, Refusal)
    assert refused.status == 409


def test_the_caller_hanging_up_ends_a_voicemail_call() -> None:
    e = engine(ALICE, BOB)
    e.new_call(call_id="c1", caller=FROM_ALICE, dialled=VOICEMAIL, now=T0)
    out = e.on_hangup("c1", A_LEG, T0 + 30)
    record = last_record(out)
    assert record.state is CallState.ENDED
    assert record.ended_by == "caller"
    assert e.active_count() == 0
