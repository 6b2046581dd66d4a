"""sipp runs the call benchmarks need: a UAC and a UAS at once, on chosen ports.

`harness.Sipp` runs one scenario at a time in the foreground; a call through a
B2BUA needs the called side (a UAS) running in the background while the calling
side (a UAC) runs. Both are bounded by `-m`, sipp's global `-timeout`, and a
kill of exactly their PID after that.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from teleoffice.bench.harness import SCENARIOS, BenchError, _wait_with_rusage, sample_process
from teleoffice.bench.processes import LOOPBACK, end_process, read_sipp_stats


def sipp_binary() -> str:
    found = shutil.which("sipp")
    if found is None:
        raise BenchError("sipp is not installed (Debian package sip-tester)")
    return found


@dataclass(frozen=True)
class SippOutcome:
    """What one sipp run reported: its last statistics row, per-call set-up times
    (epoch ms when the 200 came, ms it took), its CPU seconds and wall time."""

    stats: dict[str, str]
    setups: list[tuple[float, float]]
    cpu_seconds: float
    wall_seconds: float
    returncode: int
    killed: bool
    error_sample: str

    def stat(self, name: str) -> int:
        try:
            return int(float(self.stats.get(name, "0") or "0"))
        except ValueError:
            return 0

    @property
    def cpu_share(self) -> float:
        return self.cpu_seconds / max(self.wall_seconds, 1e-6)


def read_setups(folder: Path) -> list[tuple[float, float]]:
    """(Date_ms, response_time_ms) rows of response time 1 from `-trace_rtt` files."""
    rows: list[tuple[float, float]] = []
    for path in sorted(folder.glob("*_rtt.csv")):
        for line in path.read_text(errors="replace").splitlines()[1:]:
            parts = line.strip().split(";")
            if len(parts) >= 3 and parts[2].strip() == "1":
                with contextlib.suppress(ValueError):
                    rows.append((float(parts[0]), float(parts[1])))
    return rows


class SippProcess:
    """One sipp scenario run, started in the background."""

    def __init__(
        self,
        scenario: str,
        rundir: Path,
        *,
        remote: int,
        port: int,
        calls: int,
        bound: float,
        rate: float | None = None,
        limit: int | None = None,
        service: str = "bench",
        hold_ms: int = 0,
        keys: Mapping[str, str] | None = None,
    ) -> None:
        rundir.mkdir(parents=True, exist_ok=True)
        self.rundir = rundir
        self.bound = bound
        script = rundir / f"{scenario}.xml"
        shutil.copyfile(SCENARIOS / f"{scenario}.xml", script)
        self.command = [
            sipp_binary(),
            f"{LOOPBACK}:{remote}",
            "-sf", str(script),
            "-nostdin",
            "-nd",
            "-i", LOOPBACK,
            "-p", str(port),
            "-t", "u1",
            "-s", service,
            "-m", str(calls),
            "-d", str(hold_ms),
            "-timeout", f"{int(bound)}s",
            "-timeout_error",
            "-recv_timeout", "8000",
            "-max_recv_loops", "10000",
            "-trace_stat", "-stf", str(rundir / "stat.csv"), "-fd", "1",
            "-trace_rtt", "-rtt_freq", "1",
            "-trace_err", "-error_file", str(rundir / "errors.log"),
        ]  # fmt: skip
        if rate is not None:
            self.command += ["-r", f"{rate:g}", "-rp", "1000"]
        if limit is not None:
            self.command += ["-l", str(limit)]
        for key, value in (keys or {}).items():
            self.command += ["-key", key, value]
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0

    def start(self) -> SippProcess:
        with (self.rundir / "screen.log").open("wb") as screen:
            self.proc = subprocess.Popen(  # noqa: S603 - sipp with our own arguments
                self.command,
                cwd=self.rundir,
                stdin=subprocess.DEVNULL,
                stdout=screen,
                stderr=screen,
            )
        self.started = time.monotonic()
        return self

    def cpu_seconds(self) -> float:
        """CPU time so far, from /proc (0 once it has ended)."""
        assert self.proc is not None
        try:
            return sample_process(self.proc.pid).cpu_seconds
        except (OSError, BenchError):
            return 0.0

    def wait(self, timeout: float | None = None) -> SippOutcome:
        """Wait for it to end (killing exactly its PID after `timeout`, default its bound
        plus 10 s) and read what it wrote."""
        assert self.proc is not None
        limit = self.bound + 10.0 if timeout is None else timeout
        returncode, cpu, killed = _wait_with_rusage(self.proc, limit)
        return self._outcome(returncode, cpu, killed)

    def stop(self, grace: float = 2.0) -> SippOutcome:
        """End it now (SIGTERM, then SIGKILL, by PID) and read what it wrote."""
        assert self.proc is not None
        cpu = self.cpu_seconds()
        killed = self.proc.poll() is None
        returncode = end_process(self.proc, grace) if killed else self.proc.returncode
        return self._outcome(returncode if returncode is not None else -9, cpu, killed)

    def _outcome(self, returncode: int, cpu: float, killed: bool) -> SippOutcome:
        errors = self.rundir / "errors.log"
        return SippOutcome(
            stats=read_sipp_stats(self.rundir / "stat.csv"),
            setups=read_setups(self.rundir),
            cpu_seconds=cpu,
            wall_seconds=time.monotonic() - self.started,
            returncode=returncode,
            killed=killed,
            error_sample=errors.read_text(errors="replace")[:1500] if errors.exists() else "",
        )
