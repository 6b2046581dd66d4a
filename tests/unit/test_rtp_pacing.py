"""Tests of media.pacing: packetizer, pacing schedule, jitter and loss statistics."""

from __future__ import annotations

import random

import pytest

from teleoffice.media.pacing import JitterStats, PacingClock, Packetizer


def test_packetizer_counts_and_marks_the_first_packet() -> None:
    packetizer = Packetizer(0x1234, 0, initial_seq=100, initial_timestamp=5000)
    packets = [packetizer.next_packet(bytes(160)) for _ in range(3)]
    assert [p.sequence for p in packets] == [100, 101, 102]
    assert [p.timestamp for p in packets] == [5000, 5160, 5320]
    assert [p.marker for p in packets] == [True, False, False]
    assert {p.ssrc for p in packets} == {0x1234}
    assert {p.payload_type for p in packets} == {0}


def test_packetizer_wraps_sequence_and_timestamp() -> None:
    packetizer = Packetizer(1, 8, initial_seq=65534, initial_timestamp=0xFFFFFF00)
    packets = [packetizer.next_packet(b"") for _ in range(4)]
    assert [p.sequence for p in packets] == [65534, 65535, 0, 1]
    assert [p.timestamp for p in packets] == [0xFFFFFF00, 0xFFFFFFA0, 0x40, 0xE0]


def test_packetizer_pause_moves_the_timestamp_and_marks_a_talkspurt() -> None:
    packetizer = Packetizer(1, 0, initial_seq=0, initial_timestamp=0)
    packetizer.next_packet(b"")
    packetizer.pause(1.0)  # one second without packets
    after = packetizer.next_packet(b"")
    assert (after.sequence, after.timestamp, after.marker) == (1, 160 + 8000, True)
    assert packetizer.next_packet(b"").marker is False
    assert packetizer.next_packet(b"", marker=True).marker is True
    packetizer.pause(-5)  # a pause never moves time backwards
    assert packetizer.next_timestamp == 160 + 8000 + 3 * 160
    with pytest.raises(ValueError, match="backwards"):
        packetizer.gap(-1)


def test_packetizer_other_ptime_and_rate() -> None:
    packetizer = Packetizer(1, 0, ptime_ms=30, clock_rate=8000, initial_seq=0, initial_timestamp=0)
    packetizer.next_packet(b"")
    assert packetizer.next_timestamp == 240
    with pytest.raises(ValueError, match="whole number"):
        Packetizer(1, 0, ptime_ms=1, clock_rate=900, initial_seq=0, initial_timestamp=0)


def test_pacing_clock_is_an_absolute_schedule() -> None:
    clock = PacingClock(100.0, 0.02)
    assert clock.due(0) == 100.0
    assert clock.due(50) == pytest.approx(101.0)
    assert clock.frames_due(99.99) == 0
    assert clock.frames_due(100.0) == 1
    # Exactly on a due time counts that frame, despite float rounding.
    assert all(clock.frames_due(clock.due(n)) == n + 1 for n in range(10_000))
    assert clock.late(100.0, 0) == 1
    assert clock.late(100.0, 1) == 0
    assert clock.late(100.1, 3) == 3  # frames 3, 4 and 5 are owed


def test_a_sender_on_the_clock_does_not_drift() -> None:
    # A sender that wakes up a random 0-15 ms late each time still sends 50
    # frames per second over a long run, because it asks the clock, not a timer.
    rng = random.Random(7)
    clock = PacingClock(0.0, 0.02)
    now, sent = 0.0, 0
    while now < 600.0:
        sent += clock.late(now, sent)
        now = clock.due(sent) + rng.uniform(0, 0.015)
    assert sent == clock.frames_due(now) - 1 or sent == clock.frames_due(now)
    assert abs(sent - 600.0 / 0.02) <= 1


def test_pacing_clock_rebase() -> None:
    clock = PacingClock(0.0, 0.02)
    clock.rebase(10.0, 5)
    assert clock.due(5) == pytest.approx(10.0)
    assert clock.late(10.0, 5) == 1
    with pytest.raises(ValueError, match="positive"):
        PacingClock(0.0, 0.0)


def test_jitter_is_zero_for_perfect_arrivals() -> None:
    stats = JitterStats()
    for n in range(100):
        stats.update(n, 1000 + 160 * n, 5.0 + 0.02 * n)
    assert stats.jitter == pytest.approx(0.0, abs=1e-6)
    assert (stats.expected, stats.received, stats.lost) == (100, 100, 0)
    assert stats.loss_fraction == 0.0


def test_jitter_converges_to_the_mean_deviation() -> None:
    # Arrivals alternately 0 and 5 ms late: every transit change is 5 ms = 40
    # timestamp units, so J converges to 40 (J += (|D| - J) / 16, RFC 3550 A.8).
    stats = JitterStats()
    for n in range(500):
        stats.update(n, 160 * n, 0.02 * n + (0.005 if n % 2 else 0.0))
    assert stats.jitter == pytest.approx(40.0, rel=1e-3)
    assert stats.jitter_seconds == pytest.approx(0.005, rel=1e-3)


def test_first_jitter_step_follows_the_formula() -> None:
    stats = JitterStats()
    stats.update(0, 0, 0.0)
    stats.update(1, 160, 0.030)  # 10 ms late: D = 80 units
    assert stats.jitter == pytest.approx(80 / 16)


def test_loss_counts_missing_sequence_numbers_across_a_wrap() -> None:
    stats = JitterStats()
    sequences = [(65530 + n) % 65536 for n in range(20)]
    lost = {65533, 2, 3}
    for n, seq in enumerate(sequences):
        if seq not in lost:
            stats.update(seq, 160 * n, 0.02 * n)
    assert stats.extended_max_sequence == 65536 + 13
    assert stats.expected == 20
    assert stats.received == 17
    assert stats.lost == 3
    assert stats.loss_fraction == pytest.approx(3 / 20)


def test_late_and_duplicate_packets() -> None:
    stats = JitterStats()
    for seq in [1, 2, 4, 3, 5, 5]:  # 3 late, 5 twice
        stats.update(seq, 160 * seq, 0.02 * seq)
    assert stats.expected == 5
    assert stats.received == 6
    assert stats.lost == -1  # RFC 3550 A.3: duplicates make it negative
    assert stats.loss_fraction == 0.0


def test_a_sender_restart_is_believed_only_when_confirmed() -> None:
    stats = JitterStats()
    for seq in range(10):
        stats.update(seq, 160 * seq, 0.02 * seq)
    stats.update(30_000, 0, 1.0)  # a stray packet far away: ignored
    assert stats.expected == 10
    assert stats.received == 10
    stats.update(30_001, 160, 1.02)  # the next one follows it: a new sequence space
    assert (stats.expected, stats.received) == (1, 1)
    stats.update(30_002, 320, 1.04)
    assert (stats.expected, stats.received, stats.lost) == (2, 2, 0)
