"""The load monitor alone, with a fake clock and fake samples."""

from __future__ import annotations

import itertools

import pytest

from teleoffice.server.overload import ADMIT, LoadMonitor, OverloadLimits

NOW = 1_000.0


class Table:
    """Stands in for the transaction layer's count."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        return self.count


def monitor(
    limits: OverloadLimits | None = None, random: float = 0.5, table: Table | None = None
) -> LoadMonitor:
    return LoadMonitor(limits, transactions=table or Table(), random=lambda: random)


def is_overloaded(m: LoadMonitor) -> bool:
    # Through a call: mypy would otherwise keep the attribute narrowed to True.
    return m.overloaded


def lag_for(m: LoadMonitor, lag: float, start: float, seconds: float) -> float:
    """Feed one lag sample every 100 ms for `seconds`; return the time reached."""
    now = start
    for _ in range(round(seconds / 0.1)):
        now += 0.1
        m.loop_lag(lag, now)
    return now


def test_calm_server_admits_everything() -> None:
    m = monitor()
    lag_for(m, 0.005, NOW, 5)
    for method in ("INVITE", "REGISTER", "OPTIONS", "BYE"):
        assert m.admit(method, False, NOW) is ADMIT
    assert not m.overloaded
    assert m.counters.shed == {}


def test_one_late_timer_does_not_start_shedding() -> None:
    # One 200 ms hiccup (a garbage collection, a slow disk) moves the EWMA to 0.06.
    m = monitor()
    lag_for(m, 0.0, NOW, 1)
    m.loop_lag(0.2, NOW + 1.1)
    assert not m.overloaded
    assert not m.admit("REGISTER", False, NOW + 1.1).shed


def test_sustained_lag_sheds_new_work_only() -> None:
    m = monitor()
    now = lag_for(m, 0.3, NOW, 1)
    assert m.overloaded
    assert m.admit("INVITE", False, now).shed
    assert m.admit("REGISTER", False, now).shed
    assert m.admit("SUBSCRIBE", False, now).shed
    # Work that finishes something already paid for, and keepalives, pass.
    for method in ("ACK", "BYE", "CANCEL", "OPTIONS", "UPDATE", "INFO"):
        assert m.admit(method, False, now) is ADMIT
    # A re-INVITE (To tag present) belongs to a call that is already up.
    assert m.admit("INVITE", True, now) is ADMIT
    assert m.counters.shed == {"INVITE": 1, "REGISTER": 1, "SUBSCRIBE": 1}
    assert m.counters.episodes == 1


def test_busy_loop_without_lag_sheds() -> None:
    # A UDP flood: timers are on time but the process never rests.
    m = monitor()
    now = NOW
    for _ in range(10):
        now += 0.1
        m.loop_lag(0.001, now)
        m.loop_busy(1.0, now)
    assert m.overloaded
    # Threads can push the ratio above 1; it is clamped.
    m.loop_busy(3.0, now)
    assert m.busy <= 1.0


def test_hysteresis_and_recovery_after_a_calm_period() -> None:
    limits = OverloadLimits(calm_time=2.0)
    m = monitor(limits)
    now = lag_for(m, 0.3, NOW, 1)
    assert m.overloaded
    # Between the watermarks: still overloaded, however long it lasts.
    now = lag_for(m, 0.06, now, 5)
    assert 0.03 < m.lag < 0.1
    assert m.overloaded
    # Below the low mark: the EWMA takes a few samples, then 2 s of calm.
    now = lag_for(m, 0.0, now, 0.5)
    assert m.lag < 0.03
    calm_at = now
    now = lag_for(m, 0.0, now, 1.5)
    assert m.overloaded  # not calm long enough yet
    now = lag_for(m, 0.0, now, 0.6)
    assert now - calm_at < 2.7
    assert not is_overloaded(m)
    assert m.admit("REGISTER", False, now) is ADMIT


def test_a_relapse_during_the_calm_period_restarts_it() -> None:
    m = monitor(OverloadLimits(calm_time=2.0))
    now = lag_for(m, 0.3, NOW, 1)
    now = lag_for(m, 0.0, now, 1.5)
    now = lag_for(m, 0.2, now, 0.3)  # load comes back
    now = lag_for(m, 0.0, now, 1.0)
    assert m.overloaded
    assert m.counters.episodes == 1  # the same episode, not a new one


def test_too_many_transactions_sheds_at_once_and_recovers_below_the_limit() -> None:
    table = Table()
    m = monitor(OverloadLimits(max_transactions=1000, calm_time=1.0), table=table)
    table.count = 1001
    # No sample needed: the count is read on admission.
    assert m.admit("REGISTER", False, NOW).shed
    assert m.overloaded
    table.count = 950  # below the limit but not 10 % below: still overloaded
    now = lag_for(m, 0.0, NOW, 3)
    assert m.overloaded
    table.count = 800
    now = lag_for(m, 0.0, now, 1.1)
    assert not m.overloaded


def test_retry_after_is_jittered_within_range_and_grows_with_sustained_overload() -> None:
    limits = OverloadLimits(retry_after=5, retry_after_max=60)
    draws = itertools.cycle([0.0, 0.25, 0.5, 0.75, 0.999])
    m = LoadMonitor(limits, transactions=lambda: 0, random=lambda: next(draws))
    now = lag_for(m, 0.3, NOW, 1)
    early = {m.admit("REGISTER", False, now).retry_after for _ in range(5)}
    # 5 s, spread over +-50 %: several distinct values, all within 3..8.
    assert len(early) >= 3
    assert all(3 <= r <= 8 for r in early), early
    now = lag_for(m, 0.3, now, 120)  # two more minutes of overload: base 15 s
    later = {m.admit("REGISTER", False, now).retry_after for _ in range(5)}
    assert min(later) > min(early) + 3
    assert max(later) > max(early) + 10
    assert all(7 <= r <= 23 for r in later), later
    now = lag_for(m, 0.3, now, 3600)
    capped = {m.admit("REGISTER", False, now).retry_after for _ in range(5)}
    assert max(capped) <= 60


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lag_low": 0.2, "lag_high": 0.1},
        {"busy_low": 0.9, "busy_high": 0.9},
        {"max_transactions": 0},
        {"retry_after": 0},
        {"retry_after": 90, "retry_after_max": 60},
        {"smoothing": 0.0},
    ],
)
def test_inconsistent_limits_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"need|must"):
        OverloadLimits(**kwargs)  # type: ignore[arg-type]
