"""Calls through the SIP service in memory: two phones, a trunk, real bytes, fake clock."""

from __future__ import annotations

from dataclasses import dataclass

from teleoffice.calls.engine import CallState
from teleoffice.server.b2bua import TrunkPeer
from teleoffice.server.sip_service import SipService
from teleoffice.sip.builders import make_response
from teleoffice.sip.digest import build_authorization
from teleoffice.sip.message import Request, Response, parse_message
from teleoffice.sip.sdp import parse_sdp
from teleoffice.sip.transaction import Address
from tests.unit.sipkit import FakeMedia, make_service, register

NOW = 2_000_000.0
ALICE = Address("UDP", "127.0.0.1", 5062)
BOB = Address("UDP", "127.0.0.1", 5064)
BOB2 = Address("UDP", "127.0.0.1", 5066)
TRUNK = Address("UDP", "127.0.0.1", 5080)

OFFER = (
    "v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 30000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)
ANSWER = (
    "v=0\r\no=bob 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 31000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)


@dataclass
class Net:
    service: SipService
    now: float = NOW
    media_port: int = 40000

    def send(self, data: bytes, source: Address) -> list[tuple[Request | Response, Address]]:
        self.service.receive(data, source, self.now)
        self.pump_media()
        return self.drain()

    def drain(self) -> list[tuple[Request | Response, Address]]:
        return [(parse_message(raw), dest) for raw, dest in self.service.outgoing()]

    def pump_media(self) -> None:
        b2bua = self.service.b2bua
        for call_id in b2bua.take_media_requests():
            b2bua.media_ready(call_id, FakeMedia(self.media_port), self.now)
            self.media_port += 4

    def tick(self, seconds: float) -> list[tuple[Request | Response, Address]]:
        self.now += seconds
        self.service.handle_timers(self.now)
        return self.drain()


def registered(*phones: tuple[str, Address]) -> Net:
    service = make_service(
        {"201": "pw201", "202": "pw202"}, trunks={"prov": TrunkPeer("prov", "127.0.0.1", 5080)}
    )
    for account, address in phones:
        contact = f"<sip:{account}@{address.host}:{address.port}>"
        port = address.port
        ok = register(
            service,
            NOW,
            user=account,
            password=f"pw{account}",
            source=address,
            contact=contact,
            call_id=f"reg{port}",
        )
        assert ok.status == 200
    service.take_commands()
    return Net(service)


def invite_bytes(
    to: str, *, branch: str = "z9hG4bKinv1", auth: str | None = None, cseq: int = 1
) -> bytes:
    lines = [
        f"INVITE sip:{to}@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:5062;branch={branch};rport",
        "Max-Forwards: 70",
        '"Alice" <sip:201@127.0.0.1>;tag=alice1'.join(["From: ", ""]),
        f"To: <sip:{to}@127.0.0.1>",
        "Call-ID: call-a@127.0.0.1",
        f"CSeq: {cseq} INVITE",
        "Contact: <sip:201@127.0.0.1:5062>",
        "Content-Type: application/sdp",
    ]
    if auth:
        lines.append(f"Authorization: {auth}")
    return ("\r\n".join(lines) + f"\r\nContent-Length: {len(OFFER)}\r\n\r\n{OFFER}").encode()


def call_from_alice(net: Net, to: str) -> list[tuple[Request | Response, Address]]:
    [(challenge, _)] = net.send(invite_bytes(to), ALICE)
    assert isinstance(challenge, Response)
    assert challenge.status == 401
    auth = build_authorization(
        challenge=challenge.headers.get_all("WWW-Authenticate")[0],
        method="INVITE",
        uri=f"sip:{to}@127.0.0.1",
        username="201",
        password="pw201",
    )
    ack = (
        f"ACK sip:{to}@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKinv1\r\n"
        "From: <sip:201@127.0.0.1>;tag=alice1\r\n"
        f"To: {challenge.headers.get('To')}\r\n"
        "Call-ID: call-a@127.0.0.1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    net.send(ack.encode(), ALICE)
    return net.send(invite_bytes(to, branch="z9hG4bKinv2", auth=auth, cseq=2), ALICE)


def only(
    messages: list[tuple[Request | Response, Address]], dest: Address
) -> list[Request | Response]:
    return [m for m, d in messages if d == dest]


def answer(request: Request, status: int, *, tag: str, body: str = "") -> bytes:
    response = make_response(
        request,
        status,
        to_tag=tag,
        headers=[("Contact", f"<sip:202@127.0.0.1:{5064}>")],
        body=body.encode(),
        content_type="application/sdp" if body else None,
    )
    return response.to_bytes()


def test_phone_to_phone_call_with_anchored_media_and_bye() -> None:
    net = registered(("201", ALICE), ("202", BOB))
    out = call_from_alice(net, "202")
    to_alice = only(out, ALICE)
    assert [m.status for m in to_alice if isinstance(m, Response)] == [100]
    [invite] = only(out, BOB)
    assert isinstance(invite, Request)
    assert invite.method == "INVITE"
    # Bob sees Alice's extension and name, and an offer pointing at teleoffice.
    assert invite.from_.display_name == "User 201"
    assert str(invite.from_.uri).startswith("sip:201@")
    offer = parse_sdp(invite.body)
    assert offer.media[0].port == 40002
    assert offer.media[0].formats == ("0", "8", "101")

    ringing = net.send(answer(invite, 180, tag="bob1"), BOB)
    [r180] = only(ringing, ALICE)
    assert isinstance(r180, Response)
    assert r180.status == 180

    ok = net.send(answer(invite, 200, tag="bob1", body=ANSWER), BOB)
    [ack_to_bob] = only(ok, BOB)
    assert isinstance(ack_to_bob, Request)
    assert ack_to_bob.method == "ACK"
    [r200] = only(ok, ALICE)
    assert isinstance(r200, Response)
    assert r200.status == 200
    answer_sdp = parse_sdp(r200.body)
    assert answer_sdp.media[0].port == 40000  # our side facing Alice
    assert answer_sdp.media[0].formats == ("0", "101")
    assert r200.to.tag == r180.to.tag
    call = next(iter(net.service.b2bua.calls.values()))
    assert call.media is not None
    media = call.media
    assert isinstance(media, FakeMedia)
    assert media.remote == {"a": ("127.0.0.1", 30000), "b": ("127.0.0.1", 31000)}

    # Alice hangs up: Bob gets a BYE in his dialog, Alice a 200.
    bye = (
        "BYE sip:teleoffice@127.0.0.1:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKbye\r\n"
        f"From: <sip:201@127.0.0.1>;tag=alice1\r\nTo: {r200.headers.get('To')}\r\n"
        "Call-ID: call-a@127.0.0.1\r\nCSeq: 3 BYE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    out = net.send(bye.encode(), ALICE)
    [bye_ok] = only(out, ALICE)
    assert isinstance(bye_ok, Response)
    assert bye_ok.status == 200
    [bye_bob] = only(out, BOB)
    assert isinstance(bye_bob, Request)
    assert bye_bob.method == "BYE"
    assert bye_bob.to.tag == "bob1"
    net.send(make_response(bye_bob, 200).to_bytes(), BOB)
    records = net.service.b2bua.take_records()
    assert records[-1].state is CallState.ENDED
    assert records[-1].outcome == "answered"
    assert records[-1].ended_by == "caller"
    assert [m for m in net.service.b2bua.take_media_releases()] == [media]
    assert net.service.b2bua.calls == {}
    # Every transaction ends once its timers have run.
    net.tick(64)
    assert net.service.transactions.transaction_count() == 0
