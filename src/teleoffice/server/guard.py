"""Password-guessing defence: failed digest checks per source and per account.

Pure and sans-IO like the rest of `server/`: every method takes `now`, nothing
reads a clock, so the rules are tested with a fake one.

The rules:

* Per source address: `source_limit` failures within `window` seconds block the
  address for `block_time` seconds.  While blocked, the SIP service ignores it.
  An address blocked again within a day is blocked twice as long as the time
  before (up to `max_block_time`): without that, a patient attacker would get
  `source_limit` guesses every `block_time`, and a 4-digit password would fall
  within days.
* Per account: `account_limit` failures within `window` seconds, from any number
  of addresses, put the account "under attack" for `block_time` seconds.  While it
  is, a single further failure for that account blocks the failing address at
  once, unless that address has recently proven the account's password.

The account is never locked as such.  Locking it would hand every attacker a
denial of service against the real user (a few wrong guesses from anywhere and
the phone on the desk stops working); blocking only the addresses that keep
failing costs a distributed attacker one guess per address once the attack is
noticed, while the user's phones, which authenticate successfully and so never
fail, keep working.  Addresses that have proven the password keep the normal
per-source allowance, so a phone with a stale credential cache is not cut off by
someone else's attack on its account.

A success does not clear an address's failure count: an attacker holding one
valid account could otherwise interleave successful requests with guesses at
other accounts and never be blocked.  Failures age out of the window anyway.

Memory is bounded: each table holds at most `max_tracked` keys and drops the
least recently touched one when full, and each key keeps at most as many
timestamps as its limit needs.  An attacker spraying addresses (easy with
spoofed UDP) can therefore evict older entries, but cannot exhaust memory.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class GuardLimits:
    source_limit: int = 20
    account_limit: int = 30
    window: float = 60.0
    block_time: float = 900.0
    max_tracked: int = 10_000
    max_block_time: float = 86_400.0
    # How long an address's earlier blocks count against it.
    offence_memory: float = 86_400.0

    def __post_init__(self) -> None:
        if self.source_limit < 1 or self.account_limit < 1:
            raise ValueError("failure limits must be at least 1")
        if self.window <= 0 or self.block_time <= 0:
            raise ValueError("window and block_time must be positive")
        if self.max_tracked < 1:
            raise ValueError("max_tracked must be at least 1")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one failure led to."""

    source_failures: int  # failures of this address within the window, this one included
    account_failures: int  # failures of this account within the window (0: no account)
    blocked: bool  # this failure blocked the address (it was not blocked before)
    reason: str | None = None  # "source" or "account" when `blocked`
    account_under_attack: bool = False
    alarm_started: bool = False  # this failure put the account under attack


@dataclass
class GuardCounters:
    """Plain counters for /metrics."""

    failures: int = 0
    blocks: int = 0
    account_alarms: int = 0  # times an account went under attack


class _BoundedMap(Generic[V]):
    """A dict that forgets its least recently touched key beyond `cap` keys."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.items: OrderedDict[str, V] = OrderedDict()

    def get(self, key: str) -> V | None:
        return self.items.get(key)

    def touch(self, key: str, value: V) -> None:
        self.items[key] = value
        self.items.move_to_end(key)
        while len(self.items) > self.cap:
            self.items.popitem(last=False)

    def pop(self, key: str) -> None:
        self.items.pop(key, None)

    def __len__(self) -> int:
        return len(self.items)


@dataclass
class _Failures:
    """The most recent failure times of one key; never more than `keep` of them."""

    times: deque[float] = field(default_factory=deque)

    def add(self, now: float, window: float, keep: int) -> int:
        self.times.append(now)
        while len(self.times) > keep:
            self.times.popleft()
        self.expire(now, window)
        return len(self.times)

    def expire(self, now: float, window: float) -> None:
        while self.times and self.times[0] <= now - window:
            self.times.popleft()


class AuthGuard:
    def __init__(self, limits: GuardLimits | None = None) -> None:
        self.limits = limits or GuardLimits()
        cap = self.limits.max_tracked
        self._by_source: _BoundedMap[_Failures] = _BoundedMap(cap)
        self._by_account: _BoundedMap[_Failures] = _BoundedMap(cap)
        # address -> end of its block
        self._blocked: _BoundedMap[float] = _BoundedMap(cap)
        # account -> end of its "under attack" period
        self._attacked: _BoundedMap[float] = _BoundedMap(cap)
        # (account, address) pairs that proved the password -> when they last did
        self._proven: _BoundedMap[float] = _BoundedMap(cap)
        # address -> (blocks so far, when the last one started), for escalation
        self._offences: _BoundedMap[tuple[int, float]] = _BoundedMap(cap)
        self.counters = GuardCounters()

    # ---- queries ------------------------------------------------------------

    def blocked(self, source_ip: str, now: float) -> bool:
        until = self._blocked.get(source_ip)
        if until is None:
            return False
        if until <= now:
            self._blocked.pop(source_ip)
            return False
        return True

    def blocked_count(self, now: float) -> int:
        """Addresses blocked at `now`.

        Read-only on purpose: /metrics calls it from a worker thread, so it copies
        the values in one C-level step (atomic under the GIL) and mutates nothing.
        """
        return sum(1 for until in list(self._blocked.items.values()) if until > now)

    def under_attack(self, account: str, now: float) -> bool:
        until = self._attacked.get(account)
        return until is not None and until > now

    # ---- events -------------------------------------------------------------

    def failure(self, source_ip: str, account: str | None, now: float) -> Verdict:
        """Record a failed authentication from `source_ip` claiming `account`."""
        limits = self.limits
        self.counters.failures += 1
        already = self.blocked(source_ip, now)

        source = self._by_source.get(source_ip) or _Failures()
        source_count = source.add(now, limits.window, limits.source_limit)
        self._by_source.touch(source_ip, source)

        account_count = 0
        attacked = started = False
        if account:
            record = self._by_account.get(account) or _Failures()
            account_count = record.add(now, limits.window, limits.account_limit)
            self._by_account.touch(account, record)
            attacked = self.under_attack(account, now)
            if not attacked and account_count >= limits.account_limit:
                attacked = started = True
                self.counters.account_alarms += 1
            if attacked:
                # Every failure while under attack prolongs the alarm.
                self._attacked.touch(account, now + limits.block_time)

        reason: str | None = None
        if source_count >= limits.source_limit:
            reason = "source"
        elif attacked and account and not self._has_proven(account, source_ip, now):
            reason = "account"
        if reason is None or already:
            return Verdict(source_count, account_count, False, None, attacked, started)
        self._blocked.touch(source_ip, now + self._block_time(source_ip, now))
        self.counters.blocks += 1
        return Verdict(source_count, account_count, True, reason, attacked, started)

    def _block_time(self, source_ip: str, now: float) -> float:
        """This block's length: doubled for each earlier block within the memory."""
        limits = self.limits
        previous = self._offences.get(source_ip)
        count = 1
        if previous is not None and now - previous[1] < limits.offence_memory:
            count = previous[0] + 1
        self._offences.touch(source_ip, (count, now))
        factor = float(2 ** min(count - 1, 32))
        return min(limits.block_time * factor, limits.max_block_time)

    def success(self, source_ip: str, account: str, now: float) -> None:
        """Record that `source_ip` proved the password of `account`."""
        self._proven.touch(_pair(account, source_ip), now)

    def prune(self, now: float) -> None:
        """Forget expired blocks, alarms and failure records."""
        window = self.limits.window
        for table in (self._blocked, self._attacked):
            for key in [k for k, until in table.items.items() if until <= now]:
                table.pop(key)
        for failures in (self._by_source, self._by_account):
            for key, record in list(failures.items.items()):
                record.expire(now, window)
                if not record.times:
                    failures.pop(key)
        horizon = now - self.limits.block_time
        for key in [k for k, at in self._proven.items.items() if at <= horizon]:
            self._proven.pop(key)
        memory = now - self.limits.offence_memory
        for key in [k for k, (_, at) in self._offences.items.items() if at <= memory]:
            self._offences.pop(key)

    def _has_proven(self, account: str, source_ip: str, now: float) -> bool:
        # "Recently": within one block time, the horizon over which we remember.
        at = self._proven.get(_pair(account, source_ip))
        return at is not None and at > now - self.limits.block_time


def _pair(account: str, source_ip: str) -> str:
    # A NUL cannot occur in either part as received over SIP, so keys cannot collide.
    return f"{account}\x00{source_ip}"
