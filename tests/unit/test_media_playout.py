"""Tests of media.playout: received RTP placed by timestamp into PCM."""

from __future__ import annotations

from teleoffice.media.g711 import alaw_encode, ulaw_encode
from teleoffice.media.playout import Playout
from teleoffice.media.rtp import RtpPacket

FRAME = bytes(range(64)) * 5  # 160 samples of some signal


def packet(
    seq: int, ts: int, *, pt: int = 0, ssrc: int = 9, payload: bytes | None = None
) -> RtpPacket:
    if payload is None:
        payload = ulaw_encode(FRAME) if pt == 0 else alaw_encode(FRAME)
    return RtpPacket(payload_type=pt, sequence=seq, timestamp=ts, ssrc=ssrc, payload=payload)


def test_consecutive_packets_are_concatenated() -> None:
    playout = Playout()
    out = [playout.feed(packet(n, 1000 + 160 * n)) for n in range(3)]
    assert [len(o) for o in out] == [320, 320, 320]
    assert playout.samples == 480


def test_a_lost_packet_becomes_silence() -> None:
    playout = Playout()
    playout.feed(packet(0, 0))
    out = playout.feed(packet(2, 320))
    assert len(out) == 640
    assert out[:320] == bytes(320)


def test_late_and_duplicate_packets_are_dropped() -> None:
    playout = Playout()
    playout.feed(packet(0, 0))
    playout.feed(packet(1, 160))
    assert playout.feed(packet(1, 160)) == b""
    assert playout.feed(packet(0, 0)) == b""
    assert playout.dropped == 2


def test_timestamps_wrap() -> None:
    playout = Playout()
    playout.feed(packet(0, 0xFFFFFFA0))
    assert len(playout.feed(packet(1, 0x40))) == 320


def test_a_big_jump_or_a_new_ssrc_starts_a_new_timeline() -> None:
    playout = Playout(max_gap=1.0)
    playout.feed(packet(0, 0))
    assert len(playout.feed(packet(1, 160 + 9000))) == 320  # > 1 s ahead: no silence
    assert len(playout.feed(packet(2, 5))) == 320  # far behind: a restart
    assert len(playout.feed(packet(3, 123, ssrc=10))) == 320


def test_only_g711_is_decoded() -> None:
    playout = Playout()
    assert len(playout.feed(packet(0, 0, pt=8))) == 320
    assert playout.feed(packet(1, 160, pt=101, payload=b"\x01\x00\x00\xa0")) == b""
    # The event's time is filled with silence when audio resumes.
    assert len(playout.feed(packet(2, 320))) == 640
