"""Tests of media.dtmf: RFC 4733 payloads, the receiver, and the sender's packets."""

from __future__ import annotations

import pytest

from teleoffice.media.dtmf import (
    DIGITS,
    DtmfError,
    DtmfEvent,
    DtmfReceiver,
    digit_to_event,
    dtmf_packets,
    event_to_digit,
    parse_dtmf,
)
from teleoffice.media.rtp import RtpPacket, parse_rtp


def test_payload_layout() -> None:
    # Event 5, E bit set, volume 10, duration 800 (RFC 4733 section 2.3).
    event = DtmfEvent(event=5, end=True, volume=10, duration=800)
    assert event.to_bytes() == bytes([5, 0x80 | 10, 0x03, 0x20])
    assert parse_dtmf(event.to_bytes()) == event


def test_reserved_bit_is_ignored_and_short_payload_refused() -> None:
    assert parse_dtmf(bytes([11, 0x40 | 7, 0, 160])) == DtmfEvent(11, False, 7, 160)
    with pytest.raises(DtmfError):
        parse_dtmf(b"\x01\x02\x03")


@pytest.mark.parametrize(
    "bad", [{"event": 256}, {"volume": 64}, {"duration": 0x10000}, {"duration": -1}]
)
def test_event_fields_are_checked(bad: dict[str, int]) -> None:
    fields = {"event": 1, "end": False, "volume": 10, "duration": 0} | bad
    with pytest.raises(DtmfError):
        DtmfEvent(**fields)  # type: ignore[arg-type]


def test_digit_event_mapping() -> None:
    assert [digit_to_event(d) for d in "0123456789*#ABCD"] == list(range(16))
    assert digit_to_event("a") == 12
    assert [event_to_digit(e) for e in range(16)] == list(DIGITS)
    assert event_to_digit(16) is None  # flash
    for bad in ("E", "", "12", " "):
        with pytest.raises(DtmfError):
            digit_to_event(bad)


def test_sender_packets_follow_rfc4733_section_2_5() -> None:
    packets = dtmf_packets("7", start_seq=65534, timestamp=1000, ssrc=42, duration_ms=100)
    # 20 ms updates at 160, 320, 480, 640, then the final 800 three times.
    events = [parse_dtmf(p.payload) for p in packets]
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert {e.event for e in events} == {7}
    assert [p.marker for p in packets] == [True] + [False] * 6
    assert [p.sequence for p in packets] == [65534, 65535, 0, 1, 2, 3, 4]
    assert {p.timestamp for p in packets} == {1000}
    assert {p.payload_type for p in packets} == {101}
    assert {p.ssrc for p in packets} == {42}


def test_a_short_event_is_only_end_packets() -> None:
    packets = dtmf_packets("#", start_seq=0, timestamp=0, ssrc=1, duration_ms=20)
    assert [p.marker for p in packets] == [True, False, False]
    assert all(parse_dtmf(p.payload).end for p in packets)


def test_sender_refuses_what_does_not_fit() -> None:
    with pytest.raises(DtmfError):
        dtmf_packets("x", start_seq=0, timestamp=0, ssrc=1)
    with pytest.raises(ValueError, match="segment"):
        dtmf_packets("1", start_seq=0, timestamp=0, ssrc=1, duration_ms=9000)


def feed_all(receiver: DtmfReceiver, packets: list[RtpPacket]) -> list[str]:
    return [d for d in (receiver.feed(p) for p in packets) if d is not None]


def test_receiver_reports_each_press_once_despite_retransmitted_ends() -> None:
    receiver = DtmfReceiver()
    first = dtmf_packets("1", start_seq=10, timestamp=8000, ssrc=5)
    second = dtmf_packets("1", start_seq=17, timestamp=9600, ssrc=5)
    third = dtmf_packets("#", start_seq=24, timestamp=11200, ssrc=5)
    assert feed_all(receiver, first + second + third) == ["1", "1", "#"]
    # Late duplicates of any of them change nothing.
    assert feed_all(receiver, first[-3:] + second + third[-1:]) == []


def test_receiver_copes_with_lost_start_packets() -> None:
    receiver = DtmfReceiver()
    only_ends = dtmf_packets("9", start_seq=0, timestamp=160, ssrc=5)[-3:]
    assert feed_all(receiver, only_ends) == ["9"]
    without_start = dtmf_packets("9", start_seq=10, timestamp=4000, ssrc=5)[2:]
    assert feed_all(receiver, without_start) == ["9"]


def test_receiver_handles_timestamp_wrap_and_new_streams() -> None:
    receiver = DtmfReceiver()
    before_wrap = dtmf_packets("2", start_seq=0, timestamp=0xFFFFFF00, ssrc=5)
    after_wrap = dtmf_packets("3", start_seq=7, timestamp=0x00000100, ssrc=5)
    assert feed_all(receiver, before_wrap + after_wrap) == ["2", "3"]
    # The same timestamp from a different SSRC is a different stream.
    other = dtmf_packets("3", start_seq=7, timestamp=0x00000100, ssrc=6)
    assert feed_all(receiver, other) == ["3"]


def test_receiver_joins_the_segments_of_a_long_event() -> None:
    receiver = DtmfReceiver()
    segment1 = dtmf_packets("5", start_seq=0, timestamp=1000, ssrc=5, duration_ms=40)[:1]
    # The next segment: a new timestamp, no marker, the same event, not ended before.
    continuation = RtpPacket(
        payload_type=101,
        sequence=1,
        timestamp=1000 + 0xFFFF,
        ssrc=5,
        payload=DtmfEvent(5, True, 10, 160).to_bytes(),
    )
    assert feed_all(receiver, [*segment1, continuation]) == ["5"]


def test_receiver_ignores_non_digit_events_and_garbage() -> None:
    receiver = DtmfReceiver()
    flash = RtpPacket(
        payload_type=101, sequence=0, timestamp=0, ssrc=1, payload=bytes([16, 0x80, 0, 160])
    )
    garbage = RtpPacket(payload_type=101, sequence=1, timestamp=160, ssrc=1, payload=b"\x01")
    assert feed_all(receiver, [flash, garbage]) == []


def test_packets_serialise() -> None:
    for packet in dtmf_packets("A", start_seq=1, timestamp=2, ssrc=3, payload_type=96):
        assert parse_rtp(packet.to_bytes()) == packet
