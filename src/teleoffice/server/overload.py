"""Overload control: refuse new work with 503 before the server falls over.

Pure and sans-IO like the rest of `server/`: the runner measures (how late the
event loop wakes up, how much of the wall clock the process spends on the CPU)
and feeds the samples in with the time; the `LoadMonitor` decides.  Nothing here
reads a clock or draws a random number by itself.

Why shed at all.  A UDP server past its capacity does not fail gracefully: the
kernel's receive buffer fills, datagrams are dropped at random, phones
retransmit (RFC 3261 section 17.1.2.2: every 500 ms, doubling), the
retransmissions are more load, and the work already spent on a request whose
answer comes too late is wasted.  Measured before this module: at three times
its REGISTER capacity the server completed about a fifth of the registrations.
Answering new work at once with 503 Service Unavailable and a Retry-After
(RFC 3261 sections 21.5.4 and 20.33) costs a parse and one response, a fraction
of a digest check plus a registration, and tells the phone to stop retrying and
come back later instead of hammering on.

What is shed.  Only requests that *start* new work: initial INVITEs (no To tag)
and REGISTERs (SUBSCRIBE and PUBLISH too, should they ever be supported).
Everything that finishes work already paid for goes through: ACK, BYE, CANCEL,
re-INVITEs and other in-dialog requests.  Refusing those would make things worse
twice over: the call they belong to already holds media ports and state, which
are released by exactly these requests, and a phone whose BYE is refused keeps
retransmitting it.  Retransmissions never get here: the transaction layer
absorbs them and repeats its last answer (a shed request's retransmissions get
the same 503 again, without a second decision).  OPTIONS is not shed either:
phones and providers send it as a keepalive, it is as cheap as the 503 would be,
and a 503 to it could make a trunk or a phone consider the server dead and fail
over, which is more traffic, not less.

Why plain 503 + Retry-After.  RFC 7339 (and RFC 7415's rate control) let a
server tell its *upstream SIP servers* how much to send, via Via parameters the
sender must understand.  Our clients are phones, which do not implement it; the
503 with Retry-After of RFC 3261 is what every UA understands.  RFC 3261 section
21.5.4 says a client receiving Retry-After should not retry before it expires;
phones register again after it, so Retry-After is jittered (an injected random
source) so that they do not all come back in the same second, and it grows a
little the longer the overload lasts.

Signals, with hysteresis so the server does not flap between states:

* event-loop lag (EWMA): how late a periodic timer fires.  It rises when a
  callback blocks the loop (a slow database call on the loop, a huge message);
* loop busy fraction (EWMA): CPU time over wall time between samples.  A UDP
  flood does not show up as lag, because asyncio reads one datagram per loop
  iteration and runs due timers in between, so the timer is barely late while
  the kernel queue overflows; the process then simply never rests;
* live transactions: the transaction layer's table (bounded memory: non-INVITE
  server transactions live 32 s over UDP, RFC 3261 section 17.2.2, Timer J).

Shedding starts when any signal crosses its high mark and stops once all of
them have stayed below their low marks for `calm_time` seconds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

# Methods that open new work.  SUBSCRIBE and PUBLISH are listed although the
# server does not accept them yet: they would be new work too.
NEW_WORK_METHODS = frozenset({"INVITE", "REGISTER", "SUBSCRIBE", "PUBLISH"})

log = logging.getLogger("teleoffice.overload")


@dataclass(frozen=True, slots=True)
class OverloadLimits:
    lag_high: float = 0.1  # seconds of loop lag (EWMA) that start shedding
    lag_low: float = 0.03  # ... below which it may stop
    busy_high: float = 0.95  # fraction of wall time spent on the CPU (EWMA)
    busy_low: float = 0.8
    max_transactions: int = 100_000
    retry_after: int = 5  # seconds, at the start of an overload
    retry_after_max: int = 60
    calm_time: float = 2.0  # seconds all signals must stay low before admitting again
    smoothing: float = 0.3  # weight of a new sample in the EWMAs

    def __post_init__(self) -> None:
        if not 0 < self.lag_low < self.lag_high:
            raise ValueError("need 0 < lag_low < lag_high")
        if not 0 < self.busy_low < self.busy_high:
            raise ValueError("need 0 < busy_low < busy_high")
        if self.max_transactions < 1:
            raise ValueError("max_transactions must be at least 1")
        if not 1 <= self.retry_after <= self.retry_after_max:
            raise ValueError("need 1 <= retry_after <= retry_after_max")
        if self.calm_time < 0:
            raise ValueError("calm_time must not be negative")
        if not 0 < self.smoothing <= 1:
            raise ValueError("smoothing must lie in (0, 1]")


@dataclass(frozen=True, slots=True)
class Admission:
    """The monitor's answer for one request: admit it, or refuse it with 503."""

    shed: bool
    retry_after: int = 0  # seconds, for the Retry-After header when `shed`


ADMIT = Admission(shed=False)


@dataclass
class OverloadCounters:
    """Plain counters for /metrics."""

    shed: dict[str, int] = field(default_factory=dict)  # by method
    episodes: int = 0  # times shedding started


class LoadMonitor:
    def __init__(
        self,
        limits: OverloadLimits | None = None,
        *,
        transactions: Callable[[], int] = lambda: 0,
        random: Callable[[], float],
    ) -> None:
        """`transactions` reads the live transaction count (a `len()`, cheap);
        `random` returns floats in [0, 1) and only jitters Retry-After."""
        self.limits = limits or OverloadLimits()
        self.transactions = transactions
        self.random = random
        self.counters = OverloadCounters()
        self.lag = 0.0  # EWMA, seconds
        self.busy = 0.0  # EWMA, fraction
        self.overloaded = False
        self._since = 0.0  # when the current overload started
        self._calm_since: float | None = None

    # ---- samples --------------------------------------------------------------

    def loop_lag(self, seconds: float, now: float) -> None:
        """How late the runner's periodic timer fired."""
        self.lag += self.limits.smoothing * (max(0.0, seconds) - self.lag)
        self._update(now)

    def loop_busy(self, fraction: float, now: float) -> None:
        """CPU time over wall time since the previous sample (clamped to 0..1:
        worker threads can push the process above one CPU)."""
        self.busy += self.limits.smoothing * (min(1.0, max(0.0, fraction)) - self.busy)
        self._update(now)

    # ---- decision -------------------------------------------------------------

    def admit(self, method: str, in_dialog: bool, now: float) -> Admission:
        """Whether a new (not retransmitted) request may be processed.

        Called before any digest or database work.  Only new work is ever shed
        (see the module docstring); everything else is admitted unconditionally.
        """
        if in_dialog or method not in NEW_WORK_METHODS:
            return ADMIT
        if not self.overloaded:
            # The transaction table is the one signal that can jump between two
            # samples (a burst of requests), and reading it is a len().
            if self.transactions() <= self.limits.max_transactions:
                return ADMIT
            self._start(now)
        self.counters.shed[method] = self.counters.shed.get(method, 0) + 1
        return Admission(shed=True, retry_after=self._retry_after(now))

    def _retry_after(self, now: float) -> int:
        limits = self.limits
        # Grows by the base for every minute of sustained overload, up to the cap,
        # then spread over +-50 % so that the refused phones come back over an
        # interval rather than in one burst that would start the overload again.
        base = limits.retry_after * (1 + max(0.0, now - self._since) / 60.0)
        base = min(base, limits.retry_after_max)
        jittered = base * (0.5 + self.random())
        return max(1, min(limits.retry_after_max, math.ceil(jittered)))

    def _update(self, now: float) -> None:
        limits = self.limits
        transactions = self.transactions()
        if not self.overloaded:
            if (
                self.lag > limits.lag_high
                or self.busy > limits.busy_high
                or transactions > limits.max_transactions
            ):
                self._start(now)
            return
        calm = (
            self.lag < limits.lag_low
            and self.busy < limits.busy_low
            # A little below the limit, so one finished transaction does not flip it.
            and transactions < limits.max_transactions * 0.9
        )
        if not calm:
            self._calm_since = None
        elif self._calm_since is None:
            self._calm_since = now
        if self._calm_since is not None and now - self._calm_since >= limits.calm_time:
            self.overloaded = False
            self._calm_since = None
            log.warning(
                "overload over after %.1fs: admitting new INVITEs and REGISTERs again "
                "(shed so far: %s)",
                now - self._since,
                self.counters.shed,
            )

    def _start(self, now: float) -> None:
        self.overloaded = True
        self._since = now
        self._calm_since = None
        self.counters.episodes += 1
        log.warning(
            "overloaded (loop lag %.3fs, loop busy %.0f%%, %d transactions): new INVITEs "
            "and REGISTERs get 503 until the load drops",
            self.lag,
            self.busy * 100,
            self.transactions(),
        )
