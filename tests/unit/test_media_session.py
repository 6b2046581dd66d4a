"""Tests of media.session and media.engine with real UDP sockets on 127.0.0.1.

Two fake phones (plain UDP sockets) talk through a MediaSession.  Each test uses
its own block of RTP ports in 40000-40999 so tests can run in parallel.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import wave
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, cast

import pytest

from teleoffice.media.analysis import dominant_frequency, rms
from teleoffice.media.dtmf import dtmf_packets
from teleoffice.media.engine import MediaEngine
from teleoffice.media.g711 import alaw_decode, ulaw_decode, ulaw_encode
from teleoffice.media.ports import NoPortsAvailable
from teleoffice.media.rtp import RtpPacket, parse_rtp
from teleoffice.media.session import MediaSession
from teleoffice.media.tones import ToneSet, ToneSource
from teleoffice.media.wavfile import WavWriter

HOST = "127.0.0.1"
TIMEOUT = 5.0
CANDIDATES = (350, 425, 440, 480, 620, 1000)


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


class Phone(asyncio.DatagramProtocol):
    """A fake RTP endpoint that keeps what it receives."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait((data, addr))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, (HOST, port))

    async def receive(self, count: int = 1, within: float = 2.0) -> list[bytes]:
        out = []
        for _ in range(count):
            data, _ = await asyncio.wait_for(self.queue.get(), within)
            out.append(data)
        return out

    async def silent_for(self, seconds: float = 0.15) -> bool:
        await asyncio.sleep(seconds)
        return self.queue.empty()


async def phone(host: str = HOST) -> Phone:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_datagram_endpoint(Phone, local_addr=(host, 0))
    return protocol


@contextlib.asynccontextmanager
async def call(
    block: int, *, base: int = 40000
) -> AsyncIterator[tuple[MediaEngine, MediaSession, Phone, Phone]]:
    """An engine on its own port block, one session, phones a and b connected to it."""
    low = base + 40 * block
    engine = MediaEngine(HOST, low, low + 39)
    session = await engine.create_session()
    phone_a, phone_b = await phone(), await phone()
    session.set_remote("a", HOST, phone_a.port)
    session.set_remote("b", HOST, phone_b.port)
    try:
        yield engine, session, phone_a, phone_b
    finally:
        for p in (phone_a, phone_b):
            assert p.transport is not None
            p.transport.close()
        engine.close()
        assert engine.ports_in_use == 0
        assert engine.active_sessions == 0


def rtp(seq: int, *, pt: int = 0, ssrc: int = 0xA, payload: bytes = b"\xff" * 160) -> bytes:
    return RtpPacket(
        payload_type=pt, sequence=seq & 0xFFFF, timestamp=160 * seq, ssrc=ssrc, payload=payload
    ).to_bytes()


async def until(condition: Callable[[], bool], within: float = 2.0) -> None:
    """Poll a counter of the session: the relay has no event to wait on, by design."""

    async def wait() -> None:
        while not condition():  # noqa: ASYNC110 - polling a plain counter
            await asyncio.sleep(0.005)

    await asyncio.wait_for(wait(), within)


def test_relays_both_ways_exactly_what_was_sent() -> None:
    async def main() -> None:
        async with call(0) as (engine, session, phone_a, phone_b):
            assert engine.ports_in_use == 2
            assert engine.active_sessions == 1
            port_a, port_b = session.local_port("a"), session.local_port("b")
            assert port_a % 2 == 0
            assert port_b % 2 == 0
            assert port_a != port_b
            sent_a = [rtp(n, ssrc=1) for n in range(50)]
            for packet in sent_a:
                phone_a.send(packet, port_a)
            assert await phone_b.receive(50) == sent_a
            sent_b = [rtp(n, pt=8, ssrc=2, payload=bytes([n]) * 160) for n in range(50)]
            for packet in sent_b:
                phone_b.send(packet, port_b)
            assert await phone_a.receive(50) == sent_b
            assert await phone_a.silent_for()
            assert await phone_b.silent_for()
            a, b = session.stats("a"), session.stats("b")
            assert (a.packets_in, a.packets_out, b.packets_in, b.packets_out) == (50, 50, 50, 50)
            assert a.bytes_in == 50 * 172 == b.bytes_out
            assert session.packets_in == session.packets_out == 100
            assert session.bytes_in == session.bytes_out == 2 * 50 * 172
            assert session.dropped_foreign == 0

    run(main)


def test_latches_the_real_source_port_of_the_signalled_ip() -> None:
    async def main() -> None:
        async with call(1) as (_, session, phone_a, phone_b):
            behind_nat = await phone()  # same IP, another port than the SDP said
            behind_nat.send(rtp(1), session.local_port("a"))
            await phone_b.receive(1)
            assert session.remote("a") == (HOST, behind_nat.port)
            phone_b.send(rtp(2, ssrc=7), session.local_port("b"))
            assert parse_rtp((await behind_nat.receive(1))[0]).ssrc == 7
            assert await phone_a.silent_for()  # not to the signalled port any more
            # The same SDP again (a session refresh) keeps the latch; a new one drops it.
            session.set_remote("a", HOST, phone_a.port)
            assert session.remote("a") == (HOST, behind_nat.port)
            session.set_remote("a", HOST, phone_b.port)
            assert session.remote("a") == (HOST, phone_b.port)
            assert behind_nat.transport is not None
            behind_nat.transport.close()

    run(main)


def test_drops_packets_from_a_foreign_ip() -> None:
    async def main() -> None:
        async with call(2) as (_, session, _phone_a, phone_b):
            intruder = await phone("127.0.0.2")
            for n in range(5):
                intruder.send(rtp(n), session.local_port("a"))
            await until(lambda: session.dropped_foreign == 5)
            assert await phone_b.silent_for()
            assert session.stats("a").packets_in == 0
            assert intruder.transport is not None
            intruder.transport.close()

    run(main)


def test_nothing_is_accepted_before_the_remote_is_known() -> None:
    async def main() -> None:
        engine = MediaEngine(HOST, 40120, 40159)
        session = await engine.create_session()
        someone = await phone()
        someone.send(rtp(1), session.local_port("a"))
        await until(lambda: session.dropped_foreign == 1)
        engine.release(session)
        assert someone.transport is not None
        someone.transport.close()

    run(main)


def test_rtcp_comfort_noise_and_junk_are_not_relayed_but_dtmf_is() -> None:
    async def main() -> None:
        async with call(4) as (_, session, phone_a, phone_b):
            port_a = session.local_port("a")
            receiver_report = bytes.fromhex("81c90007") + bytes(28)
            phone_a.send(receiver_report, port_a)
            phone_a.send(rtp(1, pt=13, payload=b"\x40"), port_a)  # comfort noise
            phone_a.send(b"\x00\x01\x00\x00" + bytes(16), port_a)  # a STUN request
            phone_a.send(b"\x80\x00", port_a)  # too short
            events = [p.to_bytes() for p in dtmf_packets("5", start_seq=9, timestamp=0, ssrc=3)]
            for packet in events:
                phone_a.send(packet, port_a)
            assert await phone_b.receive(len(events)) == events
            assert await phone_b.silent_for()
            stats = session.stats("a")
            assert (stats.dropped_rtcp, stats.dropped_comfort_noise) == (1, 1)
            assert stats.dropped_invalid == 2

    run(main)


def test_hold_stops_sending_to_that_side_only() -> None:
    async def main() -> None:
        async with call(5) as (_, session, phone_a, phone_b):
            session.set_remote("b", None)
            phone_a.send(rtp(1), session.local_port("a"))
            phone_b.send(rtp(1, ssrc=5), session.local_port("b"))
            assert parse_rtp((await phone_a.receive(1))[0]).ssrc == 5  # b still heard
            assert await phone_b.silent_for()
            assert session.remote("b") is None
            session.set_remote("b", HOST, phone_b.port)  # resume
            phone_a.send(rtp(2), session.local_port("a"))
            await phone_b.receive(1)

    run(main)


async def collect_play(receiver: Phone, count: int) -> tuple[list[RtpPacket], list[float]]:
    loop = asyncio.get_running_loop()
    packets, times = [], []
    for _ in range(count):
        data, _ = await asyncio.wait_for(receiver.queue.get(), 2.0)
        packets.append(parse_rtp(data))
        times.append(loop.time())
    return packets, times


def test_play_sends_paced_ulaw_packets_of_the_tone() -> None:
    async def main() -> None:
        async with call(6) as (_, session, phone_a, phone_b):
            session.play("a", ToneSource(ToneSet.named().dial), payload_type=0)
            assert session.is_playing("a")
            # The other side's audio is not mixed in while the tone plays.
            phone_b.send(rtp(1, ssrc=0xBB), session.local_port("b"))
            packets, times = await collect_play(phone_a, 25)
            assert {len(p.payload) for p in packets} == {160}
            assert {p.payload_type for p in packets} == {0}
            assert len({p.ssrc for p in packets}) == 1
            assert packets[0].ssrc != 0xBB
            assert [p.marker for p in packets] == [True] + [False] * 24
            for before, after in itertools.pairwise(packets):
                assert after.sequence == (before.sequence + 1) % 65536
                assert after.timestamp == (before.timestamp + 160) % (1 << 32)
            # 24 intervals of 20 ms, give or take the scheduler.
            assert 0.4 < times[-1] - times[0] < 0.7
            audio = b"".join(ulaw_decode(p.payload) for p in packets)
            assert dominant_frequency(audio, CANDIDATES) == 425
            assert rms(audio) > 1000
            session.stop_play("a")
            assert not session.is_playing("a")
            # Drain what was in flight, then the relay to a works again.
            await asyncio.sleep(0.05)
            while not phone_a.queue.empty():
                phone_a.queue.get_nowait()
            phone_b.send(rtp(2, ssrc=0xBB), session.local_port("b"))
            assert parse_rtp((await phone_a.receive(1))[0]).ssrc == 0xBB

    run(main)


def test_successive_plays_continue_the_stream_and_call_on_done() -> None:
    async def main() -> None:
        async with call(7) as (_, session, phone_a, phone_b):
            done = asyncio.Event()
            beep = ToneSet.named().beep
            session.play("a", ToneSource(beep), payload_type=0, on_done=done.set)
            first, _ = await collect_play(phone_a, 13)
            await asyncio.wait_for(done.wait(), 1.0)
            assert not session.is_playing("a")
            await asyncio.sleep(0.1)
            session.play("a", ToneSource(beep), payload_type=8)
            second, _ = await collect_play(phone_a, 13)
            assert second[0].ssrc == first[0].ssrc
            assert second[0].sequence == (first[-1].sequence + 1) % 65536
            assert second[0].marker
            gap = (second[0].timestamp - first[-1].timestamp) % (1 << 32)
            assert 160 + 0.08 * 8000 <= gap <= 160 + 0.5 * 8000  # about 0.1 s of pause
            assert {p.payload_type for p in second} == {8}
            audio = b"".join(alaw_decode(p.payload) for p in second)
            assert dominant_frequency(audio, CANDIDATES) == 1000
            await asyncio.sleep(0.05)
            # After the play the relay resumes by itself.
            phone_b.send(rtp(3, ssrc=0xBB), session.local_port("b"))
            assert parse_rtp((await phone_a.receive(1))[0]).ssrc == 0xBB

    run(main)


def test_record_writes_what_arrives_from_a_side(tmp_path: Path) -> None:
    async def main() -> None:
        async with call(8) as (_, session, phone_a, _phone_b):
            writer = WavWriter(tmp_path / "message.wav")
            session.record("a", writer)
            tone = ToneSource(ToneSet.named().dial)
            for n in range(50):
                frame = tone.next_frame()
                assert frame is not None
                phone_a.send(rtp(n, payload=ulaw_encode(frame)), session.local_port("a"))
            await until(lambda: session.stats("a").packets_in == 50)
            assert session.stop_record("a") == pytest.approx(1.0)
            assert session.stop_record("a") == 0.0
            writer.commit()

    run(main)
    with wave.open(str(tmp_path / "message.wav"), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        audio = wav.readframes(wav.getnframes())
    assert len(audio) == 16000
    assert dominant_frequency(audio, CANDIDATES) == 425
    assert rms(audio) > 1000


def test_dtmf_digits_are_reported_once_each() -> None:
    async def main() -> None:
        async with call(9) as (_, session, phone_a, phone_b):
            digits: list[str] = []
            session.on_dtmf("a", digits.append, payload_type=96)
            packets = []
            for index, digit in enumerate("12#"):
                packets += dtmf_packets(
                    digit, start_seq=7 * index, timestamp=4000 * index, ssrc=3, payload_type=96
                )
            for packet in packets:
                phone_a.send(packet.to_bytes(), session.local_port("a"))
            await phone_b.receive(len(packets))  # relayed as well
            assert digits == ["1", "2", "#"]
            session.on_dtmf("a", None)
            for packet in dtmf_packets("9", start_seq=30, timestamp=20000, ssrc=3):
                phone_a.send(packet.to_bytes(), session.local_port("a"))
            await phone_b.receive(7)
            assert digits == ["1", "2", "#"]

    run(main)


def test_a_failing_callback_does_not_break_the_relay() -> None:
    async def main() -> None:
        async with call(10) as (_, session, phone_a, phone_b):

            def broken(digit: str) -> None:
                raise RuntimeError(digit)

            session.on_dtmf("a", broken)
            for packet in dtmf_packets("4", start_seq=0, timestamp=0, ssrc=3):
                phone_a.send(packet.to_bytes(), session.local_port("a"))
            await phone_b.receive(7)

    run(main)


def test_engine_hands_out_and_takes_back_every_port(tmp_path: Path) -> None:
    async def main() -> None:
        engine = MediaEngine(HOST, 40440, 40451)  # six RTP ports: three sessions
        assert engine.capacity == 3
        sessions = [await engine.create_session() for _ in range(3)]
        assert engine.ports_in_use == 6
        assert engine.active_sessions == 3
        with pytest.raises(NoPortsAvailable):
            await engine.create_session()
        assert engine.ports_in_use == 6
        sessions[0].play("a", ToneSource(ToneSet.named().dial), payload_type=0)
        writer = WavWriter(tmp_path / "x.wav")
        sessions[1].record("b", writer)
        engine.release(sessions[0])
        engine.release(sessions[0])  # idempotent
        assert engine.ports_in_use == 4
        assert engine.active_sessions == 2
        engine.close()
        assert engine.ports_in_use == 0
        assert engine.active_sessions == 0
        with pytest.raises(RuntimeError, match="closed"):
            sessions[0].play("a", ToneSource(ToneSet.named().dial), payload_type=0)
        await asyncio.sleep(0.05)  # the cancelled player winds down quietly
        writer.abort()  # the recording stays the caller's to commit or abort

    run(main)


def test_bad_arguments() -> None:
    async def main() -> None:
        engine = MediaEngine(HOST, 40480, 40519)
        session = await engine.create_session()
        try:
            with pytest.raises(ValueError, match="sides"):
                session.local_port("c")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="IP address"):
                session.set_remote("a", "phone.example.com", 4000)
            with pytest.raises(ValueError, match="out of range"):
                session.set_remote("a", HOST, 70000)
            with pytest.raises(ValueError, match="PCMU"):
                session.play("a", ToneSource(ToneSet.named().dial), payload_type=18)
            session.set_remote("a", HOST, 0)  # port 0 in the SDP: hold
            assert session.remote("a") is None
        finally:
            engine.close()

    run(main)


def test_closing_from_a_callback_frees_the_ports_at_once() -> None:
    async def main() -> None:
        engine = MediaEngine(HOST, 40520, 40523)  # room for exactly one session
        session = await engine.create_session()
        caller = await phone()
        session.set_remote("a", HOST, caller.port)
        # The caller presses # and the IVR hangs up from inside the callback.
        session.on_dtmf("a", lambda digit: engine.release(session))
        for packet in dtmf_packets("#", start_seq=0, timestamp=0, ssrc=3):
            caller.send(packet.to_bytes(), session.local_port("a"))
        await until(lambda: session.closed)
        assert engine.ports_in_use == 0
        again = await engine.create_session()  # the same two ports bind again
        assert {again.local_port("a"), again.local_port("b")} == {40520, 40522}
        engine.close()
        assert caller.transport is not None
        caller.transport.close()

    run(main)
