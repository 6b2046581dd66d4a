"""The asyncio side of SIP: sockets in, sockets out, one timer, store writes.

This layer is deliberately thin (DESIGN.md section 2): it reads the clock, hands
bytes to `SipService`, sends what it returns, re-arms a single timer at the
service's next deadline and writes store commands in batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, cast

from teleoffice.calls.engine import CallRecord, Feature
from teleoffice.calls.registrar import StoreCommand
from teleoffice.media.engine import MediaEngine
from teleoffice.media.session import MediaSession
from teleoffice.server.b2bua import LocalSession
from teleoffice.server.sip_service import SipService
from teleoffice.sip.transaction import Address
from teleoffice.transport.sip_transport import SipTransport

log = logging.getLogger("teleoffice.runner")


class LocalRun(Protocol):
    """What runs a call answered by teleoffice itself (a voicemail menu)."""

    async def run(self) -> None: ...

    def feed_digit(self, digit: str) -> None: ...


# Registrations are written to the database in batches: one transaction every
# FLUSH_INTERVAL seconds instead of one per REGISTER.  A crash loses at most that
# window, and phones re-register on their own anyway.
FLUSH_INTERVAL = 0.2
# How often the event loop's health is sampled for overload control.  Each
# sample costs three clock reads; 10 per second makes the EWMAs react within
# a few hundred milliseconds.
LOAD_SAMPLE_INTERVAL = 0.1


class SipRunner:
    def __init__(
        self,
        service: SipService,
        *,
        host: str,
        port: int,
        persist: Callable[[list[StoreCommand]], None],
        media: MediaEngine,
        log_calls: Callable[[list[CallRecord]], None],
        max_message_size: int = 65535,
        tcp_idle_timeout: float = 600.0,
        clock: Callable[[], float] = time.time,
        on_feature: Callable[[Feature], Coroutine[Any, Any, None]] | None = None,
        on_local: Callable[[LocalSession], LocalRun] | None = None,
    ) -> None:
        self.on_feature = on_feature
        # Calls answered by teleoffice itself (voicemail): one task each.
        self.on_local = on_local
        self._locals: dict[str, tuple[asyncio.Task[None], LocalRun]] = {}
        self.service = service
        self.persist = persist
        self.media = media
        self.log_calls = log_calls
        self.clock = clock
        self._media_tasks: set[asyncio.Task[None]] = set()
        self.transport = SipTransport(
            host,
            port,
            self._on_message,
            max_message_size=max_message_size,
            tcp_idle_timeout=tcp_idle_timeout,
        )
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._load_task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def port(self) -> int:
        return self.transport.port

    async def start(self) -> None:
        await self.transport.start()
        self._flush_task = asyncio.create_task(self._flush_loop())
        self._load_task = asyncio.create_task(self._sample_load())
        self._after_input()

    async def stop(self) -> None:
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
        if self._load_task is not None:
            self._load_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._load_task
        if self._flush_task is not None:
            self._flush_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flush_task
        for task in list(self._media_tasks):
            task.cancel()
        locals_ = [task for task, _ in self._locals.values()]
        self._locals.clear()
        for task in locals_:
            task.cancel()
        if locals_:
            # Let the menus commit what they were recording before the sockets go.
            await asyncio.wait(locals_, timeout=5)
        self.service.shutdown(self.clock())
        for data, destination in self.service.outgoing():
            self.transport.send(data, destination)
        await asyncio.sleep(0.05)  # let the un-REGISTERs leave before the sockets close
        await self.transport.stop()
        await self._flush()

    def _on_message(self, data: bytes, source: Address) -> None:
        self.service.receive(data, source, self.clock())
        self._after_input()

    def _after_input(self) -> None:
        b2bua = self.service.b2bua
        for call_id in b2bua.take_media_requests():
            task = asyncio.create_task(self._open_media(call_id))
            self._media_tasks.add(task)
            task.add_done_callback(self._media_tasks.discard)
        for feature in b2bua.take_features():
            if self.on_feature is None:
                b2bua.feature_done(feature.call_id, False, 404, "No Feature Codes", self.clock())
                continue
            task = asyncio.create_task(self.on_feature(feature))
            self._media_tasks.add(task)
            task.add_done_callback(self._media_tasks.discard)
        for local in b2bua.take_locals():
            self._start_local(local)
        for call_id, digit in b2bua.take_local_digits():
            running = self._locals.get(call_id)
            if running is not None:
                running[1].feed_digit(digit)
        for call_id in b2bua.take_local_ended():
            running = self._locals.pop(call_id, None)
            if running is not None:
                running[0].cancel()  # the caller hung up: the menu commits and stops
        for session in b2bua.take_media_releases():
            # The B2BUA only ever holds sessions this engine opened.
            self.media.release(cast(MediaSession, session))
        for data, destination in self.service.outgoing():
            self.transport.send(data, destination)
        self._arm_timer()

    def _start_local(self, local: LocalSession) -> None:
        if self.on_local is None:
            self.service.b2bua.hang_up(local.call_id, self.clock())
            return
        run = self.on_local(local)
        task = asyncio.create_task(self._run_local(local.call_id, run))
        self._locals[local.call_id] = (task, run)

    async def _run_local(self, call_id: str, run: LocalRun) -> None:
        try:
            await run.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the menu of call %s failed", call_id)
        # The menu is done (it said goodbye, or failed): hang up the caller.
        if self._locals.pop(call_id, None) is not None:
            self.service.b2bua.hang_up(call_id, self.clock())
            self._after_input()

    def poke(self) -> None:
        """Send what the SIP side queued outside network input (the portal's calls)."""
        self._after_input()

    async def _open_media(self, call_id: str) -> None:
        try:
            session = await self.media.create_session()
        except Exception:  # out of ports, or a socket error: the call gets a 503
            log.exception("could not open media for call %s", call_id)
            self.service.b2bua.media_failed(call_id, self.clock())
        else:
            self.service.b2bua.media_ready(call_id, session, self.clock())
        self._after_input()

    def _arm_timer(self) -> None:
        if self._stopping:
            return
        deadline = self.service.next_timer()
        if deadline is None or (self._timer_at is not None and self._timer_at <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, deadline - self.clock())
        self._timer_at = deadline
        self._timer = loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        try:
            self.service.handle_timers(self.clock())
        except Exception:  # one bad timer must not stop every later one
            log.exception("timer handling failed")
        self._after_input()

    async def _sample_load(self) -> None:
        # The runner measures, the monitor decides.  Lag: how much later than
        # asked the sleep returned (the loop was busy with other callbacks).
        # Busy: CPU time over wall time; a UDP flood keeps the loop from ever
        # resting without making timers late, since asyncio runs due timers
        # between datagrams (see `server.overload`).  The loop's monotonic clock
        # measures intervals; the monitor gets the service's clock as `now`.
        loop = asyncio.get_running_loop()
        monitor = self.service.overload
        wall, cpu = loop.time(), time.process_time()
        while True:
            await asyncio.sleep(LOAD_SAMPLE_INTERVAL)
            woke, cpu_now = loop.time(), time.process_time()
            elapsed = woke - wall
            now = self.clock()
            monitor.loop_lag(elapsed - LOAD_SAMPLE_INTERVAL, now)
            if elapsed > 0:
                monitor.loop_busy((cpu_now - cpu) / elapsed, now)
            wall, cpu = woke, cpu_now

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            await self._flush()

    async def _flush(self) -> None:
        # Commands are taken on the loop's thread; only the database write runs in
        # a worker thread, so the service itself is never touched concurrently.
        commands = self.service.take_commands()
        records = self.service.b2bua.take_records()
        if commands:
            try:
                await asyncio.to_thread(self.persist, commands)
            except Exception:
                log.exception("could not write %d registration changes", len(commands))
        if records:
            try:
                await asyncio.to_thread(self.log_calls, records)
            except Exception:
                log.exception("could not write %d call log changes", len(records))
