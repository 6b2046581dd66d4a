"""RTP streams for the media benchmark: a paced sender and a timestamping receiver.

Both run as separate processes (so their work is not the relay's, and neither
waits for the other), sharing the two UDP sockets the benchmark created and
passed to them (`pass_fds`): the caller's side and the callee's side of every
call. A packet is identified by its SSRC, which the relay forwards untouched.

    python -m teleoffice.bench.rtpload send --fds 3,4 --plan PLAN.json --seconds S
    python -m teleoffice.bench.rtpload recv --fds 3,4 --seconds S

The sender sends one 20 ms G.711 packet per stream per tick on an absolute
schedule (a late tick is caught up, not skipped, as a phone's RTP clock would).
The receiver reads arrival times from the kernel (SO_TIMESTAMPNS), so a busy
receiver does not distort them, and keeps per stream the packets received and
the RFC 3550 section 6.4.1 interarrival jitter, J += (|D| - J) / 16 with D the
difference of arrival spacing and RTP timestamp spacing. Each prints one JSON
object on standard output.
"""

from __future__ import annotations

import argparse
import json
import selectors
import socket
import struct
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PACKET_INTERVAL = 0.02
SAMPLES_PER_PACKET = 160  # 20 ms at 8000 Hz
SO_TIMESTAMPNS = 35  # Linux (asm-generic); not exported by Python's socket module
_HEADER = struct.Struct("!BBHII")
_TIMESPEC = struct.Struct("@ll")


def send(
    fds: Sequence[int], plan: list[tuple[int, str, int, int]], seconds: float
) -> dict[str, Any]:
    """`plan`: (socket index, host, port, ssrc) per stream."""
    socks = [socket.socket(fileno=fd) for fd in fds]
    payload = b"\xff" * SAMPLES_PER_PACKET
    streams = [(socks[index].sendto, (host, port), ssrc) for index, host, port, ssrc in plan]
    ticks = int(seconds / PACKET_INTERVAL)
    errors = 0
    late = 0
    start = time.monotonic()
    for tick in range(ticks):
        due = start + tick * PACKET_INTERVAL
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -PACKET_INTERVAL:
            late += 1
        seq = tick & 0xFFFF
        stamp = (tick * SAMPLES_PER_PACKET) & 0xFFFFFFFF
        for sendto, address, ssrc in streams:
            try:
                sendto(_HEADER.pack(0x80, 0, seq, stamp, ssrc) + payload, address)
            except OSError:
                errors += 1
    return {
        "streams": len(streams),
        "ticks": ticks,  # packets sent per stream (less send_errors, spread over all)
        "sent": ticks * len(streams) - errors,
        "send_errors": errors,
        "late_ticks": late,
        "seconds": round(time.monotonic() - start, 3),
    }


def receive(fds: Sequence[int], seconds: float) -> dict[str, Any]:
    socks = [socket.socket(fileno=fd) for fd in fds]
    selector = selectors.DefaultSelector()
    kernel_stamps = True
    for sock in socks:
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            kernel_stamps = False
        selector.register(sock, selectors.EVENT_READ)
    # ssrc -> [received, last arrival (s), last RTP timestamp, jitter (s)]
    state: dict[int, list[float]] = {}
    space = socket.CMSG_SPACE(_TIMESPEC.size)
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        for key, _ in selector.select(min(left, 0.2)):
            ready = key.fileobj
            assert isinstance(ready, socket.socket)
            for _ in range(256):
                try:
                    data, ancillary, _flags, _addr = ready.recvmsg(2048, space)
                except (BlockingIOError, InterruptedError):
                    break
                if ancillary and ancillary[0][1] == SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack(ancillary[0][2][: _TIMESPEC.size])
                    arrival = sec + nsec * 1e-9
                else:
                    arrival = time.time()
                if len(data) < 12:
                    continue
                _, _, _, stamp, ssrc = _HEADER.unpack_from(data)
                entry = state.get(ssrc)
                if entry is None:
                    state[ssrc] = [1, arrival, stamp, 0.0]
                    continue
                # D = (Rj - Ri) - (Sj - Si), in seconds (RTP clock 8000 Hz).
                diff = (arrival - entry[1]) - ((stamp - entry[2]) & 0xFFFFFFFF) / 8000.0
                entry[3] += (abs(diff) - entry[3]) / 16.0
                entry[0] += 1
                entry[1] = arrival
                entry[2] = stamp
    return {
        "streams": len(state),
        # ssrc -> [packets received, jitter in ms]
        "per_stream": {
            str(ssrc): [int(entry[0]), round(entry[3] * 1000, 4)] for ssrc, entry in state.items()
        },
        "kernel_timestamps": kernel_stamps,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m teleoffice.bench.rtpload")
    parser.add_argument("mode", choices=["send", "recv"])
    parser.add_argument("--fds", required=True, help="comma-separated inherited socket fds")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--plan", type=Path, help="send: JSON [[socket, host, port, ssrc], ...]")
    args = parser.parse_args(argv)
    fds = [int(fd) for fd in args.fds.split(",")]
    if args.mode == "send":
        if args.plan is None:
            parser.error("send needs --plan")
        plan = [
            (int(i), str(h), int(p), int(x)) for i, h, p, x in json.loads(args.plan.read_text())
        ]
        result = send(fds, plan, args.seconds)
    else:
        result = receive(fds, args.seconds)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
