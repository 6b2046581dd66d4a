"""Presence fan-out: how long one change takes to reach N watchers.

bench1000 changes their presence (`PUT /api/me/presence` with a new note); the
watchers are N SIP subscriptions (RFC 3856, each from its own account, digest
authenticated, all on one Python peer socket that answers every NOTIFY 200) and
up to 50 WebSocket clients on /api/events (one logged-in user's: the portal
allows 64 connections per user and 20 logins a minute per address). The
watcher count grows step by step (subscriptions are added, never renewed);
at each step the user makes a few changes, each waiting until every watcher has
it.

Per change: the delay from the PUT being sent to each watcher's receipt (p50,
p95, p99 over every delivery of the step) and to the last one (the fan-out
time; rule T9 asks for under a second).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from teleoffice.bench.harness import FIRST_EXTENSION, SIP_PASSWORD, BenchError
from teleoffice.bench.portal import EventWatcher, Portal
from teleoffice.bench.processes import LOOPBACK, free_port
from teleoffice.bench.register import Context, percentile, summarize_times
from teleoffice.bench.sipua import Msg, SipPeer, authorized

USER = f"bench{FIRST_EXTENSION}"
EXTENSION = str(FIRST_EXTENSION)
WS_USERS = 1  # bench1001 (PORTAL_USERS in register.py)
WS_PER_USER = 50
SUBSCRIBE_BATCH = 50


class Notifies:
    """NOTIFYs received, by Call-ID: (arrival, body) of each."""

    def __init__(self) -> None:
        self.by_call: dict[str, list[tuple[float, bytes]]] = {}

    def handler(self, peer: SipPeer, msg: Msg) -> None:
        if msg.method == "NOTIFY":
            self.by_call.setdefault(msg.call_id, []).append((msg.at, msg.body))
        peer.default_answer(msg)

    def first_with(self, call_id: str, note: bytes) -> float | None:
        for at, body in self.by_call.get(call_id, ()):
            if note in body:
                return at
        return None


async def _subscribe(peer: SipPeer, server: tuple[str, int], watcher: str) -> str:
    final = await authorized(
        peer,
        "SUBSCRIBE",
        f"sip:{EXTENSION}@{server[0]}:{server[1]}",
        server,
        user=watcher,
        password=SIP_PASSWORD,
        to=f"<sip:{EXTENSION}@{LOOPBACK}>",
        headers=(
            f"Contact: <sip:{watcher}@{LOOPBACK}:{peer.port}>",
            "Event: presence",
            "Accept: application/pidf+xml",
            "Expires: 3600",
        ),
    )
    if final.status not in (200, 202):
        raise BenchError(f"SUBSCRIBE from {watcher}: {final.start}")
    return final.call_id


async def _fan_out(
    http_port: int,
    sip_port: int,
    steps: tuple[int, ...],
    changes: int,
    log: Callable[[str], None],
) -> Any:
    loop = asyncio.get_running_loop()
    server = (LOOPBACK, sip_port)
    user = await loop.run_in_executor(None, Portal.login, http_port, USER)
    tokens = [
        await loop.run_in_executor(None, Portal.login, http_port, f"bench{FIRST_EXTENSION + i}")
        for i in range(1, WS_USERS + 1)
    ]
    peer = await SipPeer.open(free_port())
    notifies = Notifies()
    peer.on_request = notifies.handler
    subscriptions: list[str] = []
    sockets: list[EventWatcher] = []
    results: list[dict[str, Any]] = []
    serial = 0
    try:
        for watchers in steps:
            wanted_ws = min(watchers, WS_USERS * WS_PER_USER)
            while len(sockets) < wanted_ws:
                ws = EventWatcher(tokens[len(sockets) % WS_USERS].events_url)
                ws.start()
                sockets.append(ws)
            first = FIRST_EXTENSION + WS_USERS + 1 + len(subscriptions)
            accounts = [str(first + i) for i in range(watchers - len(subscriptions))]
            began = time.perf_counter()
            for start in range(0, len(accounts), SUBSCRIBE_BATCH):
                batch = accounts[start : start + SUBSCRIBE_BATCH]
                subscriptions += await asyncio.gather(*(_subscribe(peer, server, a) for a in batch))
            log(
                f"    {len(subscriptions)} subscriptions "
                f"({len(accounts)} new in {time.perf_counter() - began:.1f} s)"
            )
            for ws in sockets:
                await asyncio.wait_for(ws.ready.wait(), 15)
            broken = [ws.error for ws in sockets if ws.error]
            if broken:
                raise BenchError(f"{len(broken)} WebSockets failed: {broken[:2]}")
            await asyncio.sleep(0.5)  # the initial NOTIFYs are answered
            delays: list[float] = []
            last: list[float] = []
            missing = 0
            for _ in range(changes):
                serial += 1
                note = f"bench change {serial}"
                sent = time.perf_counter()
                await loop.run_in_executor(
                    None,
                    user.call,
                    "PUT",
                    "/api/me/presence",
                    {"state": "away" if serial % 2 else "available", "note": note},
                )
                arrived = await _wait_all(notifies, subscriptions, sockets, note, within=10)
                missing += len(subscriptions) + len(sockets) - len(arrived)
                step_delays = [(at - sent) * 1000 for at in arrived]
                delays += step_delays
                if step_delays:
                    last.append(max(step_delays))
                await asyncio.sleep(0.2)
            results.append(
                {
                    "sip_watchers": len(subscriptions),
                    "ws_watchers": len(sockets),
                    "changes": changes,
                    "delivery_ms": summarize_times(delays),
                    "fan_out_ms_median": _round(percentile(last, 50)),
                    "fan_out_ms_max": _round(max(last) if last else None),
                    "missing": missing,
                }
            )
    finally:
        for ws in sockets:
            await ws.close()
        await peer.aclose()
    return results


async def _wait_all(
    notifies: Notifies,
    subscriptions: list[str],
    sockets: list[EventWatcher],
    note: str,
    within: float,
) -> list[float]:
    needle = note.encode()
    deadline = time.perf_counter() + within
    while True:
        arrived = [at for at in (notifies.first_with(c, needle) for c in subscriptions) if at]
        for ws in sockets:
            for at, event in ws.events:
                if event.get("type") == "presence.changed" and (
                    event.get("presence", {}).get("note") == note
                ):
                    arrived.append(at)
                    break
        if len(arrived) >= len(subscriptions) + len(sockets) or time.perf_counter() > deadline:
            return arrived
        await asyncio.sleep(0.02)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def presence_fan_out(ctx: Context) -> dict[str, Any]:
    profile = ctx.profile
    server = ctx.start_server("presence")
    try:
        ctx.log(f"  watchers {', '.join(map(str, profile.presence_watchers))}")
        steps = asyncio.run(
            _fan_out(
                server.http_port,
                server.sip_port,
                profile.presence_watchers,
                profile.presence_changes,
                ctx.log,
            )
        )
    finally:
        server.stop()
    for step in steps:
        ctx.log(
            f"    {step['sip_watchers']} SIP + {step['ws_watchers']} WebSocket: delivery "
            f"p50/p99 {step['delivery_ms']['p50']}/{step['delivery_ms']['p99']} ms, "
            f"fan-out median {step['fan_out_ms_median']} ms, missing {step['missing']}"
        )
    return {
        "description": (
            "PUT /api/me/presence to every watcher: N SIP subscriptions (NOTIFY) and up to "
            "50 portal WebSockets (presence.changed)"
        ),
        "steps": steps,
        "server_log_has_traceback": server.log_has_traceback(),
    }
