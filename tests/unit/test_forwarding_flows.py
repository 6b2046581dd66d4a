"""Forwarding and do-not-disturb through the B2BUA, in memory over real SIP bytes.

The engine expresses a forward as cancelling the phones it rang and dialling the
target within the same call; these tests show the SIP side needs nothing more.
"""

from __future__ import annotations

from teleoffice.calls.engine import CallState
from teleoffice.sip.message import Request, Response
from teleoffice.sip.transaction import Address
from tests.unit.sipkit import make_service, register
from tests.unit.test_b2bua import ALICE, ANSWER, BOB, NOW, Net, call_from_alice
from tests.unit.test_b2bua_flows import (
    alice_ack_failure,
    assert_no_leaks,
    last_record,
    one_request,
    one_response,
    reply,
    requests_to,
    statuses,
)

CAROL = Address("UDP", "127.0.0.1", 5068)


def office(settings: dict[str, dict[str, object]]) -> Net:
    service = make_service({"201": "pw201", "202": "pw202", "203": "pw203"}, settings=settings)
    for account, address in (("201", ALICE), ("202", BOB), ("203", CAROL)):
        ok = register(
            service,
            NOW,
            user=account,
            password=f"pw{account}",
            source=address,
            contact=f"<sip:{account}@{address.host}:{address.port}>",
            call_id=f"reg{address.port}",
        )
        assert ok.status == 200
    service.take_commands()
    return Net(service)


def carol_answers(net: Net, invite: Request) -> None:
    net.send(reply(invite, 180, tag="carol1", phone=CAROL), CAROL)
    out = net.send(reply(invite, 200, tag="carol1", phone=CAROL, body=ANSWER), CAROL)
    one_request(out, CAROL, "ACK")
    one_response(out, ALICE, 200)


def test_do_not_disturb_gives_busy_without_ringing() -> None:
    net = office({"202": {"dnd": True}})
    out = call_from_alice(net, "202")
    assert requests_to(out, BOB) == []
    assert statuses(out, ALICE) == [100, 486]
    final = next(m for m, d in out if d == ALICE and isinstance(m, Response) and m.status == 486)
    alice_ack_failure(net, final)
    assert last_record(net).state is CallState.ENDED
    assert_no_leaks(net)


def test_forward_always_rings_the_target_with_the_callers_identity() -> None:
    net = office({"202": {"forward_always": "203"}})
    out = call_from_alice(net, "202")
    assert requests_to(out, BOB) == []
    invite = one_request(out, CAROL, "INVITE")
    assert invite.from_.display_name == "User 201"
    [diversion] = invite.addr_list("Diversion")
    assert str(diversion.uri).startswith("sip:202@")
    assert diversion.param("reason") == "unconditional"
    carol_answers(net, invite)
    record = last_record(net)
    assert record.callee.number == "202"
    assert "forwarded to 203" in (record.route or "")


def test_busy_phone_forwards_on_busy() -> None:
    net = office({"202": {"forward_busy": "203"}})
    out = call_from_alice(net, "202")
    bob_invite = one_request(out, BOB, "INVITE")
    out = net.send(reply(bob_invite, 486, tag="bob1", phone=BOB), BOB)
    assert statuses(out, ALICE) == []  # Alice hears nothing of the busy phone
    carol_answers(net, one_request(out, CAROL, "INVITE"))


def test_no_answer_cancels_the_phone_and_forwards() -> None:
    net = office({"202": {"forward_no_answer": "203"}})
    out = call_from_alice(net, "202")
    bob_invite = one_request(out, BOB, "INVITE")
    net.send(reply(bob_invite, 180, tag="bob1", phone=BOB), BOB)
    out = net.tick(15.5)
    one_request(out, BOB, "CANCEL")
    invite = one_request(out, CAROL, "INVITE")
    assert [d.param("reason") for d in invite.addr_list("Diversion")] == ["no-answer"]
    carol_answers(net, invite)


def test_a_forwarding_loop_stops() -> None:
    net = office({"202": {"forward_always": "203"}, "203": {"forward_always": "202"}})
    out = call_from_alice(net, "202")
    assert requests_to(out, BOB) == []
    assert requests_to(out, CAROL) == []
    final = [m for m, d in out if d == ALICE and getattr(m, "status", 0) >= 400]
    assert len(final) == 1
