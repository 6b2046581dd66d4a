"""How many RTP packets per second the relay forwards on this machine.

    python -m teleoffice.media.relaybench [--calls 300] [--seconds 3] [--loop uvloop]

Two measurements, both on 127.0.0.1 and bounded in time:

* ``load``: every call carries real telephony traffic, 50 packets per second in
  each direction (20 ms G.711), and the relay's CPU time is measured: the share
  of one core the relay needs for that many calls.
* ``max``: the generator sends as fast as it can.  One generator process cannot
  always keep the relay busy, so the ceiling is given as packets forwarded per
  second of the relay's CPU time: what one fully busy core would forward.

The generator is a separate process (so its work is not counted against the
relay) that sends from one socket to both sides of every session; the relay
latches onto that socket and forwards back to a sink socket nobody reads, which
is what a relay's sendto costs either way.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import struct
import time
from collections.abc import Callable, Coroutine
from typing import Any

from teleoffice.media.engine import MediaEngine
from teleoffice.media.pacing import PacingClock
from teleoffice.media.session import MediaSession

HOST = "127.0.0.1"
PACKET_INTERVAL = 0.02


def _generate(ports: list[int], seconds: float, paced: bool) -> None:
    """Send RTP to every port: 50/s each when paced, else as fast as possible."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    header = struct.Struct("!BBHII")
    payload = b"\xff" * 160
    start = time.monotonic()
    clock = PacingClock(start, PACKET_INTERVAL)
    sequence = 0
    addresses = [(HOST, port) for port in ports]
    while time.monotonic() - start < seconds:
        packet = header.pack(0x80, 0, sequence & 0xFFFF, 160 * sequence, 0x1234) + payload
        for address in addresses:
            sock.sendto(packet, address)
        sequence += 1
        if paced:
            delay = clock.due(sequence) - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    sock.close()


async def _measure(calls: int, seconds: float, paced: bool, port_low: int) -> dict[str, float]:
    engine = MediaEngine(HOST, port_low, port_low + 4 * calls + 3)
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind((HOST, 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sink_port = sink.getsockname()[1]
    sessions: list[MediaSession] = []
    try:
        for _ in range(calls):
            session = await engine.create_session()
            session.set_remote("a", HOST, sink_port)
            session.set_remote("b", HOST, sink_port)
            sessions.append(session)
        ports = [s.local_port(side) for s in sessions for side in ("a", "b")]
        spawn = multiprocessing.get_context("spawn")
        generator = spawn.Process(target=_generate, args=(ports, seconds + 1.5, paced), daemon=True)
        generator.start()
        await asyncio.sleep(1.0)  # the generator starts up, the latches settle
        out_before = sum(s.packets_out for s in sessions)
        cpu_before, wall_before = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        out_after = sum(s.packets_out for s in sessions)
        cpu_after, wall_after = time.process_time(), time.monotonic()
        generator.join(seconds + 5)
        if generator.is_alive():  # pragma: no cover - never expected
            generator.terminate()
        wall = wall_after - wall_before
        return {
            "calls": calls,
            "forwarded_per_second": (out_after - out_before) / wall,
            "cpu_share": (cpu_after - cpu_before) / wall,
        }
    finally:
        engine.close()
        sink.close()


def _runner(loop: str) -> Callable[[Coroutine[Any, Any, dict[str, float]]], dict[str, float]]:
    if loop == "uvloop":
        import uvloop  # noqa: PLC0415 - optional

        return uvloop.run
    return asyncio.run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="concurrent calls for `load`")
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per run")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--port-low", type=int, default=42000)
    args = parser.parse_args(argv)
    run = _runner(args.loop)
    load = run(_measure(args.calls, args.seconds, True, args.port_low))
    print(
        f"[{args.loop}] load: {load['calls']:.0f} calls at 2 x 50 packets/s: "
        f"{load['forwarded_per_second']:,.0f} packets/s forwarded, "
        f"relay CPU {100 * load['cpu_share']:.1f}% of one core "
        f"({100 * load['cpu_share'] / load['calls']:.3f}% per call)"
    )
    ceiling = run(_measure(20, args.seconds, False, args.port_low))
    print(
        f"[{args.loop}] max:  {ceiling['forwarded_per_second']:,.0f} packets/s forwarded, "
        f"relay CPU {100 * ceiling['cpu_share']:.0f}% of one core: "
        f"{ceiling['forwarded_per_second'] / ceiling['cpu_share']:,.0f} packets per CPU-second"
    )


if __name__ == "__main__":
    main()
