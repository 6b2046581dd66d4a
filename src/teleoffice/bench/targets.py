"""The targets of issue 8, and how far one run's numbers are from each.

Each target reads one number out of the results; the gap says how far it is,
as the factor still to gain (2.0: twice as fast or half the delay is needed;
at most 1.0: met). A benchmark that did not run gives no number and no gap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Results = dict[str, Any]


def _dig(results: Results, *path: str) -> Any:
    value: Any = results.get("benchmarks", {})
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


@dataclass(frozen=True)
class Target:
    name: str
    goal: float
    unit: str
    higher_is_better: bool
    read: Callable[[Results], float | None]

    def row(self, results: Results) -> dict[str, Any]:
        try:
            value = self.read(results)
        except (TypeError, ValueError, ZeroDivisionError):
            value = None
        gap: float | None = None
        if value is not None and value > 0:
            gap = self.goal / value if self.higher_is_better else value / self.goal
        elif value is not None and self.higher_is_better:
            gap = float("inf")
        return {
            "target": self.name,
            "goal": self.goal,
            "unit": self.unit,
            "measured": None if value is None else round(float(value), 3),
            "gap": None if gap is None else round(gap, 2),
            "met": None if gap is None else gap <= 1.0,
        }


def _rate_ratio(results: Results) -> float | None:
    tele = _dig(results, "call_rate", "summary", "teleoffice_max_clean_rate")
    sippy = _dig(results, "call_rate", "summary", "sippy_max_clean_rate")
    if tele is None or not sippy:
        return None
    return float(tele) / float(sippy)


def _rss_10k(results: Results) -> float | None:
    memory = _dig(results, "registrations_memory")
    if not isinstance(memory, dict) or not memory.get("accounts"):
        return None
    rss = memory.get("rss_after_drain_bytes") or memory.get("rss_after_bytes")
    if rss is None:
        return None
    # Scaled to 10,000 registrations when the run registered fewer (--quick).
    per = memory.get("bytes_per_registration") or 0.0
    extra = (10_000 - int(memory["accounts"])) * float(per)
    return (float(rss) + max(extra, 0.0)) / 2**20


def _relay_per_core(results: Results) -> float | None:
    media = _dig(results, "media_relay")
    if not isinstance(media, dict):
        return None
    best = media.get("max_calls_within_limits")
    return None if best is None else float(best)


TARGETS = (
    Target(
        "call set-up rate, teleoffice / sippy b2bua_simple",
        3.0,
        "x",
        True,
        _rate_ratio,
    ),
    Target(
        "call set-up rate with zero failures (one process)",
        1000.0,
        "calls/s",
        True,
        lambda r: _dig(r, "call_rate", "summary", "teleoffice_max_clean_rate"),
    ),
    Target(
        "post-dial delay added, INVITE in to INVITE out, p99 at 100 calls/s",
        5.0,
        "ms",
        False,
        lambda r: _dig(r, "post_dial_delay", "teleoffice", "invite_to_invite_ms", "p99"),
    ),
    Target(
        "post-dial delay added, INVITE in to 180 back, p99 at 100 calls/s",
        5.0,
        "ms",
        False,
        lambda r: _dig(r, "post_dial_delay", "teleoffice", "invite_to_180_ms", "p99"),
    ),
    Target(
        "callback INVITE after POST /api/calls, p99",
        10.0,
        "ms",
        False,
        lambda r: _dig(r, "telecommuter", "callback_invite_ms", "p99"),
    ),
    Target(
        "screen pop (incoming INVITE to call.ringing), p99",
        20.0,
        "ms",
        False,
        lambda r: _dig(r, "telecommuter", "screen_pop_ms", "p99"),
    ),
    Target(
        "digest registrations per second (zero failures)",
        2000.0,
        "REGISTER/s",
        True,
        lambda r: _dig(r, "options_vs_register", "summary", "register_max_clean_rate"),
    ),
    Target(
        "RSS with 10,000 registrations",
        200.0,
        "MiB",
        False,
        _rss_10k,
    ),
    Target(
        "relayed calls on one core, loss < 0.1 % and added jitter < 2 ms",
        300.0,
        "calls",
        True,
        _relay_per_core,
    ),
)


def target_rows(results: Results) -> list[dict[str, Any]]:
    return [target.row(results) for target in TARGETS]
