"""One anchored call's media: two UDP sockets and the relay between them.

Theory of operation
-------------------
A `MediaSession` has two sides, "a" and "b", one per call leg.  Each side owns a
UDP socket from the port pool; the SDP the PBX sends to a leg names that side's
port, and the SDP the leg answers with gives `set_remote(side, host, port)`.
What arrives on one side goes out of the other, to that side's remote.

Forward path.  The relay runs for every packet of every call, so it does the
least it can: compare the source address with the latched one, check the version
bits and the second octet (RTCP, comfort noise), bump counters, and `sendto` the
same bytes object.  It parses no header and logs nothing; any extra work (DTMF
detection, recording) happens only on a side where it was asked for.  Sockets are
read from an event-loop reader callback, not through an asyncio transport: one
wake-up drains a batch of datagrams, and a datagram that cannot be sent at once
is dropped rather than queued (late audio is useless).  Measured with
`relaybench`, this takes the relay's CPU time to about a third of what the
asyncio transport cost under the default event loop, and to within 10% of
uvloop's transport.

Latching (symmetric RTP, RFC 4961).  A phone behind NAT announces its private
address but its packets arrive from the NAT's public one, so the signalled port
cannot be trusted; the IP address is the check.  The first RTP packet from the
signalled IP, whatever its port, *latches* its source address: from then on that
side is sent to where its packets come from, which is the only address a NAT
lets back in.  If the source port later changes (the NAT's mapping was renewed)
the latch follows it.  Packets from any other IP are dropped and counted in
`dropped_foreign`: nobody else can inject audio into a call.

What is not relayed: RTCP arriving on the RTP port (RFC 5761 section 4; each
leg's RTCP is about that leg's hop only), comfort noise (payload type 13, RFC
3389: the PBX does not negotiate it for the other leg), and anything that is not
RTP version 2 (e.g. STUN).  Everything else, PCMU 0, PCMA 8 and telephone-events
under whatever dynamic payload type the SDP chose, passes through untouched.

SRTP.  `set_srtp(side, keys)` makes a side an SRTP leg (RFC 3711, keys from
SDES): what arrives on it is authenticated and decrypted before anything else
looks at it (relay, recorder, DTMF), and everything sent to it, relayed or
played, is encrypted on the way out.  Each side is its own SRTP endpoint, so a
plain leg and a secure one, or two secure legs with different keys, are
bridged.  On an SRTP side only a packet that authenticates may move the latch:
otherwise anyone able to send from the phone's IP address could divert its
audio.  A packet that fails is dropped and counted (`dropped_unauthenticated`).

Hold.  `set_remote(side, None)` (the SDP said port 0 or sendonly/inactive) stops
sending to that side; packets from it are still accepted from its last address.

Playing.  `play(side, source)` sends generated audio to a side, paced on the
event loop's clock by an absolute `PacingClock` and stamped by a `Packetizer`
with the side's own SSRC; sequence numbers continue across successive plays and
the timestamp advances by the time between them, with the marker bit at each
start (RFC 3551 section 4.1).  While a side is played to, nothing is forwarded
to it, so the tone is not mixed with the other leg's audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from teleoffice.media.dtmf import DtmfReceiver
from teleoffice.media.g711 import PCMA, PCMU, alaw_encode, ulaw_encode
from teleoffice.media.pacing import PacingClock, Packetizer
from teleoffice.media.playout import Playout
from teleoffice.media.ports import PortPool, bind_udp
from teleoffice.media.rtp import RtpError, parse_rtp
from teleoffice.media.sources import FRAME_MS, FrameSource
from teleoffice.media.srtp import SrtpError, SrtpKeys, SrtpReceiver, SrtpSender
from teleoffice.media.tones import Tone, ToneSource
from teleoffice.media.wavfile import WavWriter

__all__ = ["SIDES", "MediaSession", "MediaStats", "Side"]

log = logging.getLogger(__name__)

Side = Literal["a", "b"]
SIDES: tuple[Side, Side] = ("a", "b")
Address = tuple[Any, ...]

_COMFORT_NOISE = 13  # RFC 3551 section 6, RFC 3389
_FRAME_SECONDS = FRAME_MS / 1000
# A player more than this many frames behind (a stalled event loop) skips ahead
# instead of sending them all at once.
_MAX_CATCH_UP = 5
# Datagrams read per wake-up of a socket: enough to drain a burst, few enough
# that one busy call cannot starve the rest of the event loop.
_READ_BATCH = 16
# Larger than any RTP packet that fits an Ethernet frame; bigger ones are cut.
_MAX_DATAGRAM = 2048


@dataclass(frozen=True, slots=True)
class MediaStats:
    """Counters of one side: what arrived on its socket and what was sent from it."""

    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    dropped_foreign: int = 0
    dropped_rtcp: int = 0
    dropped_comfort_noise: int = 0
    dropped_invalid: int = 0
    send_errors: int = 0
    dropped_unauthenticated: int = 0

    def __add__(self, other: MediaStats) -> MediaStats:
        return MediaStats(
            *(getattr(self, f) + getattr(other, f) for f in MediaStats.__dataclass_fields__)
        )


class _Leg:
    """One side: its socket, its remote, and what happens to what arrives on it."""

    __slots__ = (
        "bytes_in",
        "bytes_out",
        "dest",
        "dropped_comfort_noise",
        "dropped_foreign",
        "dropped_invalid",
        "dropped_rtcp",
        "dropped_unauthenticated",
        "dtmf",
        "dtmf_callback",
        "dtmf_payload_type",
        "forward_to",
        "next_due",
        "packetizer",
        "packets_in",
        "packets_out",
        "peer",
        "player",
        "playout",
        "port",
        "recorder",
        "remote_host",
        "remote_port",
        "send_errors",
        "sending",
        "side",
        "sock",
        "source",
        "srtp_in",
        "srtp_out",
        "tapped",
    )

    def __init__(self, side: Side, sock: socket.socket, port: int) -> None:
        self.side = side
        self.sock = sock
        self.port = port
        self.peer: _Leg = self
        self.remote_host: str | None = None
        self.remote_port = 0
        self.sending = False
        self.source: Address | None = None  # the latched address
        self.dest: Address | None = None  # where this side is sent to
        self.forward_to: Address | None = None  # dest, unless something is playing
        self.player: asyncio.Task[None] | None = None
        self.packetizer: Packetizer | None = None
        self.next_due = 0.0
        self.tapped = False
        self.playout: Playout | None = None
        self.recorder: WavWriter | None = None
        self.dtmf: DtmfReceiver | None = None
        self.dtmf_callback: Callable[[str], None] | None = None
        self.dtmf_payload_type = -1
        # SRTP toward this side's leg: None for plain RTP.
        self.srtp_in: SrtpReceiver | None = None
        self.srtp_out: SrtpSender | None = None
        self.packets_in = self.bytes_in = self.packets_out = self.bytes_out = 0
        self.dropped_foreign = self.dropped_rtcp = self.dropped_comfort_noise = 0
        self.dropped_invalid = self.send_errors = self.dropped_unauthenticated = 0

    # -- the forward path -------------------------------------------------------------

    def on_readable(self) -> None:
        """Read what is waiting on the socket (a bounded batch) and relay it.

        The socket is read directly from the event loop's reader callback rather
        than through an asyncio transport: one wake-up drains several datagrams,
        and sending needs no buffering layer, since a UDP relay that cannot send
        right now drops the packet (a late audio frame is worth nothing).
        """
        recvfrom = self.sock.recvfrom
        for _ in range(_READ_BATCH):
            try:
                data, addr = recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                if self.sock.fileno() < 0:
                    return  # closed by a callback of the previous datagram
                # An ICMP error reported on the socket (the phone went away).
                self.send_errors += 1
                continue
            if addr != self.source and not self._admit(data, addr):
                continue
            if len(data) < 12 or data[0] & 0xC0 != 0x80:
                self.dropped_invalid += 1
                continue
            second = data[1]
            if 192 <= second <= 223:
                self.dropped_rtcp += 1
                continue
            if second & 0x7F == _COMFORT_NOISE:
                self.dropped_comfort_noise += 1
                continue
            srtp_in = self.srtp_in
            if srtp_in is not None:
                try:
                    data = srtp_in.unprotect(data)
                except SrtpError:
                    self.dropped_unauthenticated += 1
                    continue
                if addr != self.source:
                    self._latch(addr)  # authenticated: now it may move the latch
            self.packets_in += 1
            self.bytes_in += len(data)
            if self.tapped:
                self._tap(data)
            peer = self.peer
            dest = peer.forward_to
            if dest is not None:
                srtp_out = peer.srtp_out
                if srtp_out is not None:
                    try:
                        data = srtp_out.protect(data)
                    except SrtpError:
                        peer.send_errors += 1
                        continue
                try:
                    peer.sock.sendto(data, dest)
                except OSError:
                    peer.send_errors += 1
                else:
                    peer.packets_out += 1
                    peer.bytes_out += len(data)

    # -- the slow paths -------------------------------------------------------------

    def _admit(self, data: bytes, addr: Address) -> bool:
        """A packet from an address other than the latched one: latch it, or drop it."""
        if self.remote_host is None or addr[0] != self.remote_host:
            self.dropped_foreign += 1
            return False
        # Only a real RTP packet may move the latch; on an SRTP side only one that
        # authenticates, which `on_readable` checks before calling `_latch`.
        if (
            self.srtp_in is None
            and len(data) >= 12
            and data[0] & 0xC0 == 0x80
            and not 192 <= data[1] <= 223
        ):
            self._latch(addr)
        return True

    def _latch(self, addr: Address) -> None:
        self.source = addr
        self.refresh()

    def refresh(self) -> None:
        """Recompute where this side is sent to after a change of remote, latch or play."""
        if not self.sending:
            self.dest = None
        elif self.source is not None:
            self.dest = self.source
        else:
            self.dest = (self.remote_host, self.remote_port)
        self.forward_to = None if self.player is not None else self.dest

    def _tap(self, data: bytes) -> None:
        try:
            packet = parse_rtp(data)
        except RtpError:
            return
        if self.dtmf is not None and packet.payload_type == self.dtmf_payload_type:
            digit = self.dtmf.feed(packet)
            if digit is not None and self.dtmf_callback is not None:
                try:
                    self.dtmf_callback(digit)
                except Exception:
                    log.exception("DTMF callback of side %s failed", self.side)
        if self.recorder is not None and self.playout is not None:
            pcm = self.playout.feed(packet)
            if pcm:
                try:
                    self.recorder.write(pcm)
                except Exception:
                    log.exception("recording of side %s failed; recording stopped", self.side)
                    self.recorder = self.playout = None
                    self.retap()

    def retap(self) -> None:
        self.tapped = self.recorder is not None or self.dtmf is not None

    def send(self, data: bytes) -> None:
        dest = self.dest
        if dest is None:
            return
        srtp_out = self.srtp_out
        if srtp_out is not None:
            try:
                data = srtp_out.protect(data)
            except SrtpError:
                self.send_errors += 1
                return
        try:
            self.sock.sendto(data, dest)
        except OSError:
            self.send_errors += 1
        else:
            self.packets_out += 1
            self.bytes_out += len(data)

    def stats(self) -> MediaStats:
        return MediaStats(
            packets_in=self.packets_in,
            bytes_in=self.bytes_in,
            packets_out=self.packets_out,
            bytes_out=self.bytes_out,
            dropped_foreign=self.dropped_foreign,
            dropped_rtcp=self.dropped_rtcp,
            dropped_comfort_noise=self.dropped_comfort_noise,
            dropped_invalid=self.dropped_invalid,
            send_errors=self.send_errors,
            dropped_unauthenticated=self.dropped_unauthenticated,
        )


class _Nowhere(_Leg):
    """The partner of a side joined to nothing (hold): what arrives is dropped."""

    def __init__(self) -> None:  # no socket: `forward_to` stays None, so nothing is sent
        self.forward_to = None
        self.peer = self
        self.srtp_out = None


_NOWHERE = _Nowhere()


def _unpair(leg: _Leg) -> None:
    """Leave `leg` and whatever it was joined to each joined to nothing."""
    partner = leg.peer
    if partner is not leg and partner.peer is leg:
        partner.peer = _NOWHERE
    leg.peer = _NOWHERE


def _encoder(payload_type: int) -> Callable[[bytes], bytes]:
    if payload_type == PCMU:
        return ulaw_encode
    if payload_type == PCMA:
        return alaw_encode
    raise ValueError(f"can only play PCMU (0) or PCMA (8), not payload type {payload_type}")


class MediaSession:
    """The media of one call: side "a" and side "b", relayed to each other.

    Made by `MediaEngine.create_session()` (or `MediaSession.open`); `close()`
    gives the sockets and ports back.
    """

    def __init__(
        self,
        legs: tuple[_Leg, _Leg],
        pool: PortPool,
        host: str,
        *,
        on_close: Callable[[MediaSession], None] | None = None,
    ) -> None:
        self._legs: dict[str, _Leg] = {"a": legs[0], "b": legs[1]}
        self._loop = asyncio.get_running_loop()
        legs[0].peer, legs[1].peer = legs[1], legs[0]
        self._pool = pool
        self._on_close = on_close
        self.host = host
        self.closed = False

    @classmethod
    async def open(
        cls,
        pool: PortPool,
        host: str,
        *,
        on_close: Callable[[MediaSession], None] | None = None,
    ) -> MediaSession:
        """Bind both sides' sockets on `host` with ports from `pool`."""
        sock_a, port_a = bind_udp(pool, host)
        try:
            sock_b, port_b = bind_udp(pool, host)
        except BaseException:
            sock_a.close()
            pool.release(port_a)
            raise
        session = cls(
            (_Leg("a", sock_a, port_a), _Leg("b", sock_b, port_b)), pool, host, on_close=on_close
        )
        try:
            # Needs a loop with add_reader: asyncio's selector loop or uvloop (the
            # Windows proactor loop has none).
            for leg in session._legs.values():
                session._loop.add_reader(leg.sock.fileno(), leg.on_readable)
        except BaseException:
            session.close()
            raise
        return session

    def _leg(self, side: str) -> _Leg:
        try:
            return self._legs[side]
        except KeyError:
            raise ValueError(f"a session has sides 'a' and 'b', not {side!r}") from None

    # -- addresses ------------------------------------------------------------------

    def local_port(self, side: Side) -> int:
        """The RTP port to put in the SDP sent to this side's leg."""
        return self._leg(side).port

    def set_remote(self, side: Side, host: str | None, port: int | None = None) -> None:
        """Where this side's leg wants its media, from its SDP; None (or port 0) holds.

        A new address drops the latch; the same one again (a session refresh)
        keeps it.
        """
        leg = self._leg(side)
        if host is None or not port:
            leg.sending = False
        else:
            if not 0 < port <= 65535:
                raise ValueError(f"RTP port {port} out of range")
            try:
                normalized = ipaddress.ip_address(host.strip("[]")).compressed
            except ValueError:
                raise ValueError(f"remote media address {host!r} is not an IP address") from None
            if (normalized, port) != (leg.remote_host, leg.remote_port):
                leg.source = None
            leg.remote_host, leg.remote_port = normalized, port
            leg.sending = True
        leg.refresh()

    def set_srtp(self, side: Side, keys: SrtpKeys | None) -> None:
        """Make this side an SRTP leg with `keys` (from SDES), or plain RTP with None.

        Unchanged keys (a session refresh) keep the SRTP state; a new send key
        starts a new sender, and a new receive key keeps the old one as a
        fallback until the new one authenticates a packet (RFC 4568 section
        7.1.4: the phone may still send under its old key for a moment).
        """
        leg = self._leg(side)
        if keys is None:
            leg.srtp_in = leg.srtp_out = None
            return
        sender = leg.srtp_out
        if sender is None or sender.suite is not keys.suite or sender.key != keys.send:
            leg.srtp_out = SrtpSender(keys.suite, keys.send)
        receiver = leg.srtp_in
        if receiver is None or receiver.suite is not keys.suite or receiver.key != keys.receive:
            leg.srtp_in = SrtpReceiver(keys.suite, keys.receive, previous=receiver)

    def is_secure(self, side: Side) -> bool:
        """Whether this side's leg speaks SRTP."""
        return self._leg(side).srtp_out is not None

    def remote(self, side: Side) -> tuple[str, int] | None:
        """Where this side is sent to now (the latched address if any), or None."""
        dest = self._leg(side).dest
        return None if dest is None else (str(dest[0]), int(dest[1]))

    # -- playing --------------------------------------------------------------------

    def play(
        self,
        side: Side,
        source: FrameSource,
        *,
        payload_type: int,
        on_done: Callable[[], None] | None = None,
    ) -> None:
        """Send `source` to this side in 20 ms G.711 packets, instead of the relay.

        A play already running on that side is replaced.  `on_done` is called when
        the source finishes by itself, not when the play is stopped or replaced.
        """
        if self.closed:
            raise RuntimeError("the media session is closed")
        leg = self._leg(side)
        encode = _encoder(payload_type)
        self.stop_play(side)
        loop = asyncio.get_running_loop()
        now = loop.time()
        if leg.packetizer is None:
            leg.packetizer = Packetizer(
                random.getrandbits(32),
                payload_type,
                initial_seq=random.getrandbits(16),
                initial_timestamp=random.getrandbits(32),
            )
        else:
            leg.packetizer.payload_type = payload_type
            leg.packetizer.pause(now - leg.next_due)  # marks a new talkspurt too
        task = loop.create_task(self._play(leg, source, encode, leg.packetizer, on_done))
        leg.player = task
        leg.refresh()

    async def _play(
        self,
        leg: _Leg,
        source: FrameSource,
        encode: Callable[[bytes], bytes],
        packetizer: Packetizer,
        on_done: Callable[[], None] | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        clock = PacingClock(loop.time(), _FRAME_SECONDS)
        sent = 0
        finished = False
        try:
            while not finished:
                now = loop.time()
                owed = clock.late(now, sent)
                if owed > _MAX_CATCH_UP:
                    packetizer.gap((owed - 1) * packetizer.samples_per_frame)
                    clock.rebase(now, sent)
                    owed = 1
                for _ in range(owed):
                    frame = source.next_frame()
                    if frame is None:
                        finished = True
                        break
                    leg.send(packetizer.next_packet(encode(frame)).to_bytes())
                    sent += 1
                leg.next_due = clock.due(sent)
                if not finished:
                    await asyncio.sleep(max(0.0, leg.next_due - loop.time()))
        except Exception:
            # A broken source (an unreadable prompt) ends the play like the end of
            # the prompt would, so the call flow waiting for on_done carries on.
            log.exception("playing to side %s failed", leg.side)
        finally:
            if leg.player is asyncio.current_task():
                leg.player = None
                leg.refresh()
        if on_done is not None:
            try:
                on_done()
            except Exception:
                log.exception("on_done callback of a play on side %s failed", leg.side)

    # -- joining sides of different sessions ------------------------------------------

    def join(self, side: Side, other: MediaSession, other_side: Side) -> None:
        """Relay between this side and a side of another session (or this one).

        Used for a telecommuter's line: its side stays in the session of the call
        that set it up and is joined to the party of whichever call is active.
        Whatever either side was joined to before hears nothing from then on.
        """
        if self.closed or other.closed:
            raise RuntimeError("the media session is closed")
        mine, theirs = self._leg(side), other._leg(other_side)
        _unpair(mine)
        _unpair(theirs)
        mine.peer, theirs.peer = theirs, mine

    def detach(self, side: Side) -> None:
        """Relay nothing to or from this side (hold)."""
        _unpair(self._leg(side))

    def play_tone(self, side: Side, tone: Tone, payload_type: int) -> None:
        """Play a call progress tone to a side until `stop_play` (or its end)."""
        self.play(side, ToneSource(tone), payload_type=payload_type)

    def stop_play(self, side: Side) -> None:
        """Stop what is playing to this side (if anything) and resume the relay to it."""
        leg = self._leg(side)
        task, leg.player = leg.player, None
        if task is not None:
            task.cancel()
        leg.refresh()

    def is_playing(self, side: Side) -> bool:
        return self._leg(side).player is not None

    # -- listening ------------------------------------------------------------------

    def record(self, side: Side, writer: WavWriter) -> None:
        """Write what arrives from this side (PCMU/PCMA, decoded) into `writer`.

        The writer stays the caller's: `stop_record` ends the recording, and the
        caller commits or aborts it.
        """
        if self.closed:
            raise RuntimeError("the media session is closed")
        leg = self._leg(side)
        leg.recorder = writer
        leg.playout = Playout()
        leg.retap()

    def stop_record(self, side: Side) -> float:
        """Stop recording this side; returns the seconds recorded (0 if none)."""
        leg = self._leg(side)
        writer, leg.recorder, leg.playout = leg.recorder, None, None
        leg.retap()
        return 0.0 if writer is None else writer.duration

    def on_dtmf(
        self,
        side: Side,
        callback: Callable[[str], None] | None,
        *,
        payload_type: int = 101,
    ) -> None:
        """Call `callback(digit)` once per key pressed on this side (RFC 4733).

        `payload_type` is the telephone-event type this side's SDP negotiated.
        The events are still relayed.  None removes the callback.
        """
        leg = self._leg(side)
        if callback is None:
            leg.dtmf = leg.dtmf_callback = None
        else:
            leg.dtmf = DtmfReceiver()
            leg.dtmf_callback = callback
            leg.dtmf_payload_type = payload_type
        leg.retap()

    # -- counters and the end -------------------------------------------------------

    def stats(self, side: Side) -> MediaStats:
        return self._leg(side).stats()

    @property
    def totals(self) -> MediaStats:
        return self._legs["a"].stats() + self._legs["b"].stats()

    @property
    def packets_in(self) -> int:
        return self.totals.packets_in

    @property
    def packets_out(self) -> int:
        return self.totals.packets_out

    @property
    def bytes_in(self) -> int:
        return self.totals.bytes_in

    @property
    def bytes_out(self) -> int:
        return self.totals.bytes_out

    @property
    def dropped_foreign(self) -> int:
        return self.totals.dropped_foreign

    def close(self) -> None:
        """Stop everything, close both sockets and give their ports back (idempotent).

        A recording in progress is stopped but not committed: its writer is the
        caller's.
        """
        if self.closed:
            return
        self.closed = True
        for side in SIDES:
            leg = self._legs[side]
            self.stop_play(side)
            leg.recorder = leg.playout = None
            leg.dtmf = leg.dtmf_callback = None
            leg.srtp_in = leg.srtp_out = None
            leg.retap()
            leg.sending = False
            leg.refresh()
            # A side of another session joined to this one must not send into a
            # closed socket.
            _unpair(leg)
            # Synchronous: once close() returns, the port is free for the next call.
            with contextlib.suppress(RuntimeError, ValueError, OSError):  # a closed loop
                self._loop.remove_reader(leg.sock.fileno())
            leg.sock.close()
            with contextlib.suppress(ValueError):
                self._pool.release(leg.port)
        if self._on_close is not None:
            self._on_close(self)
