"""The telecommuter line (T6) and blind transfer (T4) through the B2BUA, over
real SIP bytes in memory with a fake clock.

Alice (201) works from her mobile, reached through provider "prov" (the
address `LINE`); calls for her come in from another provider (`CALLERS`), so
what goes to her line and what goes to her callers can be told apart by
address.  Portal call control is what `Telephony.control` and
`Telephony.transfer` do: ask the engine, then `B2bua.execute` the commands.
Every flow ends with `assert_no_leaks`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from teleoffice.calls.engine import CallEngine, CallState, Command, Refusal
from teleoffice.calls.locations import Location, LocationKind
from teleoffice.server.b2bua import FAILURE_TONE_SECONDS, TrunkPeer
from teleoffice.sip.message import Request, Response
from teleoffice.sip.sdp import parse_sdp
from teleoffice.sip.transaction import Address
from teleoffice.sip.uri import SipUri
from tests.unit.sipkit import FakeMedia, make_service, register
from tests.unit.test_b2bua import ALICE, BOB, NOW, TRUNK, Net, call_from_alice, only
from tests.unit.test_b2bua_flows import (
    ALICE_INVITE_CSEQ,
    PORT_A,
    PORT_B,
    Out,
    PhoneDialog,
    alice_dialog,
    assert_no_leaks,
    bob_dialog,
    contact_uri,
    one_request,
    one_response,
    port_of,
    reply,
    request_bytes,
    requests_to,
    sdp_body,
    statuses,
)
from tests.unit.test_b2bua_origination import located

LINE = TRUNK  # provider "prov", prefix 9: where Alice's remote phone is dialled
CALLERS = Address("UDP", "127.0.0.1", 5090)  # provider "inbound": callers from outside
MOBILE = "9017612345678"
MOBILE_OUT = "017612345678"
AT_HOME = Location(LocationKind.TELECOMMUTER, number=MOBILE)
OUTSIDE = "90301234567"


def pcma(body: str) -> str:
    """`body` (from `sdp_body`) answering in PCMA (+ events)."""
    return body.replace("RTP/AVP 0 101", "RTP/AVP 8 101")


def both_laws(body: str) -> str:
    """`body` (from `sdp_body`) offering PCMU and PCMA (+ events)."""
    return body.replace("RTP/AVP 0 101", "RTP/AVP 0 8 101")


def formats(message: Request | Response) -> tuple[str, ...]:
    return parse_sdp(message.body).media[0].formats


def office(*, alice_at_home: bool = True) -> Net:
    service = make_service(
        {"201": "pw201", "202": "pw202"},
        trunks={
            "prov": TrunkPeer("prov", LINE.host, LINE.port),
            "inbound": TrunkPeer("inbound", CALLERS.host, CALLERS.port),
        },
    )
    for account, address in (("201", ALICE), ("202", BOB)):
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
    net = Net(service)
    if alice_at_home:
        engine(net).locate = located({"user201": AT_HOME})
    return net


def engine(net: Net) -> CallEngine:
    return net.service.b2bua.engine


def media_of(net: Net, call_id: str) -> FakeMedia:
    media = net.service.b2bua.calls[call_id].media
    assert isinstance(media, FakeMedia)
    return media


def run(net: Net, commands: Refusal | list[Command]) -> Out:
    """Carry out portal call control as `Telephony` does."""
    assert not isinstance(commands, Refusal), commands
    net.service.b2bua.execute(commands, net.now)
    return net.drain()


@dataclass
class Caller:
    """A caller from outside, as the inbound provider plays it."""

    n: int
    invite: bytes
    from_: str
    call_id: str
    call: str = ""  # our call id for it
    dialog: PhoneDialog | None = None

    def answered(self, net: Net, ok: Response) -> None:
        """Our 200 arrived: the caller ACKs it and has a dialog with us."""
        to_value = ok.headers.get("To")
        assert to_value is not None
        self.dialog = PhoneDialog(
            phone=CALLERS,
            call_id=self.call_id,
            local=self.from_,
            remote=to_value,
            target=contact_uri(ok),
            contact=f"<sip:555000{self.n}@{CALLERS.host}:{CALLERS.port}>",
            cseq=10,
        )
        assert net.send(self.dialog.ack(10), CALLERS) == []

    def hangs_up(self, net: Net) -> Out:
        assert self.dialog is not None
        out = net.send(self.dialog.request("BYE"), CALLERS)
        assert statuses(out, CALLERS) == [200]
        return out


def dials_alice(net: Net, n: int) -> tuple[Caller, Out]:
    from_ = f'"Caller {n}" <sip:555000{n}@provider.example>;tag=out{n}'
    call_id = f"in-{n}@provider.example"
    invite = request_bytes(
        "INVITE",
        "sip:201@127.0.0.1",
        via=CALLERS,
        branch=f"z9hG4bKcaller{n}",
        from_=from_,
        to="<sip:201@127.0.0.1>",
        call_id=call_id,
        cseq=10,
        contact=f"<sip:555000{n}@{CALLERS.host}:{CALLERS.port}>",
        body=both_laws(sdp_body(f"caller{n}", 34000 + 10 * n)),
    )
    before = set(net.service.b2bua.calls)
    out = net.send(invite, CALLERS)
    caller = Caller(n, invite, from_, call_id)
    [caller.call] = set(net.service.b2bua.calls) - before
    return caller, out


@dataclass
class OnTheLine:
    caller: Caller
    line_invite: Request
    line: PhoneDialog  # the dialog as Alice's remote phone sees it


def first_call_answered(net: Net) -> OnTheLine:
    """Caller 1 dials Alice; her remote phone rings and answers in PCMA."""
    caller, out = dials_alice(net, 1)
    assert statuses(out, CALLERS) == [100]
    invite = one_request(out, LINE, "INVITE")
    assert isinstance(invite.uri, SipUri)
    assert invite.uri.user == MOBILE_OUT
    out = net.send(reply(invite, 180, tag="line1", phone=LINE, user=MOBILE_OUT), LINE)
    one_response(out, CALLERS, 180)
    answer = pcma(sdp_body("line", 31000))
    out = net.send(reply(invite, 200, tag="line1", phone=LINE, user=MOBILE_OUT, body=answer), LINE)
    one_request(out, LINE, "ACK")
    ok = one_response(out, CALLERS, 200)
    assert formats(ok) == ("8", "101")
    caller.answered(net, ok)
    net.service.b2bua.take_records()
    return OnTheLine(caller, invite, bob_dialog(invite, "line1", LINE))


def second_call_waits(net: Net) -> tuple[OnTheLine, Caller]:
    first = first_call_answered(net)
    second, out = dials_alice(net, 2)
    # Caller 2 hears ringing; nothing goes to the line, which is in a call.
    assert statuses(out, CALLERS) == [100, 180]
    assert only(out, LINE) == []
    return first, second


def answer_waiting(net: Net, second: Caller) -> Response:
    out = run(net, engine(net).answer_waiting("user201", second.call, net.now))
    assert only(out, LINE) == []
    ok = one_response(out, CALLERS, 200)
    assert ok.call_id == second.call_id
    second.answered(net, ok)
    return ok


# ---- call waiting on the line (T6) --------------------------------------------------------------


def test_call_waiting_answer_switch_and_hang_up_over_sip() -> None:
    net = office()
    first, second = second_call_waits(net)
    media1 = media_of(net, first.caller.call)
    # The line's side of call 1 ("b") hears the call-waiting tone, in PCMA.
    assert media1.playing == {"b": ("call_waiting", 8)}
    records = net.service.b2bua.take_records()
    assert [(r.call_id, r.state) for r in records] == [(second.call, CallState.WAITING)]

    ok = answer_waiting(net, second)
    media2 = media_of(net, second.call)
    # Caller 2 is answered in the codec the line already uses, at call 2's port.
    assert formats(ok) == ("8", "101")
    assert port_of(ok) == media2.local_port("a")
    assert media2.remote["a"] == ("127.0.0.1", 34020)
    # The tone stops, the line is joined to caller 2, caller 1 hears nothing.
    assert media1.playing == {}
    assert media1.joined == {"b": (media2, "a"), "a": None}
    latest = {r.call_id: r for r in net.service.b2bua.take_records()}
    assert (latest[first.caller.call].state, latest[first.caller.call].held) == (
        CallState.CONNECTED,
        True,
    )
    assert latest[second.call].state is CallState.CONNECTED

    # Caller 1, on hold, hangs up: the line is not hung up, call 2 goes on.
    out = first.caller.hangs_up(net)
    assert only(out, LINE) == []
    assert engine(net).is_carrier(first.caller.call)
    assert first.caller.call in net.service.b2bua.calls
    assert net.service.b2bua.take_records()[-1].state is CallState.ENDED
    assert net.service.b2bua.take_media_releases() == []

    # Caller 2 hangs up: now the line goes, and everything of both calls.
    out = second.hangs_up(net)
    bye = one_request(out, LINE, "BYE")
    assert bye.call_id == first.line_invite.call_id
    assert bye.to.tag == "line1"
    assert net.send(reply(bye, 200), LINE) == []
    assert net.service.b2bua.calls == {}
    assert engine(net).lines == {}
    released = net.service.b2bua.take_media_releases()
    assert len(released) == 2
    assert {id(m) for m in released} == {id(media1), id(media2)}
    assert_no_leaks(net)


def test_a_reinvite_from_the_shared_line_is_answered_here() -> None:
    net = office()
    first, second = second_call_waits(net)
    answer_waiting(net, second)
    media1 = media_of(net, first.caller.call)
    # The remote phone refreshes its session with a new media port.
    reinvite = first.line.request("INVITE", body=pcma(sdp_body("line", 31002, version=2)))
    out = net.send(reinvite, LINE)
    ok = one_response(out, LINE, 200)
    # Answered by us, at our port facing the line, in the line's codec; not
    # relayed to either caller.
    assert only(out, CALLERS) == []
    assert port_of(ok) == PORT_B
    assert formats(ok) == ("8", "101")
    assert media1.remote["b"] == ("127.0.0.1", 31002)
    assert media1.joined["b"] == (media_of(net, second.call), "a")
    assert net.send(first.line.ack(first.line.cseq), LINE) == []
    # So is one from caller 2, whose call has no branch of its own to relay to.
    assert second.dialog is not None
    reinvite = second.dialog.request(
        "INVITE", body=both_laws(sdp_body("caller2", 34022, version=2))
    )
    out = net.send(reinvite, CALLERS)
    ok = one_response(out, CALLERS, 200)
    assert only(out, LINE) == []
    assert port_of(ok) == media_of(net, second.call).local_port("a")
    assert formats(ok) == ("8", "101")
    assert media_of(net, second.call).remote["a"] == ("127.0.0.1", 34022)
    assert net.send(second.dialog.ack(second.dialog.cseq), CALLERS) == []
    # Both callers hang up; the line gets its BYE with the last one.
    assert only(first.caller.hangs_up(net), LINE) == []
    bye = one_request(second.hangs_up(net), LINE, "BYE")
    net.send(reply(bye, 200), LINE)
    assert_no_leaks(net)


def test_the_remote_phone_hanging_up_ends_both_calls() -> None:
    net = office()
    first, second = second_call_waits(net)
    answer_waiting(net, second)
    out = net.send(first.line.request("BYE"), LINE)
    assert statuses(out, LINE) == [200]
    byes = requests_to(out, CALLERS)
    assert sorted((r.method, r.call_id) for r in byes) == [
        ("BYE", first.caller.call_id),
        ("BYE", second.call_id),
    ]
    for bye in byes:
        net.send(reply(bye, 200), CALLERS)
    assert net.service.b2bua.calls == {}
    assert engine(net).lines == {}
    assert_no_leaks(net)


def test_the_remote_phone_hanging_up_rings_it_again_for_the_waiting_call() -> None:
    net = office()
    first, second = second_call_waits(net)
    out = net.send(first.line.request("BYE"), LINE)
    to_line = only(out, LINE)
    assert [m.status for m in to_line if isinstance(m, Response)] == [200]
    bye = one_request(out, CALLERS, "BYE")
    assert bye.call_id == first.caller.call_id
    # Caller 2 is still ringing: the line is dialled afresh for it.
    [invite] = [m for m in to_line if isinstance(m, Request)]
    assert invite.method == "INVITE"
    assert invite.call_id != first.line_invite.call_id
    assert isinstance(invite.uri, SipUri)
    assert invite.uri.user == MOBILE_OUT
    assert port_of(invite) == media_of(net, second.call).local_port("b")
    net.send(reply(bye, 200), CALLERS)
    out = net.send(
        reply(
            invite,
            200,
            tag="line2",
            phone=LINE,
            user=MOBILE_OUT,
            body=pcma(sdp_body("line", 31004)),
        ),
        LINE,
    )
    one_request(out, LINE, "ACK")
    ok = one_response(out, CALLERS, 200)
    assert ok.call_id == second.call_id
    assert formats(ok) == ("8", "101")
    second.answered(net, ok)
    assert engine(net).lines["user201"].carrier == second.call
    bye = one_request(second.hangs_up(net), LINE, "BYE")
    assert bye.to.tag == "line2"
    net.send(reply(bye, 200), LINE)
    assert_no_leaks(net)


def test_a_rejected_waiting_call_gets_busy() -> None:
    net = office()
    first, second = second_call_waits(net)
    out = run(net, engine(net).reject_waiting("user201", second.call, net.now))
    busy = one_response(out, CALLERS, 486)
    assert busy.call_id == second.call_id
    assert only(out, LINE) == []
    assert media_of(net, first.caller.call).playing == {}
    to_value = busy.headers.get("To")
    assert to_value is not None
    ack = request_bytes(
        "ACK",
        "sip:201@127.0.0.1",
        via=CALLERS,
        branch="z9hG4bKcaller2",
        from_=second.from_,
        to=to_value,
        call_id=second.call_id,
        cseq=10,
    )
    assert net.send(ack, CALLERS) == []
    # Call 1 is as it was; it ends as an ordinary call.
    out = first.caller.hangs_up(net)
    bye = one_request(out, LINE, "BYE")
    net.send(reply(bye, 200), LINE)
    assert_no_leaks(net)


# ---- blind transfer (T4) -----------------------------------------------------------------------


@dataclass
class Talking:
    """Alice's desk phone called Bob's, who answered in PCMA."""

    call_id: str
    alice: PhoneDialog
    bob: PhoneDialog
    media: FakeMedia


def alice_calls_bob(net: Net) -> Talking:
    out = call_from_alice(net, "202")
    invite = one_request(out, BOB, "INVITE")
    net.send(reply(invite, 180, tag="bob1", phone=BOB), BOB)
    out = net.send(
        reply(invite, 200, tag="bob1", phone=BOB, body=pcma(sdp_body("bob", 31000))), BOB
    )
    one_request(out, BOB, "ACK")
    ok = one_response(out, ALICE, 200)
    assert formats(ok) == ("8", "101")
    alice = alice_dialog(ok)
    assert net.send(alice.ack(ALICE_INVITE_CSEQ), ALICE) == []
    net.service.b2bua.take_records()
    [call_id] = net.service.b2bua.calls
    return Talking(call_id, alice, bob_dialog(invite, "bob1"), media_of(net, call_id))


def test_transfer_by_the_called_user_rings_the_target_with_the_callers_codec() -> None:
    net = office(alice_at_home=False)
    call = alice_calls_bob(net)
    # Bob, who was called, transfers Alice to an outside number.
    out = run(net, engine(net).transfer("user202", call.call_id, OUTSIDE, net.now))
    bye = one_request(out, BOB, "BYE")
    assert bye.to.tag == "bob1"
    invite = one_request(out, TRUNK, "INVITE")
    assert only(out, ALICE) == []  # Alice hears ringback, nothing else changes for her
    assert isinstance(invite.uri, SipUri)
    assert invite.uri.user == "0301234567"
    # Offered what Alice already talks (PCMA), at our port facing the callee side.
    assert formats(invite) == ("8", "101")
    assert port_of(invite) == PORT_B
    assert call.media.playing == {"a": ("ringback", 8)}
    assert net.send(reply(bye, 200), BOB) == []

    out = net.send(reply(invite, 180, tag="target1", phone=TRUNK, user="0301234567"), TRUNK)
    assert out == []  # Alice was answered long ago: no 180 for her
    target_answer = pcma(sdp_body("target", 35000))
    out = net.send(
        reply(invite, 200, tag="target1", phone=TRUNK, user="0301234567", body=target_answer),
        TRUNK,
    )
    ack = one_request(out, TRUNK, "ACK")
    assert ack.to.tag == "target1"
    assert only(out, ALICE) == []  # no second 200 for Alice, no re-INVITE
    assert call.media.playing == {}
    assert call.media.remote["b"] == ("127.0.0.1", 35000)
    assert call.media.joined["a"] == (call.media, "b")
    record = net.service.b2bua.take_records()[-1]
    assert record.state is CallState.CONNECTED
    assert "transfer answered" in (record.route or "")

    # Alice hangs up: the target gets the BYE.
    out = net.send(call.alice.request("BYE"), ALICE)
    assert statuses(out, ALICE) == [200]
    bye = one_request(out, TRUNK, "BYE")
    assert bye.to.tag == "target1"
    net.send(reply(bye, 200), TRUNK)
    assert_no_leaks(net)


def test_transfer_by_the_calling_user_replaces_leg_a_with_our_own_offer() -> None:
    net = office(alice_at_home=False)
    call = alice_calls_bob(net)
    # Alice, who placed the call, transfers Bob to an outside number.
    out = run(net, engine(net).transfer("user201", call.call_id, OUTSIDE, net.now))
    bye = one_request(out, ALICE, "BYE")
    assert bye.call_id == "call-a@127.0.0.1"
    invite = one_request(out, TRUNK, "INVITE")
    assert only(out, BOB) == []
    # Our own offer, on the side of leg A, restricted to what Bob talks.
    assert formats(invite) == ("8", "101")
    assert port_of(invite) == PORT_A
    assert call.media.playing == {"b": ("ringback", 8)}
    assert net.send(reply(bye, 200), ALICE) == []

    net.send(reply(invite, 183, tag="target1", phone=TRUNK, user="0301234567"), TRUNK)
    target_answer = pcma(sdp_body("target", 35000))
    out = net.send(
        reply(invite, 200, tag="target1", phone=TRUNK, user="0301234567", body=target_answer),
        TRUNK,
    )
    one_request(out, TRUNK, "ACK")
    assert only(out, BOB) == []
    assert call.media.playing == {}
    assert call.media.remote["a"] == ("127.0.0.1", 35000)
    assert call.media.joined["a"] == (call.media, "b")

    # The target hangs up: Bob gets the BYE.
    target = bob_dialog(invite, "target1", TRUNK)
    out = net.send(target.request("BYE"), TRUNK)
    assert statuses(out, TRUNK) == [200]
    bye = one_request(out, BOB, "BYE")
    assert bye.to.tag == "bob1"
    net.send(reply(bye, 200), BOB)
    assert_no_leaks(net)


@pytest.mark.parametrize("by", ["user202", "user201"])
def test_a_busy_transfer_target_leaves_the_party_busy_then_bye(by: str) -> None:
    net = office(alice_at_home=False)
    call = alice_calls_bob(net)
    out = run(net, engine(net).transfer(by, call.call_id, OUTSIDE, net.now))
    # The user's leg goes; the party stays: Alice if Bob transferred, else Bob.
    user_at, party_at, party_side = (BOB, ALICE, "a") if by == "user202" else (ALICE, BOB, "b")
    net.send(reply(one_request(out, user_at, "BYE"), 200), user_at)
    invite = one_request(out, TRUNK, "INVITE")
    out = net.send(reply(invite, 486, tag="target1"), TRUNK)
    one_request(out, TRUNK, "ACK")  # the transaction ACKs the failure
    assert only(out, party_at) == []  # no BYE yet: the party hears busy first
    assert call.media.playing == {party_side: ("busy", 8)}
    record = net.service.b2bua.take_records()[-1]
    assert (record.state, record.outcome, record.status) == (CallState.ENDED, "failed", 486)

    assert net.tick(FAILURE_TONE_SECONDS - 1) == []
    bye = one_request(net.tick(1), party_at, "BYE")
    net.send(reply(bye, 200), party_at)
    assert net.service.b2bua.calls == {}
    assert net.service.b2bua.take_media_releases() == [call.media]
    assert_no_leaks(net)


def test_the_party_hanging_up_while_the_target_rings_cancels_it() -> None:
    net = office(alice_at_home=False)
    call = alice_calls_bob(net)
    out = run(net, engine(net).transfer("user202", call.call_id, OUTSIDE, net.now))
    net.send(reply(one_request(out, BOB, "BYE"), 200), BOB)
    invite = one_request(out, TRUNK, "INVITE")
    net.send(reply(invite, 180, tag="target1", phone=TRUNK, user="0301234567"), TRUNK)
    out = net.send(call.alice.request("BYE"), ALICE)
    assert statuses(out, ALICE) == [200]
    cancel = one_request(out, TRUNK, "CANCEL")
    assert cancel.top_via.branch == invite.top_via.branch
    net.send(reply(cancel, 200), TRUNK)
    out = net.send(reply(invite, 487, tag="target1"), TRUNK)
    one_request(out, TRUNK, "ACK")
    assert only(out, ALICE) == []
    assert_no_leaks(net)


def test_transferring_a_call_taken_on_the_line_hangs_up_the_line() -> None:
    net = office()
    first = first_call_answered(net)
    out = run(net, engine(net).transfer("user201", first.caller.call, "202", net.now))
    bye = one_request(out, LINE, "BYE")
    assert bye.call_id == first.line_invite.call_id
    invite = one_request(out, BOB, "INVITE")
    assert formats(invite) == ("8", "101")  # what caller 1 talks with us
    assert only(out, CALLERS) == []
    net.send(reply(bye, 200), LINE)
    net.send(reply(invite, 180, tag="bob1", phone=BOB), BOB)
    out = net.send(
        reply(invite, 200, tag="bob1", phone=BOB, body=pcma(sdp_body("bob", 31000))), BOB
    )
    one_request(out, BOB, "ACK")
    assert only(out, CALLERS) == []
    assert "user201" not in engine(net).lines
    out = first.caller.hangs_up(net)
    net.send(reply(one_request(out, BOB, "BYE"), 200), BOB)
    assert_no_leaks(net)


def test_portal_call_control_refusals_send_nothing() -> None:
    net = office()
    first = first_call_answered(net)
    for refusal in (
        engine(net).answer_waiting("user201", first.caller.call, net.now),
        engine(net).transfer("user201", first.caller.call, "7777", net.now),
        engine(net).hold("nope"),
    ):
        assert isinstance(refusal, Refusal)
    assert net.drain() == []
    assert net.service.b2bua.take_records() == []
    assert media_of(net, first.caller.call).joined == {}
    out = first.caller.hangs_up(net)
    net.send(reply(one_request(out, LINE, "BYE"), 200), LINE)
    assert_no_leaks(net)
