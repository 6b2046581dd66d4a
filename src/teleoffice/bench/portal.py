"""The portal as a benchmark drives it: REST with a bearer token, and /api/events.

Blocking HTTP (urllib, no proxy) is run in a worker thread by the async
benchmarks, so the event loop that stamps SIP datagrams never waits for it.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from teleoffice.bench.harness import BenchError
from teleoffice.bench.processes import LOOPBACK

PORTAL_PASSWORD = "bench-portal-pw"  # noqa: S105 - the benchmark users' portal password

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Portal:
    """One logged-in portal session."""

    http_port: int
    token: str = ""

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://{LOOPBACK}:{self.http_port}{path}", data=data, method=method
        )
        request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with _opener.open(request, timeout=15) as reply:
                text = reply.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise BenchError(f"{method} {path}: HTTP {exc.code} {detail}") from None
        return json.loads(text) if text else None

    @classmethod
    def login(cls, http_port: int, username: str, password: str = PORTAL_PASSWORD) -> Portal:
        portal = cls(http_port)
        reply = portal.call("POST", "/api/login", {"username": username, "password": password})
        portal.token = str(reply["token"])
        return portal

    @property
    def events_url(self) -> str:
        return f"ws://{LOOPBACK}:{self.http_port}/api/events?token={self.token}"


@dataclass
class EventWatcher:
    """A WebSocket on /api/events stamping each event on arrival (perf_counter)."""

    url: str
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    error: str = ""
    _ws: ClientConnection | None = None
    _task: asyncio.Task[None] | None = None
    _waiters: list[tuple[Callable[[dict[str, Any]], bool], asyncio.Future[float]]] = field(
        default_factory=list
    )

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async with connect(self.url, open_timeout=15, compression=None, proxy=None) as ws:
                self._ws = ws
                async for raw in ws:
                    at = time.perf_counter()
                    event = json.loads(raw)
                    kind = event.get("type")
                    if kind == "hello":
                        self.ready.set()
                        continue
                    if kind == "ping":
                        await ws.send(json.dumps({"type": "pong"}))
                        continue
                    self.events.append((at, event))
                    for match, future in list(self._waiters):
                        if not future.done() and match(event):
                            future.set_result(at)
                            self._waiters.remove((match, future))
        except (OSError, ValueError, TimeoutError) as exc:
            self.error = repr(exc)
        except Exception as exc:  # the websockets library's own errors
            self.error = repr(exc)
        finally:
            self.ready.set()

    def expect(self, match: Callable[[dict[str, Any]], bool]) -> asyncio.Future[float]:
        """A future set to the arrival time of the next event matching `match`."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.append((match, future))
        return future

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
