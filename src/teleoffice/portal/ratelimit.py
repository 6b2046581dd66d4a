"""In-memory limits on portal logins: per source address and per username.

Password guessing against the portal is slowed down by two sliding windows:
every login attempt counts against its source address (argon2 makes each one
expensive for us, so floods from one address are cut off whatever their
outcome), and every failure counts against the username tried (guessing one
user's password from many addresses). Unknown usernames are tracked exactly
like real ones, so the limiter reveals nothing about who exists.

Memory is bounded: each window keeps at most `max_keys` keys (least recently
used forgotten first) and at most `limit` timestamps per key.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class SlidingWindow:
    """At most `limit` events per key within `window` seconds."""

    def __init__(self, *, limit: int, window: float, max_keys: int) -> None:
        if limit < 1 or window <= 0 or max_keys < 1:
            raise ValueError("limit and max_keys must be positive, window above zero")
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._events)

    def retry_after(self, key: str, now: float) -> float | None:
        """Seconds until `key` may act again, or None when it may act now."""
        times = self._events.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._events[key]
            return None
        if len(times) < self.limit:
            return None
        return times[0] + self.window - now

    def hit(self, key: str, now: float) -> None:
        times = self._events.get(key)
        if times is None:
            times = self._events[key] = deque(maxlen=self.limit)
            while len(self._events) > self.max_keys:
                self._events.popitem(last=False)
        else:
            self._events.move_to_end(key)
        times.append(now)

    def reset(self, key: str) -> None:
        self._events.pop(key, None)


@dataclass(frozen=True, slots=True)
class LoginLimits:
    address_attempts: int = 20  # login attempts per source address ...
    address_window: float = 60.0  # ... within this many seconds
    username_failures: int = 10  # failed logins per username ...
    username_window: float = 300.0  # ... within this many seconds
    max_tracked: int = 10_000  # addresses and usernames remembered, each
    # Password checks running at once: argon2id takes 64 MiB each, and the
    # threadpool would otherwise run 40 of them together under a flood.
    concurrent_checks: int = 4
    check_wait: float = 10.0  # seconds a login waits for a free check slot


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after:.0f} s")
        self.retry_after = max(1, math.ceil(retry_after))


class TooBusy(Exception):
    """Every password-check slot stayed taken for `check_wait` seconds."""


class LoginLimiter:
    """Thread-safe: login handlers run in the threadpool."""

    def __init__(self, limits: LoginLimits | None = None) -> None:
        self.limits = limits or LoginLimits()
        self._by_address = SlidingWindow(
            limit=self.limits.address_attempts,
            window=self.limits.address_window,
            max_keys=self.limits.max_tracked,
        )
        self._by_username = SlidingWindow(
            limit=self.limits.username_failures,
            window=self.limits.username_window,
            max_keys=self.limits.max_tracked,
        )
        self._lock = threading.Lock()
        self._checks = threading.BoundedSemaphore(self.limits.concurrent_checks)

    @staticmethod
    def _user_key(username: str) -> str:
        # "Alice" and "alice" are different usernames to the store, but one
        # victim to a guesser; locking both together costs nothing.
        return username.lower()

    def admit(self, address: str, username: str, now: float) -> None:
        """Count an attempt from `address` for `username`, or raise `RateLimited`
        (nothing is counted then) when either is over its limit."""
        with self._lock:
            waits = [
                self._by_address.retry_after(address, now),
                self._by_username.retry_after(self._user_key(username), now),
            ]
            wait = max((w for w in waits if w is not None), default=None)
            if wait is not None:
                raise RateLimited(wait)
            self._by_address.hit(address, now)

    def check_username(self, username: str, now: float) -> None:
        """Raise `RateLimited` when `username` has failed too often (for checks
        of a password other than at login, such as a password change)."""
        with self._lock:
            wait = self._by_username.retry_after(self._user_key(username), now)
        if wait is not None:
            raise RateLimited(wait)

    def failed(self, username: str, now: float) -> None:
        with self._lock:
            self._by_username.hit(self._user_key(username), now)

    def succeeded(self, username: str) -> None:
        with self._lock:
            self._by_username.reset(self._user_key(username))

    def tracked(self) -> tuple[int, int]:
        """(addresses, usernames) currently remembered."""
        with self._lock:
            return len(self._by_address), len(self._by_username)

    @contextmanager
    def password_check(self) -> Iterator[None]:
        """Hold one of the few password-check slots; `TooBusy` if none frees up."""
        if not self._checks.acquire(timeout=self.limits.check_wait):
            raise TooBusy
        try:
            yield
        finally:
            self._checks.release()
