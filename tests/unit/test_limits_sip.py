"""SIP limits of issue 9 not tested elsewhere: header fields per message.

(Message size: test_framing.py and test_sip_transport.py; contacts per account:
test_sip_service.py; subscriptions per account and in total: test_subscriptions.py,
test_mwi.py, test_presence_sip.py; their settings: test_limits_config.py.)
"""

from __future__ import annotations

import pytest

from teleoffice.sip.message import MAX_HEADERS, MessageParseError, Request, parse_message

HEAD = (
    "OPTIONS sip:201@127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-limits\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:scanner@127.0.0.1>;tag=1\r\n"
    "To: <sip:201@127.0.0.1>\r\n"
    "Call-ID: limits@127.0.0.1\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Content-Length: 0\r\n"
)
BASE_HEADERS = HEAD.count("\r\n") - 1


def with_headers(total: int) -> bytes:
    extra = "".join(f"X-Filler-{n}: {n}\r\n" for n in range(total - BASE_HEADERS))
    return (HEAD + extra + "\r\n").encode()


def test_a_message_with_the_most_header_fields_allowed_parses() -> None:
    message = parse_message(with_headers(MAX_HEADERS))
    assert isinstance(message, Request)
    assert len(list(message.headers)) == MAX_HEADERS


@pytest.mark.parametrize("total", [MAX_HEADERS + 1, 10 * MAX_HEADERS])
def test_more_header_fields_are_refused_with_400(total: int) -> None:
    with pytest.raises(MessageParseError, match="too many header fields") as refused:
        parse_message(with_headers(total))
    assert refused.value.status == 400
    with pytest.raises(MessageParseError, match="too many header fields"):
        parse_message(with_headers(total), stream=True)


def test_the_limit_is_more_than_any_phone_sends() -> None:
    # A generous INVITE (Via chain through proxies, Record-Route, Supported,
    # Allow, P-headers) has some 40; the limit only stops floods of headers.
    assert 128 <= MAX_HEADERS <= 1024
