"""`python -m teleoffice.bench --quick` runs end to end and reports every benchmark.

The only benchmark in the test suite, and it asserts nothing about speed: only that
each benchmark ran and produced numbers (the machine running the tests is shared
and noisy).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from teleoffice.bench.register import BENCHMARKS

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

REPO = Path(__file__).resolve().parents[1]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _assert_numbers(record: dict[str, Any], keys: list[str], where: str) -> None:
    for key in keys:
        assert _is_number(record.get(key)), f"{where}: {key} = {record.get(key)!r}"


def test_quick_bench_reports_every_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "teleoffice.bench", "--quick", "--out", str(out)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the quick benchmark ran longer than {exc.timeout} s:\n{exc.stdout!r}")
    report = f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, report
    results = json.loads((out / "results.json").read_text())
    assert (out / "summary.md").read_text().startswith("# teleoffice benchmarks")

    benchmarks = results["benchmarks"]
    assert set(benchmarks) == set(BENCHMARKS), report
    for name, data in benchmarks.items():
        assert "error" not in data, f"{name}: {data.get('error')}"

    steps = benchmarks["options_vs_register"]["steps"]
    assert {s["scenario"] for s in steps} == {"options", "register"}
    for step in steps:
        where = f"{step['scenario']} at {step['target_rate']}/s"
        _assert_numbers(
            step,
            [
                "target_rate",
                "achieved_rate",
                "successful",
                "failed",
                "retransmissions",
                "server_cpu_seconds",
                "server_cpu_utilization",
            ],
            where,
        )
        assert step["successful"] > 0, where
        _assert_numbers(step["response_time_ms"], ["count", "p50", "p95", "p99"], where)
    summary = benchmarks["options_vs_register"]["summary"]
    assert summary["per_rate"], summary

    memory = benchmarks["registrations_memory"]
    _assert_numbers(
        memory,
        [
            "accounts",
            "successful",
            "registrations_added",
            "rss_before_bytes",
            "rss_after_bytes",
            "rss_growth_bytes",
            "bytes_per_registration",
        ],
        "registrations_memory",
    )
    assert memory["rss_before_bytes"] > 0
    assert memory["registrations_added"] > 0
