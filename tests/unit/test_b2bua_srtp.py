"""SRTP per leg in the B2BUA (SDES, RFC 4568) and SIP over TLS addressing, in
memory: phones registered over TLS or UDP, real SIP bytes, a fake clock and a
fake media session that records the keys each side was given."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from teleoffice.media.srtp import SrtpKeys, Suite
from teleoffice.server.b2bua import Side
from teleoffice.server.sip_service import SipService
from teleoffice.sip.builders import make_response
from teleoffice.sip.digest import build_authorization
from teleoffice.sip.message import Request, Response, parse_message
from teleoffice.sip.sdp import crypto_attributes, parse_crypto, parse_sdp
from teleoffice.sip.transaction import Address
from tests.unit.sipkit import FakeMedia, make_service, register

NOW = 3_000_000.0
TLS_PORT = 5061
ALICE_TLS = Address("TLS", "127.0.0.1", 40100)
ALICE_UDP = Address("UDP", "127.0.0.1", 5062)
BOB_TLS = Address("TLS", "127.0.0.1", 40200)
BOB_UDP = Address("UDP", "127.0.0.1", 5064)

ALICE_KEY = bytes(range(30))
BOB_KEY = bytes(range(50, 80))


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def offer(proto: str = "RTP/AVP", *crypto: str) -> str:
    lines = [
        "v=0",
        "o=alice 1 1 IN IP4 127.0.0.1",
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        f"m=audio 30000 {proto} 0 101",
        *(f"a=crypto:{value}" for value in crypto),
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=sendrecv",
    ]
    return "\r\n".join(lines) + "\r\n"


SAVP_OFFER = offer("RTP/SAVP", f"1 AES_CM_128_HMAC_SHA1_80 inline:{b64(ALICE_KEY)}")


def bob_answer(proto: str = "RTP/SAVP", *crypto: str) -> str:
    return (
        offer(proto, *crypto)
        .replace("o=alice 1 1", "o=bob 7 7")
        .replace("m=audio 30000", "m=audio 31000")
    )


class SecureFakeMedia(FakeMedia):
    """FakeMedia that also takes SRTP keys, as media.session.MediaSession does."""

    def __init__(self, base: int) -> None:
        super().__init__(base)
        self.srtp: dict[str, SrtpKeys | None] = {}

    def set_srtp(self, side: Side, keys: SrtpKeys | None) -> None:
        self.srtp[side] = keys


@dataclass
class Net:
    service: SipService
    now: float = NOW
    media: SecureFakeMedia | None = None

    def send(self, data: bytes, source: Address) -> list[tuple[Request | Response, Address]]:
        self.service.receive(data, source, self.now)
        b2bua = self.service.b2bua
        for call_id in b2bua.take_media_requests():
            self.media = SecureFakeMedia(40000)
            b2bua.media_ready(call_id, self.media, self.now)
        return [(parse_message(raw), dest) for raw, dest in self.service.outgoing()]


def registered(alice: Address, bob: Address) -> Net:
    service = make_service({"201": "pw201", "202": "pw202"})
    service.b2bua.tls_port = TLS_PORT
    for account, address in (("201", alice), ("202", bob)):
        contact = f"<sip:{account}@{address.host}:{address.port}>"
        ok = register(
            service,
            NOW,
            user=account,
            password=f"pw{account}",
            source=address,
            contact=contact,
            call_id=f"reg{address.port}",
        )
        assert ok.status == 200
    service.take_commands()
    return Net(service)


def invite_bytes(source: Address, body: str, *, branch: str, auth: str | None, cseq: int) -> bytes:
    lines = [
        "INVITE sip:202@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/{source.transport} 127.0.0.1:{source.port};branch={branch};rport",
        "Max-Forwards: 70",
        "From: <sip:201@127.0.0.1>;tag=alice1",
        "To: <sip:202@127.0.0.1>",
        "Call-ID: srtp-call@127.0.0.1",
        f"CSeq: {cseq} INVITE",
        f"Contact: <sip:201@127.0.0.1:{source.port}>",
        "Content-Type: application/sdp",
    ]
    if auth:
        lines.append(f"Authorization: {auth}")
    return ("\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()


def call_bob(net: Net, source: Address, body: str) -> list[tuple[Request | Response, Address]]:
    """Alice's INVITE to 202, through the digest challenge."""
    [(challenge, _)] = net.send(
        invite_bytes(source, body, branch="z9hG4bKs1", auth=None, cseq=1), source
    )
    assert isinstance(challenge, Response)
    assert challenge.status == 401
    auth = build_authorization(
        challenge=challenge.headers.get_all("WWW-Authenticate")[0],
        method="INVITE",
        uri="sip:202@127.0.0.1",
        username="201",
        password="pw201",
    )
    ack = (
        "ACK sip:202@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/{source.transport} 127.0.0.1:{source.port};branch=z9hG4bKs1\r\n"
        "From: <sip:201@127.0.0.1>;tag=alice1\r\n"
        f"To: {challenge.headers.get('To')}\r\n"
        "Call-ID: srtp-call@127.0.0.1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    net.send(ack.encode(), source)
    return net.send(invite_bytes(source, body, branch="z9hG4bKs2", auth=auth, cseq=2), source)


def to(
    messages: list[tuple[Request | Response, Address]], dest: Address
) -> list[Request | Response]:
    return [m for m, d in messages if d == dest]


def the_invite(messages: list[tuple[Request | Response, Address]], dest: Address) -> Request:
    [invite] = [m for m in to(messages, dest) if isinstance(m, Request) and m.method == "INVITE"]
    return invite


def final(messages: list[tuple[Request | Response, Address]], dest: Address) -> Response:
    [response] = [m for m in to(messages, dest) if isinstance(m, Response) and m.status >= 200]
    return response


def reply(request: Request, status: int, body: str = "", tag: str = "bob1") -> bytes:
    return make_response(
        request,
        status,
        to_tag=tag,
        headers=[("Contact", "<sip:202@127.0.0.1:40200;transport=tls>")],
        body=body.encode(),
        content_type="application/sdp" if body else None,
    ).to_bytes()


def keys(media: SecureFakeMedia | None, side: str) -> SrtpKeys | None:
    assert media is not None
    return media.srtp.get(side)


def test_srtp_on_both_legs_with_keys_of_their_own_and_tls_addressing() -> None:
    net = registered(ALICE_TLS, BOB_TLS)
    out = call_bob(net, ALICE_TLS, SAVP_OFFER)
    invite = the_invite(out, BOB_TLS)
    # Bob is reached over TLS: Via and Contact name the TLS port (RFC 3261
    # section 18.2.1; the transport parameter for the Contact).
    assert invite.top_via.transport == "TLS"
    assert invite.top_via.port == TLS_PORT
    contact = invite.headers.get("Contact") or ""
    assert f"127.0.0.1:{TLS_PORT};transport=tls" in contact
    # Our own SDES offer: both suites, keys of ours, never Alice's.
    sdp = parse_sdp(invite.body)
    assert sdp.media[0].proto == "RTP/SAVP"
    offered = crypto_attributes(sdp.media[0])
    assert [(a.tag, a.suite) for a in offered] == [
        (1, "AES_CM_128_HMAC_SHA1_80"),
        (2, "AES_CM_128_HMAC_SHA1_32"),
    ]
    assert b64(ALICE_KEY) not in invite.body.decode()
    assert offered[0].keys[0].key_salt != offered[1].keys[0].key_salt

    # Bob picks the 32-bit suite.
    ok = net.send(
        reply(
            invite, 200, bob_answer("RTP/SAVP", f"2 AES_CM_128_HMAC_SHA1_32 inline:{b64(BOB_KEY)}")
        ),
        BOB_TLS,
    )
    answer = final(ok, ALICE_TLS)
    assert answer.status == 200
    assert f":{TLS_PORT};transport=tls" in (answer.headers.get("Contact") or "")
    a_sdp = parse_sdp(answer.body)
    assert a_sdp.media[0].proto == "RTP/SAVP"
    [ours_for_alice] = crypto_attributes(a_sdp.media[0])
    assert (ours_for_alice.tag, ours_for_alice.suite) == (1, "AES_CM_128_HMAC_SHA1_80")
    assert b64(BOB_KEY) not in answer.body.decode()
    # Each side of the media session has its leg's keys.
    side_a, side_b = keys(net.media, "a"), keys(net.media, "b")
    assert side_a == SrtpKeys(
        Suite.AES_CM_128_HMAC_SHA1_80, ours_for_alice.keys[0].key_salt, ALICE_KEY
    )
    assert side_b == SrtpKeys(Suite.AES_CM_128_HMAC_SHA1_32, offered[1].keys[0].key_salt, BOB_KEY)
    assert len({ALICE_KEY, BOB_KEY, side_a.send, side_b.send}) == 4


def test_a_plain_phone_calls_an_srtp_phone_and_teleoffice_bridges() -> None:
    net = registered(ALICE_UDP, BOB_TLS)
    out = call_bob(net, ALICE_UDP, offer())
    invite = the_invite(out, BOB_TLS)
    sdp = parse_sdp(invite.body)
    assert sdp.media[0].proto == "RTP/SAVP"
    [first, _second] = crypto_attributes(sdp.media[0])
    ok = net.send(
        reply(
            invite, 200, bob_answer("RTP/SAVP", f"1 AES_CM_128_HMAC_SHA1_80 inline:{b64(BOB_KEY)}")
        ),
        BOB_TLS,
    )
    answer = final(ok, ALICE_UDP)
    assert answer.status == 200
    a_sdp = parse_sdp(answer.body)
    assert a_sdp.media[0].proto == "RTP/AVP"
    assert crypto_attributes(a_sdp.media[0]) == []
    assert keys(net.media, "a") is None
    side_b = keys(net.media, "b")
    assert side_b is not None
    assert (side_b.send, side_b.receive) == (first.keys[0].key_salt, BOB_KEY)


def test_keys_are_never_relayed_to_a_plain_leg() -> None:
    net = registered(ALICE_TLS, BOB_UDP)
    out = call_bob(net, ALICE_TLS, SAVP_OFFER)
    invite = the_invite(out, BOB_UDP)
    assert invite.top_via.transport == "UDP"
    assert invite.top_via.port == 5060
    sdp = parse_sdp(invite.body)
    assert sdp.media[0].proto == "RTP/AVP"
    assert "crypto" not in invite.body.decode()
    ok = net.send(reply(invite, 200, bob_answer("RTP/AVP")), BOB_UDP)
    answer = final(ok, ALICE_TLS)
    assert parse_sdp(answer.body).media[0].proto == "RTP/SAVP"
    assert keys(net.media, "b") is None
    side_a = keys(net.media, "a")
    assert side_a is not None
    assert side_a.receive == ALICE_KEY


def test_an_savp_offer_with_no_usable_suite_gets_488() -> None:
    net = registered(ALICE_TLS, BOB_TLS)
    unusable = offer(
        "RTP/SAVP",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{b64(ALICE_KEY)}|1:4",  # an MKI
        f"2 F8_128_HMAC_SHA1_80 inline:{b64(ALICE_KEY)}",
    )
    out = call_bob(net, ALICE_TLS, unusable)
    refusal = final(out, ALICE_TLS)
    assert refusal.status == 488
    assert "SRTP" in (refusal.headers.get("Warning") or "")
    assert to(out, BOB_TLS) == []
    assert net.service.b2bua.calls == {}


def test_best_effort_srtp_in_an_avp_offer_is_answered_with_keys() -> None:
    net = registered(ALICE_TLS, BOB_UDP)
    best_effort = offer("RTP/AVP", f"1 AES_CM_128_HMAC_SHA1_80 inline:{b64(ALICE_KEY)}")
    invite = the_invite(call_bob(net, ALICE_TLS, best_effort), BOB_UDP)
    ok = net.send(reply(invite, 200, bob_answer("RTP/AVP")), BOB_UDP)
    a_sdp = parse_sdp(final(ok, ALICE_TLS).body)
    assert a_sdp.media[0].proto == "RTP/AVP"  # the offer's protocol, echoed
    [ours] = crypto_attributes(a_sdp.media[0])
    assert ours.tag == 1
    assert keys(net.media, "a") is not None


def test_a_tls_phone_that_refuses_srtp_is_offered_plain_rtp_once() -> None:
    net = registered(ALICE_UDP, BOB_TLS)
    invite = the_invite(call_bob(net, ALICE_UDP, offer()), BOB_TLS)
    assert "a=crypto" in invite.body.decode()
    retried = net.send(reply(invite, 488, tag="bob1"), BOB_TLS)
    again = the_invite(retried, BOB_TLS)
    assert again.cseq.seq == invite.cseq.seq + 1
    assert again.headers.get("Call-ID") == invite.headers.get("Call-ID")
    assert again.top_via.branch != invite.top_via.branch
    sdp = parse_sdp(again.body)
    assert sdp.media[0].proto == "RTP/AVP"
    assert "crypto" not in again.body.decode()
    assert sdp.origin.session_version > parse_sdp(invite.body).origin.session_version
    assert [m for m in to(retried, ALICE_UDP) if isinstance(m, Response) and m.status >= 200] == []
    ok = net.send(reply(again, 200, bob_answer("RTP/AVP"), tag="bob2"), BOB_TLS)
    assert final(ok, ALICE_UDP).status == 200
    assert keys(net.media, "b") is None
    # A second refusal is final: no third INVITE.
    net2 = registered(ALICE_UDP, BOB_TLS)
    first = the_invite(call_bob(net2, ALICE_UDP, offer()), BOB_TLS)
    second = the_invite(net2.send(reply(first, 488), BOB_TLS), BOB_TLS)
    after = net2.send(reply(second, 488), BOB_TLS)
    assert [m for m in to(after, BOB_TLS) if isinstance(m, Request) and m.method == "INVITE"] == []


def test_an_answer_whose_keys_do_not_fit_our_offer_fails_the_branch() -> None:
    net = registered(ALICE_UDP, BOB_TLS)
    invite = the_invite(call_bob(net, ALICE_UDP, offer()), BOB_TLS)
    bad = bob_answer("RTP/SAVP", f"9 AES_CM_128_HMAC_SHA1_80 inline:{b64(BOB_KEY)}")
    out = net.send(reply(invite, 200, bad), BOB_TLS)
    to_bob = [m for m in to(out, BOB_TLS) if isinstance(m, Request)]
    assert [m.method for m in to_bob] == ["ACK", "BYE"]
    assert final(out, ALICE_UDP).status >= 400


def test_a_re_invite_keeps_the_agreed_keys_on_both_legs() -> None:
    net = registered(ALICE_TLS, BOB_TLS)
    invite = the_invite(call_bob(net, ALICE_TLS, SAVP_OFFER), BOB_TLS)
    bob_crypto = f"1 AES_CM_128_HMAC_SHA1_80 inline:{b64(BOB_KEY)}"
    ok = net.send(reply(invite, 200, bob_answer("RTP/SAVP", bob_crypto)), BOB_TLS)
    answer = final(ok, ALICE_TLS)
    before_a, before_b = keys(net.media, "a"), keys(net.media, "b")
    # Alice puts Bob on hold with a re-INVITE, same key.
    hold = SAVP_OFFER.replace("a=sendrecv", "a=sendonly").replace("o=alice 1 1", "o=alice 1 2")
    reinvite = (
        "INVITE sip:teleoffice@127.0.0.1:5061;transport=tls SIP/2.0\r\n"
        "Via: SIP/2.0/TLS 127.0.0.1:40100;branch=z9hG4bKre1;rport\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:201@127.0.0.1>;tag=alice1\r\n"
        f"To: {answer.headers.get('To')}\r\nCall-ID: srtp-call@127.0.0.1\r\nCSeq: 3 INVITE\r\n"
        "Contact: <sip:201@127.0.0.1:40100>\r\nContent-Type: application/sdp\r\n"
        f"Content-Length: {len(hold)}\r\n\r\n{hold}"
    )
    relayed = the_invite(net.send(reinvite.encode(), ALICE_TLS), BOB_TLS)
    [offered_again] = crypto_attributes(parse_sdp(relayed.body).media[0])
    assert before_b is not None
    assert offered_again.keys[0].key_salt == before_b.send
    back = net.send(reply(relayed, 200, bob_answer("RTP/SAVP", bob_crypto)), BOB_TLS)
    to_alice = final(back, ALICE_TLS)
    assert to_alice.status == 200
    [ours] = crypto_attributes(parse_sdp(to_alice.body).media[0])
    assert before_a is not None
    assert ours.keys[0].key_salt == before_a.send
    assert keys(net.media, "a") == before_a
    assert keys(net.media, "b") == before_b


def test_crypto_attribute_of_the_answer_parses_back() -> None:
    # The attribute written into SDP is the one read back (no key mangling).
    net = registered(ALICE_TLS, BOB_UDP)
    invite = the_invite(call_bob(net, ALICE_TLS, SAVP_OFFER), BOB_UDP)
    ok = net.send(reply(invite, 200, bob_answer("RTP/AVP")), BOB_UDP)
    body = final(ok, ALICE_TLS).body.decode()
    line = next(ln for ln in body.splitlines() if ln.startswith("a=crypto:"))
    attr = parse_crypto(line.removeprefix("a=crypto:"))
    side_a = keys(net.media, "a")
    assert side_a is not None
    assert attr.keys[0].key_salt == side_a.send
