"""Fuzzing the SIP message parser, its header parsers, the error-answer path and
the stream framer with mutants of real messages.

The property everywhere: given bytes from the network, the code returns a
value or raises the error it documents (`ParseError` for the parser and the
header parsers, `FramingError` for the framer), never anything else, within the
per-example deadline. A message that parses must also serialize to bytes that
parse again (the README's "a message always parses back to what it was"), and
so must the 400 the server would send for a message that did not.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from teleoffice.server.sip_service import error_response_from_raw, stamp_via
from teleoffice.sip.errors import ParseError
from teleoffice.sip.framing import Frame, FramingError, StreamFramer
from teleoffice.sip.headers import (
    parse_content_type,
    parse_cseq,
    parse_name_addr,
    parse_via,
    split_list,
)
from teleoffice.sip.message import MessageParseError, Request, Response, parse_message
from teleoffice.sip.transaction import Address, response_address
from teleoffice.sip.uas import UasPolicy, check_request
from teleoffice.sip.uri import parse_uri
from tests.fuzz.known import is_known
from tests.fuzz.mutate import fuzzing, mutants, text_mutants

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "rfc4475"

_SDP = (
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\n"
    b"c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"
)
_PIDF = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:201@pbx.example">'
    b'<tuple id="t1"><status><basic>open</basic></status></tuple></presence>\n'
)


def _message(start: str, headers: list[str], body: bytes = b"") -> bytes:
    head = "\r\n".join([start, *headers, f"Content-Length: {len(body)}"])
    return head.encode() + b"\r\n\r\n" + body


# What phones, trunks and the PBX itself really send: the shapes the parser's
# deep paths are written for.
HANDWRITTEN = [
    _message(
        "INVITE sip:202@pbx.example SIP/2.0",
        [
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport",
            "Max-Forwards: 70",
            'From: "Alice Example" <sip:201@pbx.example>;tag=1928301774',
            "To: <sip:202@pbx.example>",
            "Call-ID: a84b4c76e66710@192.0.2.10",
            "CSeq: 314159 INVITE",
            'Contact: <sip:201@192.0.2.10:5060;transport=udp>;+sip.instance="<urn:uuid:1>"',
            "Allow: INVITE, ACK, CANCEL, BYE, REFER, NOTIFY, OPTIONS",
            "Supported: replaces, timer",
            "Session-Expires: 1800;refresher=uac",
            'P-Asserted-Identity: "Alice" <sip:201@pbx.example>',
            "Content-Type: application/sdp",
        ],
        _SDP,
    ),
    _message(
        "REGISTER sip:pbx.example SIP/2.0",
        [
            "Via: SIP/2.0/TCP [2001:db8::10]:5060;branch=z9hG4bKnashds7",
            "Max-Forwards: 70",
            "From: <sip:201@pbx.example>;tag=456248",
            "To: <sip:201@pbx.example>",
            "Call-ID: 843817637684230@998sdasdh09",
            "CSeq: 1826 REGISTER",
            "Contact: <sip:201@[2001:db8::10]:5060;transport=tcp>;expires=3600;q=0.7",
            "Expires: 7200",
            'Authorization: Digest username="201", realm="teleoffice", '
            'nonce="AAABjXyz", uri="sip:pbx.example", response="0123456789abcdef0123456789abcdef", '
            'algorithm=MD5, cnonce="0a4f113b", qop=auth, nc=00000001',
        ],
    ),
    _message(
        "SIP/2.0 401 Unauthorized",
        [
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKnashds7;received=192.0.2.10;rport=5060",
            "From: <sip:201@pbx.example>;tag=456248",
            "To: <sip:201@pbx.example>;tag=2493k59kd",
            "Call-ID: 843817637684230@998sdasdh09",
            "CSeq: 1826 REGISTER",
            'WWW-Authenticate: Digest realm="teleoffice", nonce="AAABjXyz", opaque="5ccc", '
            'algorithm=MD5, qop="auth"',
        ],
    ),
    _message(
        "SUBSCRIBE sip:203@pbx.example SIP/2.0",
        [
            "v: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK-sub1",
            "f: sip:201@pbx.example;tag=s1",
            "t: sip:203@pbx.example",
            "i: sub-1@192.0.2.10",
            "CSeq: 1 SUBSCRIBE",
            "m: <sip:201@192.0.2.10>",
            "o: presence",
            "Accept: application/pidf+xml, application/dialog-info+xml",
            "Expires: 3600",
        ],
    ),
    _message(
        "PUBLISH sip:201@pbx.example SIP/2.0",
        [
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-pub1",
            "Max-Forwards: 70",
            "From: <sip:201@pbx.example>;tag=p1",
            "To: <sip:201@pbx.example>",
            "Call-ID: pub-1@192.0.2.10",
            "CSeq: 7 PUBLISH",
            "Event: presence",
            "SIP-If-Match: dx200xyz",
            "Content-Type: application/pidf+xml",
        ],
        _PIDF,
    ),
    _message(
        "REFER sip:202@192.0.2.20:5060 SIP/2.0",
        [
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-refer",
            "Max-Forwards: 70",
            "From: <sip:201@pbx.example>;tag=r1",
            "To: <sip:202@pbx.example>;tag=r2",
            "Call-ID: refer-1@192.0.2.10",
            "CSeq: 3 REFER",
            "Refer-To: <sip:203@pbx.example?Replaces=abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2>",
            "Referred-By: <sip:201@pbx.example>",
            "Route: <sip:pbx.example;lr>, <sip:edge.example;lr>",
            "Date: Sat, 13 Nov 2010 23:29:00 GMT",
        ],
    ),
    _message(
        "SIP/2.0 180 Ringing",
        [
            "Via: SIP/2.0/UDP pbx.example;branch=z9hG4bK-b2b;received=192.0.2.1",
            "Record-Route: <sip:pbx.example;lr>",
            "From: <sip:201@pbx.example>;tag=a",
            "To: <sip:202@pbx.example>;tag=b",
            "Call-ID: ring@pbx",
            "CSeq: 2 INVITE",
            "Contact: *",
        ],
    ),
]


def _corpus() -> list[bytes]:
    if not CORPUS.is_dir():  # the shared torture messages, where this checkout has them
        return []
    return [path.read_bytes() for path in sorted(CORPUS.glob("*.dat"))]


SEEDS = HANDWRITTEN + _corpus()
SIP_TOKENS = (
    b"sip:",
    b"sips:",
    b"tel:+1",
    b"@",
    b"[::1]",
    b"[2001:db8::1]:5060",
    b";branch=z9hG4bK",
    b";tag=",
    b";lr",
    b";rport",
    b";received=",
    b"Via: SIP/2.0/UDP h\r\n",
    b"To: <sip:a@b>\r\n",
    b"Content-Length: 10\r\n",
    b"Content-Length: 99999999999\r\n",
    b"CSeq: 1 INVITE\r\n",
    b"Contact: *\r\n",
    b"SIP/2.0",
    b"SIP/3.0",
    b"*",
    b"?",
    b"&",
    b"<sip:a@b>",
    b'"display"',
)
HEADER_SEEDS = [
    '"Alice Example" <sip:201@pbx.example;user=phone>;tag=1928301774',
    "sip:201@[2001:db8::1]:5060;transport=tcp",
    "<sips:%61lice@pbx.example?subject=hi&priority=urgent>;expires=60",
    "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds;rport;received=192.0.2.1",
    "SIP/2.0/TCP [2001:db8::10];branch=z9hG4bKx;maddr=224.0.0.1;ttl=1",
    "314159 INVITE",
    "application/sdp; charset=utf-8",
    'multipart/mixed;boundary="unique-boundary-1"',
    '<sip:a@b>, "x, y" <sip:c@d>;q=0.5, sip:e@f',
]

SOURCE = Address("UDP", "192.0.2.99", 5060)
POLICY = UasPolicy(
    allowed_methods=frozenset(
        {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "SUBSCRIBE", "NOTIFY", "REFER"}
    )
)


def _check_parsed(message: Request | Response) -> None:
    """What the server does with any message that parsed; ParseError is its only way out."""
    again = parse_message(message.to_bytes())
    assert type(again) is type(message)
    assert again.to_bytes() == message.to_bytes()
    if isinstance(message, Request):
        answer = check_request(message, POLICY)
        if answer is not None:
            parse_message(answer.to_bytes())
    # Header fields parsed on demand by the call and presence code.
    for name in ("P-Asserted-Identity", "Referred-By", "Refer-To", "Path", "Diversion"):
        with contextlib.suppress(ParseError):
            message.addr_list(name)


def _check_unparseable(error: MessageParseError) -> None:
    """The 400 (or 505) the server addresses from a partial message must be sound."""
    partial = error.partial
    if partial is None:
        return
    response = error_response_from_raw(partial, error.status, error.reason)
    if response is None:
        return
    # As SipService._answer_unparseable: stamp the Via, find where to send it.
    try:
        vias = response.vias
        partial.vias = [stamp_via(vias[0], SOURCE), *vias[1:]]
        response_address(partial, SOURCE)
    except ParseError:
        return
    response.vias = partial.vias
    response.to_bytes()


def check_datagram(data: bytes) -> None:
    """The whole property for one datagram, on both transports' rules."""
    try:
        for stream in (False, True):
            try:
                message = parse_message(data, stream=stream)
            except MessageParseError as error:
                _check_unparseable(error)
                continue
            _check_parsed(message)
    except Exception as exc:
        if not is_known(exc):
            raise


@fuzzing(scale=2)
@given(mutants(SEEDS, SIP_TOKENS, max_steps=5))
def test_parser_returns_or_raises_parse_error_on_mutated_messages(data: bytes) -> None:
    check_datagram(data)


@fuzzing(scale=0.5)
@given(st.binary(max_size=2000))
def test_parser_returns_or_raises_parse_error_on_noise(data: bytes) -> None:
    check_datagram(data)


_HEADER_PARSERS = (parse_name_addr, parse_via, parse_cseq, parse_content_type, split_list)


@fuzzing()
@given(text_mutants(HEADER_SEEDS, SIP_TOKENS), st.sampled_from(_HEADER_PARSERS))
def test_header_parsers_return_or_raise_parse_error(value: str, parser: object) -> None:
    assert callable(parser)
    try:
        with contextlib.suppress(ParseError):
            parser(value)
        with contextlib.suppress(ParseError):
            parse_uri(value)
    except Exception as exc:
        if not is_known(exc):
            raise


@fuzzing()
@given(
    st.lists(mutants(SEEDS, SIP_TOKENS, max_steps=3), min_size=1, max_size=4),
    st.lists(st.integers(1, 700), min_size=1, max_size=8),
)
def test_framer_returns_frames_or_raises_framing_error(
    messages: list[bytes], cuts: list[int]
) -> None:
    """A TCP stream of mutated messages, cut into segments at arbitrary points."""
    stream = b"\r\n\r\n".join(messages)
    framer = StreamFramer(max_message_size=65535)
    pos = 0
    segment = 0
    try:
        while pos < len(stream):
            size = cuts[segment % len(cuts)]
            segment += 1
            for event in framer.feed(stream[pos : pos + size]):
                if isinstance(event, Frame):
                    # Every frame goes on to the parser, as over TCP.
                    assert len(event.data) <= 65535 + 4
                    check_datagram(event.data)
            pos += size
    except FramingError:
        return
    # Memory stays bounded whatever the stream: at most one message and a segment.
    assert framer.buffered <= 65535 + max(cuts) + 4
