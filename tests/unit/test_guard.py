"""The password-guessing guard on its own, with a fake clock."""

from __future__ import annotations

import pytest

from teleoffice.server.guard import AuthGuard, GuardLimits

NOW = 1_000.0
ATTACKER = "192.0.2.66"
PHONE = "198.51.100.7"


def guard(**limits: float) -> AuthGuard:
    base = {"source_limit": 3, "account_limit": 5, "window": 60.0, "block_time": 900.0}
    base.update(limits)
    return AuthGuard(GuardLimits(**base))  # type: ignore[arg-type]


def test_source_blocked_at_the_limit_and_released_after_block_time() -> None:
    g = guard()
    first = g.failure(ATTACKER, "201", NOW)
    second = g.failure(ATTACKER, "201", NOW + 1)
    assert (first.blocked, second.blocked) == (False, False)
    assert second.source_failures == 2
    assert not g.blocked(ATTACKER, NOW + 1)
    third = g.failure(ATTACKER, "201", NOW + 2)
    assert third.blocked
    assert third.reason == "source"
    assert third.source_failures == 3
    assert g.blocked(ATTACKER, NOW + 2)
    assert g.blocked(ATTACKER, NOW + 2 + 899)
    assert not g.blocked(ATTACKER, NOW + 2 + 900)
    assert g.counters.blocks == 1
    assert g.counters.failures == 3


def test_failures_outside_the_window_do_not_count() -> None:
    g = guard()
    for i in range(10):
        # One failure every 30 s: never 3 within 60 s.
        verdict = g.failure(ATTACKER, "201", NOW + 30 * i)
        assert not verdict.blocked
        assert verdict.source_failures <= 2
    assert not g.blocked(ATTACKER, NOW + 300)


def test_other_addresses_are_not_affected() -> None:
    g = guard()
    for i in range(3):
        g.failure(ATTACKER, "201", NOW + i)
    assert g.blocked(ATTACKER, NOW + 3)
    assert not g.blocked(PHONE, NOW + 3)
    assert g.blocked_count(NOW + 3) == 1
    assert g.blocked_count(NOW + 2000) == 0


def test_a_blocked_address_is_blocked_only_once() -> None:
    g = guard()
    verdicts = [g.failure(ATTACKER, "201", NOW + i) for i in range(6)]
    assert [v.blocked for v in verdicts] == [False, False, True, False, False, False]
    assert g.counters.blocks == 1


def test_success_does_not_wash_away_failures() -> None:
    # An attacker with one valid account must not launder guesses at others.
    g = guard()
    g.failure(ATTACKER, "202", NOW)
    g.success(ATTACKER, "201", NOW + 1)
    g.failure(ATTACKER, "202", NOW + 2)
    g.success(ATTACKER, "201", NOW + 3)
    assert g.failure(ATTACKER, "202", NOW + 4).blocked


def test_distributed_attack_blocks_attackers_but_not_the_proven_phone() -> None:
    g = guard(source_limit=100, account_limit=5)
    g.success(PHONE, "201", NOW)
    # Five addresses, one guess each: the fifth puts the account under attack.
    verdicts = [g.failure(f"203.0.113.{i}", "201", NOW + i) for i in range(5)]
    assert [v.account_failures for v in verdicts] == [1, 2, 3, 4, 5]
    assert verdicts[-1].alarm_started
    assert verdicts[-1].account_under_attack
    assert verdicts[-1].blocked
    assert verdicts[-1].reason == "account"
    assert g.counters.account_alarms == 1
    # From now on any unproven address failing on 201 is blocked at once...
    fresh = g.failure("203.0.113.50", "201", NOW + 10)
    assert fresh.blocked
    assert fresh.reason == "account"
    assert not fresh.alarm_started
    # ...but the phone that proved the password keeps its normal allowance.
    slip = g.failure(PHONE, "201", NOW + 11)
    assert not slip.blocked
    assert not g.blocked(PHONE, NOW + 11)
    # The account itself is never locked: nothing stops the phone succeeding.
    g.success(PHONE, "201", NOW + 12)
    # Other accounts are unaffected.
    assert not g.failure("203.0.113.51", "202", NOW + 13).blocked


def test_account_alarm_ends_after_block_time_without_failures() -> None:
    g = guard(source_limit=100, account_limit=2, block_time=120.0)
    g.failure("203.0.113.1", "201", NOW)
    g.failure("203.0.113.2", "201", NOW + 1)
    assert g.under_attack("201", NOW + 2)
    assert not g.under_attack("201", NOW + 1 + 121)
    assert not g.failure("203.0.113.3", "201", NOW + 200).blocked


def test_failure_without_account_counts_only_per_source() -> None:
    g = guard()
    verdict = g.failure(ATTACKER, None, NOW)
    assert verdict.account_failures == 0
    g.failure(ATTACKER, None, NOW + 1)
    assert g.failure(ATTACKER, None, NOW + 2).blocked


def test_memory_is_bounded_and_oldest_keys_go_first() -> None:
    g = guard(source_limit=1000, account_limit=1000, max_tracked=100)
    for i in range(1000):
        g.failure(f"10.0.{i // 256}.{i % 256}", f"acct{i}", NOW)
    assert len(g._by_source) == 100
    assert len(g._by_account) == 100
    # The most recent keys survived.
    assert g._by_source.get("10.0.3.231") is not None
    assert g._by_source.get("10.0.0.0") is None


def test_per_key_history_is_bounded_by_the_limit() -> None:
    g = guard(source_limit=3, account_limit=4)
    for i in range(50):
        g.failure(ATTACKER, "201", NOW + i * 0.01)
    record = g._by_source.get(ATTACKER)
    assert record is not None
    assert len(record.times) == 3
    account = g._by_account.get("201")
    assert account is not None
    assert len(account.times) == 4


def test_blocks_beyond_the_cap_evict_the_oldest() -> None:
    g = guard(source_limit=1, max_tracked=10)
    for i in range(20):
        g.failure(f"10.0.0.{i}", None, NOW + i)
    assert g.blocked_count(NOW + 30) == 10
    assert not g.blocked("10.0.0.0", NOW + 30)
    assert g.blocked("10.0.0.19", NOW + 30)


def test_prune_forgets_what_expired() -> None:
    g = guard(account_limit=1)
    g.failure(ATTACKER, "201", NOW)
    g.success(PHONE, "201", NOW)
    for _ in range(3):
        g.failure(ATTACKER, None, NOW)
    g.prune(NOW + 10_000)
    assert len(g._by_source) == len(g._by_account) == 0
    assert len(g._blocked) == len(g._attacked) == len(g._proven) == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"source_limit": 0},
        {"account_limit": 0},
        {"window": 0.0},
        {"block_time": -1.0},
        {"max_tracked": 0},
    ],
)
def test_limits_are_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        GuardLimits(**bad)  # type: ignore[arg-type]


def test_repeat_offenders_are_blocked_longer_each_time() -> None:
    guard = AuthGuard(GuardLimits(source_limit=3, window=60.0, block_time=100.0))
    now = 0.0
    lengths = []
    for _ in range(4):
        for _ in range(3):
            guard.failure("192.0.2.9", "201", now)
        assert guard.blocked("192.0.2.9", now)
        start = now
        while guard.blocked("192.0.2.9", now):
            now += 1.0
        lengths.append(now - start)
        now += 61.0  # let the failure window empty
    assert lengths == [100.0, 200.0, 400.0, 800.0]
    # A day later the slate is clean again.
    now += 86_400.0
    guard.prune(now)
    for _ in range(3):
        guard.failure("192.0.2.9", "201", now)
    start = now
    while guard.blocked("192.0.2.9", now):
        now += 1.0
    assert now - start == 100.0
