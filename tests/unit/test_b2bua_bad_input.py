"""The B2BUA facing bad input: each gets the right answer and leaves nothing behind."""

from __future__ import annotations

from teleoffice.calls.engine import CallState
from teleoffice.server.b2bua import TrunkPeer
from teleoffice.sip.digest import build_authorization
from teleoffice.sip.message import Response
from teleoffice.sip.transaction import Address
from tests.unit.test_b2bua import ALICE, BOB, call_from_alice, invite_bytes, registered
from tests.unit.test_b2bua_flows import (
    alice_ack_failure,
    alice_hangs_up,
    assert_no_leaks,
    connect,
    last_record,
    one_request,
    one_response,
    registered_with_trunk,
)

TRUNK = Address("UDP", "127.0.0.1", 5080)


def test_reinvite_with_bad_sdp_gets_488_and_the_call_goes_on() -> None:
    net = registered(("201", ALICE), ("202", BOB))
    call = connect(net)
    out = net.send(call.alice.request("INVITE", body="v=0\r\nthis is not sdp\r\n"), ALICE)
    one_response(out, ALICE, 488)
    assert [m for m, d in out if d == BOB] == []  # nothing relayed to Bob
    assert net.service.b2bua.calls  # the call is still up
    alice_hangs_up(net, call)
    assert_no_leaks(net)


def test_trunk_that_never_answers_fails_the_call_after_timer_b() -> None:
    net = registered_with_trunk(TrunkPeer("prov", "127.0.0.1", 5080))
    out = call_from_alice(net, "95551234")
    one_request(out, TRUNK, "INVITE")
    # Nobody answers, not even 100 Trying: the INVITE is retransmitted, then
    # timer B (64 * T1) ends the attempt and Alice gets 408.
    out = net.tick(33)
    final = one_response(out, ALICE, 408)
    alice_ack_failure(net, final, to="95551234")
    record = last_record(net)
    assert record.state is CallState.ENDED
    assert record.status == 408
    assert_no_leaks(net)


def test_invite_with_max_forwards_zero_is_not_relayed() -> None:
    net = registered(("201", ALICE), ("202", BOB))
    zero_hops = invite_bytes("202").replace(b"Max-Forwards: 70", b"Max-Forwards: 0")
    [(challenge, _)] = net.send(zero_hops, ALICE)
    assert isinstance(challenge, Response)
    assert challenge.status == 401
    auth = build_authorization(
        challenge=challenge.headers.get_all("WWW-Authenticate")[0],
        method="INVITE",
        uri="sip:202@127.0.0.1",
        username="201",
        password="pw201",
    )
    authorized = invite_bytes("202", branch="z9hG4bKmf0", auth=auth, cseq=2)
    out = net.send(authorized.replace(b"Max-Forwards: 70", b"Max-Forwards: 0"), ALICE)
    one_response(out, ALICE, 483)
    assert [m for m, d in out if d == BOB] == []
    assert net.service.b2bua.calls == {}
