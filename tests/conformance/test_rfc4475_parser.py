"""RFC 4475 at the parser level: every message is classified as the RFC says."""

from __future__ import annotations

import contextlib

import pytest

from teleoffice.sip.headers import Via
from teleoffice.sip.message import MessageParseError, Request, Response, parse_message
from teleoffice.sip.uri import AbsoluteUri, SipUri
from tests.conformance.rfc4475 import (
    CORPUS,
    EXPECTED_STATUS,
    INVALID_400,
    INVALID_RESPONSES,
    VALID,
    load,
)


def test_corpus_is_complete() -> None:
    names = {p.stem for p in CORPUS.glob("*.dat")}
    assert len(names) == 49
    assert names == set(EXPECTED_STATUS)
    assert names == set(VALID) | set(INVALID_400) | set(INVALID_RESPONSES) | {"badvers"}


@pytest.mark.parametrize("name", VALID)
def test_valid_messages_parse(name: str) -> None:
    msg = parse_message(load(name))
    # Parsing round-trips: what we serialize parses back to the same message.
    again = parse_message(msg.to_bytes())

    def without_length(m: Request | Response) -> list[tuple[str, str]]:
        return [h for h in m.headers if h[0] != "Content-Length"]

    assert without_length(again) == without_length(msg)
    assert again.body == msg.body


@pytest.mark.parametrize("name", INVALID_400)
def test_invalid_requests_are_400(name: str) -> None:
    with pytest.raises(MessageParseError) as info:
        parse_message(load(name))
    assert info.value.status == 400


@pytest.mark.parametrize("name", INVALID_RESPONSES)
def test_invalid_responses_rejected(name: str) -> None:
    with pytest.raises(MessageParseError) as info:
        parse_message(load(name))
    assert info.value.partial is None


def test_badvers_is_505_and_answerable() -> None:
    with pytest.raises(MessageParseError) as info:
        parse_message(load("badvers"))
    assert info.value.status == 505
    assert info.value.partial is not None


def test_wsinv_whitespace_and_folding() -> None:
    msg = parse_message(load("wsinv"))
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert msg.to.tag == "1918181833n"
    assert msg.from_.display_name == 'J Rosenberg \\"'
    assert msg.from_.tag == "98asjd8"
    assert (msg.cseq.seq, msg.cseq.method) == (9, "INVITE")
    assert msg.max_forwards == 68
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.contacts[0].display_name == 'Quoted string ""'
    assert msg.contacts[0].param("q") == "0.33"
    # Folded Via headers become separate values, in order.
    assert [v.branch for v in msg.vias] == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert all(isinstance(v, Via) for v in msg.vias)
    assert msg.headers.get("Subject") is not None


def test_dblreq_ignores_bytes_after_content_length() -> None:
    msg = parse_message(load("dblreq"))
    assert msg.body == b""
    assert isinstance(msg, Request)
    assert msg.method == "REGISTER"


def test_escnull_user_with_nul_is_kept() -> None:
    msg = parse_message(load("escnull"))
    assert isinstance(msg.to.uri, SipUri)
    assert msg.to.uri.user is not None
    assert "\x00" in msg.to.uri.user


def test_esc01_escaped_user_decoded() -> None:
    msg = parse_message(load("esc01"))
    assert isinstance(msg, Request)
    assert isinstance(msg.uri, SipUri)
    assert msg.uri.user == "sips:user@example.com"


def test_semiuri_semicolon_in_user() -> None:
    msg = parse_message(load("semiuri"))
    assert isinstance(msg, Request)
    assert isinstance(msg.uri, SipUri)
    assert msg.uri.user == "user;par=u@example.net"
    assert msg.uri.host == "example.com"


def test_cparam_parameter_placement() -> None:
    header_param = parse_message(load("cparam01")).contacts[0]
    uri_param = parse_message(load("cparam02")).contacts[0]
    assert header_param.has_param("unknownparam")
    assert isinstance(header_param.uri, SipUri)
    assert not header_param.uri.has_param("unknownparam")
    assert isinstance(uri_param.uri, SipUri)
    assert uri_param.uri.has_param("unknownparam")
    assert not uri_param.has_param("unknownparam")


def test_regescrt_contact_uri_with_escaped_header() -> None:
    contact = parse_message(load("regescrt")).contacts[0]
    assert isinstance(contact.uri, SipUri)
    assert contact.uri.headers == (("Route", "<sip:sip.example.com>"),)


def test_unknown_schemes_are_absolute_uris() -> None:
    msg = parse_message(load("unkscm"))
    assert isinstance(msg, Request)
    assert isinstance(msg.uri, AbsoluteUri)
    unksm2 = parse_message(load("unksm2"))
    assert isinstance(unksm2.to.uri, AbsoluteUri)
    assert isinstance(unksm2.contacts[0].uri, AbsoluteUri)


def test_responses_with_odd_reasons_parse() -> None:
    unreason = parse_message(load("unreason"))
    assert isinstance(unreason, Response)
    assert unreason.status == 200
    assert "простое" in unreason.reason
    noreason = parse_message(load("noreason"))
    assert isinstance(noreason, Response)
    assert noreason.reason == ""


def test_longreq_long_values() -> None:
    msg = parse_message(load("longreq"))
    assert len(msg.vias) > 30
    assert msg.to.display_name is not None
    assert msg.to.display_name.endswith("extreme proportion")
    assert len(msg.to.sip_uri.params) == 3
    assert msg.to.sip_uri.port == 6000


def test_lwsdisp_display_name_without_space() -> None:
    msg = parse_message(load("lwsdisp"))
    assert msg.from_.display_name == "caller"


def test_transports_via_values() -> None:
    msg = parse_message(load("transports"))
    assert [v.transport for v in msg.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]


@pytest.mark.parametrize("name", sorted(EXPECTED_STATUS))
def test_never_raises_anything_but_parse_errors(name: str) -> None:
    data = load(name)
    for cut in range(0, len(data), max(1, len(data) // 40)):
        with contextlib.suppress(MessageParseError):
            parse_message(data[:cut])
