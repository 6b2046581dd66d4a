"""`python -m teleoffice.bench [--quick] [--out DIR] [--only NAME]` (`make bench`)."""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from teleoffice import __version__
from teleoffice.bench.harness import BenchError, sipp_version
from teleoffice.bench.profiling import PROFILING_NOTES
from teleoffice.bench.register import FULL, QUICK, Context
from teleoffice.bench.report import write_json, write_summary
from teleoffice.bench.suite import BENCHMARKS
from teleoffice.bench.targets import target_rows


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m teleoffice.bench",
        description=(
            "Benchmark a teleoffice server started on free loopback ports, with sipp. "
            "Writes results.json and summary.md."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and short steps (well under a minute instead of about 12)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("bench-results"),
        help="folder for results.json, summary.md and charts (default: bench-results/)",
    )
    parser.add_argument(
        "--sippy-venv",
        type=Path,
        default=Path("bench-results/.venv-sippy"),
        help="virtual environment for sippy's B2BUA, created once and reused "
        "(default: bench-results/.venv-sippy; never the project's .venv)",
    )
    parser.add_argument(
        "--only",
        choices=sorted(BENCHMARKS),
        action="append",
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    return parser


def _log(message: str) -> None:
    print(message, flush=True)


def run(
    quick: bool,
    out: Path,
    only: Sequence[str] | None,
    sippy_venv: Path = Path("bench-results/.venv-sippy"),
) -> int:
    profile = QUICK if quick else FULL
    names = [name for name in BENCHMARKS if not only or name in only]
    sipp = sipp_version()  # fails early, with a clear message, when sipp is missing
    started = time.monotonic()
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    load_average = " ".join(f"{x:.1f}" for x in os.getloadavg())
    benchmarks: dict[str, dict[str, Any]] = {}
    failed = False
    with tempfile.TemporaryDirectory(prefix="teleoffice-bench-") as scratch:
        ctx = Context(
            workdir=Path(scratch), profile=profile, log=_log, sippy_venv=sippy_venv.resolve()
        )
        for name in names:
            _log(f"{name} ({profile.name})")
            began = time.monotonic()
            try:
                benchmarks[name] = BENCHMARKS[name](ctx)
                benchmarks[name]["duration_seconds"] = round(time.monotonic() - began, 1)
            except (BenchError, OSError, ValueError) as exc:
                failed = True
                _log(f"  failed: {exc}")
                benchmarks[name] = {"error": str(exc)}
            except Exception as exc:  # a bug: keep the other benchmarks' results
                failed = True
                traceback.print_exc()
                benchmarks[name] = {"error": f"{type(exc).__name__}: {exc}"}
        ctx.finish()
    results: dict[str, Any] = {
        "meta": {
            "started": started_at,
            "profile": profile.name,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sipp": sipp,
            "teleoffice": __version__,
            "users": profile.users_needed,
            "seed_seconds": round(ctx.seed_seconds, 2),
            "duration_seconds": round(time.monotonic() - started, 1),
            "load_average": load_average,
        },
        "benchmarks": benchmarks,
    }
    results["targets"] = target_rows(results)
    results["profiling"] = PROFILING_NOTES
    json_path = write_json(results, out)
    summary_path = write_summary(results, out)
    _log(f"wrote {json_path} and {summary_path}")
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args.quick, args.out, args.only, args.sippy_venv)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
