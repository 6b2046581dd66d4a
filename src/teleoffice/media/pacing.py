"""Timing of RTP streams: stamping frames, sending on schedule, measuring arrivals.

* `Packetizer` gives generated frames their RTP sequence numbers, timestamps and
  marker bits (RFC 3550 section 5.1, RFC 3551 section 4.1).
* `PacingClock` says when each frame is due on an absolute schedule, so a sender
  never drifts: sleeping 20 ms after each frame would add the loop's latency to
  every frame and fall behind by seconds over a long prompt.
* `JitterStats` is the receiver's view: interarrival jitter (RFC 3550 appendix
  A.8) and loss from the extended highest sequence number (appendix A.1, A.3).

All three are pure: times are passed in as seconds on any monotonic clock.
"""

from __future__ import annotations

import math

from teleoffice.media.rtp import RtpPacket

__all__ = ["JitterStats", "PacingClock", "Packetizer"]

_SEQ_MODULUS = 1 << 16
_TIMESTAMP_MODULUS = 1 << 32


class Packetizer:
    """Stamps consecutive frames of one RTP stream (one SSRC).

    Sequence numbers go up by one per packet and timestamps by the frame's
    samples (160 for 20 ms at 8000 Hz), both wrapping.  The first packet, and the
    first after `gap()`, start a talkspurt and carry the marker bit (RFC 3551
    section 4.1), so the receiver re-syncs its playout instead of treating the
    pause as loss.  RFC 3550 section 5.1 wants the initial sequence number and
    timestamp random; the caller chooses them, which keeps this class
    deterministic.
    """

    def __init__(
        self,
        ssrc: int,
        payload_type: int,
        *,
        clock_rate: int = 8000,
        ptime_ms: int = 20,
        initial_seq: int,
        initial_timestamp: int,
    ) -> None:
        if clock_rate * ptime_ms % 1000:
            raise ValueError(f"{ptime_ms} ms is not a whole number of samples at {clock_rate} Hz")
        self.ssrc = ssrc
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.samples_per_frame = clock_rate * ptime_ms // 1000
        self.next_sequence = initial_seq % _SEQ_MODULUS
        self.next_timestamp = initial_timestamp % _TIMESTAMP_MODULUS
        self._talkspurt_start = True

    def next_packet(self, payload: bytes, *, marker: bool = False) -> RtpPacket:
        """The packet for the next frame (`marker` forces a talkspurt start)."""
        packet = RtpPacket(
            payload_type=self.payload_type,
            marker=marker or self._talkspurt_start,
            sequence=self.next_sequence,
            timestamp=self.next_timestamp,
            ssrc=self.ssrc,
            payload=payload,
        )
        self._talkspurt_start = False
        self.next_sequence = (self.next_sequence + 1) % _SEQ_MODULUS
        self.next_timestamp = (self.next_timestamp + self.samples_per_frame) % _TIMESTAMP_MODULUS
        return packet

    def gap(self, samples: int) -> None:
        """`samples` of media time passed without a packet (a pause, a stall).

        The timestamp moves on by that much, the sequence number does not (no
        packet was lost), and the next packet starts a new talkspurt.
        """
        if samples < 0:
            raise ValueError("media time does not go backwards")
        self.next_timestamp = (self.next_timestamp + samples) % _TIMESTAMP_MODULUS
        self._talkspurt_start = True

    def pause(self, seconds: float) -> None:
        """`gap()` for a pause measured in seconds since the last frame was due."""
        self.gap(max(0, round(seconds * self.clock_rate)))


class PacingClock:
    """An absolute sending schedule: frame n is due at start + n * ptime.

    The sender asks `due(n)` to know when to wake up and `late(now, sent)` to know
    how many frames it owes; computing from `start` each time means rounding and
    late wake-ups never accumulate.
    """

    # Tolerance for float rounding when `now` is exactly a due time.
    _EPSILON = 1e-9

    def __init__(self, start: float, ptime: float) -> None:
        if ptime <= 0:
            raise ValueError("ptime must be positive")
        self.start = start
        self.ptime = ptime

    def due(self, n: int) -> float:
        """When frame n (counting from 0) should be sent."""
        return self.start + n * self.ptime

    def frames_due(self, now: float) -> int:
        """How many frames (0..n-1) should have been sent by `now`."""
        if now < self.start:
            return 0
        return math.floor((now - self.start) / self.ptime + self._EPSILON) + 1

    def late(self, now: float, sent: int) -> int:
        """How many frames are overdue at `now` when `sent` have been sent."""
        return max(0, self.frames_due(now) - sent)

    def rebase(self, now: float, sent: int) -> None:
        """Move the schedule so that frame `sent` is due at `now`.

        For a sender that fell so far behind (a stalled loop) that sending every
        overdue frame at once would be a burst the receiver cannot absorb.
        """
        self.start = now - sent * self.ptime


class JitterStats:
    """Receiver statistics of one RTP stream (RFC 3550 appendix A.1, A.3, A.8).

    Feed every packet of the stream with its arrival time.  Sequence numbers are
    extended with a wrap count; a jump of more than `MAX_DROPOUT` is accepted only
    when the next packet confirms it (the sender restarted), and packets up to
    `MAX_MISORDER` behind are late arrivals, not a restart.
    """

    MAX_DROPOUT = 3000
    MAX_MISORDER = 100

    def __init__(self, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate
        self.received = 0
        self.jitter = 0.0  # in timestamp units, as RFC 3550 reports it
        self._base_seq = 0
        self._max_seq = 0
        self._cycles = 0
        self._bad_seq: int | None = None
        self._started = False
        self._last_arrival = 0.0
        self._last_timestamp = 0

    def _restart(self, sequence: int) -> None:
        self._base_seq = sequence
        self._max_seq = sequence
        self._cycles = 0
        self._bad_seq = None
        self.received = 0

    def update(self, sequence: int, timestamp: int, arrival: float) -> None:
        """Account for one packet that arrived at `arrival` seconds."""
        if not self._started:
            self._started = True
            self._restart(sequence)
        else:
            delta = (sequence - self._max_seq) % _SEQ_MODULUS
            if delta < self.MAX_DROPOUT:
                if sequence < self._max_seq:
                    self._cycles += _SEQ_MODULUS  # wrapped
                self._max_seq = sequence
            elif delta <= _SEQ_MODULUS - self.MAX_MISORDER:
                # A big jump: believe it only if the next packet follows it.
                if sequence != self._bad_seq:
                    self._bad_seq = (sequence + 1) % _SEQ_MODULUS
                    return
                self._restart(sequence)
            # else: a duplicate or a packet that arrived late; counted below.
            # A.8: D(i-1, i) = (R_i - R_(i-1)) - (S_i - S_(i-1)), in timestamp units.
            # The timestamp difference is taken modulo 2^32 as a signed value.
            sent = (timestamp - self._last_timestamp) % _TIMESTAMP_MODULUS
            if sent >= _TIMESTAMP_MODULUS // 2:
                sent -= _TIMESTAMP_MODULUS
            transit_change = (arrival - self._last_arrival) * self.clock_rate - sent
            self.jitter += (abs(transit_change) - self.jitter) / 16
        self._last_arrival = arrival
        self._last_timestamp = timestamp
        self.received += 1

    @property
    def extended_max_sequence(self) -> int:
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        """Packets the sender sent, judged by the sequence numbers (A.3)."""
        return self.extended_max_sequence - self._base_seq + 1 if self._started else 0

    @property
    def lost(self) -> int:
        """Expected minus received; negative when duplicates arrived (A.3)."""
        return self.expected - self.received

    @property
    def loss_fraction(self) -> float:
        expected = self.expected
        return max(0, self.lost) / expected if expected else 0.0

    @property
    def jitter_seconds(self) -> float:
        return self.jitter / self.clock_rate
