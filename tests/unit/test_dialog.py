"""Tests of sip.dialog: creation on both sides, routing (loose and strict), CSeq rules."""

from __future__ import annotations

import pytest

from teleoffice.sip.builders import make_response, new_branch
from teleoffice.sip.dialog import Dialog, DialogState, DialogTable
from teleoffice.sip.errors import LocalProtocolError, RemoteProtocolError
from teleoffice.sip.headers import NameAddr, Via, parse_name_addr
from teleoffice.sip.message import Request, Response, parse_message
from teleoffice.sip.transaction import (
    AckReceived,
    RequestReceived,
    ResponseReceived,
)
from teleoffice.sip.uri import parse_uri
from tests.unit.simnet import Endpoint, SimNet

# Alice -> P1 -> P2 -> Bob.  P1 records the route first, P2 adds itself on top,
# so Bob sees "Record-Route: P2, P1".
INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP p2.example.com;branch=z9hG4bKp2\r\n"
    b"Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bKp1\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKa\r\n"
    b"Max-Forwards: 68\r\n"
    b'From: "Alice" <sip:alice@atlanta.example.com>;tag=a-tag\r\n'
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"Call-ID: dlg-1@pc33.atlanta.example.com\r\n"
    b"CSeq: 314 INVITE\r\n"
    b"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Length: 0\r\n\r\n"
)
BOB_CONTACT = NameAddr(parse_uri("sip:bob@192.0.2.4"))
VIA = Via("UDP", "192.0.2.4", 5060, (("branch", "z9hG4bKnew"),))


def request(data: bytes = INVITE) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def wire(msg: Request | Response) -> Request | Response:
    return parse_message(msg.to_bytes())


def ok_from_bob(req: Request, status: int = 200, contact: str = "<sip:bob@192.0.2.4>") -> Response:
    resp = make_response(req, status, to_tag="b-tag", headers=[("Contact", contact)])
    for value in req.headers.get_all("Record-Route"):
        resp.headers.add("Record-Route", value)
    back = wire(resp)
    assert isinstance(back, Response)
    return back


def state_of(dialog: Dialog) -> DialogState:
    return dialog.state  # a call, so mypy does not keep a narrowed state across updates


def routes(req: Request) -> list[str]:
    return [str(r.uri) for r in req.addr_list("Route")]


def uas_dialog(data: bytes = INVITE) -> Dialog:
    return Dialog.from_uas(request(data), "b-tag", BOB_CONTACT)


def test_uas_dialog_state_follows_12_1_1() -> None:
    d = uas_dialog()
    assert d.id == ("dlg-1@pc33.atlanta.example.com", "b-tag", "a-tag")
    assert d.remote_uri == NameAddr(parse_uri("sip:alice@atlanta.example.com"), "Alice")
    assert d.local_uri == NameAddr(parse_uri("sip:bob@biloxi.example.com"), "Bob")
    assert (d.local_seq, d.remote_seq) == (0, 314)
    assert d.remote_target == parse_uri("sip:alice@pc33.atlanta.example.com")
    assert [str(r.uri) for r in d.route_set] == ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
    assert d.state is DialogState.CONFIRMED
    assert not d.secure
    assert d.local_contact == BOB_CONTACT


def test_uac_dialog_reverses_the_route_set() -> None:
    invite = request()
    d = Dialog.from_uac(invite, ok_from_bob(invite))
    assert d.id == ("dlg-1@pc33.atlanta.example.com", "a-tag", "b-tag")
    assert [str(r.uri) for r in d.route_set] == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert d.remote_target == parse_uri("sip:bob@192.0.2.4")
    assert (d.local_seq, d.remote_seq) == (314, None)
    assert d.local_uri.tag is None
    assert d.remote_uri.tag is None
    assert d.state is DialogState.CONFIRMED


def test_bye_in_both_directions_with_loose_routers() -> None:
    invite = request()
    uac = Dialog.from_uac(invite, ok_from_bob(invite))
    uas = uas_dialog()

    sent, hop = uac.create_request("BYE", via=VIA)
    bye = request(sent.to_bytes())
    assert bye.uri == parse_uri("sip:bob@192.0.2.4")  # the remote target
    assert routes(bye) == ["sip:p1.example.com;lr", "sip:p2.example.com;lr"]
    assert hop == parse_uri("sip:p1.example.com;lr")
    assert (bye.cseq.seq, bye.cseq.method) == (315, "BYE")
    assert bye.from_.tag == "a-tag"
    assert bye.to.tag == "b-tag"
    assert bye.call_id == invite.call_id
    assert bye.max_forwards == 70

    bye2, hop2 = uas.create_request("BYE", via=VIA)
    assert bye2.uri == parse_uri("sip:alice@pc33.atlanta.example.com")
    assert routes(bye2) == ["sip:p2.example.com;lr", "sip:p1.example.com;lr"]
    assert hop2 == parse_uri("sip:p2.example.com;lr")
    assert bye2.cseq.seq == 1  # the UAS's local sequence started empty
    assert bye2.from_.tag == "b-tag"
    assert bye2.to.tag == "a-tag"


def test_strict_router_first_in_route_set() -> None:
    data = INVITE.replace(
        b"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>",
        b"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;method=INVITE?X-A=1>",
    )
    invite = request(data)
    uac = Dialog.from_uac(invite, ok_from_bob(invite))
    assert not uac.route_set[0].sip_uri.has_param("lr")
    sent, hop = uac.create_request("INFO", via=VIA, body=b"x", content_type="text/plain")
    req = request(sent.to_bytes())
    # Section 12.2.1.1: the strict router becomes the Request-URI (without what a
    # Request-URI may not carry), the remote target travels as the last Route.
    assert req.uri == parse_uri("sip:p1.example.com")
    assert routes(req) == ["sip:p2.example.com;lr", "sip:bob@192.0.2.4"]
    assert hop == uac.route_set[0].sip_uri
    assert req.body == b"x"
    assert req.headers.get("Content-Type") == "text/plain"


def test_no_route_set_goes_straight_to_the_target() -> None:
    data = INVITE.replace(
        b"Record-Route: <sip:p2.example.com;lr>, <sip:p1.example.com;lr>\r\n", b""
    )
    invite = request(data)
    uac = Dialog.from_uac(invite, ok_from_bob(invite, contact="<sip:bob@192.0.2.4;transport=tcp>"))
    req, hop = uac.create_request("OPTIONS", via=VIA)
    assert req.uri == hop == parse_uri("sip:bob@192.0.2.4;transport=tcp")
    assert "Route" not in req.headers


def test_cseq_rules_for_our_requests() -> None:
    invite = request()
    d = Dialog.from_uac(invite, ok_from_bob(invite))
    ack, _ = d.create_ack(314, via=Via("UDP", "h", None, (("branch", new_branch()),)))
    assert (ack.cseq.seq, ack.cseq.method) == (314, "ACK")
    assert d.local_seq == 314  # the ACK did not count
    reinvite, _ = d.create_request("INVITE", via=VIA, contact=NameAddr(parse_uri("sip:alice@h")))
    assert reinvite.cseq.seq == 315
    assert len(reinvite.contacts) == 1
    assert d.create_request("BYE", via=VIA)[0].cseq.seq == 316
    for method in ("ACK", "CANCEL"):
        with pytest.raises(LocalProtocolError):
            d.create_request(method, via=VIA)
    d.local_seq = 2**31 - 1
    with pytest.raises(LocalProtocolError):
        d.create_request("BYE", via=VIA)
    d.local_seq = 1
    d.state = DialogState.TERMINATED
    with pytest.raises(LocalProtocolError):
        d.create_request("BYE", via=VIA)


def in_dialog(method: str, seq: int, contact: str | None = None) -> Request:
    contact_line = f"Contact: {contact}\r\n" if contact else ""
    return request(
        (
            f"{method} sip:bob@192.0.2.4 SIP/2.0\r\n"
            "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK" + f"{method}{seq}\r\n"
            "From: <sip:alice@atlanta.example.com>;tag=a-tag\r\n"
            "To: <sip:bob@biloxi.example.com>;tag=b-tag\r\n"
            "Call-ID: dlg-1@pc33.atlanta.example.com\r\n"
            f"CSeq: {seq} {method}\r\n{contact_line}Content-Length: 0\r\n\r\n"
        ).encode()
    )


def test_remote_cseq_ordering_gives_500() -> None:
    d = uas_dialog()
    assert d.receive_request(in_dialog("INFO", 320)) is None
    assert d.remote_seq == 320
    assert d.receive_request(in_dialog("INFO", 319)) == 500
    assert d.remote_seq == 320
    assert d.receive_request(in_dialog("INFO", 320)) is None
    # ACK and CANCEL carry their INVITE's number: never refused, never counted.
    assert d.receive_request(in_dialog("ACK", 314)) is None
    assert d.receive_request(in_dialog("CANCEL", 1)) is None
    assert d.remote_seq == 320
    assert d.receive_request(in_dialog("BYE", 400)) is None
    assert d.remote_seq == 400


def test_remote_seq_is_set_by_the_first_request_on_the_uac_side() -> None:
    invite = request()
    d = Dialog.from_uac(invite, ok_from_bob(invite))
    assert d.remote_seq is None
    assert d.receive_request(in_dialog("BYE", 5)) is None
    assert d.remote_seq == 5


def test_target_refresh() -> None:
    d = uas_dialog()
    assert d.receive_request(in_dialog("INVITE", 315, "<sip:alice@198.51.100.7:5070>")) is None
    assert d.remote_target == parse_uri("sip:alice@198.51.100.7:5070")
    # BYE is no target refresh request; a Contact in it changes nothing.
    d.receive_request(in_dialog("BYE", 316, "<sip:alice@203.0.113.1>"))
    assert d.remote_target == parse_uri("sip:alice@198.51.100.7:5070")
    d.receive_request(in_dialog("UPDATE", 317, "<sip:alice@203.0.113.2>"))
    assert d.remote_target == parse_uri("sip:alice@203.0.113.2")
    assert d.receive_request(in_dialog("UPDATE", 318, "<tel:+15551234>")) == 400


def test_early_dialog_confirmed_by_2xx_recomputes_routes() -> None:
    invite = request()
    ringing = ok_from_bob(invite, 180, contact="<sip:bob@192.0.2.99>")
    d = Dialog.from_uac(invite, ringing)
    assert state_of(d) is DialogState.EARLY
    assert d.remote_target == parse_uri("sip:bob@192.0.2.99")
    ok = ok_from_bob(invite)
    ok.set_addr_list("Record-Route", [parse_name_addr("<sip:p9.example.com;lr>")])
    d.update_from_response(ok)
    assert d.state is DialogState.CONFIRMED
    assert [str(r.uri) for r in d.route_set] == ["sip:p9.example.com;lr"]
    assert d.remote_target == parse_uri("sip:bob@192.0.2.4")


def test_early_dialog_ends_with_a_failure_and_any_dialog_with_481() -> None:
    invite = request()
    d = Dialog.from_uac(invite, ok_from_bob(invite, 183))
    d.update_from_response(ok_from_bob(invite, 486))
    assert d.state is DialogState.TERMINATED
    d2 = Dialog.from_uac(invite, ok_from_bob(invite))
    bye, _ = d2.create_request("BYE", via=VIA)
    resp = make_response(bye, 481)
    d2.update_from_response(resp)
    assert d2.state is DialogState.TERMINATED


def test_2xx_to_reinvite_refreshes_target_and_foreign_responses_refused() -> None:
    invite = request()
    d = Dialog.from_uac(invite, ok_from_bob(invite))
    reinvite, _ = d.create_request("INVITE", via=VIA)
    d.update_from_response(
        make_response(reinvite, 200, headers=[("Contact", "<sip:bob@192.0.2.77>")])
    )
    assert d.remote_target == parse_uri("sip:bob@192.0.2.77")
    info, _ = d.create_request("INFO", via=VIA)
    d.update_from_response(make_response(info, 200, headers=[("Contact", "<sip:bob@192.0.2.78>")]))
    assert d.remote_target == parse_uri("sip:bob@192.0.2.77")
    fork = make_response(invite, 200, to_tag="other-fork")
    with pytest.raises(LocalProtocolError):
        d.update_from_response(fork)


def test_dialog_creation_errors_and_rfc2543_peers() -> None:
    invite = request()
    with pytest.raises(LocalProtocolError):
        Dialog.from_uac(invite, make_response(invite, 100))
    with pytest.raises(LocalProtocolError):
        Dialog.from_uac(invite, make_response(invite, 486))
    no_contact = make_response(invite, 200, to_tag="b")
    with pytest.raises(RemoteProtocolError):
        Dialog.from_uac(invite, no_contact)
    # An 18x without Contact: the target stays the Request-URI until the 2xx.
    early = Dialog.from_uac(invite, make_response(invite, 180, to_tag="b"))
    assert early.remote_target == invite.uri
    # An RFC 2543 UAS may answer without a To tag: the remote tag is empty.
    old = make_response(invite, 200, to_tag="x", headers=[("Contact", "<sip:bob@192.0.2.4>")])
    old.headers.set("To", "Bob <sip:bob@biloxi.example.com>")
    old.invalidate()
    assert Dialog.from_uac(invite, old).remote_tag == ""
    no_contact_req = request(
        INVITE.replace(b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n", b"")
    )
    with pytest.raises(RemoteProtocolError):
        Dialog.from_uas(no_contact_req, "t", None)
    with pytest.raises(LocalProtocolError):
        Dialog.from_uas(in_dialog("ACK", 1), "t", None)


def test_secure_flag() -> None:
    data = INVITE.replace(b"INVITE sip:bob@", b"INVITE sips:bob@").replace(
        b"Via: SIP/2.0/UDP p2.example.com", b"Via: SIP/2.0/TLS p2.example.com"
    )
    assert uas_dialog(data).secure
    assert not uas_dialog(INVITE.replace(b"INVITE sip:bob@", b"INVITE sips:bob@")).secure


def test_dialog_table_lookups() -> None:
    table = DialogTable()
    uas = uas_dialog()
    table.add(uas)
    assert len(table) == 1
    assert uas.id in table
    table.add(uas)  # adding the same object twice is harmless
    with pytest.raises(LocalProtocolError):
        table.add(uas_dialog())
    # An incoming in-dialog request: its To tag is our local tag.
    assert table.find(in_dialog("BYE", 400), as_uas=True) is uas
    assert table.find(in_dialog("BYE", 400), as_uas=False) is None
    # A request with no To tag is not in any dialog.
    assert table.find(request(), as_uas=True) is None

    invite = request()
    uac = Dialog.from_uac(invite, ok_from_bob(invite))
    table.add(uac)
    assert table.find(ok_from_bob(invite), as_uas=False) is uac
    assert list(table) == [uas, uac]
    assert table.get(uac.id) is uac
    assert table.remove(uac) is uac
    assert table.remove(uas.id) is uas
    assert table.remove(uas.id) is None
    assert len(table) == 0


def test_call_over_the_simulated_network() -> None:
    """INVITE, 200, ACK and BYE between two transaction layers, with a dialog on
    each side and a lossy start: every message crosses as bytes."""
    net = SimNet()
    uas_dialogs = DialogTable()
    uac_dialogs = DialogTable()
    results: dict[str, object] = {}

    def bob(ep: Endpoint, event: object) -> None:
        now = ep.clock.now
        if isinstance(event, RequestReceived):
            req = event.request
            existing = uas_dialogs.find(req, as_uas=True)
            if req.method == "INVITE" and existing is None:
                resp = make_response(
                    req, 200, to_tag="bob", headers=[("Contact", "<sip:bob@192.0.2.2>")]
                )
                uas_dialogs.add(
                    Dialog.from_uas(req, "bob", NameAddr(parse_uri("sip:bob@192.0.2.2")))
                )
                ep.layer.send_response(event.key, resp, now)
            elif existing is not None:
                status = existing.receive_request(req) or 200
                if req.method == "BYE":
                    existing.state = DialogState.TERMINATED
                    uas_dialogs.remove(existing)
                ep.layer.send_response(event.key, make_response(req, status), now)
        elif isinstance(event, AckReceived):
            results["ack_dialog"] = uas_dialogs.find(event.request, as_uas=True)

    def alice(ep: Endpoint, event: object) -> None:
        if not isinstance(event, ResponseReceived):
            return
        resp = event.response
        if resp.cseq.method == "INVITE" and resp.status == 200:
            dialog = uac_dialogs.find(resp, as_uas=False)
            if dialog is None:
                dialog = Dialog.from_uac(invite, resp)
                uac_dialogs.add(dialog)
            ack, hop = dialog.create_ack(resp.cseq.seq, via=ep.via())
            ep.layer.send_stateless(ack, server.address())
            bye, hop = dialog.create_request("BYE", via=ep.via())
            assert hop == parse_uri("sip:bob@192.0.2.2")
            ep.layer.send_request(bye, server.address(), ep.clock.now)
        elif resp.cseq.method == "BYE":
            results["bye"] = resp.status

    server = net.add("bob", "192.0.2.2", handler=bob)
    client = net.add("alice", "192.0.2.1", handler=alice)
    invite = client.request_to(server)
    net.drop_next(lambda m: isinstance(m, Request) and m.method == "INVITE")
    client.layer.send_request(invite, server.address(), 0.0)
    net.run()
    assert isinstance(results["ack_dialog"], Dialog)
    assert results["bye"] == 200
    assert len(uas_dialogs) == 0
    assert len(uac_dialogs) == 1
    assert client.layer.transaction_count() == server.layer.transaction_count() == 0
