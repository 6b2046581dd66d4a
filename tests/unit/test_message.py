"""Parser and serializer of SIP messages, URIs and the typed headers."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teleoffice.sip.errors import ParseError
from teleoffice.sip.headers import (
    NameAddr,
    canonical_name,
    parse_name_addr,
    parse_via,
    split_list,
)
from teleoffice.sip.message import MessageParseError, Request, Response, parse_message
from teleoffice.sip.uri import AbsoluteUri, SipUri, parse_uri

REGISTER = (
    b"REGISTER sip:127.0.0.1 SIP/2.0\r\n"
    b"v: SIP/2.0/UDP 10.0.0.2:5062;branch=z9hG4bK776;rport\r\n"
    b"Max-Forwards: 70\r\n"
    b'f: "Alice Smith" <sip:201@127.0.0.1>;tag=a1\r\n'
    b"t: <sip:201@127.0.0.1>\r\n"
    b"i: 843817637684230@998sdasdh09\r\n"
    b"CSeq: 1826 REGISTER\r\n"
    b"m: <sip:201@10.0.0.2:5062;transport=udp>;expires=300, <sip:201@10.0.0.3>;q=0.5\r\n"
    b"k: path,\r\n outbound\r\n"
    b"l: 0\r\n\r\n"
)


def test_compact_forms_folding_and_lists() -> None:
    msg = parse_message(REGISTER)
    assert isinstance(msg, Request)
    assert msg.method == "REGISTER"
    assert msg.call_id == "843817637684230@998sdasdh09"
    assert msg.from_.display_name == "Alice Smith"
    assert msg.from_.tag == "a1"
    assert msg.to.tag is None
    assert msg.top_via.rport == (True, None)
    assert msg.top_via.port == 5062
    assert [str(c.uri) for c in msg.contacts] == [
        "sip:201@10.0.0.2:5062;transport=udp",
        "sip:201@10.0.0.3",
    ]
    assert msg.contacts[0].param("expires") == "300"
    assert msg.contacts[1].param("q") == "0.5"
    assert msg.token_list("Supported") == ["path", "outbound"]
    assert [name for name, _ in msg.headers][:3] == ["Via", "Max-Forwards", "From"]


def test_serialize_uses_full_names_and_recomputes_length() -> None:
    msg = parse_message(REGISTER)
    msg.body = b"hello"
    out = msg.to_bytes()
    assert b"\r\nContent-Length: 5\r\n\r\nhello" in out
    assert b"\r\nVia: SIP/2.0/UDP" in out
    again = parse_message(out)
    assert again.body == b"hello"


def test_response_parse() -> None:
    data = (
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\n"
        b"To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    msg = parse_message(data, stream=True)
    assert isinstance(msg, Response)
    assert (msg.status, msg.reason) == (180, "Ringing")


def test_stream_requires_content_length() -> None:
    data = REGISTER.replace(b"l: 0\r\n", b"")
    parse_message(data)  # a datagram may omit it
    with pytest.raises(MessageParseError):
        parse_message(data, stream=True)


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (REGISTER.replace(b"CSeq: 1826 REGISTER", b"CSeq: 1826 INVITE"), 400),
        (REGISTER.replace(b"Max-Forwards: 70", b"Max-Forwards: 256"), 400),
        (REGISTER.replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505),
        (REGISTER.replace(b"i: 8", b"i: 8\r\nCall-ID: again"), 400),
        (REGISTER.replace(b"t: <sip:201@127.0.0.1>", b't: "open <sip:201@127.0.0.1>'), 400),
        (REGISTER.replace(b"l: 0", b"l: 10"), 400),
    ],
)
def test_bad_requests_carry_status_and_partial(data: bytes, status: int) -> None:
    with pytest.raises(MessageParseError) as info:
        parse_message(data)
    assert info.value.status == status
    assert info.value.partial is not None


def test_too_many_headers_refused() -> None:
    data = REGISTER.replace(b"l: 0\r\n", b"X-A: 1\r\n" * 300 + b"l: 0\r\n")
    with pytest.raises(MessageParseError):
        parse_message(data)


def test_uri_components_and_escaping() -> None:
    uri = parse_uri("sips:al%69ce:pw@[2001:db8::1]:5061;transport=tcp;lr?Subject=hi%20there")
    assert isinstance(uri, SipUri)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port) == (
        "sips",
        "alice",
        "pw",
        "[2001:db8::1]",
        5061,
    )
    assert uri.transport == "TCP"
    assert uri.has_param("lr")
    assert uri.headers == (("Subject", "hi there"),)
    assert parse_uri(str(uri)) == uri
    alice = parse_uri("sip:alice@example.com")
    assert isinstance(alice, SipUri)
    assert alice.equivalent(parse_uri("SIP:al%69ce@EXAMPLE.com"))
    assert not alice.equivalent(parse_uri("sip:alice@example.com;transport=tcp"))


@pytest.mark.parametrize(
    "text",
    [
        "sip:",
        "sip:a@",
        "sip:a@h:99999",
        "sip:a@h:x",
        "sip:a b@h",
        "sip:@h",
        "sip:h;",
        "nocolon",
        "1x:y",
    ],
)
def test_bad_uris(text: str) -> None:
    with pytest.raises(ParseError):
        parse_uri(text)


def test_other_schemes_are_kept_verbatim() -> None:
    uri = parse_uri("tel:+1-201-555-0123;phone-context=example.com")
    assert isinstance(uri, AbsoluteUri)
    assert str(uri) == "tel:+1-201-555-0123;phone-context=example.com"


def test_name_addr_forms() -> None:
    plain = parse_name_addr("sip:bob@h;tag=x")
    assert plain.tag == "x"
    assert plain.display_name is None
    tokens = parse_name_addr("Bob  Smith <sip:bob@h>;tag=y")
    assert tokens.display_name == "Bob Smith"
    quoted = parse_name_addr(
        '"Smith, Bob \\"B\\"" <sip:bob@h;transport=tcp>;+sip.instance="<urn:uuid:1>"'
    )
    assert quoted.display_name == 'Smith, Bob "B"'
    assert quoted.param("+sip.instance") == '"<urn:uuid:1>"'
    assert parse_name_addr(str(quoted)) == quoted
    with pytest.raises(ParseError):
        parse_name_addr("sip:bob@h?x=y")
    with pytest.raises(ParseError):
        parse_name_addr("Smith, Bob <sip:bob@h>")


def test_via_forms() -> None:
    via = parse_via("SIP / 2.0 / tcp [::1]:5070 ; branch=z9hG4bKa ; received=10.0.0.1;rport=9")
    assert (via.transport, via.host, via.port) == ("TCP", "[::1]", 5070)
    assert via.branch == "z9hG4bKa"
    assert via.received == "10.0.0.1"
    assert via.rport == (True, 9)
    assert parse_via(str(via)) == via
    for bad in ("SIP/2.0 host", "SIP/2.0/UDP", "SIP/2.0/UDP h;branch=", "SIP/2.0/UDP h;;"):
        with pytest.raises(ParseError):
            parse_via(bad)


def test_split_list_respects_quotes_and_brackets() -> None:
    assert split_list('"a, b" <sip:x@h>, <sip:y@h;p=1,2>') == [
        '"a, b" <sip:x@h>',
        "<sip:y@h;p=1,2>",
    ]
    with pytest.raises(ParseError):
        split_list("a,,b")


def test_canonical_names() -> None:
    assert canonical_name("i") == "Call-ID"
    assert canonical_name("CALL-id") == "Call-ID"
    assert canonical_name("X-Custom") == "X-Custom"


def test_typed_setters_keep_text_in_step() -> None:
    msg = parse_message(REGISTER)
    msg.to = msg.to.with_param("tag", "zz")
    assert msg.headers.get("To") == "<sip:201@127.0.0.1>;tag=zz"
    assert parse_message(msg.to_bytes()).to.tag == "zz"
    via = msg.top_via.with_param("received", "192.0.2.1")
    msg.vias = [via, *msg.vias[1:]]
    assert parse_message(msg.to_bytes()).top_via.received == "192.0.2.1"


# ---- properties --------------------------------------------------------------

_token = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~",
    min_size=1,
    max_size=12,
)
_user = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12
)
_host = st.from_regex(r"[a-z][a-z0-9]{0,8}(\.[a-z][a-z0-9]{0,8}){0,2}", fullmatch=True)


@st.composite
def sip_uris(draw: st.DrawFn) -> SipUri:
    params = draw(st.lists(st.tuples(_token, st.one_of(st.none(), _token)), max_size=3))
    return SipUri(
        host=draw(_host),
        user=draw(st.one_of(st.none(), _user)),
        port=draw(st.one_of(st.none(), st.integers(1, 65535))),
        scheme=draw(st.sampled_from(["sip", "sips"])),
        params=tuple(params),
    )


@st.composite
def name_addrs(draw: st.DrawFn) -> NameAddr:
    display = draw(
        st.one_of(
            st.none(),
            st.text(
                alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=20
            ),
        )
    )
    params = draw(st.lists(st.tuples(_token, st.one_of(st.none(), _token)), max_size=3))
    return NameAddr(uri=draw(sip_uris()), display_name=display, params=tuple(params))


@given(sip_uris())
def test_uri_round_trip(uri: SipUri) -> None:
    assert parse_uri(str(uri)) == uri


@given(name_addrs())
def test_name_addr_round_trip(addr: NameAddr) -> None:
    assert parse_name_addr(str(addr)) == addr


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["INVITE", "OPTIONS", "REGISTER", "BYE", draw(_token)]))
    uri = draw(sip_uris())
    frm = draw(name_addrs()).with_param("tag", draw(_token))
    to = draw(name_addrs())
    transport = draw(st.sampled_from(["UDP", "TCP"]))
    headers = [
        f"Via: SIP/2.0/{transport} {draw(_host)};branch=z9hG4bK{draw(_token)}",
        f"From: {frm}",
        f"To: {to}",
        f"Call-ID: {draw(_token)}",
        f"CSeq: {draw(st.integers(0, 2**31 - 1))} {method}",
        f"Max-Forwards: {draw(st.integers(0, 255))}",
    ]
    extra = draw(
        st.lists(
            st.tuples(
                _token,
                st.text(
                    alphabet=st.characters(codec="ascii", exclude_categories=["Cc"]), max_size=30
                ),
            ),
            max_size=4,
        )
    )
    headers += [f"X-{n}: {v.strip()}" for n, v in extra]
    body = draw(st.binary(max_size=50))
    head = (
        f"{method} {uri} SIP/2.0\r\n"
        + "\r\n".join(headers)
        + f"\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@settings(max_examples=300)
@given(requests())
def test_serialize_parse_round_trip(data: bytes) -> None:
    msg = parse_message(data)
    again = parse_message(msg.to_bytes())
    assert list(again.headers) == list(msg.headers)
    assert again.body == msg.body
    assert again.to_bytes() == msg.to_bytes()
    assert isinstance(again, Request)
    assert isinstance(msg, Request)
    assert again.uri == msg.uri
    assert again.from_ == msg.from_
    assert again.to == msg.to


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_parser_raises_only_parse_errors_on_bytes(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_message(data)


@settings(max_examples=500)
@given(requests(), st.integers(0, 400), st.binary(min_size=1, max_size=8))
def test_parser_raises_only_parse_errors_on_mutations(data: bytes, pos: int, junk: bytes) -> None:
    pos = min(pos, len(data))
    mutated = data[:pos] + junk + data[pos + len(junk) :]
    try:
        msg = parse_message(mutated)
        # Whatever parsed must serialize and parse again.
        parse_message(msg.to_bytes())
    except ParseError:
        pass
