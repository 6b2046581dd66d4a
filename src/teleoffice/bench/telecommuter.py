"""Telecommuter mode's two latencies: the callback, and the screen pop.

User bench1000 works from 0611 (dialled as 90611 through the trunk `bench`,
whose far end is a Python peer, `sipua`). One run of the server, two series:

- callback: `POST /api/calls {"to": "1001"}` to the callback INVITE reaching the
  trunk (the peer stamps it on arrival; the POST is sent from a worker thread so
  the event loop is free to stamp). The peer refuses the callback (486), so
  nothing is dialled onward (rule T4) and the line is free for the next sample.
- screen pop: the trunk sends an INVITE to extension 1000 to the `call.ringing`
  event on the user's /api/events WebSocket. The call follows the user to 0611,
  the peer answers that leg 180 at once (the event is about ringing), then 486,
  and the caller gets the busy answer and ACKs it.

Samples are spaced 50 ms apart (the REST API allows 50 requests a second per
session), and each waits for the previous call to end.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from teleoffice.bench.calls import RTP_PORTS
from teleoffice.bench.harness import FIRST_EXTENSION, BenchError
from teleoffice.bench.portal import EventWatcher, Portal
from teleoffice.bench.processes import LOOPBACK
from teleoffice.bench.register import Context, summarize_times
from teleoffice.bench.sipua import Answering, Msg, SipPeer, answering_phone, place_call

USER = f"bench{FIRST_EXTENSION}"
EXTENSION = str(FIRST_EXTENSION)
HOME = "0611"
GAP = 0.05


async def _series(http_port: int, sip_port: int, peer_port: int, samples: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    portal = await loop.run_in_executor(None, Portal.login, http_port, USER)
    await loop.run_in_executor(
        None, portal.call, "PUT", "/api/me/telecommuter", {"number": "9" + HOME}
    )
    peer = await SipPeer.open(peer_port)
    home = Answering(ring_then=486, answer_delay=0.02)
    home_phone = answering_phone(home)
    arrivals: asyncio.Queue[Msg] = asyncio.Queue()

    def on_request(p: SipPeer, msg: Msg) -> Any:
        if msg.method == "INVITE" and f"sip:{HOME}@" in msg.start:
            arrivals.put_nowait(msg)
        return home_phone(p, msg)

    peer.on_request = on_request
    watcher = EventWatcher(portal.events_url)
    watcher.start()
    callback_ms: list[float] = []
    api_ms: list[float] = []
    pop_ms: list[float] = []
    errors: list[str] = []
    try:
        await asyncio.wait_for(watcher.ready.wait(), 15)
        if watcher.error:
            raise BenchError(f"the events WebSocket failed: {watcher.error}")
        for _ in range(samples):
            while not arrivals.empty():
                arrivals.get_nowait()
            sent = time.perf_counter()
            post = loop.run_in_executor(None, portal.call, "POST", "/api/calls", {"to": "1001"})
            try:
                invite = await asyncio.wait_for(arrivals.get(), 5)
                await post
                api_ms.append((time.perf_counter() - sent) * 1000)
                callback_ms.append((invite.at - sent) * 1000)
            except (TimeoutError, BenchError) as exc:
                errors.append(f"callback: {exc!r}")
                await asyncio.gather(post, return_exceptions=True)
            await asyncio.sleep(GAP + 0.05)  # the refused callback ends
        for i in range(samples):
            ringing = watcher.expect(lambda e: e.get("type") == "call.ringing")
            call = asyncio.create_task(
                place_call(
                    peer,
                    (LOOPBACK, sip_port),
                    EXTENSION,
                    from_user=f"5557{i:04d}",
                    media_port=peer_port + 2,
                    hold=0.0,
                    within=5,
                )
            )
            try:
                at = await asyncio.wait_for(asyncio.shield(ringing), 5)
                times = await call
                pop_ms.append((at - times.sent) * 1000)
            except TimeoutError:
                errors.append("screen pop: no call.ringing within 5 s")
                await asyncio.gather(call, return_exceptions=True)
            await asyncio.sleep(GAP)
    finally:
        await watcher.close()
        await peer.aclose()
        await loop.run_in_executor(None, portal.call, "DELETE", "/api/me/telecommuter")
    return {
        "samples": samples,
        "callback_invite_ms": summarize_times(callback_ms),
        "post_answer_ms": summarize_times(api_ms),
        "screen_pop_ms": summarize_times(pop_ms),
        "errors": len(errors),
        "error_sample": errors[:3],
    }


def telecommuter(ctx: Context) -> dict[str, Any]:
    samples = ctx.profile.portal_samples
    peer_port = ctx.trunk_port
    server = ctx.start_server("telecommuter", env=RTP_PORTS)
    try:
        ctx.log(f"  {samples} callbacks, then {samples} incoming calls")
        result = asyncio.run(_series(server.http_port, server.sip_port, peer_port, samples))
    finally:
        server.stop()
    ctx.log(
        f"    callback INVITE p50/p99 {result['callback_invite_ms']['p50']}/"
        f"{result['callback_invite_ms']['p99']} ms, screen pop p50/p99 "
        f"{result['screen_pop_ms']['p50']}/{result['screen_pop_ms']['p99']} ms, "
        f"errors {result['errors']}"
    )
    return {
        "description": (
            "POST /api/calls to the callback INVITE on the trunk, and an incoming INVITE "
            "to call.ringing on the user's WebSocket (telecommuter mode)"
        ),
        **result,
        "server_log_has_traceback": server.log_has_traceback(),
    }
