"""Received RTP to a continuous stream of PCM, for recording.

Packets are placed by their RTP timestamps, not by their arrival: a gap in the
timestamps (a lost packet, a sender that stops during silence, RFC 3551 section
4.1, or comfort noise that is not decoded) becomes silence of the same length, so
a recording keeps the timing of what was said.  A packet older than what has been
written already (a duplicate, or one that arrived too late) is dropped.  A jump
larger than `max_gap` is not silence but a new timeline (the sender restarted its
timestamps, e.g. after a re-INVITE), and the stream simply carries on from there.
Only G.711 payloads (PCMU 0, PCMA 8) are decoded; others are skipped.
"""

from __future__ import annotations

from teleoffice.media.g711 import PCMA, PCMU, alaw_decode, ulaw_decode
from teleoffice.media.rtp import RtpPacket
from teleoffice.media.sources import SAMPLE_RATE

__all__ = ["Playout"]

_TIMESTAMP_MODULUS = 1 << 32


class Playout:
    """Turns the G.711 packets of one direction into 8 kHz int16 PCM."""

    def __init__(self, *, max_gap: float = 10.0) -> None:
        self.max_gap_samples = round(max_gap * SAMPLE_RATE)
        self._ssrc: int | None = None
        self._next_timestamp = 0
        self.samples = 0
        self.dropped = 0

    def feed(self, packet: RtpPacket) -> bytes:
        """The PCM to append for this packet (silence for any gap first), maybe b""."""
        if packet.payload_type == PCMU:
            pcm = ulaw_decode(packet.payload)
        elif packet.payload_type == PCMA:
            pcm = alaw_decode(packet.payload)
        else:
            return b""
        gap = 0
        if packet.ssrc == self._ssrc:
            gap = (packet.timestamp - self._next_timestamp) % _TIMESTAMP_MODULUS
            if gap >= _TIMESTAMP_MODULUS // 2:
                if _TIMESTAMP_MODULUS - gap <= self.max_gap_samples:
                    self.dropped += 1  # behind what is written: late or duplicate
                    return b""
                gap = 0  # far behind: a new timeline
            elif gap > self.max_gap_samples:
                gap = 0  # far ahead: a new timeline
        self._ssrc = packet.ssrc
        self._next_timestamp = (packet.timestamp + len(packet.payload)) % _TIMESTAMP_MODULUS
        self.samples += gap + len(packet.payload)
        return bytes(2 * gap) + pcm if gap else pcm
