"""Post-dial delay added by the B2BUA: teleoffice and sippy side by side.

A Python peer (`sipua`) plays both ends in one event loop: the caller sends an
INVITE at a fixed rate (teleoffice knows it as a trunk; sippy relays anything),
the called phone answers 180 at once, then 200. Every datagram is stamped on
arrival, so per call:

- INVITE in to INVITE out: the callee's receipt of the B2BUA's INVITE minus the
  caller's send time;
- INVITE in to 180 back: the caller's receipt of the 180 minus its send time,
  less the callee's own turnaround (its 180 sent minus its INVITE received).

Both include two loopback hops and this process's scheduling (tens of
microseconds); the same for both B2BUAs, so their difference is theirs. A third
run without any B2BUA (the caller calls the phone directly) measures that floor.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from teleoffice.bench.calls import RTP_PORTS
from teleoffice.bench.harness import FIRST_EXTENSION, SIP_PASSWORD
from teleoffice.bench.processes import LOOPBACK, free_port
from teleoffice.bench.register import Context, summarize_times
from teleoffice.bench.sippy import SippyB2bua, ensure_sippy
from teleoffice.bench.sipua import (
    Answering,
    CallTimes,
    SipPeer,
    answering_phone,
    place_call,
    register,
)

CALLEE = str(FIRST_EXTENSION)


async def timed_calls(
    server: tuple[str, int],
    *,
    uac_port: int,
    uas_port: int,
    rate: float,
    calls: int,
    hold: float,
    register_callee: bool,
    prefix: str,
) -> dict[str, Any]:
    caller = await SipPeer.open(uac_port)
    callee = await SipPeer.open(uas_port)
    # The 200 follows 50 ms after the 180, so no B2BUA can fold the 180 into it.
    behaviour = Answering(media_port=free_port(), answer_delay=0.05)
    callee.on_request = answering_phone(behaviour)
    try:
        if register_callee:
            await register(callee, server, CALLEE, SIP_PASSWORD)
        started = time.perf_counter()
        tasks: list[asyncio.Task[CallTimes]] = []
        for i in range(calls):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(
                asyncio.create_task(
                    place_call(
                        caller,
                        server,
                        CALLEE,
                        from_user=f"{prefix}{i:06d}",
                        media_port=uac_port + 2,
                        hold=hold,
                    )
                )
            )
        results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=calls / rate + 40)
        # The callee's BYE 200s and late retransmissions: give them a moment.
        await asyncio.sleep(0.3)
    finally:
        await caller.aclose()
        await callee.aclose()
    to_invite: list[float] = []
    to_ringing: list[float] = []
    failed = 0
    for times in results:
        invite = behaviour.invites.get(times.from_user)
        if times.status != 200 or invite is None or times.ringing is None:
            failed += 1
            continue
        turnaround = behaviour.ring_sent.get(times.from_user, invite.at) - invite.at
        to_invite.append((invite.at - times.sent) * 1000)
        to_ringing.append((times.ringing - times.sent - turnaround) * 1000)
    return {
        "calls": calls,
        "failed": failed,
        "retransmissions": caller.retransmissions + callee.retransmissions,
        "invite_to_invite_ms": summarize_times(to_invite),
        "invite_to_180_ms": summarize_times(to_ringing),
    }


def post_dial_delay(ctx: Context) -> dict[str, Any]:
    profile = ctx.profile
    workdir = ctx.workdir / "pdd"
    workdir.mkdir(parents=True, exist_ok=True)
    script = ensure_sippy(ctx.sippy_venv, ctx.log)
    trunk_port = ctx.trunk_port  # the caller's SIP port, and its RTP pair above it
    server = ctx.start_server("pdd", env=RTP_PORTS)
    sippy_uas = free_port(span=3)
    sippy = SippyB2bua(script, workdir / "sippy", next_hop=sippy_uas)
    results: dict[str, Any] = {}
    rate, calls, hold = profile.pdd_rate, profile.pdd_calls, 0.2
    try:
        sippy.start()
        direct_uas = free_port(span=3)
        runs = (
            ("teleoffice", server.sip_port, trunk_port, free_port(span=3), True),
            ("sippy", sippy.port, free_port(span=3), sippy_uas, False),
            # No B2BUA: the caller calls the phone itself. The floor of the method
            # (loopback, this event loop, the machine's load), not a delay anybody adds.
            ("direct", direct_uas, free_port(span=3), direct_uas, False),
        )
        for index, (name, port, uac_port, uas_port, registered) in enumerate(runs):
            ctx.log(f"  {name}: {calls} calls at {rate}/s")
            results[name] = asyncio.run(
                timed_calls(
                    (LOOPBACK, port),
                    uac_port=uac_port,
                    uas_port=uas_port,
                    rate=rate,
                    calls=calls,
                    hold=hold,
                    register_callee=registered,
                    prefix=f"7{index}",
                )
            )
            r = results[name]
            ctx.log(
                f"    INVITE->INVITE p50/p95/p99 {r['invite_to_invite_ms']['p50']}/"
                f"{r['invite_to_invite_ms']['p95']}/{r['invite_to_invite_ms']['p99']} ms, "
                f"->180 p99 {r['invite_to_180_ms']['p99']} ms, failed {r['failed']}"
            )
    finally:
        sippy.stop()
        server.stop()
    return {
        "description": (
            "post-dial delay added by the B2BUA at a fixed rate: INVITE in to INVITE out, "
            "and INVITE in to 180 back (less the callee's turnaround), from a Python peer "
            "stamping each datagram on arrival"
        ),
        "rate": rate,
        "calls": calls,
        "hold_seconds": hold,
        **results,
        "teleoffice_log_has_traceback": server.log_has_traceback(),
    }
