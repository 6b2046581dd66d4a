"""Every crash the fuzzers found, kept as a plain test.

Fixed bugs are ordinary tests. Bugs in code this suite does not own are
`xfail(strict=True)` with the reason, and listed in tests/fuzz/known.py so the
fuzzers do not keep reporting them: once fixed, the test here passes, strict
xfail fails the run, and the marker and the known.py entry go together.
"""

from __future__ import annotations

import pytest

from teleoffice.sip.dialog_info import DialogInfoError, parse_dialog_info
from teleoffice.sip.digest import (
    DigestError,
    build_authorization,
    build_authorization_from_ha1,
    choose_challenge,
    parse_auth_params,
)
from teleoffice.sip.message import MessageParseError, parse_message
from teleoffice.sip.pidf import PidfError, parse_pidf
from tests.fuzz.known import KNOWN_BUGS

# --- digest (fixed) -------------------------------------------------------------------


@pytest.mark.parametrize("escaped", ["\\\x01", "\\\x00", "\\\x7f", "\\\x1b"])
def test_a_challenge_with_an_escaped_control_character_is_a_digest_error(escaped: str) -> None:
    """Found by test_fuzz_digest: `realm="\\<0x01>teleoffice"` in a provider's
    challenge made build_authorization raise a bare ValueError (from quoting the
    realm back), which the B2BUA's trunk authentication does not catch."""
    challenge = f'Digest realm="{escaped}teleoffice", nonce="abc", qop="auth"'
    with pytest.raises(DigestError):
        parse_auth_params(challenge)
    with pytest.raises(DigestError):
        choose_challenge([challenge])
    with pytest.raises(DigestError):
        build_authorization(
            challenge=challenge, method="INVITE", uri="sip:x", username="u", password="p"
        )
    with pytest.raises(DigestError):
        build_authorization_from_ha1(
            challenge=challenge,
            method="INVITE",
            uri="sip:x",
            username="u",
            ha1_for=lambda realm, family: "0" * 32,
        )


def test_escaped_ordinary_characters_and_tab_are_still_read() -> None:
    scheme, params = parse_auth_params('Digest realm="a\\"b\\\\c\\\td", nonce="\\n"')
    assert scheme == "Digest"
    assert params == {"realm": 'a"b\\c\td', "nonce": "n"}


# --- presence documents (fixed) ---------------------------------------------------------

_PIDF = (
    '<?xml version="1.0" encoding="{encoding}"?>'
    '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:201@pbx.example">'
    '<tuple id="t"><status><basic>open</basic></status></tuple></presence>'
)
_DIALOG_INFO = (
    '<?xml version="1.0" encoding="{encoding}"?>'
    '<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full"'
    ' entity="sip:201@pbx.example"/>'
)


@pytest.mark.parametrize(
    ("declared", "codec"),
    [
        ("UTF-0", "utf-16-be"),
        ("UTF-0", "utf-16-le"),
        ("UTF-16", "utf-16-be"),
        ("UTF-32", "utf-32-be"),
    ],
)
def test_xml_in_utf16_or_utf32_without_a_byte_order_mark_is_refused(
    declared: str, codec: str
) -> None:
    """Found by test_fuzz_presence: UTF-16 without a byte-order mark is valid
    UTF-8 (NULs and ASCII) to the encoding check, so expat detected and read
    it on its own; with an encoding Python does not know ("UTF-0") parsing
    escaped as LookupError, and with "UTF-16" the UTF-8-only rule was bypassed."""
    with pytest.raises(PidfError):
        parse_pidf(_PIDF.format(encoding=declared).encode(codec))
    with pytest.raises(DialogInfoError):
        parse_dialog_info(_DIALOG_INFO.format(encoding=declared).encode(codec))


def test_the_same_documents_in_utf8_still_parse() -> None:
    assert parse_pidf(_PIDF.format(encoding="UTF-8").encode()).entity == "sip:201@pbx.example"
    assert parse_dialog_info(_DIALOG_INFO.format(encoding="UTF-8").encode()).version == 1


# --- sip/headers.py (not fixed here: reported) -----------------------------------------


def _options(cseq: str = "1", max_forwards: str = "70", content_length: str = "0") -> bytes:
    return (
        "OPTIONS sip:pbx.example SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\n"
        "From: <sip:201@pbx.example>;tag=1\r\nTo: <sip:pbx.example>\r\nCall-ID: c1\r\n"
        f"CSeq: {cseq} OPTIONS\r\nMax-Forwards: {max_forwards}\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode()


# Numbers that str.isdigit() accepts but int() refuses (superscripts, over 4300
# digits) once escaped parse_message as ValueError (sip/headers.py is_decimal).
@pytest.mark.parametrize(
    "message",
    [
        _options(cseq="\u00b2"),
        _options(cseq="1" * 5000),
        _options(max_forwards="\u00b2"),
        _options(content_length="0\u00b9"),
    ],
    ids=["cseq-superscript", "cseq-5000-digits", "max-forwards-superscript", "length-superscript"],
)
def test_header_numbers_int_refuses_are_parse_errors(message: bytes) -> None:
    with pytest.raises(MessageParseError):
        parse_message(message)


@pytest.mark.parametrize(
    "message",
    [
        b"SIP/2.0 20\xc2\xb2 OK\r\nVia: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
        b"Content-Length: 0\r\n\r\n",
        _options().replace(b"branch=z9hG4bK1", "branch=z9hG4bK1;rport=5\u00b96".encode()),
        _options().replace(b"sip:pbx.example SIP", "sip:pbx.example:5\u00b9 SIP".encode()),
    ],
    ids=["status-superscript", "rport-superscript", "uri-port-superscript"],
)
def test_other_numbers_with_unicode_digits_are_parse_errors(message: bytes) -> None:
    with pytest.raises(MessageParseError):
        parse_message(message)


def test_every_known_bug_has_its_regression_test() -> None:
    # known.py may only silence what a strict xfail in this file pins down; none is
    # open now.
    assert KNOWN_BUGS == ()
