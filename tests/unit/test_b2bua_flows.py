"""B2BUA call flows over real SIP bytes in memory, with a fake clock.

Each test plays the phones (and the trunk) by hand, byte for byte, and checks
what every party receives: Request-URI, From/To and their tags, CSeq, status
codes and the SDP ports teleoffice anchors media at.  Every flow ends with
`assert_no_leaks`, which runs all timers and checks nothing is left behind.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from teleoffice.calls.engine import CallRecord, CallState, Direction, Party
from teleoffice.server.b2bua import TrunkPeer
from teleoffice.sip.builders import make_response
from teleoffice.sip.digest import DigestServer, build_authorization, compute_ha1
from teleoffice.sip.message import Request, Response
from teleoffice.sip.sdp import parse_sdp
from teleoffice.sip.transaction import Address
from teleoffice.sip.uri import SipUri
from tests.unit.sipkit import FakeMedia, make_service, register
from tests.unit.test_b2bua import (
    ALICE,
    ANSWER,
    BOB,
    BOB2,
    NOW,
    TRUNK,
    Net,
    call_from_alice,
    only,
    registered,
)

Out = list[tuple[Request | Response, Address]]

SDP = "application/sdp"
ALICE_FROM = '"Alice" <sip:201@127.0.0.1>;tag=alice1'
ALICE_CALL_ID = "call-a@127.0.0.1"
ALICE_CONTACT = "<sip:201@127.0.0.1:5062>"
ALICE_INVITE_BRANCH = "z9hG4bKinv2"  # the authenticated INVITE of `call_from_alice`
ALICE_INVITE_CSEQ = 2
OUR_CONTACT_URI = "sip:teleoffice@127.0.0.1:5060"
# teleoffice's media ports for the first call of a Net: side "a" faces the
# caller, side "b" the callee (FakeMedia: base and base + 2).
PORT_A, PORT_B = 40000, 40002

_branches = itertools.count(1)


# ---- building what the phones send ---------------------------------------------------


def sdp_body(user: str, port: int, direction: str = "sendrecv", version: int = 1) -> str:
    return (
        f"v=0\r\no={user} 5 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
        f"t=0 0\r\nm=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        f"a={direction}\r\n"
    )


def request_bytes(
    method: str,
    uri: str,
    *,
    via: Address,
    from_: str,
    to: str,
    call_id: str,
    cseq: int,
    branch: str | None = None,
    contact: str | None = None,
    body: str = "",
    content_type: str = SDP,
    extra: Iterable[tuple[str, str]] = (),
) -> bytes:
    branch = branch or f"z9hG4bKflow{next(_branches)}"
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/{via.transport} {via.host}:{via.port};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: {from_}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
    ]
    if contact is not None:
        lines.append(f"Contact: {contact}")
    lines.extend(f"{name}: {value}" for name, value in extra)
    if body:
        lines.append(f"Content-Type: {content_type}")
    return ("\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()


def reply(
    request: Request,
    status: int,
    *,
    tag: str | None = None,
    phone: Address | None = None,
    user: str = "202",
    body: str = "",
    content_type: str = SDP,
) -> bytes:
    """A phone's response to one of our requests (Contact only when `phone` is given)."""
    headers = [] if phone is None else [("Contact", f"<sip:{user}@{phone.host}:{phone.port}>")]
    return make_response(
        request,
        status,
        to_tag=tag,
        headers=headers,
        body=body.encode(),
        content_type=content_type if body else None,
    ).to_bytes()


@dataclass
class PhoneDialog:
    """A dialog as the phone sees it: what it needs to send requests in it."""

    phone: Address
    call_id: str
    local: str  # the phone's own From (with its tag)
    remote: str  # teleoffice's side (with our tag)
    target: str  # teleoffice's Contact: the Request-URI
    contact: str
    cseq: int

    def request(
        self,
        method: str,
        *,
        body: str = "",
        content_type: str = SDP,
        extra: Iterable[tuple[str, str]] = (),
    ) -> bytes:
        self.cseq += 1
        return request_bytes(
            method,
            self.target,
            via=self.phone,
            from_=self.local,
            to=self.remote,
            call_id=self.call_id,
            cseq=self.cseq,
            contact=self.contact,
            body=body,
            content_type=content_type,
            extra=extra,
        )

    def ack(self, cseq: int) -> bytes:
        """The ACK for a 2xx: a transaction of its own, new branch."""
        return request_bytes(
            "ACK",
            self.target,
            via=self.phone,
            from_=self.local,
            to=self.remote,
            call_id=self.call_id,
            cseq=cseq,
        )


def alice_ack_failure(net: Net, final: Response, to: str = "202") -> None:
    """Alice ACKs a 3xx-6xx to her INVITE: same branch, the response's To."""
    to_value = final.headers.get("To")
    assert to_value is not None
    ack = request_bytes(
        "ACK",
        f"sip:{to}@127.0.0.1",
        via=ALICE,
        branch=ALICE_INVITE_BRANCH,
        from_=ALICE_FROM,
        to=to_value,
        call_id=ALICE_CALL_ID,
        cseq=ALICE_INVITE_CSEQ,
    )
    assert net.send(ack, ALICE) == []


def alice_cancel() -> bytes:
    """Alice's CANCEL of her authenticated INVITE (RFC 3261 section 9.1)."""
    return request_bytes(
        "CANCEL",
        "sip:202@127.0.0.1",
        via=ALICE,
        branch=ALICE_INVITE_BRANCH,
        from_=ALICE_FROM,
        to="<sip:202@127.0.0.1>",
        call_id=ALICE_CALL_ID,
        cseq=ALICE_INVITE_CSEQ,
    )


# ---- reading what comes out ----------------------------------------------------------


def requests_to(out: Out, dest: Address) -> list[Request]:
    messages = only(out, dest)
    assert all(isinstance(m, Request) for m in messages), messages
    return [m for m in messages if isinstance(m, Request)]


def responses_to(out: Out, dest: Address) -> list[Response]:
    messages = only(out, dest)
    assert all(isinstance(m, Response) for m in messages), messages
    return [m for m in messages if isinstance(m, Response)]


def one_request(out: Out, dest: Address, method: str) -> Request:
    found = requests_to(out, dest)
    assert [r.method for r in found] == [method], found
    return found[0]


def one_response(out: Out, dest: Address, status: int) -> Response:
    found = responses_to(out, dest)
    assert [r.status for r in found] == [status], found
    return found[0]


def statuses(out: Out, dest: Address) -> list[int]:
    return [r.status for r in responses_to(out, dest)]


def uri_of(request: Request) -> str:
    return str(request.uri)


def port_of(message: Request | Response) -> int:
    return parse_sdp(message.body).media[0].port


def direction_of(message: Request | Response) -> str:
    return parse_sdp(message.body).media_direction(0).value


def version_of(message: Request | Response) -> int:
    return parse_sdp(message.body).origin.session_version


def contact_uri(message: Request | Response) -> str:
    return str(message.contacts[0].uri)


def the_media(net: Net) -> FakeMedia:
    [call] = net.service.b2bua.calls.values()
    assert isinstance(call.media, FakeMedia)
    return call.media


def last_record(net: Net) -> CallRecord:
    records = net.service.b2bua.take_records()
    assert records
    return records[-1]


def assert_no_leaks(net: Net) -> None:
    """Once every timer has run, nothing of any call is left."""
    net.tick(64)
    assert net.service.transactions.transaction_count() == 0
    assert net.service.b2bua.calls == {}
    assert len(net.service.b2bua.dialogs) == 0
    assert net.service.b2bua.leg_count() == 0
    assert net.service.b2bua.engine.active_count() == 0


# ---- a connected call ----------------------------------------------------------------


@dataclass
class Connected:
    invite: Request  # the INVITE Bob got
    ok: Response  # the 200 Alice got
    alice: PhoneDialog
    bob: PhoneDialog
    media: FakeMedia


def bob_dialog(invite: Request, tag: str, phone: Address = BOB) -> PhoneDialog:
    to_value, from_value = invite.headers.get("To"), invite.headers.get("From")
    assert to_value is not None
    assert from_value is not None
    return PhoneDialog(
        phone=phone,
        call_id=invite.call_id,
        local=f"{to_value};tag={tag}",
        remote=from_value,
        target=contact_uri(invite),
        contact=f"<sip:202@{phone.host}:{phone.port}>",
        cseq=0,
    )


def alice_dialog(ok: Response) -> PhoneDialog:
    to_value = ok.headers.get("To")
    assert to_value is not None
    return PhoneDialog(
        phone=ALICE,
        call_id=ALICE_CALL_ID,
        local=ALICE_FROM,
        remote=to_value,
        target=contact_uri(ok),
        contact=ALICE_CONTACT,
        cseq=ALICE_INVITE_CSEQ,
    )


def connect(net: Net) -> Connected:
    """Alice calls 202, Bob rings and answers, Alice ACKs."""
    out = call_from_alice(net, "202")
    invite = one_request(out, BOB, "INVITE")
    net.send(reply(invite, 180, tag="bob1", phone=BOB), BOB)
    out = net.send(reply(invite, 200, tag="bob1", phone=BOB, body=ANSWER), BOB)
    assert one_request(out, BOB, "ACK").cseq.seq == invite.cseq.seq
    ok = one_response(out, ALICE, 200)
    alice = alice_dialog(ok)
    assert net.send(alice.ack(ALICE_INVITE_CSEQ), ALICE) == []
    net.service.b2bua.take_records()
    return Connected(invite, ok, alice, bob_dialog(invite, "bob1"), the_media(net))


def alice_hangs_up(net: Net, call: Connected, bob: Address = BOB) -> None:
    out = net.send(call.alice.request("BYE"), ALICE)
    one_response(out, ALICE, 200)
    bye = one_request(out, bob, "BYE")
    assert net.send(reply(bye, 200), bob) == []


# ---- 1. busy -------------------------------------------------------------------------


def test_busy_callee_gives_the_caller_486_and_the_transaction_acks_it() -> None:
    net = registered(("201", ALICE), ("202", BOB))
    out = call_from_alice(net, "202")
    assert statuses(out, ALICE) == [100]
    invite = one_request(out, BOB, "INVITE")
    assert uri_of(invite) == "sip:202@127.0.0.1:5064"
    media = the_media(net)

    out = net.send(reply(invite, 486, tag="bob1"), BOB)
    # The INVITE client transaction ACKs a non-2xx itself (RFC 3261 17.1.1.3):
    # same branch and Request-URI as the INVITE, the To of the 486.
    ack = one_request(out, BOB, "ACK")
    assert ack.top_via.branch == invite.top_via.branch
    assert uri_of(ack) == uri_of(invite)
    assert ack.to.tag == "bob1"
    assert ack.from_.tag == invite.from_.tag
    assert ack.cseq.seq == invite.cseq.seq
    assert ack.cseq.method == "ACK"
    busy = one_response(out, ALICE, 486)
    assert busy.to.tag  # our own tag towards Alice, not Bob's
    assert busy.to.tag != "bob1"
    assert busy.from_.tag == "alice1"
    assert busy.cseq.seq == ALICE_INVITE_CSEQ
    alice_ack_failure(net, busy)

    record = last_record(net)
    assert record.state is CallState.ENDED
    assert record.outcome == "busy"
    assert record.status == 486
    assert record.ended_by == "callee"
    assert net.service.b2bua.take_media_releases() == [media]
    assert net.service.b2bua.calls == {}
    assert_no_leaks(net)


# ---- 2. forking ----------------------------------------------------------------------

ANSWER2 = sdp_body("bob2", 32000)


def forked_call(net: Net) -> tuple[Request, Request, Out]:
    """Alice calls 202, registered at BOB and BOB2; both ring; BOB2 answers."""
    out = call_from_alice(net, "202")
    assert statuses(out, ALICE) == [100]
    invite1 = one_request(out, BOB, "INVITE")
    invite2 = one_request(out, BOB2, "INVITE")
    assert uri_of(invite1) == "sip:202@127.0.0.1:5064"
    assert uri_of(invite2) == "sip:202@127.0.0.1:5066"
    for invite in (invite1, invite2):
        assert port_of(invite) == PORT_B
        assert invite.from_.display_name == "User 201"
        assert isinstance(invite.from_.uri, SipUri)
        assert invite.from_.uri.user == "201"

    ringing = net.send(reply(invite1, 180, tag="bob1", phone=BOB), BOB)
    ringing += net.send(reply(invite2, 180, tag="bob2", phone=BOB2, user="202"), BOB2)
    rings = responses_to(ringing, ALICE)
    assert rings
    assert {r.status for r in rings} == {180}
    assert len({r.to.tag for r in rings}) == 1  # one dialog towards Alice, our tag
    assert only(ringing, BOB) == []
    assert only(ringing, BOB2) == []

    out = net.send(reply(invite2, 200, tag="bob2", phone=BOB2, body=ANSWER2), BOB2)
    ack2 = one_request(out, BOB2, "ACK")
    assert ack2.to.tag == "bob2"
    assert ack2.cseq.seq == invite2.cseq.seq
    ok = one_response(out, ALICE, 200)
    assert ok.to.tag == rings[0].to.tag
    # Alice's answer is BOB2's, anchored at our port; media goes to BOB2.
    assert port_of(ok) == PORT_A
    assert the_media(net).remote["b"] == ("127.0.0.1", 32000)
    # The losing branch is cancelled: same branch as its INVITE (RFC 3261 9.1).
    cancel = one_request(out, BOB, "CANCEL")
    assert cancel.top_via.branch == invite1.top_via.branch
    assert cancel.cseq.seq == invite1.cseq.seq
    assert cancel.cseq.method == "CANCEL"
    assert uri_of(cancel) == uri_of(invite1)
    assert cancel.to.tag is None
    assert cancel.call_id == invite1.call_id
    return invite1, cancel, out


def test_forked_call_second_phone_answers_first_is_cancelled() -> None:
    net = registered(("201", ALICE), ("202", BOB), ("202", BOB2))
    invite1, cancel, out = forked_call(net)
    ok = one_response(out, ALICE, 200)
    alice = alice_dialog(ok)
    assert net.send(alice.ack(ALICE_INVITE_CSEQ), ALICE) == []

    assert net.send(reply(cancel, 200), BOB) == []
    out = net.send(reply(invite1, 487, tag="bob1"), BOB)
    ack = one_request(out, BOB, "ACK")  # by the transaction layer
    assert ack.top_via.branch == invite1.top_via.branch
    assert only(out, ALICE) == []
    assert only(out, BOB2) == []

    call = Connected(invite1, ok, alice, bob_dialog(invite1, "bob1"), the_media(net))
    records = net.service.b2bua.take_records()
    assert records[-1].state is CallState.CONNECTED
    alice_hangs_up(net, call, bob=BOB2)
    record = last_record(net)
    assert record.outcome == "answered"
    assert record.ended_by == "caller"
    assert_no_leaks(net)


def test_forked_call_late_200_crossing_the_cancel_is_acked_and_hung_up() -> None:
    net = registered(("201", ALICE), ("202", BOB), ("202", BOB2))
    invite1, cancel, out = forked_call(net)
    ok = one_response(out, ALICE, 200)
    alice = alice_dialog(ok)
    assert net.send(alice.ack(ALICE_INVITE_CSEQ), ALICE) == []
    media = the_media(net)

    # BOB answered before our CANCEL reached it: its 200 crosses the CANCEL.
    out = net.send(reply(invite1, 200, tag="bob1", phone=BOB, body=ANSWER), BOB)
    assert only(out, ALICE) == []
    assert only(out, BOB2) == []
    ack, bye = requests_to(out, BOB)
    assert ack.method == "ACK"
    assert ack.to.tag == "bob1"
    assert ack.cseq.seq == invite1.cseq.seq
    assert ack.top_via.branch != invite1.top_via.branch  # a 2xx ACK is its own transaction
    assert bye.method == "BYE"
    assert uri_of(bye) == "sip:202@127.0.0.1:5064"
    assert bye.to.tag == "bob1"
    assert bye.from_.tag == invite1.from_.tag
    assert bye.cseq.seq == invite1.cseq.seq + 1
    assert media.remote["b"] == ("127.0.0.1", 32000)  # media stays with the winner
    assert net.send(reply(cancel, 200), BOB) == []
    assert net.send(reply(bye, 200), BOB) == []

    # The call goes on with BOB2: a re-INVITE from Alice reaches BOB2, not the
    # branch that was hung up.
    out = net.send(alice.request("INVITE", body=sdp_body("alice", 30000, "sendonly", 2)), ALICE)
    assert only(out, BOB) == []
    reinvite = one_request(out, BOB2, "INVITE")
    assert reinvite.to.tag == "bob2"
    out = net.send(
        reply(reinvite, 200, phone=BOB2, body=sdp_body("bob2", 32000, "recvonly", 2)), BOB2
    )
    one_request(out, BOB2, "ACK")
    assert net.send(alice.ack(alice.cseq), ALICE) == []

    call = Connected(invite1, ok, alice, bob_dialog(invite1, "bob1"), media)
    alice_hangs_up(net, call, bob=BOB2)
    assert last_record(net).ended_by == "caller"
    assert net.service.b2bua.take_media_releases() == [media]
    assert_no_leaks(net)


# ---- 3. the caller cancels -----------------------------------------------------------


def test_caller_cancels_while_ringing() -> None:
    net = registered(("201", ALICE), ("202", BOB))
    out = call_from_alice(net, "202")
    invite = one_request(out, BOB, "INVITE")
    out = net.send(reply(invite, 180, tag="bob1", phone=BOB), BOB)
    one_response(out, ALICE, 180)
    media = the_media(net)

    out = net.send(alice_cancel(), ALICE)
    responses = responses_to(out, ALICE)
    assert sorted((r.status, r.cseq.method) for r in responses) == [
        (200, "CANCEL"),
        (487, "INVITE"),
    ]
    terminated = next(r for r in responses if r.status == 487)
    cancel = one_request(out, BOB, "CANCEL")
    assert cancel.top_via.branch == invite.top_via.branch
    assert cancel.cseq.seq == invite.cseq.seq
    assert cancel.cseq.method == "CANCEL"
    alice_ack_failure(net, terminated)

    assert net.send(reply(cancel, 200), BOB) == []
    out = net.send(reply(invite, 487, tag="bob1"), BOB)
    assert one_request(out, BOB, "ACK").top_via.branch == invite.top_via.branch
    assert only(out, ALICE) == []

    record = last_record(net)
    assert record.state is CallState.ENDED
    assert record.outcome == "cancelled"
    assert record.ended_by == "caller"
    assert net.service.b2bua.take_media_releases() == [media]
    assert_no_leaks(net)


def test_cancel_before_any_provisional_waits_for_the_callee_to_ring() -> None:
    net = registered(("201", ALICE), ("202", BOB))
    out = call_from_alice(net, "202")
    invite = one_request(out, BOB, "INVITE")

    out = net.send(alice_cancel(), ALICE)
    assert sorted(statuses(out, ALICE)) == [200, 487]
    terminated = next(r for r in responses_to(out, ALICE) if r.status == 487)
    alice_ack_failure(net, terminated)
    # RFC 3261 section 9.1: no CANCEL before a provisional response.
    assert only(out, BOB) == []
    assert last_record(net).outcome == "cancelled"

    # Bob rings: now the held-back CANCEL goes out, and Alice hears nothing more.
    out = net.send(reply(invite, 180, tag="bob1", phone=BOB), BOB)
    assert only(out, ALICE) == []
    cancel = one_request(out, BOB, "CANCEL")
    assert cancel.top_via.branch == invite.top_via.branch
    assert cancel.cseq.method == "CANCEL"
    assert net.send(reply(cancel, 200), BOB) == []
    out = net.send(reply(invite, 487, tag="bob1"), BOB)
    one_request(out, BOB, "ACK")
    assert_no_leaks(net)


# ---- 4. no answer --------------------------------------------------------------------


def test_no_answer_cancels_the_callee_and_gives_the_caller_480() -> None:
    net = registered(("201", ALICE), ("202", BOB))
    out = call_from_alice(net, "202")
    invite = one_request(out, BOB, "INVITE")
    out = net.send(reply(invite, 180, tag="bob1", phone=BOB), BOB)
    one_response(out, ALICE, 180)
    media = the_media(net)

    assert net.tick(14) == []  # the user's no-answer time is 15 s
    out = net.tick(1)
    cancel = one_request(out, BOB, "CANCEL")
    assert cancel.top_via.branch == invite.top_via.branch
    unanswered = one_response(out, ALICE, 480)
    assert unanswered.cseq.seq == ALICE_INVITE_CSEQ
    alice_ack_failure(net, unanswered)
    record = last_record(net)
    assert record.outcome == "no-answer"
    assert record.status == 480
    assert net.service.b2bua.take_media_releases() == [media]

    assert net.send(reply(cancel, 200), BOB) == []
    out = net.send(reply(invite, 487, tag="bob1"), BOB)
    one_request(out, BOB, "ACK")
    assert only(out, ALICE) == []
    assert_no_leaks(net)


def test_no_answer_timer_does_nothing_once_connected() -> None:
    net = registered(("201", ALICE), ("202", BOB))
    call = connect(net)
    assert net.tick(20) == []
    assert net.service.b2bua.take_records() == []
    assert len(net.service.b2bua.calls) == 1
    alice_hangs_up(net, call)
    assert_no_leaks(net)


# ---- 5. the callee hangs up ----------------------------------------------------------


def test_callee_hangs_up_bye_goes_to_the_caller_in_her_dialog() -> None:
    net = registered(("201", ALICE), ("202", BOB))
    call = connect(net)

    bye_from_bob = call.bob.request("BYE")
    assert call.bob.remote == call.invite.headers.get("From")  # To tag = our From tag
    out = net.send(bye_from_bob, BOB)
    ok = one_response(out, BOB, 200)
    assert ok.cseq.method == "BYE"
    assert ok.to.tag == call.invite.from_.tag
    bye = one_request(out, ALICE, "BYE")
    assert uri_of(bye) == "sip:201@127.0.0.1:5062"  # Alice's Contact
    assert bye.call_id == ALICE_CALL_ID
    assert bye.from_.tag == call.ok.to.tag  # our tag towards Alice
    assert bye.to.tag == "alice1"
    assert bye.cseq.method == "BYE"
    assert bye.cseq.seq == 1  # our first request in Alice's dialog: our own counter
    assert net.send(reply(bye, 200), ALICE) == []

    record = last_record(net)
    assert record.state is CallState.ENDED
    assert record.outcome == "answered"
    assert record.ended_by == "callee"
    assert net.service.b2bua.take_media_releases() == [call.media]
    assert_no_leaks(net)


# ---- 6. hold and unhold --------------------------------------------------------------


def test_hold_and_unhold_by_reinvite_are_relayed_with_anchored_media() -> None:
    net = registered(("201", ALICE), ("202", BOB))
    call = connect(net)
    media = call.media
    assert media.remote == {"a": ("127.0.0.1", 30000), "b": ("127.0.0.1", 31000)}
    bob_versions = [version_of(call.invite)]
    alice_versions = [version_of(call.ok)]

    for alice_dir, bob_dir, version, a_remote in (
        ("sendonly", "recvonly", 2, (None, None)),
        ("sendrecv", "sendrecv", 3, ("127.0.0.1", 30000)),
    ):
        out = net.send(
            call.alice.request("INVITE", body=sdp_body("alice", 30000, alice_dir, version)),
            ALICE,
        )
        reinvite = one_request(out, BOB, "INVITE")
        assert uri_of(reinvite) == "sip:202@127.0.0.1:5064"
        assert reinvite.call_id == call.invite.call_id
        assert reinvite.from_.tag == call.invite.from_.tag
        assert reinvite.to.tag == "bob1"
        assert reinvite.cseq.seq == call.invite.cseq.seq + len(bob_versions)
        assert direction_of(reinvite) == alice_dir
        assert port_of(reinvite) == PORT_B
        assert version_of(reinvite) > bob_versions[-1]  # RFC 3264 section 8
        bob_versions.append(version_of(reinvite))
        # sendonly: Alice will not receive, so nothing is sent her way.
        assert media.remote["a"] == a_remote

        bob_ok = reply(reinvite, 200, phone=BOB, body=sdp_body("bob", 31000, bob_dir, version))
        out = net.send(bob_ok, BOB)
        ack = one_request(out, BOB, "ACK")
        assert ack.cseq.seq == reinvite.cseq.seq
        assert ack.to.tag == "bob1"
        assert uri_of(ack) == "sip:202@127.0.0.1:5064"
        ok = one_response(out, ALICE, 200)
        assert ok.cseq.seq == call.alice.cseq
        assert ok.cseq.method == "INVITE"
        assert ok.to.tag == call.ok.to.tag
        assert direction_of(ok) == bob_dir
        assert port_of(ok) == PORT_A
        assert version_of(ok) > alice_versions[-1]
        alice_versions.append(version_of(ok))
        assert media.remote["b"] == ("127.0.0.1", 31000)

        # Bob did not get our ACK and retransmits his 200: it is ACKed again
        # (RFC 3261 section 13.2.2.4), and Alice gets nothing new.
        out = net.send(bob_ok, BOB)
        assert one_request(out, BOB, "ACK").cseq.seq == reinvite.cseq.seq
        assert only(out, ALICE) == []

        assert net.send(call.alice.ack(call.alice.cseq), ALICE) == []

    assert media.remote == {"a": ("127.0.0.1", 30000), "b": ("127.0.0.1", 31000)}
    alice_hangs_up(net, call)
    assert_no_leaks(net)


# ---- 7. UPDATE and INFO --------------------------------------------------------------


def test_update_from_callee_is_relayed_to_the_caller() -> None:
    net = registered(("201", ALICE), ("202", BOB))
    call = connect(net)
    media = call.media

    out = net.send(call.bob.request("UPDATE", body=sdp_body("bob", 31500, version=2)), BOB)
    update = one_request(out, ALICE, "UPDATE")
    assert uri_of(update) == "sip:201@127.0.0.1:5062"
    assert update.call_id == ALICE_CALL_ID
    assert update.from_.tag == call.ok.to.tag
    assert update.to.tag == "alice1"
    assert port_of(update) == PORT_A
    assert media.remote["b"] == ("127.0.0.1", 31500)

    out = net.send(
        reply(update, 200, phone=ALICE, user="201", body=sdp_body("alice", 30500, version=2)),
        ALICE,
    )
    assert only(out, ALICE) == []  # no ACK for an UPDATE
    ok = one_response(out, BOB, 200)
    assert ok.cseq.method == "UPDATE"
    assert ok.cseq.seq == call.bob.cseq
    assert ok.to.tag == call.invite.from_.tag
    assert port_of(ok) == PORT_B
    assert media.remote["a"] == ("127.0.0.1", 30500)

    alice_hangs_up(net, call)
    assert_no_leaks(net)


def test_info_with_dtmf_relay_passes_through_unchanged() -> None:
    net = registered(("201", ALICE), ("202", BOB))
    call = connect(net)
    dtmf = "Signal=5\r\nDuration=160\r\n"

    out = net.send(
        call.alice.request("INFO", body=dtmf, content_type="application/dtmf-relay"), ALICE
    )
    info = one_request(out, BOB, "INFO")
    assert uri_of(info) == "sip:202@127.0.0.1:5064"
    assert info.to.tag == "bob1"
    assert info.from_.tag == call.invite.from_.tag
    assert info.headers.get("Content-Type") == "application/dtmf-relay"
    assert info.body == dtmf.encode()
    assert call.media.remote == {"a": ("127.0.0.1", 30000), "b": ("127.0.0.1", 31000)}

    out = net.send(reply(info, 200), BOB)
    ok = one_response(out, ALICE, 200)
    assert ok.cseq.method == "INFO"
    assert ok.cseq.seq == call.alice.cseq
    assert only(out, BOB) == []

    # And the other way round.
    out = net.send(call.bob.request("INFO", body=dtmf, content_type="application/dtmf-relay"), BOB)
    info = one_request(out, ALICE, "INFO")
    assert info.to.tag == "alice1"
    assert info.body == dtmf.encode()
    out = net.send(reply(info, 200), ALICE)
    assert one_response(out, BOB, 200).cseq.method == "INFO"

    alice_hangs_up(net, call)
    assert_no_leaks(net)


# ---- 8. unknown number, unregistered user --------------------------------------------


def test_unknown_number_gets_404() -> None:
    net = registered(("201", ALICE), ("202", BOB))
    out = call_from_alice(net, "299")
    assert statuses(out, ALICE) == [100, 404]
    assert only(out, BOB) == []
    alice_ack_failure(net, responses_to(out, ALICE)[-1], to="299")
    record = last_record(net)
    assert record.outcome == "not-found"
    assert len(net.service.b2bua.take_media_releases()) == 1
    assert_no_leaks(net)


def test_known_user_without_registration_gets_480() -> None:
    net = registered(("201", ALICE))
    out = call_from_alice(net, "202")
    assert statuses(out, ALICE) == [100, 480]
    alice_ack_failure(net, responses_to(out, ALICE)[-1])
    record = last_record(net)
    assert record.outcome == "unavailable"
    assert record.callee == Party("202", "User 202")
    assert len(net.service.b2bua.take_media_releases()) == 1
    assert_no_leaks(net)


# ---- 9. outbound through the trunk ---------------------------------------------------

PROVIDER_REALM = "provider.example"
TRUNK_USER, TRUNK_PASSWORD = "acct77", "trunk-secret"


def registered_with_trunk(trunk: TrunkPeer) -> Net:
    service = make_service({"201": "pw201", "202": "pw202"}, trunks={trunk.name: trunk})
    ok = register(
        service,
        NOW,
        user="201",
        password="pw201",
        source=ALICE,
        contact=ALICE_CONTACT,
        call_id="reg5062",
    )
    assert ok.status == 200
    service.take_commands()
    return Net(service)


def check_outbound_invite(invite: Request) -> None:
    assert uri_of(invite) == "sip:5551234@127.0.0.1:5080"
    assert isinstance(invite.from_.uri, SipUri)
    assert invite.from_.uri.user == "5550100"  # the trunk's outside number
    assert isinstance(invite.to.uri, SipUri)
    assert invite.to.uri.user == "5551234"
    assert invite.to.tag is None
    assert port_of(invite) == PORT_B


def assert_trunk_auth_failure(failure: Response) -> None:
    """What the caller may get when the trunk's challenge could not be answered.

    The engine's best failure of the branches is then the 407 itself, but passed
    on to Alice it is wrong twice over: a 407 MUST carry a Proxy-Authenticate
    (RFC 3261 section 21.4.8; a 401 a WWW-Authenticate, 21.4.2), and the
    provider's challenge is teleoffice's to answer, not Alice's: relaying it would
    have her phone retry with her own credentials for the provider's realm.  The
    trunk refused *us*, so the sensible answers are a server-side failure (5xx,
    but not 503, which tells the phone its PBX is out of service, section
    21.5.4, the reason the engine already turns a 503 into a 500) or a 403
    (refused, and authenticating again will not help, section 21.4.4).
    """
    assert failure.status not in (401, 407)
    assert failure.status == 403 or (failure.status // 100 == 5 and failure.status != 503)
    assert failure.headers.get("Proxy-Authenticate") is None
    assert failure.headers.get("WWW-Authenticate") is None


def test_outbound_call_challenged_by_a_trunk_without_credentials_fails_cleanly() -> None:
    net = registered(("201", ALICE))
    out = call_from_alice(net, "95551234")
    assert statuses(out, ALICE) == [100]
    invite = one_request(out, TRUNK, "INVITE")
    check_outbound_invite(invite)

    provider = DigestServer(PROVIDER_REALM, b"p" * 32)
    challenge = make_response(
        invite,
        407,
        to_tag="prov1",
        headers=[("Proxy-Authenticate", value) for value in provider.challenge(net.now)],
    )
    out = net.send(challenge.to_bytes(), TRUNK)
    ack = one_request(out, TRUNK, "ACK")  # by the transaction layer
    assert ack.top_via.branch == invite.top_via.branch
    assert ack.to.tag == "prov1"
    [failure] = responses_to(out, ALICE)
    assert_trunk_auth_failure(failure)
    alice_ack_failure(net, failure, to="95551234")
    record = last_record(net)
    assert record.direction is Direction.OUTBOUND
    assert record.trunk == "prov"
    assert record.outcome == "failed"
    assert_no_leaks(net)


def trunk_authorize(challenge: str, method: str, uri: str) -> str | None:
    return build_authorization(
        challenge=challenge,
        method=method,
        uri=uri,
        username=TRUNK_USER,
        password=TRUNK_PASSWORD,
    )


def test_outbound_call_answers_the_trunk_challenge_once_and_connects() -> None:
    authorize: Callable[[str, str, str], str | None] = trunk_authorize
    net = registered_with_trunk(TrunkPeer("prov", "127.0.0.1", 5080, authorize=authorize))
    out = call_from_alice(net, "95551234")
    assert statuses(out, ALICE) == [100]
    invite = one_request(out, TRUNK, "INVITE")
    check_outbound_invite(invite)
    assert invite.headers.get("Proxy-Authorization") is None

    provider = DigestServer(PROVIDER_REALM, b"p" * 32)
    challenge = make_response(
        invite,
        407,
        to_tag="prov1",
        headers=[("Proxy-Authenticate", value) for value in provider.challenge(net.now)],
    )
    out = net.send(challenge.to_bytes(), TRUNK)
    assert only(out, ALICE) == []
    ack, retry = requests_to(out, TRUNK)
    assert ack.method == "ACK"
    assert ack.top_via.branch == invite.top_via.branch
    # RFC 3261 section 22.2 / 8.1.3.5: the same request again, CSeq + 1, same
    # Call-ID and From tag, a new transaction, and the credentials.
    assert retry.method == "INVITE"
    check_outbound_invite(retry)
    assert retry.cseq.seq == invite.cseq.seq + 1
    assert retry.call_id == invite.call_id
    assert retry.from_.tag == invite.from_.tag
    assert retry.top_via.branch != invite.top_via.branch
    assert retry.headers.get("Authorization") is None
    credentials = retry.headers.get("Proxy-Authorization")
    assert credentials is not None
    verdict = provider.verify(
        method="INVITE",
        header_value=credentials,
        lookup=lambda user, family: (
            compute_ha1(user, PROVIDER_REALM, TRUNK_PASSWORD, family.base)
            if user == TRUNK_USER
            else None
        ),
        now=net.now,
    )
    assert verdict.ok
    assert verdict.uri == "sip:5551234@127.0.0.1:5080"

    out = net.send(reply(retry, 183, tag="prov2", phone=TRUNK, user="5551234"), TRUNK)
    assert statuses(out, ALICE) == [180]
    out = net.send(
        reply(retry, 200, tag="prov2", phone=TRUNK, user="5551234", body=sdp_body("prov", 34000)),
        TRUNK,
    )
    trunk_ack = one_request(out, TRUNK, "ACK")
    assert trunk_ack.cseq.seq == retry.cseq.seq
    assert trunk_ack.to.tag == "prov2"
    assert uri_of(trunk_ack) == "sip:5551234@127.0.0.1:5080"
    ok = one_response(out, ALICE, 200)
    assert port_of(ok) == PORT_A
    media = the_media(net)
    assert media.remote["b"] == ("127.0.0.1", 34000)
    alice = alice_dialog(ok)
    assert net.send(alice.ack(ALICE_INVITE_CSEQ), ALICE) == []
    record = last_record(net)
    assert record.state is CallState.CONNECTED
    assert record.direction is Direction.OUTBOUND

    out = net.send(alice.request("BYE"), ALICE)
    one_response(out, ALICE, 200)
    bye = one_request(out, TRUNK, "BYE")
    assert bye.to.tag == "prov2"
    assert bye.cseq.seq == retry.cseq.seq + 1
    assert net.send(reply(bye, 200), TRUNK) == []
    assert net.service.b2bua.take_media_releases() == [media]
    assert_no_leaks(net)


def test_trunk_that_challenges_twice_fails_the_call() -> None:
    net = registered_with_trunk(TrunkPeer("prov", "127.0.0.1", 5080, authorize=trunk_authorize))
    out = call_from_alice(net, "95551234")
    invite = one_request(out, TRUNK, "INVITE")
    provider = DigestServer(PROVIDER_REALM, b"p" * 32)
    for attempt in range(2):
        challenge = make_response(
            invite,
            407,
            to_tag=f"prov{attempt}",
            headers=[("Proxy-Authenticate", value) for value in provider.challenge(net.now)],
        )
        out = net.send(challenge.to_bytes(), TRUNK)
        requests = requests_to(out, TRUNK)
        assert requests[0].method == "ACK"
        if attempt == 0:
            assert [r.method for r in requests] == ["ACK", "INVITE"]
            invite = requests[1]
        else:
            assert [r.method for r in requests] == ["ACK"]  # answered once only
    [failure] = responses_to(out, ALICE)
    assert_trunk_auth_failure(failure)
    alice_ack_failure(net, failure, to="95551234")
    assert_no_leaks(net)


# ---- 10. inbound from the trunk ------------------------------------------------------


def test_inbound_call_from_the_trunk_needs_no_challenge() -> None:
    net = registered(("202", BOB))
    trunk_from = '"Jane Caller" <sip:5557777@provider.example>;tag=prov1'
    offer = sdp_body("prov", 34000)
    invite_in = request_bytes(
        "INVITE",
        "sip:202@127.0.0.1",
        via=TRUNK,
        branch="z9hG4bKtrunkinv",
        from_=trunk_from,
        to="<sip:202@127.0.0.1>",
        call_id="in-1@provider.example",
        cseq=10,
        contact="<sip:5557777@127.0.0.1:5080>",
        body=offer,
    )
    out = net.send(invite_in, TRUNK)
    assert statuses(out, TRUNK) == [100]  # no 401: recognised by its address
    invite = one_request(out, BOB, "INVITE")
    assert uri_of(invite) == "sip:202@127.0.0.1:5064"
    assert invite.from_.display_name == "Jane Caller"
    assert isinstance(invite.from_.uri, SipUri)
    assert invite.from_.uri.user == "5557777"
    assert invite.from_.tag is not None
    assert invite.from_.tag != "prov1"
    assert invite.call_id != "in-1@provider.example"
    assert port_of(invite) == PORT_B
    assert the_media(net).remote["a"] == ("127.0.0.1", 34000)

    out = net.send(reply(invite, 180, tag="bob1", phone=BOB), BOB)
    ringing = one_response(out, TRUNK, 180)
    assert ringing.to.tag is not None

    out = net.send(reply(invite, 486, tag="bob1"), BOB)
    one_request(out, BOB, "ACK")
    busy = one_response(out, TRUNK, 486)
    to_value = busy.headers.get("To")
    assert to_value is not None
    ack = request_bytes(
        "ACK",
        "sip:202@127.0.0.1",
        via=TRUNK,
        branch="z9hG4bKtrunkinv",
        from_=trunk_from,
        to=to_value,
        call_id="in-1@provider.example",
        cseq=10,
    )
    assert net.send(ack, TRUNK) == []
    record = last_record(net)
    assert record.direction is Direction.INBOUND
    assert record.trunk == "prov"
    assert record.caller == Party("5557777", "Jane Caller")
    assert record.outcome == "busy"
    assert_no_leaks(net)


# ---- 11. session refresh -------------------------------------------------------------


def test_session_refresh_updates_both_legs_and_a_481_ends_the_call() -> None:
    net = registered(("201", ALICE), ("202", BOB))
    call = connect(net)
    half = net.service.b2bua.session_interval / 2
    assert half == 900

    assert net.tick(half - 1) == []
    out = net.tick(2)
    to_alice = one_request(out, ALICE, "UPDATE")
    to_bob = one_request(out, BOB, "UPDATE")
    assert uri_of(to_alice) == "sip:201@127.0.0.1:5062"
    assert to_alice.from_.tag == call.ok.to.tag
    assert to_alice.to.tag == "alice1"
    assert uri_of(to_bob) == "sip:202@127.0.0.1:5064"
    assert to_bob.from_.tag == call.invite.from_.tag
    assert to_bob.to.tag == "bob1"
    for update in (to_alice, to_bob):
        assert update.body == b""
        assert update.headers.get("Session-Expires") is not None

    assert net.send(reply(to_alice, 200, phone=ALICE, user="201"), ALICE) == []
    out = net.send(reply(to_bob, 481), BOB)
    assert only(out, BOB) == []  # Bob's dialog is gone: nothing more for him
    bye = one_request(out, ALICE, "BYE")
    assert bye.from_.tag == call.ok.to.tag
    assert bye.to.tag == "alice1"
    assert bye.cseq.seq > to_alice.cseq.seq
    assert net.service.b2bua.take_media_releases() == [call.media]
    assert net.send(reply(bye, 200), ALICE) == []
    record = last_record(net)
    assert record.state is CallState.ENDED
    assert record.ended_by == "callee"
    assert_no_leaks(net)


def test_a_leg_without_update_is_refreshed_by_reinvite_with_the_same_sdp() -> None:
    net = registered(("201", ALICE), ("202", BOB))
    call = connect(net)
    out = net.tick(901)
    to_alice = one_request(out, ALICE, "UPDATE")
    to_bob = one_request(out, BOB, "UPDATE")
    assert net.send(reply(to_alice, 200, phone=ALICE, user="201"), ALICE) == []
    # Bob does not do UPDATE: at once he gets a re-INVITE with the SDP he already has.
    out = net.send(reply(to_bob, 501), BOB)
    reinvite = one_request(out, BOB, "INVITE")
    assert reinvite.to.tag == "bob1"
    assert reinvite.body == call.invite.body
    out = net.send(reply(reinvite, 200, body=ANSWER), BOB)
    ack = one_request(out, BOB, "ACK")
    assert ack.cseq.seq == reinvite.cseq.seq
    # The next refresh goes straight to a re-INVITE; no answer at all ends the call.
    out = net.tick(900)
    update = one_request(out, ALICE, "UPDATE")
    assert net.send(reply(update, 200, phone=ALICE, user="201"), ALICE) == []
    again = one_request(out, BOB, "INVITE")
    assert again.cseq.seq > reinvite.cseq.seq
    out = net.tick(40)  # timer B: Bob never answered
    one_request(out, ALICE, "BYE")
    assert last_record(net).state is CallState.ENDED


# ---- 12. requests for dialogs we do not have -----------------------------------------


def test_bye_for_an_unknown_dialog_gets_481_and_an_ack_is_ignored() -> None:
    net = registered(("201", ALICE), ("202", BOB))
    stray = PhoneDialog(
        phone=ALICE,
        call_id="nobody@127.0.0.1",
        local=ALICE_FROM,
        remote="<sip:202@127.0.0.1>;tag=unknown",
        target=OUR_CONTACT_URI,
        contact=ALICE_CONTACT,
        cseq=5,
    )
    out = net.send(stray.request("BYE"), ALICE)
    assert one_response(out, ALICE, 481).cseq.method == "BYE"
    out = net.send(stray.request("INFO", body="Signal=1\r\n"), ALICE)
    assert one_response(out, ALICE, 481).cseq.method == "INFO"
    assert net.send(stray.ack(stray.cseq), ALICE) == []
    assert net.service.b2bua.take_records() == []
    assert_no_leaks(net)


def test_requests_after_the_call_ended_get_481() -> None:
    net = registered(("201", ALICE), ("202", BOB))
    call = connect(net)
    alice_hangs_up(net, call)
    out = net.send(call.bob.request("BYE"), BOB)
    assert one_response(out, BOB, 481).cseq.method == "BYE"
    assert only(out, ALICE) == []
    assert_no_leaks(net)
