"""Joining sides of different media sessions (the telecommuter line, T6), with
real UDP sockets on 127.0.0.1 and a real event loop.

Two calls, S1 and S2, each with phones on sides "a" and "b".  `join` makes one
side relay to a side of the other session instead of its own partner; every
remote keeps hearing from the port its SDP named.  Each test uses its own
block of RTP ports in 41000-41399 (test_media_session.py keeps below 41000).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from teleoffice.media.engine import MediaEngine
from teleoffice.media.rtp import parse_rtp
from teleoffice.media.session import MediaSession
from teleoffice.media.tones import ToneSet
from tests.unit.test_media_session import HOST, Phone, phone, rtp, run, until

PHONES = ("1a", "1b", "2a", "2b")  # session number, then side


@dataclass
class TwoCalls:
    engine: MediaEngine
    s1: MediaSession
    s2: MediaSession
    phones: dict[str, Phone]
    # Whatever the event loop caught from a reader callback: must stay empty.
    errors: list[dict[str, Any]] = field(default_factory=list)

    def send(self, name: str, packets: list[bytes]) -> None:
        """Phone `name` sends to the port its side of its session gave it."""
        session = self.s1 if name[0] == "1" else self.s2
        port = session.local_port("a" if name[1] == "a" else "b")
        for packet in packets:
            self.phones[name].send(packet, port)

    async def received(self, name: str, count: int) -> list[tuple[bytes, int]]:
        """What phone `name` gets: each packet and the port it came from."""
        out = []
        for _ in range(count):
            data, addr = await asyncio.wait_for(self.phones[name].queue.get(), 2.0)
            out.append((data, addr[1]))
        return out

    async def silent(self, *names: str) -> bool:
        await asyncio.sleep(0.15)
        return all(self.phones[n].queue.empty() for n in names)


@contextlib.asynccontextmanager
async def two_calls(block: int) -> AsyncIterator[TwoCalls]:
    low = 41000 + 40 * block
    engine = MediaEngine(HOST, low, low + 39)
    calls = TwoCalls(
        engine, await engine.create_session(), await engine.create_session(), phones={}
    )
    asyncio.get_running_loop().set_exception_handler(
        lambda _loop, context: calls.errors.append(context)
    )
    for name in PHONES:
        calls.phones[name] = await phone()
        session = calls.s1 if name[0] == "1" else calls.s2
        session.set_remote("a" if name[1] == "a" else "b", HOST, calls.phones[name].port)
    try:
        yield calls
    finally:
        for p in calls.phones.values():
            assert p.transport is not None
            p.transport.close()
        engine.close()
        assert engine.ports_in_use == 0
        assert engine.active_sessions == 0
    assert calls.errors == []


def packets(ssrc: int, count: int = 10) -> list[bytes]:
    return [rtp(n, ssrc=ssrc) for n in range(count)]


def test_join_relays_between_two_sessions_and_leaves_their_partners_out() -> None:
    async def main() -> None:
        async with two_calls(0) as c:
            c.s1.join("a", c.s2, "a")
            c.send("1a", packets(0x1A))
            # Exactly what was sent, from the port S2's side a told its phone.
            got = await c.received("2a", 10)
            assert [data for data, _ in got] == packets(0x1A)
            assert {port for _, port in got} == {c.s2.local_port("a")}
            c.send("2a", packets(0x2A))
            got = await c.received("1a", 10)
            assert [data for data, _ in got] == packets(0x2A)
            assert {port for _, port in got} == {c.s1.local_port("a")}
            # The former partners of the joined sides hear nothing, and what
            # they send goes nowhere.
            c.send("1b", packets(0x1B))
            c.send("2b", packets(0x2B))
            assert await c.silent(*PHONES)
            await until(lambda: c.s1.stats("b").packets_in == 10)
            await until(lambda: c.s2.stats("b").packets_in == 10)
            assert c.s1.stats("a").packets_out == 10
            assert c.s2.stats("a").packets_out == 10
            assert c.s1.stats("b").packets_out == c.s2.stats("b").packets_out == 0

    run(main)


def test_detach_stops_relaying_both_ways() -> None:
    async def main() -> None:
        async with two_calls(1) as c:
            c.s1.join("a", c.s2, "a")
            c.send("1a", packets(0x1A, 1))
            await c.received("2a", 1)
            c.s1.detach("a")  # hold: joined to nothing
            c.send("1a", packets(0x1A, 5))
            c.send("2a", packets(0x2A, 5))
            await until(lambda: c.s1.stats("a").packets_in == 6)
            await until(lambda: c.s2.stats("a").packets_in == 5)
            assert await c.silent(*PHONES)
            assert c.s2.stats("a").packets_out == 1
            assert c.s1.stats("a").packets_out == 0
            # Detaching what is already detached is harmless.
            c.s1.detach("a")
            c.s2.detach("b")

    run(main)


def test_the_line_switches_between_two_parties() -> None:
    # The telecommuter line is S1's side b; party 1 is S1's side a, party 2 S2's
    # side a.  Answering the waiting call joins the line to party 2 and leaves
    # party 1 on hold; resuming joins it back within S1.
    async def main() -> None:
        async with two_calls(2) as c:
            c.s1.join("b", c.s2, "a")
            c.s1.detach("a")
            c.send("1b", packets(0x1B, 3))
            assert [d for d, _ in await c.received("2a", 3)] == packets(0x1B, 3)
            c.send("2a", packets(0x2A, 3))
            got = await c.received("1b", 3)
            assert {port for _, port in got} == {c.s1.local_port("b")}
            c.send("1a", packets(0x1A, 3))
            assert await c.silent(*PHONES)

            c.s1.join("b", c.s1, "a")
            c.send("1a", packets(0x1A, 3))
            assert [d for d, _ in await c.received("1b", 3)] == packets(0x1A, 3)
            c.send("1b", packets(0x1B, 3))
            assert [d for d, _ in await c.received("1a", 3)] == packets(0x1B, 3)
            # Party 2, now on hold, hears nothing and is heard by nobody.
            c.send("2a", packets(0x2A, 3))
            assert await c.silent(*PHONES)

    run(main)


def test_the_call_waiting_tone_on_a_joined_line_replaces_the_relay_to_it() -> None:
    async def main() -> None:
        async with two_calls(3) as c:
            c.s1.join("b", c.s2, "a")
            c.s1.play_tone("b", ToneSet.named().call_waiting, 8)
            c.send("2a", packets(0x2A, 3))
            tone = [parse_rtp(d) for d, _ in await c.received("1b", 10)]
            assert {p.payload_type for p in tone} == {8}
            assert 0x2A not in {p.ssrc for p in tone}
            # The line is still heard by the party while the tone plays.
            c.send("1b", packets(0x1B, 2))
            assert [d for d, _ in await c.received("2a", 2)] == packets(0x1B, 2)
            c.s1.stop_play("b")
            await asyncio.sleep(0.05)
            while not c.phones["1b"].queue.empty():
                c.phones["1b"].queue.get_nowait()
            c.send("2a", packets(0x2A, 1))
            [(data, _)] = await c.received("1b", 1)
            assert parse_rtp(data).ssrc == 0x2A

    run(main)


def test_closing_a_joined_session_leaves_the_other_sending_nothing() -> None:
    async def main() -> None:
        async with two_calls(4) as c:
            c.s1.join("a", c.s2, "a")
            c.send("1a", packets(0x1A, 1))
            await c.received("2a", 1)
            c.engine.release(c.s2)
            c.send("1a", packets(0x1A, 5))
            await until(lambda: c.s1.stats("a").packets_in == 6)
            assert await c.silent(*PHONES)
            # Nothing was even tried on S2's closed socket.
            assert c.s2.stats("a").packets_out == 1
            assert c.s2.stats("a").send_errors == 0
            assert c.s1.stats("a").send_errors == 0
            with pytest.raises(RuntimeError, match="closed"):
                c.s1.join("a", c.s2, "a")
            with pytest.raises(RuntimeError, match="closed"):
                c.s2.join("a", c.s1, "a")
            # S1 itself is fine: its own two sides can be joined again.
            c.s1.join("a", c.s1, "b")
            c.send("1a", packets(0x1A, 2))
            assert [d for d, _ in await c.received("1b", 2)] == packets(0x1A, 2)
            assert c.errors == []

    run(main)
