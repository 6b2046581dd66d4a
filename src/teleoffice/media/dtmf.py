"""DTMF as RTP telephone-events (RFC 4733).

Payload format (RFC 4733 section 2.3), four octets per event::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     event     |E|R| volume    |          duration             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Theory of operation
-------------------
One key press is one *event*.  Every packet of an event carries the same RTP
timestamp, the instant the event began (section 2.5.1.1); the first packet has
the marker bit set, later ones update the duration so far, and the last one, with
the E bit, is sent three times so that losing one does not matter (section
2.5.1.4).  A receiver therefore recognises an event by its timestamp: the first
packet it sees with a timestamp it has not seen yet is a new key press, whichever
packet that is (the start may have been lost), and every further packet with that
timestamp, retransmitted end packets included, is the same key press.

Two refinements keep a digit from being reported twice:

* a packet whose timestamp is older than the current event's (reordering, or a
  late retransmission) belongs to an event already reported;
* an event longer than the 16-bit duration field allows is cut into segments with
  new timestamps (section 2.5.1.3); a segment that continues the same event has no
  marker bit, and the previous segment was not ended, so it is not a new press.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from teleoffice.media.rtp import RtpPacket

__all__ = [
    "DIGITS",
    "DtmfError",
    "DtmfEvent",
    "DtmfReceiver",
    "digit_to_event",
    "dtmf_packets",
    "event_to_digit",
    "parse_dtmf",
]

# RFC 4733 section 3.2, table 7: events 0-9 are the digits, 10 is *, 11 is #,
# 12-15 are A-D.
DIGITS = "0123456789*#ABCD"
_PAYLOAD = struct.Struct("!BBH")
_END_RETRANSMISSIONS = 3
_TIMESTAMP_MODULUS = 1 << 32


class DtmfError(ValueError):
    """A telephone-event payload is malformed, or a digit is not a DTMF digit."""


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    """One telephone-event payload block.

    `volume` is the power level in -dBm0 (0 to 63, RFC 4733 section 2.3.4);
    `duration` is in RTP timestamp units since the event began.
    """

    event: int
    end: bool
    volume: int
    duration: int

    def __post_init__(self) -> None:
        if not 0 <= self.event <= 255:
            raise DtmfError(f"event code {self.event} does not fit an octet")
        if not 0 <= self.volume <= 63:
            raise DtmfError(f"volume {self.volume} is not 0-63")
        if not 0 <= self.duration <= 0xFFFF:
            raise DtmfError(f"duration {self.duration} is not a 16-bit value")

    def to_bytes(self) -> bytes:
        # The R bit is reserved: sent as zero (section 2.3.3).
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


def parse_dtmf(payload: bytes) -> DtmfEvent:
    """The first event block of a telephone-event payload.

    Several blocks in one packet (section 2.5.1.5, or RFC 2198 redundancy) are
    rare for DTMF; only the first is read.
    """
    if len(payload) < _PAYLOAD.size:
        raise DtmfError(f"telephone-event payload of {len(payload)} octets, expected 4")
    event, flags, duration = _PAYLOAD.unpack_from(payload)
    return DtmfEvent(event=event, end=bool(flags & 0x80), volume=flags & 0x3F, duration=duration)


def digit_to_event(digit: str) -> int:
    """Event code of a DTMF digit: '0'-'9', '*', '#', 'A'-'D' (lower case accepted)."""
    index = DIGITS.find(digit.upper()) if len(digit) == 1 else -1
    if index < 0:
        raise DtmfError(f"{digit!r} is not a DTMF digit")
    return index


def event_to_digit(event: int) -> str | None:
    """The digit of a DTMF event code, None for other events (e.g. 16, flash)."""
    return DIGITS[event] if 0 <= event < len(DIGITS) else None


def _is_older(timestamp: int, reference: int) -> bool:
    """Serial-number comparison of 32-bit RTP timestamps (they wrap)."""
    diff = (timestamp - reference) % _TIMESTAMP_MODULUS
    return diff != 0 and diff >= _TIMESTAMP_MODULUS // 2


class DtmfReceiver:
    """Turns telephone-event packets into digits, each key press exactly once.

    Feed it only packets of the negotiated telephone-event payload type.
    """

    def __init__(self) -> None:
        self._ssrc: int | None = None
        self._timestamp = 0
        self._event = -1
        self._ended = True

    def feed(self, packet: RtpPacket) -> str | None:
        """The digit a new key press begins with this packet, else None."""
        try:
            block = parse_dtmf(packet.payload)
        except DtmfError:
            return None
        if packet.ssrc != self._ssrc:
            # A new stream (a re-INVITE, a different sender): start afresh.
            self._ssrc = packet.ssrc
        elif packet.timestamp == self._timestamp:
            self._ended = self._ended or block.end
            return None
        elif _is_older(packet.timestamp, self._timestamp):
            return None
        elif block.event == self._event and not self._ended and not packet.marker:
            # The next segment of a long event (section 2.5.1.3).
            self._timestamp = packet.timestamp
            self._ended = block.end
            return None
        self._timestamp = packet.timestamp
        self._event = block.event
        self._ended = block.end
        return event_to_digit(block.event)


def dtmf_packets(
    digit: str,
    *,
    start_seq: int,
    timestamp: int,
    ssrc: int,
    payload_type: int = 101,
    duration_ms: int = 100,
    volume: int = 10,
    clock_rate: int = 8000,
    interval_ms: int = 20,
) -> list[RtpPacket]:
    """The packets of one key press, to be sent `interval_ms` apart.

    RFC 4733 section 2.5.1: all share `timestamp`; the first has the marker bit;
    each carries the duration so far, growing by one interval per packet; the
    final duration is sent three times with the E bit.  Every packet gets the next
    sequence number (RFC 3550 section 5.1), retransmissions included.
    """
    event = digit_to_event(digit)
    if duration_ms <= 0 or interval_ms <= 0:
        raise ValueError("duration and interval must be positive")
    step = clock_rate * interval_ms // 1000
    total = clock_rate * duration_ms // 1000
    if total > 0xFFFF:
        raise ValueError(f"{duration_ms} ms does not fit one event segment")
    durations = list(range(step, total, step)) + [total] * _END_RETRANSMISSIONS
    packets = []
    for index, duration in enumerate(durations):
        end = index >= len(durations) - _END_RETRANSMISSIONS
        packets.append(
            RtpPacket(
                payload_type=payload_type,
                marker=index == 0,
                sequence=(start_seq + index) & 0xFFFF,
                timestamp=timestamp,
                ssrc=ssrc,
                payload=DtmfEvent(event, end, volume, duration).to_bytes(),
            )
        )
    return packets
