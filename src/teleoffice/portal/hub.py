"""The in-process event hub: live events for the portal's WebSocket connections.

Theory of operation
-------------------
Each WebSocket connection subscribes for one user and gets a bounded queue of
encoded events. `publish` encodes an event once and offers it to every
connection of the users it concerns. A connection whose queue is full has
fallen behind (a stalled browser, a dead network path): it is disconnected
rather than allowed to grow without limit, and on reconnecting it receives a
fresh snapshot of the current state (rule T8), so nothing is lost for good.

The queues belong to the event loop that serves the connections. `publish`
and `disconnect` may be called from that loop (the SIP side) or from any
other thread (the REST handlers, which run in a threadpool); from elsewhere
they hand the work to the loop with `call_soon_threadsafe`, as asyncio queues
are not thread-safe.

A user may hold at most `max_per_user` connections: each costs a queue and a
keepalive that checks the session every interval, and one stolen token must
not be able to open thousands.  The connection over the limit is refused
(the ones open keep working); real users have a few tabs and devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

# WebSocket close codes (4000-4999 are the application's, RFC 6455 section 7.4.2).
CLOSE_UNAUTHENTICATED: Final = 4401  # no or bad token, expired or revoked session
CLOSE_FELL_BEHIND: Final = 4429  # the client did not read its events fast enough
CLOSE_NO_PONG: Final = 4408  # the client stopped answering pings
CLOSE_INTERNAL: Final = 1011  # the server could not build the client's state
# The user has `max_per_user` connections open already; reconnecting at once
# would only be refused again (close another tab first).
CLOSE_TOO_MANY: Final = 4409

DEFAULT_QUEUE_SIZE: Final = 256
DEFAULT_MAX_PER_USER: Final = 64


class TooManyConnections(Exception):
    """The user already holds the most connections allowed."""

    def __init__(self, username: str, limit: int) -> None:
        super().__init__(f"{username} has {limit} portal connections open, the most allowed")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Close:
    """The last item of a queue: close the connection with this code."""

    code: int
    reason: str


Item = str | Close


def _json_default(value: object) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple | frozenset | set):
        return list(value)
    raise TypeError(f"cannot send a {type(value).__name__} in an event")


def encode_event(event: Mapping[str, Any]) -> str:
    """The JSON text of an event; `ValueError`/`TypeError` for one that is not
    fit to send, so that the bug shows at the publisher."""
    if not isinstance(event.get("type"), str):
        raise ValueError("an event needs a string 'type'")
    return json.dumps(event, default=_json_default, separators=(",", ":"))


@dataclass(eq=False)
class Subscription:
    """One WebSocket connection's share of the hub."""

    username: str
    token: str | None
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Item]
    closing: Close | None = field(default=None)

    def offer(self, item: Item) -> None:
        """Queue `item` from any thread."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self._accept(item)
            return
        # A closed loop raises RuntimeError: the connection is gone with it.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self._accept, item)

    def _accept(self, item: Item) -> None:
        if self.closing is not None:
            return
        if isinstance(item, Close):
            self._close(item)
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self._close(Close(CLOSE_FELL_BEHIND, "too many unread events"))

    def _close(self, close: Close) -> None:
        # Drop what is queued: it frees the memory at once, and the client gets
        # the whole current state again when it reconnects.
        self.closing = close
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(close)


class EventHub:
    """Fans events out to the WebSocket connections of the users concerned."""

    def __init__(
        self, *, queue_size: int = DEFAULT_QUEUE_SIZE, max_per_user: int = DEFAULT_MAX_PER_USER
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        if max_per_user < 1:
            raise ValueError("max_per_user must be at least 1")
        self.queue_size = queue_size
        self.max_per_user = max_per_user
        self._lock = threading.Lock()
        self._by_user: dict[str, list[Subscription]] = {}

    def subscribe(self, username: str, *, token: str | None = None) -> Subscription:
        """A new connection for `username`; call from the event loop that serves it.
        `TooManyConnections` when the user has `max_per_user` open already."""
        subscription = Subscription(
            username=username,
            token=token,
            loop=asyncio.get_running_loop(),
            queue=asyncio.Queue(maxsize=self.queue_size),
        )
        with self._lock:
            subs = self._by_user.setdefault(username, [])
            if len(subs) >= self.max_per_user:
                raise TooManyConnections(username, self.max_per_user)
            subs.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            subs = self._by_user.get(subscription.username, [])
            if subscription in subs:
                subs.remove(subscription)
            if not subs:
                self._by_user.pop(subscription.username, None)

    def _subscriptions(self, usernames: Iterable[str]) -> list[Subscription]:
        with self._lock:
            return [sub for name in set(usernames) for sub in self._by_user.get(name, ())]

    def publish(self, event: Mapping[str, Any], users: Iterable[str]) -> int:
        """Send `event` (a JSON-able mapping with a `type`) to every connection of
        `users`; returns how many connections it was offered to."""
        text = encode_event(event)
        targets = self._subscriptions(users)
        for sub in targets:
            sub.offer(text)
        return len(targets)

    def disconnect(
        self,
        username: str,
        *,
        token: str | None = None,
        code: int = CLOSE_UNAUTHENTICATED,
        reason: str = "logged out",
    ) -> int:
        """Close the user's connections (only those opened with `token`, if
        given), e.g. after a logout or a password change; returns how many."""
        targets = [
            sub for sub in self._subscriptions([username]) if token is None or sub.token == token
        ]
        for sub in targets:
            sub.offer(Close(code, reason))
        return len(targets)

    def connection_count(self, username: str | None = None) -> int:
        """Open connections, of one user or of everybody."""
        with self._lock:
            if username is not None:
                return len(self._by_user.get(username, ()))
            return sum(len(subs) for subs in self._by_user.values())

    def online_users(self) -> set[str]:
        """Users with at least one open connection (for rule T8's timer)."""
        with self._lock:
            return set(self._by_user)
