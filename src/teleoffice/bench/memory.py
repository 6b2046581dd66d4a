"""Memory per active call: RSS with thousands of anchored calls up at once.

A Python peer (`sipua`) plays the trunk, which places the calls, and extension
1000's phone, which answers them all; every call holds an anchored media session
(two RTP sockets) in teleoffice until it is hung up. The server's RSS is read
before and while N calls are up, twice: first on a server that never carried
that many (the cold figure: it includes heap growth that stays), then again
after those calls ended and their transactions ran out (the warm figure: what
the calls themselves keep). Memory per registration comes from the
`registrations_memory` benchmark.

`open_calls` is shared with the media benchmark, which needs the same calls.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from teleoffice.bench.calls import RTP_PORTS
from teleoffice.bench.harness import FIRST_EXTENSION, SIP_PASSWORD, BenchError, Server
from teleoffice.bench.processes import LOOPBACK, free_port, wait_until
from teleoffice.bench.register import Context
from teleoffice.bench.sipua import (
    Answering,
    CallTimes,
    SipPeer,
    answering_phone,
    hang_up,
    place_call,
    register,
)

CALLEE = str(FIRST_EXTENSION)
OPEN_RATE = 200.0  # calls/s while opening: far below the set-up capacity
BATCH = 100


@dataclass
class CallSet:
    """The two ends of many calls through one server, on two peer sockets."""

    server: tuple[str, int]
    caller: SipPeer
    callee: SipPeer
    phone: Answering
    caller_media: int
    calls: list[CallTimes]

    @classmethod
    async def open(cls, sip_port: int, trunk_port: int, callee_media: int) -> CallSet:
        server = (LOOPBACK, sip_port)
        caller = await SipPeer.open(trunk_port)
        callee = await SipPeer.open(0)
        phone = Answering(media_port=callee_media)
        callee.on_request = answering_phone(phone)
        await register(callee, server, CALLEE, SIP_PASSWORD)
        return cls(server, caller, callee, phone, trunk_port + 2, [])

    async def add(self, count: int, tag: str) -> int:
        """Place `count` more calls that stay up; how many were answered."""
        started = time.perf_counter()
        pending: list[asyncio.Task[CallTimes]] = []
        base = len(self.calls)
        for i in range(count):
            delay = started + i / OPEN_RATE - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(
                asyncio.create_task(
                    place_call(
                        self.caller,
                        self.server,
                        CALLEE,
                        from_user=f"{tag}{base + i:06d}",
                        media_port=self.caller_media,
                        hold=None,
                    )
                )
            )
        done = await asyncio.gather(*pending)
        answered = [c for c in done if c.status == 200]
        self.calls += answered
        return len(answered)

    async def hang_up_all(self) -> None:
        for start in range(0, len(self.calls), BATCH):
            batch = self.calls[start : start + BATCH]
            await asyncio.gather(*(hang_up(self.caller, c) for c in batch))
        self.calls.clear()

    async def aclose(self) -> None:
        await self.caller.aclose()
        await self.callee.aclose()


def _calls_up(server: Server) -> int:
    return int(server.health().get("calls", 0))


async def _measure(server: Server, trunk_port: int, count: int, drain: float) -> dict[str, Any]:
    # Time for the server to settle before reading RSS (shorter in --quick).
    pause = 1.0 if drain > 0 else 0.3
    calls = await CallSet.open(server.sip_port, trunk_port, free_port(span=2))
    result: dict[str, Any] = {}
    try:
        for label in ("cold", "warm"):
            await asyncio.sleep(pause)
            before = server.sample()
            answered = await calls.add(count, "8" if label == "cold" else "9")
            await asyncio.sleep(pause)
            up = _calls_up(server)
            during = server.sample()
            await calls.hang_up_all()
            if answered < count:
                raise BenchError(f"only {answered} of {count} calls were answered")
            result[label] = {
                "calls_up": up,
                "rss_before_bytes": before.rss_bytes,
                "rss_with_calls_bytes": during.rss_bytes,
                "bytes_per_call": round((during.rss_bytes - before.rss_bytes) / max(up, 1), 1),
            }
            if label == "cold" and drain > 0:
                # Let the calls' transactions run out (Timer J, 32 s at most) so the warm
                # pass starts from a server holding nothing of the cold one (not in
                # --quick: its warm pass starts with them still there).
                await asyncio.to_thread(
                    wait_until,
                    lambda: int(server.health().get("transactions", 0)) == 0,
                    drain,
                    0.5,
                )
    finally:
        await calls.aclose()
    return result


def memory_per_call(ctx: Context) -> dict[str, Any]:
    count = ctx.profile.active_calls
    trunk_port = ctx.trunk_port
    # What is measured is memory, not admission: lift the total-calls limit
    # (max_calls, 2000 by default) well above the calls this run holds up.
    env = {**RTP_PORTS, "TELEOFFICE_MAX_CALLS": str(max(2 * count, 10))}
    server = ctx.start_server("memory-calls", env=env)
    try:
        ctx.log(f"  {count} calls up at once, twice")
        result = asyncio.run(_measure(server, trunk_port, count, ctx.profile.drain_timeout))
    finally:
        server.stop()
    for label in ("cold", "warm"):
        r = result[label]
        ctx.log(
            f"    {label}: {r['calls_up']} calls, RSS {r['rss_before_bytes'] / 2**20:.1f} -> "
            f"{r['rss_with_calls_bytes'] / 2**20:.1f} MiB, {r['bytes_per_call']:.0f} B per call"
        )
    return {
        "description": (
            "RSS of the server with N anchored calls up (trunk -> extension 1000), "
            "on a fresh server (cold) and again after those calls ended (warm)"
        ),
        "calls": count,
        **result,
        # The headline is the cold pass: the warm one mostly reuses what the cold
        # one's calls left free inside the process, so it understates a call.
        "bytes_per_call": result["cold"]["bytes_per_call"],
        "server_log_has_traceback": server.log_has_traceback(),
    }
