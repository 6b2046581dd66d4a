"""Tests of sip.builders: identifiers, responses (RFC 3261 section 8.2.6), ACK and CANCEL."""

from __future__ import annotations

import pytest

from teleoffice.sip.builders import (
    MAGIC_COOKIE,
    REASON_PHRASES,
    make_ack_for_non2xx,
    make_cancel,
    make_request,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    reason_phrase,
)
from teleoffice.sip.errors import LocalProtocolError
from teleoffice.sip.headers import NameAddr, Via
from teleoffice.sip.message import Request, Response, parse_message
from teleoffice.sip.uri import SipUri

INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP proxy.example.net;branch=z9hG4bKp1;received=192.0.2.9\r\n"
    b"Via: SIP/2.0/UDP pc.example.org:5062;branch=z9hG4bKa1;rport=5062\r\n"
    b"Max-Forwards: 69\r\n"
    b'From: "Alice" <sip:alice@example.org>;tag=abc\r\n'
    b"To: Bob <sip:bob@example.com>\r\n"
    b"Call-ID: 42@pc.example.org\r\n"
    b"CSeq: 7 INVITE\r\n"
    b"Route: <sip:p1.example.net;lr>, <sip:p2.example.net;lr>\r\n"
    b"Contact: <sip:alice@pc.example.org:5062>\r\n"
    b"Timestamp: 54.2\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def parsed(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def roundtrip(msg: Response | Request) -> Response | Request:
    return parse_message(msg.to_bytes())


def test_new_branch_has_cookie_and_is_unique() -> None:
    branches = {new_branch() for _ in range(200)}
    assert len(branches) == 200
    assert all(b.startswith(MAGIC_COOKIE) and len(b) > len(MAGIC_COOKIE) + 16 for b in branches)


def test_identifiers_use_injected_randomness() -> None:
    def rand(n: int) -> bytes:
        return b"\x01" * n

    assert new_branch(rand) == MAGIC_COOKIE + "01" * 12
    assert new_tag(rand) == "01" * 8
    assert new_call_id("pbx.example.com", rand) == "01" * 16 + "@pbx.example.com"
    assert new_tag() != new_tag()


def test_response_echoes_identity_headers_in_order() -> None:
    req = parsed(INVITE)
    resp = roundtrip(make_response(req, 486))
    assert isinstance(resp, Response)
    assert resp.status == 486
    assert resp.reason == "Busy Here"
    assert resp.headers.get_all("Via") == req.headers.get_all("Via")
    assert resp.from_ == req.from_
    assert resp.call_id == req.call_id
    assert resp.cseq == req.cseq
    assert resp.to.uri == req.to.uri
    assert resp.to.display_name == "Bob"
    assert resp.to.tag
    # Route, Contact, Max-Forwards and Timestamp belong to the request only.
    for name in ("Route", "Contact", "Max-Forwards", "Timestamp"):
        assert name not in resp.headers


def test_to_tag_added_once_and_kept() -> None:
    req = parsed(INVITE)
    first = make_response(req, 180, to_tag="t1")
    assert first.to.tag == "t1"
    # A request already carrying a To tag (in-dialog) keeps it: never a second tag.
    in_dialog = parsed(
        INVITE.replace(b"To: Bob <sip:bob@example.com>", b"To: <sip:bob@example.com>;tag=t1")
    )
    again = roundtrip(make_response(in_dialog, 200, to_tag="other"))
    assert again.to.tag == "t1"
    assert again.headers.get("To") is not None
    assert (again.headers.get("To") or "").count("tag=") == 1


def test_trying_has_no_tag_but_echoes_timestamp() -> None:
    req = parsed(INVITE)
    trying = roundtrip(make_response(req, 100))
    assert trying.to.tag is None
    assert trying.headers.get("Timestamp") == "54.2"
    assert make_response(req, 100, to_tag="x").to.tag == "x"
    assert "Timestamp" not in make_response(req, 200).headers


def test_addr_spec_to_gets_header_tag() -> None:
    req = parsed(
        INVITE.replace(b"To: Bob <sip:bob@example.com>", b"To: sip:bob@example.com;user=phone")
    )
    resp = roundtrip(make_response(req, 404, to_tag="zz"))
    assert resp.to.tag == "zz"
    assert resp.to.param("user") == "phone"
    assert isinstance(resp.to.uri, SipUri)
    assert resp.to.uri.params == ()


def test_response_extra_headers_body_and_reason() -> None:
    req = parsed(INVITE)
    resp = make_response(
        req,
        200,
        "Fine",
        headers=[("Contact", "<sip:bob@192.0.2.2>"), ("Supported", "timer")],
        body=b"v=0\r\n",
        content_type="application/sdp",
    )
    back = roundtrip(resp)
    assert isinstance(back, Response)
    assert back.reason == "Fine"
    assert back.body == b"v=0\r\n"
    assert back.headers.get("Content-Type") == "application/sdp"
    assert back.headers.get("Content-Length") == "5"
    assert [c.uri for c in back.contacts] == [SipUri(host="192.0.2.2", user="bob")]


@pytest.mark.parametrize(
    ("status", "phrase"),
    [
        (100, "Trying"),
        (180, "Ringing"),
        (181, "Call Is Being Forwarded"),
        (182, "Queued"),
        (183, "Session Progress"),
        (200, "OK"),
        (202, "Accepted"),
        (204, "No Notification"),
        (300, "Multiple Choices"),
        (301, "Moved Permanently"),
        (302, "Moved Temporarily"),
        (305, "Use Proxy"),
        (380, "Alternative Service"),
        (400, "Bad Request"),
        (401, "Unauthorized"),
        (402, "Payment Required"),
        (403, "Forbidden"),
        (404, "Not Found"),
        (405, "Method Not Allowed"),
        (406, "Not Acceptable"),
        (407, "Proxy Authentication Required"),
        (408, "Request Timeout"),
        (410, "Gone"),
        (412, "Conditional Request Failed"),
        (413, "Request Entity Too Large"),
        (414, "Request-URI Too Long"),
        (415, "Unsupported Media Type"),
        (416, "Unsupported URI Scheme"),
        (420, "Bad Extension"),
        (421, "Extension Required"),
        (423, "Interval Too Brief"),
        (429, "Provide Referrer Identity"),
        (433, "Anonymity Disallowed"),
        (480, "Temporarily Unavailable"),
        (481, "Call/Transaction Does Not Exist"),
        (482, "Loop Detected"),
        (483, "Too Many Hops"),
        (484, "Address Incomplete"),
        (485, "Ambiguous"),
        (486, "Busy Here"),
        (487, "Request Terminated"),
        (488, "Not Acceptable Here"),
        (489, "Bad Event"),
        (491, "Request Pending"),
        (493, "Undecipherable"),
        (494, "Security Agreement Required"),
        (500, "Server Internal Error"),
        (501, "Not Implemented"),
        (502, "Bad Gateway"),
        (503, "Service Unavailable"),
        (504, "Server Time-out"),
        (505, "Version Not Supported"),
        (513, "Message Too Large"),
        (580, "Precondition Failure"),
        (600, "Busy Everywhere"),
        (603, "Decline"),
        (604, "Does Not Exist Anywhere"),
        (606, "Not Acceptable"),
    ],
)
def test_reason_phrases(status: int, phrase: str) -> None:
    assert REASON_PHRASES[status] == phrase
    assert make_response(parsed(INVITE), status).reason == phrase


def test_unknown_codes_get_a_class_phrase_and_bad_codes_raise() -> None:
    assert reason_phrase(299) == "Success"
    assert reason_phrase(499) == "Client Error"
    with pytest.raises(LocalProtocolError):
        make_response(parsed(INVITE), 99)
    with pytest.raises(LocalProtocolError):
        make_response(parsed(INVITE), 700)


def test_make_request_has_mandatory_headers() -> None:
    via = Via("UDP", "192.0.2.1", 5070, (("branch", "z9hG4bKxyz"),))
    req = make_request(
        "OPTIONS",
        SipUri(host="example.com", user="bob"),
        from_=NameAddr(SipUri(host="example.org", user="alice"), params=(("tag", "t"),)),
        to=NameAddr(SipUri(host="example.com", user="bob")),
        call_id="c1@example.org",
        cseq=3,
        via=via,
        contact=NameAddr(SipUri(host="192.0.2.1", port=5070, user="alice")),
        headers=[("Route", "<sip:proxy.example.com;lr>"), ("Accept", "application/sdp")],
    )
    back = roundtrip(req)
    assert isinstance(back, Request)
    assert back.method == "OPTIONS"
    assert back.top_via == via
    assert back.max_forwards == 70
    assert back.cseq.seq == 3
    assert back.cseq.method == "OPTIONS"
    assert back.from_.tag == "t"
    assert back.to.tag is None
    assert back.call_id == "c1@example.org"
    assert len(back.contacts) == 1
    assert [str(r.uri) for r in back.addr_list("Route")] == ["sip:proxy.example.com;lr"]
    assert back.headers.get("Content-Length") == "0"


def test_make_request_refuses_missing_branch_and_bad_cseq() -> None:
    def build(cseq: int, via: Via) -> Request:
        return make_request(
            "BYE",
            SipUri(host="b"),
            from_=NameAddr(SipUri(host="a"), params=(("tag", "t"),)),
            to=NameAddr(SipUri(host="b")),
            call_id="c",
            cseq=cseq,
            via=via,
        )

    good_via = Via("UDP", "a", None, (("branch", "z9hG4bK1"),))
    assert build(2**31 - 1, good_via).cseq.seq == 2**31 - 1
    with pytest.raises(LocalProtocolError):
        build(1, Via("UDP", "a"))
    with pytest.raises(LocalProtocolError):
        build(2**31, good_via)


def test_ack_for_non2xx_follows_17_1_1_3() -> None:
    invite = parsed(INVITE)
    response = roundtrip(make_response(invite, 486, to_tag="remote"))
    assert isinstance(response, Response)
    ack = roundtrip(make_ack_for_non2xx(invite, response))
    assert isinstance(ack, Request)
    assert ack.method == "ACK"
    assert ack.uri == invite.uri
    assert ack.vias == [invite.top_via]  # one Via: the INVITE's top one, same branch
    assert ack.to.tag == "remote"
    assert ack.from_ == invite.from_
    assert ack.call_id == invite.call_id
    assert (ack.cseq.seq, ack.cseq.method) == (7, "ACK")
    assert ack.headers.get_all("Route") == invite.headers.get_all("Route")
    assert ack.body == b""
    with pytest.raises(LocalProtocolError):
        make_ack_for_non2xx(invite, make_response(invite, 200))


def test_cancel_follows_9_1() -> None:
    invite = parsed(INVITE)
    cancel = roundtrip(make_cancel(invite))
    assert isinstance(cancel, Request)
    assert cancel.method == "CANCEL"
    assert cancel.uri == invite.uri
    assert cancel.vias == [invite.top_via]
    assert cancel.to == invite.to  # no tag: the CANCEL targets the transaction
    assert cancel.from_ == invite.from_
    assert (cancel.cseq.seq, cancel.cseq.method) == (7, "CANCEL")
    assert cancel.headers.get_all("Route") == invite.headers.get_all("Route")
    with pytest.raises(LocalProtocolError):
        make_cancel(cancel)
