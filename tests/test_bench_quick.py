"""`python -m teleoffice.bench --quick` (`make bench QUICK=1`) runs end to end and
reports every benchmark.

The only benchmark in the test suite, and it asserts nothing about speed: only that
each benchmark ran and produced numbers, side by side where there is a peer (sippy's
B2BUA, a direct path), that the targets table and the charts were written. The
machine running the tests is shared and noisy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from teleoffice.bench.suite import BENCHMARKS
from teleoffice.bench.targets import TARGETS

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

REPO = Path(__file__).resolve().parents[1]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _assert_numbers(record: dict[str, Any], keys: list[str], where: str) -> None:
    for key in keys:
        assert _is_number(record.get(key)), f"{where}: {key} = {record.get(key)!r}"


def _assert_percentiles(times: dict[str, Any], where: str) -> None:
    assert times["count"] > 0, where
    _assert_numbers(times, ["p50", "p95", "p99"], where)
    assert times["p50"] <= times["p95"] <= times["p99"], f"{where}: {times}"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, str]:
    out = tmp_path_factory.mktemp("bench")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "teleoffice.bench", "--quick", "--out", str(out)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the quick benchmark ran longer than {exc.timeout} s:\n{exc.stdout!r}")
    report = f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, report
    return json.loads((out / "results.json").read_text()), out, report


def test_every_benchmark_ran_without_error(quick_run: tuple[dict[str, Any], Path, str]) -> None:
    results, out, report = quick_run
    assert (out / "summary.md").read_text().startswith("# teleoffice benchmarks")
    benchmarks = results["benchmarks"]
    assert set(benchmarks) == set(BENCHMARKS), report
    for name, data in benchmarks.items():
        assert "error" not in data, f"{name}: {data.get('error')}"
        _assert_numbers(data, ["duration_seconds"], name)


def test_call_rate_compares_teleoffice_with_sippy(
    quick_run: tuple[dict[str, Any], Path, str],
) -> None:
    data = quick_run[0]["benchmarks"]["call_rate"]
    for b2bua in ("teleoffice", "sippy"):
        steps = [s for s in data["steps"] if s["b2bua"] == b2bua]
        assert steps, b2bua
        for step in steps:
            where = f"{b2bua} at {step['target_rate']}/s"
            assert step["successful"] > 0, where
            _assert_numbers(
                step,
                ["failed", "retransmissions", "cpu_ms_per_call", "cpu_share", "uac_cpu_share"],
                where,
            )
            _assert_percentiles(step["setup_ms"], where)
    summary = data["summary"]
    _assert_numbers(summary, ["teleoffice_cpu_ms_per_call", "sippy_cpu_ms_per_call"], "summary")
    assert isinstance(summary["generator_limited_steps"], list)


def test_post_dial_delay_has_percentiles_for_every_path(
    quick_run: tuple[dict[str, Any], Path, str],
) -> None:
    data = quick_run[0]["benchmarks"]["post_dial_delay"]
    for path in ("teleoffice", "sippy", "direct"):
        _assert_percentiles(data[path]["invite_to_invite_ms"], f"{path} INVITE")
        _assert_percentiles(data[path]["invite_to_180_ms"], f"{path} 180")


def test_telecommuter_presence_media_and_memory_have_numbers(
    quick_run: tuple[dict[str, Any], Path, str],
) -> None:
    benchmarks = quick_run[0]["benchmarks"]
    tele = benchmarks["telecommuter"]
    _assert_percentiles(tele["callback_invite_ms"], "callback")
    _assert_percentiles(tele["screen_pop_ms"], "screen pop")

    for step in benchmarks["presence_fan_out"]["steps"]:
        where = f"presence with {step['sip_watchers']} SIP watchers"
        assert step["sip_watchers"] > 0, where
        assert step["ws_watchers"] > 0, where
        _assert_percentiles(step["delivery_ms"], where)

    media = benchmarks["media_relay"]
    assert media["steps"]
    for step in media["steps"]:
        where = f"media with {step['calls']} calls"
        for side in ("relayed", "direct"):
            assert step[side]["received"] > 0, where
            _assert_numbers(step[side], ["loss", "jitter_ms_mean", "jitter_ms_p99"], where)
        _assert_numbers(step, ["relay_cpu_share", "added_jitter_ms"], where)

    memory = benchmarks["memory_per_call"]
    assert memory["cold"]["calls_up"] > 0
    _assert_numbers(memory, ["bytes_per_call"], "memory_per_call")


def test_registration_benchmarks_have_numbers(
    quick_run: tuple[dict[str, Any], Path, str],
) -> None:
    benchmarks = quick_run[0]["benchmarks"]
    steps = benchmarks["options_vs_register"]["steps"]
    assert {s["scenario"] for s in steps} == {"options", "register"}
    for step in steps:
        where = f"{step['scenario']} at {step['target_rate']}/s"
        _assert_numbers(
            step,
            ["target_rate", "achieved_rate", "successful", "failed", "retransmissions"],
            where,
        )
        assert step["successful"] > 0, where
        _assert_numbers(step["response_time_ms"], ["count", "p50", "p95", "p99"], where)
    assert benchmarks["options_vs_register"]["summary"]["per_rate"]

    memory = benchmarks["registrations_memory"]
    _assert_numbers(
        memory,
        [
            "accounts",
            "successful",
            "registrations_added",
            "rss_before_bytes",
            "bytes_per_registration",
        ],
        "registrations_memory",
    )
    assert memory["registrations_added"] > 0


def test_targets_and_charts_are_reported(quick_run: tuple[dict[str, Any], Path, str]) -> None:
    results, out, _ = quick_run
    rows = results["targets"]
    assert [r["target"] for r in rows] == [t.name for t in TARGETS]
    for row in rows:
        # A rate may be missing (no clean step at all on a very busy machine), but
        # when there is a number, so is its gap to the target.
        if _is_number(row["measured"]) and row["measured"] > 0:
            assert _is_number(row["gap"]), row
            assert row["met"] == (row["gap"] <= 1.0), row
    # Latencies and memory are always measured.
    for row in rows:
        if row["unit"] in ("ms", "MiB"):
            assert _is_number(row["measured"]), row
    summary = (out / "summary.md").read_text()
    assert "## Targets (issue 8)" in summary
    for chart in ("call_rate.png", "post_dial_delay.png", "media_relay.png"):
        assert (out / chart).stat().st_size > 1000, chart
        assert f"]({chart})" in summary, chart
