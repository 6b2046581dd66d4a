"""StreamFramer: cutting SIP messages out of a TCP byte stream (RFC 3261 section 18.3)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teleoffice.sip.framing import Frame, FrameEvent, FramingError, KeepAlivePing, StreamFramer

OPTIONS = (
    b"OPTIONS sip:201@pbx.example SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK-1\r\n"
    b"From: <sip:202@pbx.example>;tag=a\r\n"
    b"To: <sip:201@pbx.example>\r\n"
    b"Call-ID: one@192.0.2.10\r\n"
    b"CSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

SDP = b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
INVITE = (
    b"INVITE sip:201@pbx.example SIP/2.0\r\n"
    b"Via: SIP/2.0/TCP 192.0.2.10:5060;branch=z9hG4bK-2\r\n"
    b"Call-ID: two@192.0.2.10\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"l: " + str(len(SDP)).encode() + b"\r\n"
    b"\r\n" + SDP
)

RESPONSE = b"SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\ncontent-LENGTH : 4 \r\n\r\nbody"


def feed_all(framer: StreamFramer, chunks: list[bytes]) -> list[FrameEvent]:
    events: list[FrameEvent] = []
    for chunk in chunks:
        events.extend(framer.feed(chunk))
    return events


def byte_by_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def test_one_message_in_one_segment() -> None:
    assert StreamFramer().feed(OPTIONS) == [Frame(OPTIONS)]


def test_message_fed_byte_by_byte() -> None:
    framer = StreamFramer()
    events = feed_all(framer, byte_by_byte(INVITE))
    assert events == [Frame(INVITE)]
    assert framer.buffered == 0


def test_frame_appears_only_with_last_body_octet() -> None:
    framer = StreamFramer()
    assert framer.feed(INVITE[:-1]) == []
    assert framer.feed(INVITE[-1:]) == [Frame(INVITE)]


def test_coalesced_messages_in_one_segment() -> None:
    data = OPTIONS + INVITE + RESPONSE
    assert StreamFramer().feed(data) == [Frame(OPTIONS), Frame(INVITE), Frame(RESPONSE)]


def test_segment_ending_inside_the_next_message() -> None:
    framer = StreamFramer()
    cut = len(OPTIONS) + 20
    data = OPTIONS + INVITE
    assert framer.feed(data[:cut]) == [Frame(OPTIONS)]
    assert framer.feed(data[cut:]) == [Frame(INVITE)]


def test_compact_and_case_insensitive_content_length() -> None:
    assert StreamFramer().feed(RESPONSE) == [Frame(RESPONSE)]
    message = b"BYE sip:a@b SIP/2.0\r\nL:2\r\n\r\nhi"
    assert StreamFramer().feed(message) == [Frame(message)]


def test_folded_content_length() -> None:
    # A header value may continue on a line starting with whitespace (RFC 3261 section 7.3.1).
    message = b"BYE sip:a@b SIP/2.0\r\nContent-Length:\r\n  2\r\n\r\nhi"
    assert StreamFramer().feed(message) == [Frame(message)]


def test_body_containing_a_blank_line_is_not_cut() -> None:
    body = b"a\r\n\r\nINVITE sip:x SIP/2.0\r\n\r\n"
    message = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: " + str(len(body)).encode()
    message += b"\r\n\r\n" + body
    assert StreamFramer().feed(message + OPTIONS) == [Frame(message), Frame(OPTIONS)]


def test_keepalive_ping_between_messages() -> None:
    framer = StreamFramer()
    events = framer.feed(OPTIONS + b"\r\n\r\n" + OPTIONS)
    assert events == [Frame(OPTIONS), KeepAlivePing(), Frame(OPTIONS)]


def test_keepalive_ping_split_across_segments() -> None:
    framer = StreamFramer()
    assert feed_all(framer, byte_by_byte(b"\r\n\r\n")) == [KeepAlivePing()]
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r\n") == [KeepAlivePing()]


def test_lone_crlf_before_a_message_is_skipped() -> None:
    # RFC 3261 section 7.5: CRLFs before the start line are ignored; a single one
    # (a pong, or a sloppy sender's trailer) is not a ping.
    framer = StreamFramer()
    assert framer.feed(b"\r\n" + OPTIONS + b"\r\n") == [Frame(OPTIONS)]
    assert framer.feed(INVITE) == [Frame(INVITE)]
    assert framer.buffered == 0


def test_head_without_blank_line_over_the_limit() -> None:
    framer = StreamFramer(max_message_size=1000)
    framer.feed(b"INVITE sip:a@b SIP/2.0\r\n")
    filler = b"X-Filler: " + b"y" * 20 + b"\r\n"
    for _ in range(30):
        assert framer.feed(filler) == []
    with pytest.raises(FramingError, match="end of head"):
        framer.feed(filler * 3)


def test_body_over_the_limit() -> None:
    framer = StreamFramer(max_message_size=1000)
    with pytest.raises(FramingError, match="larger"):
        framer.feed(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 990\r\n\r\n")


def test_message_exactly_at_the_limit_passes() -> None:
    head = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 0100\r\n\r\n"
    message = head + b"x" * 100
    assert StreamFramer(max_message_size=len(message)).feed(message) == [Frame(message)]
    with pytest.raises(FramingError):
        StreamFramer(max_message_size=len(message) - 1).feed(message)


@pytest.mark.parametrize(
    "value",
    [b"ten", b"-1", b"+5", b"1 2", b"", b"0x10", b"99999999999999999999999"],
)
def test_bad_content_length(value: bytes) -> None:
    message = b"INVITE sip:a@b SIP/2.0\r\nContent-Length: " + value + b"\r\n\r\n"
    with pytest.raises(FramingError, match="Content-Length"):
        StreamFramer().feed(message)


def test_missing_content_length() -> None:
    with pytest.raises(FramingError, match="missing Content-Length"):
        StreamFramer().feed(b"ACK sip:a@b SIP/2.0\r\nCSeq: 1 ACK\r\n\r\n")


def test_conflicting_content_lengths() -> None:
    with pytest.raises(FramingError, match="conflicting"):
        StreamFramer().feed(b"ACK sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab")


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # TLS ClientHello
        b"\x00\x01\x02\x03",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n",
        b"INV\x00ITE",
        b" INVITE sip:a@b SIP/2.0\r\n",
    ],
)
def test_garbage_is_refused(garbage: bytes) -> None:
    with pytest.raises(FramingError):
        StreamFramer().feed(garbage)


def test_garbage_is_refused_at_its_first_octet() -> None:
    framer = StreamFramer()
    with pytest.raises(FramingError):
        framer.feed(b"\x16")


def test_garbage_after_a_good_message() -> None:
    framer = StreamFramer()
    with pytest.raises(FramingError):
        framer.feed(OPTIONS + b"\x16\x03\x01")


def test_framer_stays_failed() -> None:
    framer = StreamFramer()
    with pytest.raises(FramingError):
        framer.feed(b"\x00")
    with pytest.raises(FramingError):
        framer.feed(OPTIONS)


def test_byte_by_byte_is_linear() -> None:
    # A head just under the limit fed one octet at a time: a framer that rescans
    # the whole buffer per feed does ~2e9 octet comparisons here and takes minutes.
    head = b"INVITE sip:a@b SIP/2.0\r\n" + b"X-Pad: " + b"p" * 60000 + b"\r\nl: 0\r\n\r\n"
    framer = StreamFramer()
    started = time.perf_counter()
    events = feed_all(framer, byte_by_byte(head))
    assert events == [Frame(head)]
    assert time.perf_counter() - started < 5.0


# ---------------------------------------------------------------- properties

_methods = st.sampled_from([b"INVITE", b"ACK", b"BYE", b"OPTIONS", b"REGISTER", b"X-CUSTOM.1"])
_length_names = st.sampled_from(
    [b"Content-Length", b"content-length", b"l", b"L", b"CONTENT-LENGTH"]
)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    body = draw(st.binary(max_size=300))
    name = draw(_length_names)
    space = draw(st.sampled_from([b"", b" ", b"  "]))
    if draw(st.booleans()):
        start = draw(_methods) + b" sip:201@pbx.example SIP/2.0"
    else:
        start = b"SIP/2.0 " + str(draw(st.integers(100, 699))).encode() + b" Whatever"
    extra = draw(st.lists(st.sampled_from([b"Via: SIP/2.0/TCP h;branch=z9hG4bKx", b"X: y"])))
    lines = [start, *extra, name + space + b":" + space + str(len(body)).encode()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# Between two messages: nothing, a lone CRLF (skipped) or a CRLFCRLF ping.
_gaps = st.sampled_from([b"", b"\r\n", b"\r\n\r\n"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_gaps, messages()), max_size=6), st.data())
def test_any_split_gives_back_the_messages(
    sequence: list[tuple[bytes, bytes]], data: st.DataObject
) -> None:
    stream = b"".join(gap + message for gap, message in sequence)
    expected: list[FrameEvent] = []
    for gap, message in sequence:
        if gap == b"\r\n\r\n":
            expected.append(KeepAlivePing())
        expected.append(Frame(message))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=20)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    framer = StreamFramer()
    assert feed_all(framer, chunks) == expected
    assert framer.buffered == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_arbitrary_bytes_raise_only_framing_error(chunks: list[bytes]) -> None:
    framer = StreamFramer(max_message_size=512)
    try:
        for chunk in chunks:
            for event in framer.feed(chunk):
                assert isinstance(event, Frame | KeepAlivePing)
    except FramingError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([OPTIONS, INVITE, RESPONSE, b"\r\n", b"x", b"\x00"]), max_size=8))
def test_mixed_valid_and_invalid_input_raises_only_framing_error(parts: list[bytes]) -> None:
    framer = StreamFramer()
    try:
        for byte in byte_by_byte(b"".join(parts)):
            framer.feed(byte)
    except FramingError:
        pass
