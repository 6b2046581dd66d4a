"""A rate limit on the REST API: token buckets per session and per address.

Login attempts have limits of their own (`ratelimit.LoginLimiter`, which also
bounds the argon2 work); this bounds everything else under /api, so that one
client (a runaway script, a stolen token, a scanner) cannot keep the server's
threads and database busy for everybody.

Each request takes one token from two buckets: its session's (the bearer
token, or the session cookie) and its source address's.  A session may make
`rate` requests a second on average with bursts of `burst`; an address gets
ADDRESS_FACTOR times as much, since an office behind one NAT address holds
many sessions, while a client that sends a fresh made-up token with each
request still meets the address's bucket.  A request that finds a bucket
empty is answered 429 with Retry-After and never reaches a handler.  The
WebSocket is not counted here: it has its own limit of connections per user
(`hub.EventHub.max_per_user`), and its messages are not requests.

Memory is bounded: at most `max_tracked` buckets of each kind are kept, the
least recently used forgotten first (a forgotten bucket comes back full, the
same as one that had time to refill).  Session tokens are kept as hashes.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from teleoffice.portal.deps import SESSION_COOKIE
from teleoffice.portal.errors import error_response

ADDRESS_FACTOR: Final = 4
DEFAULT_MAX_TRACKED: Final = 10_000


@dataclass(frozen=True, slots=True)
class RequestLimits:
    rate: float = 50.0  # requests a second, on average, per session
    burst: int = 500  # requests a session may make at once after a quiet spell
    max_tracked: int = DEFAULT_MAX_TRACKED

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1 or self.max_tracked < 1:
            raise ValueError("rate must be above zero, burst and max_tracked at least 1")


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class TokenBuckets:
    """One token bucket per key: `rate` tokens a second, holding at most `burst`."""

    def __init__(self, *, rate: float, burst: float, max_keys: int) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def wait(self, key: str, now: float) -> float:
        """Seconds until `key` has a token (0 when it has one now); takes nothing."""
        bucket = self._refilled(key, now)
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) / self.rate

    def take(self, key: str, now: float) -> None:
        self._refilled(key, now).tokens -= 1

    def _refilled(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.burst, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
            return bucket
        self._buckets.move_to_end(key)
        # A clock that went backwards refills nothing rather than draining.
        elapsed = max(0.0, now - bucket.at)
        bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
        bucket.at = now
        return bucket


class RequestLimiter:
    """Both kinds of buckets, and the decision for one request.  Not
    thread-safe: the middleware runs on the event loop's thread only."""

    def __init__(self, limits: RequestLimits) -> None:
        self.limits = limits
        self.sessions = TokenBuckets(
            rate=limits.rate, burst=limits.burst, max_keys=limits.max_tracked
        )
        self.addresses = TokenBuckets(
            rate=limits.rate * ADDRESS_FACTOR,
            burst=limits.burst * ADDRESS_FACTOR,
            max_keys=limits.max_tracked,
        )

    def admit(self, address: str, session: str | None, now: float) -> float:
        """0 when the request may go on (its tokens are taken), else the
        seconds to wait (nothing is taken: a refused request costs no token)."""
        wait = self.addresses.wait(address, now)
        if session is not None:
            wait = max(wait, self.sessions.wait(_hashed(session), now))
        if wait > 0:
            return wait
        self.addresses.take(address, now)
        if session is not None:
            self.sessions.take(_hashed(session), now)
        return 0.0


def _hashed(token: str) -> str:
    return hashlib.blake2b(token.encode(), digest_size=16).hexdigest()


def session_of(scope: Scope) -> str | None:
    """The credential a request carries: its bearer token, else its session cookie."""
    cookie: str | None = None
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, token = bytes(value).decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"cookie":
            cookie = cookie_parser(bytes(value).decode("latin-1")).get(SESSION_COOKIE) or cookie
    return cookie


class RequestRateLimit:
    """ASGI middleware: 429 for HTTP requests under /api over the limits."""

    def __init__(
        self,
        app: ASGIApp,
        limits: RequestLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app = app
        self.limiter = RequestLimiter(limits or RequestLimits())
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/api/"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        wait = self.limiter.admit(address, session_of(scope), self.clock())
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            response = error_response(
                429,
                "rate_limited",
                f"too many requests; try again in {seconds} s",
                headers={"Retry-After": str(seconds)},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
