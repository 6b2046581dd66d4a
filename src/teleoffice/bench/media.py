"""Media: how many anchored calls the relay carries on one core within limits.

N calls are set up through teleoffice (trunk -> extension 1000, `memory.CallSet`);
every caller side offers the same UDP socket X and every callee side answers
with socket Y, so two sockets stand for all the phones. A sender process sends
20 ms G.711 packets in both directions of every call (X -> the call's relay port
on the caller's side, Y -> the one on the callee's side; 100 packets a second
per call), and a receiver process reads X and Y with kernel timestamps
(`rtpload`). The relay is teleoffice's one event loop: one core at most.

Side by side, at each N, in the same run: the N calls' streams through the
relay, and as many streams sent directly between X and Y, interleaved packet by
packet (the baseline: what the sender, receiver and machine contribute, at the
same moments). Reported: loss, RFC 3550 interarrival jitter per stream
(mean and p99 over the streams), the jitter the relay adds (relayed minus
direct, mean), and the server's CPU share during the run. A step is *within
limits* when loss < 0.1 % and added jitter < 2 ms.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from teleoffice.bench.calls import RTP_PORTS
from teleoffice.bench.harness import BenchError, Server
from teleoffice.bench.memory import CallSet
from teleoffice.bench.processes import LOOPBACK, clean_environment, free_port
from teleoffice.bench.register import Context, percentile

LOSS_LIMIT = 0.001
JITTER_LIMIT_MS = 2.0
RCVBUF = 8 * 2**20


def _socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:  # as root the buffer may exceed rmem_max: a receiver must not lose packets
        sock.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)  # SO_RCVBUFFORCE
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    sock.bind((LOOPBACK, port))
    return sock


DIRECT_SSRC = 1 << 24  # SSRCs from here on are the baseline's streams


def _group(per_stream: dict[str, list[float]], ssrcs: list[int], ticks: int) -> dict[str, Any]:
    got = [per_stream.get(str(ssrc)) for ssrc in ssrcs]
    received = sum(int(g[0]) for g in got if g)
    jitter = sorted(g[1] for g in got if g)
    sent = ticks * len(ssrcs)
    return {
        "streams": len(ssrcs),
        "sent": sent,
        "received": received,
        "loss": round(1 - received / sent, 6) if sent else None,
        "jitter_ms_mean": round(sum(jitter) / len(jitter), 4) if jitter else None,
        "jitter_ms_p99": percentile(jitter, 99),
    }


def stream_load(
    workdir: Path,
    sockets: tuple[socket.socket, socket.socket],
    plan: list[tuple[int, str, int, int]],
    seconds: float,
    sample: Any = None,
) -> dict[str, Any]:
    """Run the receiver and the sender over `plan`; per group (relayed, direct by
    SSRC) what arrived, with the CPU share of the process `sample` reads (the relay)."""
    plan_path = workdir / f"plan-{time.monotonic_ns()}.json"
    plan_path.write_text(json.dumps(plan))
    fds = [s.fileno() for s in sockets]
    fd_text = ",".join(map(str, fds))
    base = [sys.executable, "-m", "teleoffice.bench.rtpload"]
    env = clean_environment()
    receiver = subprocess.Popen(  # noqa: S603 - our own module
        [*base, "recv", "--fds", fd_text, "--seconds", f"{seconds + 1.5:g}"],
        pass_fds=fds,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    time.sleep(0.3)
    before = sample() if sample else None
    sender = subprocess.Popen(  # noqa: S603 - our own module
        [*base, "send", "--fds", fd_text, "--plan", str(plan_path), "--seconds", f"{seconds:g}"],
        pass_fds=fds,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    try:
        sent_out, _ = sender.communicate(timeout=seconds + 30)
        after = sample() if sample else None
        received_out, _ = receiver.communicate(timeout=30)
    finally:
        for proc in (sender, receiver):
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
    if sender.returncode or receiver.returncode:
        raise BenchError(f"rtpload exited {sender.returncode}/{receiver.returncode}")
    sent = json.loads(sent_out)
    per_stream = json.loads(received_out)["per_stream"]
    ssrcs = [item[3] for item in plan]
    result: dict[str, Any] = {
        "relayed": _group(per_stream, [x for x in ssrcs if x < DIRECT_SSRC], sent["ticks"]),
        "direct": _group(per_stream, [x for x in ssrcs if x >= DIRECT_SSRC], sent["ticks"]),
        "send_errors": sent["send_errors"],
        "sender_late_ticks": sent["late_ticks"],
    }
    if before is not None and after is not None:
        result["relay_cpu_share"] = round(
            (after.cpu_seconds - before.cpu_seconds) / max(after.at - before.at, 1e-6), 3
        )
    return result


async def _open(calls: CallSet, count: int) -> None:
    if count > len(calls.calls):
        answered = await calls.add(count - len(calls.calls), "6")
        if len(calls.calls) < count:
            raise BenchError(f"only {answered} more calls were answered, wanted {count}")


def _relay_plan(calls: CallSet, count: int) -> list[tuple[int, str, int, int]]:
    plan: list[tuple[int, str, int, int]] = []
    for i, call in enumerate(calls.calls[:count]):
        toward_callee = call.remote_media  # the relay's port on the caller's side
        toward_caller = calls.phone.offers.get(call.from_user)  # on the callee's side
        if toward_callee is None or toward_caller is None:
            raise BenchError(f"call {call.from_user} has no media address")
        plan.append((0, toward_callee[0], toward_callee[1], 2 * i))  # X -> relay -> Y
        plan.append((1, toward_caller[0], toward_caller[1], 2 * i + 1))  # Y -> relay -> X
    return plan


def _direct_plan(ports: tuple[int, int], count: int) -> list[tuple[int, str, int, int]]:
    plan: list[tuple[int, str, int, int]] = []
    for i in range(count):
        plan.append((0, LOOPBACK, ports[1], DIRECT_SSRC + 2 * i))
        plan.append((1, LOOPBACK, ports[0], DIRECT_SSRC + 2 * i + 1))
    return plan


def _run(ctx: Context, server: Server, trunk_port: int, workdir: Path) -> list[dict[str, Any]]:
    profile = ctx.profile
    x_port, y_port = free_port(), free_port()
    sockets = (_socket(x_port), _socket(y_port))
    loop = asyncio.new_event_loop()
    steps: list[dict[str, Any]] = []
    try:
        # Every caller's SDP offers X and every callee's answer Y: the relay sends to
        # them, and accepts packets from them (the addresses the SDP named).
        calls = loop.run_until_complete(CallSet.open(server.sip_port, trunk_port, y_port))
        calls.caller_media = x_port
        try:
            for count in profile.media_calls:
                loop.run_until_complete(_open(calls, count))
                time.sleep(0.5)
                ctx.log(f"  {count} calls through the relay, {count} sent directly alongside")
                # Relayed and direct streams interleaved in one run: both see the same
                # sender, receiver and machine at the same moments.
                plan = [
                    item
                    for pair in zip(
                        _relay_plan(calls, count),
                        _direct_plan((x_port, y_port), count),
                        strict=True,
                    )
                    for item in pair
                ]
                run = stream_load(workdir, sockets, plan, profile.media_seconds, server.sample)
                relayed, direct = run["relayed"], run["direct"]
                added = (
                    relayed["jitter_ms_mean"] - direct["jitter_ms_mean"]
                    if relayed["jitter_ms_mean"] is not None
                    and direct["jitter_ms_mean"] is not None
                    else None
                )
                within = (
                    relayed["loss"] is not None
                    and relayed["loss"] < LOSS_LIMIT
                    and added is not None
                    and added < JITTER_LIMIT_MS
                )
                step = {
                    "calls": count,
                    **run,
                    "added_jitter_ms": None if added is None else round(added, 4),
                    "within_limits": within,
                }
                ctx.log(
                    f"    loss direct {direct['loss']:.4%} relayed {relayed['loss']:.4%}, "
                    f"jitter {direct['jitter_ms_mean']} -> {relayed['jitter_ms_mean']} ms, "
                    f"relay CPU {run.get('relay_cpu_share', 0):.0%}"
                    + ("" if within else "  (outside the limits)")
                )
                steps.append(step)
        finally:
            loop.run_until_complete(calls.hang_up_all())
            loop.run_until_complete(calls.aclose())
    finally:
        loop.close()
        for sock in sockets:
            sock.close()
    return steps


def media_relay(ctx: Context) -> dict[str, Any]:
    workdir = ctx.workdir / "media"
    workdir.mkdir(parents=True, exist_ok=True)
    trunk_port = ctx.trunk_port
    server = ctx.start_server("media", env=RTP_PORTS)
    try:
        steps = _run(ctx, server, trunk_port, workdir)
    finally:
        server.stop()
    within = [s["calls"] for s in steps if s["within_limits"]]
    return {
        "description": (
            "anchored calls through teleoffice's relay with 2 x 50 packets/s each, "
            "against the same streams sent directly; loss and RFC 3550 jitter"
        ),
        "seconds": ctx.profile.media_seconds,
        "loss_limit": LOSS_LIMIT,
        "jitter_limit_ms": JITTER_LIMIT_MS,
        "steps": steps,
        "max_calls_within_limits": max(within) if within else None,
        "server_log_has_traceback": server.log_has_traceback(),
    }
