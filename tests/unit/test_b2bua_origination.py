"""Calls the PBX places for a user (T4, RFC 3725 with anchored media), feature
codes answered with a tone, and a telecommuter's incoming calls, over real SIP
bytes in memory with a fake clock.

The user's line is leg A, and we are its UAC: it gets our own offer, and its
answer becomes the offer the destination sees.  Every flow ends with
`assert_no_leaks`: once all timers have run, no call, dialog or transaction is
left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from teleoffice.calls.engine import (
    CallEngine,
    CallState,
    Feature,
    FeatureName,
    Origination,
    Party,
    Refusal,
)
from teleoffice.calls.locations import Location, LocationKind
from teleoffice.calls.routing import UserView
from teleoffice.server.b2bua import FAILURE_TONE_SECONDS, FEATURE_TONE_SECONDS
from teleoffice.sip.message import Request
from teleoffice.sip.sdp import parse_sdp
from teleoffice.sip.transaction import Address
from teleoffice.sip.uri import SipUri
from tests.unit.sipkit import FakeMedia
from tests.unit.test_b2bua import ALICE, BOB, NOW, TRUNK, Net, call_from_alice, only, registered
from tests.unit.test_b2bua_flows import (
    PORT_A,
    PORT_B,
    Out,
    PhoneDialog,
    alice_ack_failure,
    alice_dialog,
    assert_no_leaks,
    bob_dialog,
    one_request,
    one_response,
    port_of,
    reply,
    requests_to,
    sdp_body,
    statuses,
    uri_of,
)

# Alice (201) works from her mobile, dialled as 9 + number through trunk "prov".
MOBILE = "9017612345678"
MOBILE_OUT = "017612345678"
AT_HOME = Location(LocationKind.TELECOMMUTER, number=MOBILE)
LINE_ANSWER = sdp_body("line", 31000)  # the user's line answers in PCMU (+ events)
BOB_ANSWER = sdp_body("bob", 32000)
# Where the user's line is rung, and where its responses come from.
LINE_AT = {"phone": ALICE, "telecommuter": TRUNK}


def office(where: dict[str, Location] | None = None) -> Net:
    """Alice's and Bob's phones registered; users are where `where` says,
    everybody else on the phone of their extension."""
    net = registered(("201", ALICE), ("202", BOB))
    net.service.b2bua.engine.locate = located(where or {})
    return net


def located(places: dict[str, Location]) -> Callable[[UserView], Location]:
    def locate(user: UserView) -> Location:
        return places.get(user.username, Location(LocationKind.PHONE, account=user.extension))

    return locate


def engine(net: Net) -> CallEngine:
    return net.service.b2bua.engine


def user(net: Net, extension: str) -> UserView:
    found = engine(net).directory.user_by_number(extension)
    assert found is not None
    return found


def media_of(net: Net, call_id: str) -> FakeMedia:
    media = net.service.b2bua.calls[call_id].media
    assert isinstance(media, FakeMedia)
    return media


@dataclass
class Placed:
    call_id: str
    invite: Request  # the INVITE to the user's line
    line: Address  # where the line is (Alice's phone, or the trunk)


def place(net: Net, mode: str = "phone", to: str = "202") -> Placed:
    """Alice asks the portal to call `to`: our INVITE goes to her line only."""
    if mode == "telecommuter":
        engine(net).locate = located({"user201": AT_HOME})
    plan = engine(net).prepare_call(user(net, "201"), to, net.now)
    assert isinstance(plan, Origination), plan
    call_id = net.service.b2bua.originate(plan, net.now)
    net.pump_media()
    out = net.drain()
    line = LINE_AT[mode]
    invite = one_request(out, line, "INVITE")
    assert [dest for _, dest in out] == [line]  # nothing toward anyone else
    return Placed(call_id, invite, line)


def line_answers(net: Net, placed: Placed, body: str = LINE_ANSWER) -> Out:
    net.send(reply(placed.invite, 180, tag="line1", phone=placed.line, user="201"), placed.line)
    return net.send(
        reply(placed.invite, 200, tag="line1", phone=placed.line, user="201", body=body),
        placed.line,
    )


def line_dialog(placed: Placed) -> PhoneDialog:
    """The dialog as the user's line sees it (it is the UAS of our INVITE)."""
    return bob_dialog(placed.invite, "line1", placed.line)


@dataclass
class Ringing:
    placed: Placed
    bob_invite: Request


def destination_rings(net: Net, mode: str = "phone") -> Ringing:
    placed = place(net, mode)
    out = line_answers(net, placed)
    bob_invite = one_request(out, BOB, "INVITE")
    net.send(reply(bob_invite, 180, tag="bob1", phone=BOB), BOB)
    return Ringing(placed, bob_invite)


def connected(net: Net, mode: str = "phone") -> Ringing:
    ringing = destination_rings(net, mode)
    out = net.send(reply(ringing.bob_invite, 200, tag="bob1", phone=BOB, body=BOB_ANSWER), BOB)
    one_request(out, BOB, "ACK")
    assert only(out, ringing.placed.line) == []
    return ringing


def answer_bye(net: Net, out: Out, dest: Address) -> None:
    bye = one_request(out, dest, "BYE")
    assert net.send(reply(bye, 200), dest) == []


# ---- our offer to the user's line -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["phone", "telecommuter"])
def test_the_users_line_gets_our_own_offer_and_sees_the_destination(mode: str) -> None:
    net = office()
    placed = place(net, mode)
    invite = placed.invite
    if mode == "phone":
        assert uri_of(invite) == "sip:201@127.0.0.1:5062"
    else:
        assert isinstance(invite.uri, SipUri)
        assert (invite.uri.user, invite.uri.port) == (MOBILE_OUT, TRUNK.port)
    # The user's phone shows whom it is about to be connected to (T4).
    assert isinstance(invite.from_.uri, SipUri)
    assert invite.from_.uri.user == "202"
    assert invite.from_.display_name == "User 202"
    assert invite.from_.tag
    offer = parse_sdp(invite.body)
    [audio] = offer.media
    assert audio.port == PORT_A  # our media port facing the user
    assert audio.formats == ("0", "8", "101")
    assert [(c.name, c.payload_type) for c in audio.codecs()] == [
        ("PCMU", 0),
        ("PCMA", 8),
        ("telephone-event", 101),
    ]
    assert offer.connection is not None
    assert offer.connection.address == "127.0.0.1"
    assert invite.headers.get("Content-Type") == "application/sdp"
    records = net.service.b2bua.take_records()
    assert [r.state for r in records] == [CallState.CALLING]
    assert records[0].call_id == placed.call_id
    assert records[0].caller_user == "user201"


def test_nothing_goes_to_the_destination_while_the_line_rings() -> None:
    net = office()
    placed = place(net)
    out = net.send(reply(placed.invite, 180, tag="line1", phone=ALICE, user="201"), ALICE)
    assert out == []
    assert media_of(net, placed.call_id).playing == {}


@pytest.mark.parametrize("mode", ["phone", "telecommuter"])
def test_the_lines_answer_becomes_the_destinations_offer(mode: str) -> None:
    net = office()
    placed = place(net, mode)
    # The line chooses PCMA only: that is all the destination is offered.
    pcma = LINE_ANSWER.replace("RTP/AVP 0 101", "RTP/AVP 8 101")
    out = line_answers(net, placed, pcma)
    ack = one_request(out, placed.line, "ACK")
    assert ack.cseq.seq == placed.invite.cseq.seq
    assert ack.to.tag == "line1"
    invite = one_request(out, BOB, "INVITE")
    assert uri_of(invite) == "sip:202@127.0.0.1:5064"
    # Bob sees Alice, as if she dialled from her desk.
    assert isinstance(invite.from_.uri, SipUri)
    assert invite.from_.uri.user == "201"
    assert invite.from_.display_name == "User 201"
    assert port_of(invite) == PORT_B
    assert parse_sdp(invite.body).media[0].formats == ("8", "101")
    media = media_of(net, placed.call_id)
    assert media.remote["a"] == ("127.0.0.1", 31000)


def test_ringback_while_the_destination_rings_then_the_call_connects() -> None:
    net = office()
    ringing = destination_rings(net)
    media = media_of(net, ringing.placed.call_id)
    assert media.playing == {"a": ("ringback", 0)}
    records = net.service.b2bua.take_records()
    assert records[-1].state is CallState.RINGING

    out = net.send(reply(ringing.bob_invite, 200, tag="bob1", phone=BOB, body=BOB_ANSWER), BOB)
    one_request(out, BOB, "ACK")
    assert only(out, ALICE) == []  # her leg is up already
    assert media.playing == {}
    assert media.remote == {"a": ("127.0.0.1", 31000), "b": ("127.0.0.1", 32000)}
    record = net.service.b2bua.take_records()[-1]
    assert record.state is CallState.CONNECTED

    # Bob hangs up: Alice's line gets a BYE in its dialog.
    bob = bob_dialog(ringing.bob_invite, "bob1")
    out = net.send(bob.request("BYE"), BOB)
    assert statuses(out, BOB) == [200]
    bye = one_request(out, ALICE, "BYE")
    assert bye.to.tag == "line1"
    assert bye.call_id == ringing.placed.invite.call_id
    net.send(reply(bye, 200), ALICE)
    assert net.service.b2bua.take_records()[-1].outcome == "answered"
    assert_no_leaks(net)


def test_early_media_from_the_destination_replaces_our_ringback() -> None:
    net = office()
    placed = place(net)
    bob_invite = one_request(line_answers(net, placed), BOB, "INVITE")
    media = media_of(net, placed.call_id)
    net.send(reply(bob_invite, 183, tag="bob1", phone=BOB, body=BOB_ANSWER), BOB)
    assert "a" not in media.playing
    assert media.remote["b"] == ("127.0.0.1", 32000)


# ---- the destination fails: a tone, then BYE ---------------------------------------------------


@pytest.mark.parametrize(
    ("status", "tone", "recorded"),
    [(486, "busy", 486), (600, "busy", 600), (404, "congestion", 404), (503, "congestion", 500)],
)
def test_a_failed_destination_gives_a_tone_then_bye(status: int, tone: str, recorded: int) -> None:
    net = office()
    ringing = destination_rings(net)
    call_id = ringing.placed.call_id
    media = media_of(net, call_id)
    out = net.send(reply(ringing.bob_invite, status, tag="bob1"), BOB)
    one_request(out, BOB, "ACK")  # the transaction ACKs the failure
    assert only(out, ALICE) == []  # the user hears it, no BYE yet
    assert media.playing == {"a": (tone, 0)}
    record = net.service.b2bua.take_records()[-1]
    assert record.state is CallState.ENDED
    assert record.status == recorded  # a 503 is passed on as 500 (RFC 3261 16.7)
    assert engine(net).active_count() == 0

    assert net.tick(FAILURE_TONE_SECONDS - 1) == []
    out = net.tick(1)
    bye = one_request(out, ALICE, "BYE")
    assert bye.to.tag == "line1"
    net.send(reply(bye, 200), ALICE)
    assert net.service.b2bua.calls == {}
    assert net.service.b2bua.take_media_releases() == [media]
    assert_no_leaks(net)


def test_the_user_hanging_up_during_the_busy_tone_cleans_up() -> None:
    net = office()
    ringing = destination_rings(net)
    net.send(reply(ringing.bob_invite, 486, tag="bob1"), BOB)
    out = net.send(line_dialog(ringing.placed).request("BYE"), ALICE)
    assert statuses(out, ALICE) == [200]
    assert net.service.b2bua.calls == {}
    assert len(net.service.b2bua.dialogs) == 0
    # The linger timer finds nothing to hang up.
    assert requests_to(net.tick(FAILURE_TONE_SECONDS + 1), ALICE) == []
    assert_no_leaks(net)


def test_the_user_hanging_up_while_the_destination_rings() -> None:
    net = office()
    ringing = destination_rings(net)
    call_id = ringing.placed.call_id
    media = media_of(net, call_id)
    out = net.send(line_dialog(ringing.placed).request("BYE"), ALICE)
    assert statuses(out, ALICE) == [200]
    cancel = one_request(out, BOB, "CANCEL")
    assert cancel.top_via.branch == ringing.bob_invite.top_via.branch
    # Nobody is left to hear a tone: the call is gone at once.
    assert media.playing.get("a", ("ringback", 0))[0] == "ringback"
    assert net.service.b2bua.calls == {}
    assert net.service.b2bua.take_media_releases() == [media]
    net.send(reply(cancel, 200), BOB)
    net.send(reply(ringing.bob_invite, 487, tag="bob1"), BOB)
    # The user hung up: they never get a BYE of ours (it would only earn a 481).
    later = net.tick(FAILURE_TONE_SECONDS + 1)
    assert requests_to(later, ALICE) == []
    assert_no_leaks(net)


# ---- the callback is not answered --------------------------------------------------------------


def test_an_unanswered_callback_is_cancelled_and_nothing_is_dialled() -> None:
    net = office()
    placed = place(net)
    net.send(reply(placed.invite, 180, tag="line1", phone=ALICE, user="201"), ALICE)
    out = net.tick(15)  # the user's no-answer time
    cancel = one_request(out, ALICE, "CANCEL")
    assert cancel.top_via.branch == placed.invite.top_via.branch
    assert cancel.cseq.seq == placed.invite.cseq.seq
    assert only(out, BOB) == []
    record = net.service.b2bua.take_records()[-1]
    assert (record.state, record.outcome) == (CallState.ENDED, "no-answer")
    net.send(reply(cancel, 200), ALICE)
    out = net.send(reply(placed.invite, 487, tag="line1"), ALICE)
    one_request(out, ALICE, "ACK")
    assert_no_leaks(net)


def test_a_callback_without_any_provisional_is_cancelled_once_one_comes() -> None:
    net = office()
    placed = place(net)
    out = net.tick(15)
    # RFC 3261 9.1: no CANCEL before a 1xx (only retransmissions of the INVITE).
    assert {r.method for r in requests_to(out, ALICE)} <= {"INVITE"}
    out = net.send(reply(placed.invite, 180, tag="line1", phone=ALICE, user="201"), ALICE)
    one_request(out, ALICE, "CANCEL")


def test_a_2xx_crossing_the_cancel_of_the_callback_is_acked_and_hung_up() -> None:
    net = office()
    placed = place(net, "telecommuter")
    net.send(reply(placed.invite, 180, tag="line1", phone=TRUNK, user="201"), TRUNK)
    cancel = one_request(net.tick(15), TRUNK, "CANCEL")
    out = net.send(
        reply(placed.invite, 200, tag="line1", phone=TRUNK, user="201", body=LINE_ANSWER), TRUNK
    )
    found = requests_to(out, TRUNK)
    assert [r.method for r in found] == ["ACK", "BYE"]
    assert all(r.to.tag == "line1" for r in found)
    assert only(out, BOB) == []  # nothing onward (T4)
    net.send(reply(cancel, 481), TRUNK)
    net.send(reply(found[1], 200), TRUNK)
    assert_no_leaks(net)


def test_a_busy_line_ends_the_call_with_nothing_dialled() -> None:
    net = office()
    placed = place(net)
    out = net.send(reply(placed.invite, 486, tag="line1"), ALICE)
    one_request(out, ALICE, "ACK")
    assert only(out, BOB) == []
    record = net.service.b2bua.take_records()[-1]
    assert (record.state, record.outcome) == (CallState.ENDED, "busy")
    assert_no_leaks(net)


def test_a_line_answer_without_g711_is_hung_up() -> None:
    net = office()
    placed = place(net)
    g722 = LINE_ANSWER.replace("RTP/AVP 0 101", "RTP/AVP 9 101")
    out = line_answers(net, placed, g722)
    assert [r.method for r in requests_to(out, ALICE)] == ["ACK", "BYE"]
    assert only(out, BOB) == []
    assert net.service.b2bua.take_records()[-1].state is CallState.ENDED
    net.send(reply(requests_to(out, ALICE)[1], 200), ALICE)
    assert_no_leaks(net)


# ---- the portal hangs up, in each phase ------------------------------------------------------


def test_hang_up_before_the_media_session_is_open() -> None:
    net = office()
    plan = engine(net).prepare_call(user(net, "201"), "202", net.now)
    assert isinstance(plan, Origination)
    call_id = net.service.b2bua.originate(plan, net.now)
    assert net.service.b2bua.hang_up(call_id, net.now)
    assert net.service.b2bua.calls == {}
    net.pump_media()  # the session arrives late and is given back
    assert net.drain() == []
    assert len(net.service.b2bua.take_media_releases()) == 1
    assert_no_leaks(net)


def test_hang_up_while_the_callback_rings_cancels_it() -> None:
    net = office()
    placed = place(net)
    net.send(reply(placed.invite, 180, tag="line1", phone=ALICE, user="201"), ALICE)
    assert net.service.b2bua.hang_up(placed.call_id, net.now)
    out = net.drain()
    cancel = one_request(out, ALICE, "CANCEL")
    assert net.service.b2bua.calls == {}
    record = net.service.b2bua.take_records()[-1]
    assert (record.outcome, record.ended_by) == ("cancelled", "system")
    net.send(reply(cancel, 200), ALICE)
    net.send(reply(placed.invite, 487, tag="line1"), ALICE)
    assert_no_leaks(net)


def test_hang_up_while_the_destination_rings_ends_both_legs() -> None:
    net = office()
    ringing = destination_rings(net)
    media = media_of(net, ringing.placed.call_id)
    assert net.service.b2bua.hang_up(ringing.placed.call_id, net.now)
    out = net.drain()
    bye = one_request(out, ALICE, "BYE")
    cancel = one_request(out, BOB, "CANCEL")
    # The user asked to hang up: no busy or congestion tone, nothing lingers.
    assert media.playing.get("a", ("ringback", 0))[0] == "ringback"
    assert net.service.b2bua.calls == {}
    assert net.service.b2bua.take_media_releases() == [media]
    net.send(reply(bye, 200), ALICE)
    net.send(reply(cancel, 200), BOB)
    net.send(reply(ringing.bob_invite, 487, tag="bob1"), BOB)
    assert requests_to(net.tick(FAILURE_TONE_SECONDS + 1), ALICE) == []
    assert_no_leaks(net)


def test_hang_up_of_a_connected_call_sends_bye_both_ways() -> None:
    net = office()
    ringing = connected(net, "telecommuter")
    assert net.service.b2bua.hang_up(ringing.placed.call_id, net.now)
    out = net.drain()
    answer_bye(net, out, TRUNK)
    answer_bye(net, out, BOB)
    record = net.service.b2bua.take_records()[-1]
    assert (record.outcome, record.ended_by) == ("answered", "system")
    assert_no_leaks(net)


def test_hang_up_during_the_busy_tone() -> None:
    net = office()
    ringing = destination_rings(net)
    net.send(reply(ringing.bob_invite, 486, tag="bob1"), BOB)
    assert net.service.b2bua.hang_up(ringing.placed.call_id, net.now)
    answer_bye(net, net.drain(), ALICE)
    assert net.service.b2bua.calls == {}
    assert_no_leaks(net)


def test_hang_up_of_an_unknown_call() -> None:
    assert not office().service.b2bua.hang_up("no-such-call", NOW)


# ---- feature codes ----------------------------------------------------------------------------


def dial_feature(net: Net, code: str) -> tuple[str, Feature]:
    out = call_from_alice(net, code)
    assert statuses(out, ALICE) == [100]
    [feature] = net.service.b2bua.take_features()
    # A feature code is no call: nothing for the call log, nobody rung.
    assert net.service.b2bua.take_records() == []
    assert only(out, BOB) == []
    return feature.call_id, feature


def test_a_feature_code_reaches_the_composition_root() -> None:
    net = office()
    _, feature = dial_feature(net, "*11202*4321")
    assert (feature.name, feature.account, feature.extension, feature.code) == (
        FeatureName.LOG_IN,
        "201",
        "202",
        "4321",
    )
    _, feature = dial_feature(office(), "*12")
    assert (feature.name, feature.account) == (FeatureName.LOG_OUT, "201")


def test_a_feature_that_worked_is_answered_with_a_confirmation_tone() -> None:
    net = office()
    call_id, _ = dial_feature(net, "*12")
    net.service.b2bua.feature_done(call_id, True, 200, "OK", net.now)
    out = net.drain()
    ok = one_response(out, ALICE, 200)
    answer = parse_sdp(ok.body)
    assert answer.media[0].port == PORT_A
    assert answer.media[0].formats[0] == "0"
    media = media_of(net, call_id)
    assert media.playing == {"a": ("confirm", 0)}
    assert media.remote["a"] == ("127.0.0.1", 30000)
    alice = alice_dialog(ok)
    assert net.send(alice.ack(2), ALICE) == []

    assert net.tick(FEATURE_TONE_SECONDS - 0.5) == []
    out = net.tick(0.5)
    answer_bye(net, out, ALICE)
    assert net.service.b2bua.calls == {}
    assert net.service.b2bua.take_records() == []
    assert_no_leaks(net)


def test_a_refused_feature_gets_the_given_status() -> None:
    net = office()
    call_id, _ = dial_feature(net, "*11202*0000")
    net.service.b2bua.feature_done(call_id, False, 403, "Wrong Extension Or Login Code", net.now)
    out = net.drain()
    refusal = one_response(out, ALICE, 403)
    assert refusal.reason == "Wrong Extension Or Login Code"
    alice_ack_failure(net, refusal, to="*11202*0000")
    assert net.service.b2bua.calls == {}
    assert_no_leaks(net)


def test_bye_from_the_phone_during_the_confirmation_tone_cleans_up() -> None:
    net = office()
    call_id, _ = dial_feature(net, "*12")
    net.service.b2bua.feature_done(call_id, True, 200, "OK", net.now)
    ok = one_response(net.drain(), ALICE, 200)
    alice = alice_dialog(ok)
    net.send(alice.ack(2), ALICE)
    out = net.send(alice.request("BYE"), ALICE)
    assert statuses(out, ALICE) == [200]
    assert net.service.b2bua.calls == {}
    assert len(net.service.b2bua.dialogs) == 0
    assert requests_to(net.tick(FEATURE_TONE_SECONDS), ALICE) == []
    assert_no_leaks(net)


def test_feature_done_for_a_call_that_is_gone_does_nothing() -> None:
    net = office()
    call_id, _ = dial_feature(net, "*12")
    # The phone gave up (CANCEL) before the feature was carried out.
    cancel = (
        "CANCEL sip:*12@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKinv2;rport\r\n"
        'Max-Forwards: 70\r\nFrom: "Alice" <sip:201@127.0.0.1>;tag=alice1\r\n'
        "To: <sip:*12@127.0.0.1>\r\nCall-ID: call-a@127.0.0.1\r\nCSeq: 2 CANCEL\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    out = net.send(cancel.encode(), ALICE)
    assert sorted(statuses(out, ALICE)) == [200, 487]
    assert net.service.b2bua.calls == {}
    net.service.b2bua.feature_done(call_id, True, 200, "OK", net.now)
    assert net.drain() == []


# ---- a telecommuter's incoming call over SIP (T5) -----------------------------------------------


def test_a_call_to_a_telecommuter_leaves_the_trunk_with_caller_and_diversion() -> None:
    net = office({"user202": AT_HOME})
    out = call_from_alice(net, "202")
    assert only(out, BOB) == []  # Bob's desk phone does not ring
    invite = one_request(out, TRUNK, "INVITE")
    assert isinstance(invite.uri, SipUri)
    assert invite.uri.user == MOBILE_OUT
    assert isinstance(invite.from_.uri, SipUri)
    assert invite.from_.uri.user == "201"  # the original caller, not the company
    [diversion] = invite.addr_list("Diversion")
    assert isinstance(diversion.uri, SipUri)
    assert diversion.uri.user == "202"
    assert diversion.param("reason") == "follow-me"


def test_portal_refusals_place_nothing() -> None:
    net = office({"user201": Location(LocationKind.LOGGED_OUT)})
    refusal = engine(net).prepare_call(user(net, "201"), "202", net.now)
    assert refusal == Refusal(
        409, "logged_out", "You are logged out: log in on a phone or start telecommuter mode first"
    )
    assert net.drain() == []
    assert net.service.b2bua.calls == {}


def test_the_destination_sees_the_company_number_outside() -> None:
    net = office()
    placed = place(net, "phone", "90301234567")
    out = line_answers(net, placed)
    invite = one_request(out, TRUNK, "INVITE")
    assert isinstance(invite.uri, SipUri)
    assert invite.uri.user == "0301234567"
    assert isinstance(invite.from_.uri, SipUri)
    assert invite.from_.uri.user == "5550100"
    assert invite.from_.display_name == "User 201"
    assert engine(net).calls[placed.call_id].record.callee == Party("0301234567")
