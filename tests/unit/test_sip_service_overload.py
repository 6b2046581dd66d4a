"""Overload control inside the SIP service: what gets 503, what still works."""

from __future__ import annotations

import pytest

from teleoffice.server.sip_service import SipService
from teleoffice.sip.message import Response
from tests.unit.sipkit import exchange, make_service, register_bytes
from tests.unit.test_b2bua import ALICE, ANSWER, BOB, NOW, call_from_alice, invite_bytes, registered
from tests.unit.test_b2bua_flows import (
    alice_dialog,
    assert_no_leaks,
    one_request,
    one_response,
    reply,
)
from tests.unit.test_sip_service import options


def overload(service: SipService, now: float) -> None:
    """Make the monitor see a second of badly lagging event loop."""
    for i in range(10):
        service.overload.loop_lag(0.5, now + i * 0.1)
    assert service.overload.overloaded


def no_digest(service: SipService, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> object:
        raise AssertionError("digest work under overload")

    monkeypatch.setattr(service.digest, "verify", forbidden)
    monkeypatch.setattr(service.digest, "challenge", forbidden)


def assert_shed(answer: Response) -> None:
    assert answer.status == 503
    retry = answer.headers.get("Retry-After")
    assert retry is not None
    assert 1 <= int(retry) <= 60
    assert answer.to.tag is not None


def test_register_and_initial_invite_get_503_without_digest_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = make_service()
    overload(service, NOW)
    no_digest(service, monkeypatch)
    [answer] = exchange(service, register_bytes(authorization='Digest username="201"'), NOW)
    assert_shed(answer)
    [answer] = exchange(service, invite_bytes("202"), NOW)
    assert_shed(answer)
    assert service.overload.counters.shed == {"REGISTER": 1, "INVITE": 1}
    assert service.counters.responses_sent == {503: 2}
    assert service.take_commands() == []
    assert service.b2bua.calls == {}


def test_retransmission_of_a_shed_request_gets_the_same_503_without_a_new_decision() -> None:
    service = make_service()
    overload(service, NOW)
    data = register_bytes(call_id="again")
    [first] = exchange(service, data, NOW)
    [second] = exchange(service, data, NOW + 0.5)
    assert first.status == second.status == 503
    assert first.to.tag == second.to.tag
    assert service.overload.counters.shed == {"REGISTER": 1}


def test_options_keepalives_are_still_answered() -> None:
    service = make_service()
    overload(service, NOW)
    [answer] = exchange(service, options(), NOW)
    assert answer.status == 200


def test_a_call_set_up_before_the_overload_is_acked_and_hung_up_normally() -> None:
    net = registered(("201", ALICE), ("202", BOB))
    out = call_from_alice(net, "202")
    invite = one_request(out, BOB, "INVITE")
    out = net.send(reply(invite, 200, tag="bob1", phone=BOB, body=ANSWER), BOB)
    ok = one_response(out, ALICE, 200)
    alice = alice_dialog(ok)

    overload(net.service, net.now)
    # The ACK for the 2xx, then a BYE inside the dialog: neither is new work.
    assert net.send(alice.ack(2), ALICE) == []
    # Had the ACK been lost, the 200 would be retransmitted (RFC 3261 13.3.1.4).
    net.service.handle_timers(net.now + 2.0)
    assert net.drain() == []
    out = net.send(alice.request("BYE"), ALICE)
    one_response(out, ALICE, 200)
    bye = one_request(out, BOB, "BYE")
    assert net.send(reply(bye, 200), BOB) == []
    assert net.service.overload.counters.shed == {}
    assert_no_leaks(net)


def test_new_work_is_admitted_again_once_the_load_is_gone() -> None:
    service = make_service()
    overload(service, NOW)
    [answer] = exchange(service, register_bytes(), NOW + 1)
    assert answer.status == 503
    now = NOW + 1
    for _ in range(40):  # four seconds of an idle loop
        now += 0.1
        service.overload.loop_lag(0.0, now)
    assert not service.overload.overloaded
    [answer] = exchange(service, register_bytes(), now)
    assert answer.status == 401
