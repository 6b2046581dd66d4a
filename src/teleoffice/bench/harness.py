"""The processes of a benchmark: one teleoffice server, sipp runs, /proc samples.

Everything listens on 127.0.0.1 only, on ports chosen per run; every process is
bounded in time and ended by its own PID (SIGTERM, then SIGKILL after a grace
period), never by name.

The server is measured from outside: CPU time is utime + stime of
/proc/PID/stat (all threads of the process, including the database writer), and
memory is VmRSS of /proc/PID/status.

Run as a module, this file also offers a small helper that the benchmark starts as
a subprocess (with the same clean environment as the server):

    python -m teleoffice.bench.harness add-users --data D --first 1000 --count N --sip-password P

It creates N users through `UserRepo` in one process instead of running N
`teleoffice user add` commands.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from teleoffice.bench.processes import (
    LOOPBACK,
    clean_environment,
    end_process,
    free_port,
    log_tail,
    read_sipp_stats,
    teleoffice_command,
    wait_until,
)

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
SIP_PASSWORD = "benchpw"  # noqa: S105 - the shared SIP password of the benchmark accounts
FIRST_EXTENSION = 1000
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TRACEBACK = "Traceback (most recent call last)"


class BenchError(RuntimeError):
    """A process of the benchmark did not start, answer or stop as it must."""


# --- ports, environment, waiting ---------------------------------------------------

# --- /proc ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcSample:
    """CPU time and memory of one process at one moment."""

    at: float  # time.monotonic()
    cpu_seconds: float  # utime + stime, every thread
    rss_bytes: int  # VmRSS
    peak_rss_bytes: int  # VmHWM


def sample_process(pid: int) -> ProcSample:
    """Read /proc/PID/stat and /proc/PID/status (Linux only)."""
    at = time.monotonic()
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may contain spaces and parentheses: fields are
    # counted from the last ')'. After it come state (field 3) ... utime (14), stime (15).
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    status = Path(f"/proc/{pid}/status").read_text()
    return ProcSample(
        at=at,
        cpu_seconds=(utime + stime) / CLOCK_TICKS,
        rss_bytes=_status_kib(status, "VmRSS") * 1024,
        peak_rss_bytes=_status_kib(status, "VmHWM") * 1024,
    )


def _status_kib(status: str, key: str) -> int:
    found = re.search(rf"^{key}:\s+(\d+)\s+kB", status, re.MULTILINE)
    if found is None:
        raise BenchError(f"/proc status has no {key}")
    return int(found.group(1))


# --- the teleoffice server -------------------------------------------------------


def _helper_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "teleoffice.bench.harness", *args]


def prepare_data_dir(data_dir: Path, users: int, *, first: int = FIRST_EXTENSION) -> float:
    """`teleoffice init` in `data_dir`, then `users` users with extensions `first`,
    `first + 1`, ... (SIP password SIP_PASSWORD). Returns the seconds it took."""
    started = time.monotonic()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = clean_environment()
    steps = [[*teleoffice_command(), "--data", str(data_dir), "init"]]
    if users > 0:
        steps.append(
            _helper_command(
                "add-users",
                "--data",
                str(data_dir),
                "--first",
                str(first),
                "--count",
                str(users),
                "--sip-password",
                SIP_PASSWORD,
            )
        )
    for command in steps:
        done = subprocess.run(  # noqa: S603 - our own programs and arguments
            command,
            capture_output=True,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(
                f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
    return time.monotonic() - started


def run_cli(data_dir: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run `teleoffice --data DATA_DIR ARGS...`; its output, or BenchError."""
    command = [*teleoffice_command(), "--data", str(data_dir), *args]
    done = subprocess.run(  # noqa: S603 - the teleoffice entry point
        command,
        capture_output=True,
        text=True,
        env=clean_environment(env),
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"teleoffice {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done.stdout


class Server:
    """One `teleoffice serve` on its own ports, with its own copy of a data directory."""

    def __init__(self, workdir: Path, seed: Path, env: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        self.env = dict(env or {})
        self.data_dir = workdir / "data"
        self.log_path = workdir / "server.log"
        self.sip_port = free_port()
        self.http_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_code: int | None = None
        self.stop_in_background = False
        self._stopper: threading.Thread | None = None
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        workdir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(seed, self.data_dir)

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError("the server is not running")
        return self.proc.pid

    def command(self) -> list[str]:
        return [
            *teleoffice_command(),
            "--data",
            str(self.data_dir),
            "serve",
            "--sip",
            f"{LOOPBACK}:{self.sip_port}",
            "--http",
            f"{LOOPBACK}:{self.http_port}",
        ]

    def cli(self, *args: str) -> str:
        """Run `teleoffice --data DATA ARGS...` on this server's data (before `start`)."""
        return run_cli(self.data_dir, *args, env=self.env)

    def start(self, timeout: float = 30.0) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - the teleoffice entry point
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=clean_environment({"TELEOFFICE_LOG_LEVEL": "WARNING", **self.env}),
            )
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                return True
            try:
                self.health(timeout=1.0)
            except (OSError, ValueError):
                return False
            return True

        if not wait_until(ready, timeout, interval=0.1) or proc.poll() is not None:
            self.stop()
            raise BenchError(
                f"teleoffice did not become healthy within {timeout} s "
                f"(exit {proc.returncode}):\n{log_tail(self.log_path)}"
            )

    def health(self, timeout: float = 5.0) -> dict[str, Any]:
        url = f"http://{LOOPBACK}:{self.http_port}/healthz"
        with self._opener.open(url, timeout=timeout) as reply:
            data = json.loads(reply.read())
        if not isinstance(data, dict):
            raise ValueError("healthz did not return an object")
        return data

    def sample(self) -> ProcSample:
        return sample_process(self.pid)

    def log_has_traceback(self) -> bool:
        try:
            return TRACEBACK in self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return False

    def stop(self, grace: float = 10.0) -> int | None:
        """End the server (SIGTERM, SIGKILL after `grace`); its exit code. With
        `stop_in_background` set, only start that and return None at once (the
        quick run does not wait ~1 s per server): `join_stop` waits for it."""
        if self.proc is None or self.exit_code is not None:
            return self.exit_code
        if self.stop_in_background:
            if self._stopper is None:
                self._stopper = threading.Thread(target=self._stop, args=(grace,), daemon=True)
                self._stopper.start()
            return None
        self._stop(grace)
        return self.exit_code

    def _stop(self, grace: float) -> None:
        assert self.proc is not None
        self.exit_code = end_process(self.proc, grace)

    def join_stop(self, timeout: float = 30.0) -> None:
        if self._stopper is not None:
            self._stopper.join(timeout)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- the digest challenge sipp can answer -------------------------------------------

_ALGORITHM = re.compile(r'algorithm\s*=\s*"?([A-Za-z0-9-]+)', re.IGNORECASE)


def first_challenge_algorithm(sip_port: int, account: str, timeout: float = 3.0) -> str | None:
    """Send one REGISTER without credentials; the algorithm of the first challenge of
    the 401, or None when no 401 came back.

    sipp 3.6 reads the `algorithm` of the first challenge only and gives up on
    anything but MD5 (RFC 8760 section 2.4 would have it take the first challenge
    it supports), so the REGISTER benchmarks need MD5 first.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        port = int(sock.getsockname()[1])
        request = (
            f"REGISTER sip:{LOOPBACK}:{sip_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {LOOPBACK}:{port};rport;"
            f"branch=z9hG4bK-probe{secrets.token_hex(6)}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{account}@{LOOPBACK}>;tag={secrets.token_hex(4)}\r\n"
            f"To: <sip:{account}@{LOOPBACK}>\r\n"
            f"Call-ID: probe-{secrets.token_hex(8)}\r\n"
            "CSeq: 1 REGISTER\r\n"
            f"Contact: <sip:{account}@{LOOPBACK}:{port}>\r\n"
            "Expires: 0\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()
        deadline = time.monotonic() + timeout
        next_send = 0.0
        while (left := deadline - time.monotonic()) > 0:
            if time.monotonic() >= next_send:
                sock.sendto(request, (LOOPBACK, sip_port))
                next_send = time.monotonic() + 0.5
            sock.settimeout(min(left, 0.5))
            try:
                data = sock.recv(65535)
            except TimeoutError:
                continue
            text = data.decode("utf-8", errors="replace")
            if not text.startswith("SIP/2.0 401"):
                continue
            for line in text.split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "www-authenticate":
                    found = _ALGORITHM.search(value)
                    return found.group(1).upper() if found else "MD5"
            return None
    return None


# --- sipp -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SippRun:
    """The outcome of one bounded sipp run."""

    scenario: str
    target_rate: float
    calls: int
    returncode: int
    killed: bool
    wall_seconds: float
    sipp_cpu_seconds: float
    stats: dict[str, str]
    response_times_ms: list[float]
    error_sample: str
    command: list[str] = field(default_factory=list)

    def stat_int(self, name: str) -> int:
        try:
            return int(float(self.stats.get(name, "0") or "0"))
        except ValueError:
            return 0

    def stat_float(self, name: str) -> float:
        try:
            return float(self.stats.get(name, "0") or "0")
        except ValueError:
            return 0.0

    @property
    def successful(self) -> int:
        return self.stat_int("SuccessfulCall(C)")

    @property
    def failed(self) -> int:
        return self.stat_int("FailedCall(C)")

    @property
    def retransmissions(self) -> int:
        return self.stat_int("Retransmissions(C)")

    @property
    def created(self) -> int:
        return self.stat_int("OutgoingCall(C)")

    @property
    def achieved_rate(self) -> float:
        """Calls per second sipp actually started (its cumulative CallRate)."""
        return self.stat_float("CallRate(C)")


def sipp_version() -> str:
    found = shutil.which("sipp")
    if found is None:
        raise BenchError("sipp is not installed (Debian package sip-tester)")
    done = subprocess.run(  # noqa: S603 - sipp as found on PATH
        [found, "-v"], capture_output=True, text=True, timeout=10, check=False
    )
    text = (done.stdout + done.stderr).strip()
    match = re.search(r"SIPp v?([0-9][^\s,]*)", text)
    if match is None:
        return text.splitlines()[0] if text else "unknown"
    return match.group(1).rstrip(".")


def read_rtt(folder: Path, rtd: str = "1") -> list[float]:
    """Response times in ms from the `-trace_rtt` files (Date_ms;response_time_ms;rtd_no)."""
    times: list[float] = []
    for path in sorted(folder.glob("*_rtt.csv")):
        for line in path.read_text(errors="replace").splitlines()[1:]:
            parts = line.strip().split(";")
            if len(parts) >= 3 and parts[2].strip() == rtd:
                with contextlib.suppress(ValueError):
                    times.append(float(parts[1]))
    return times


class Sipp:
    """Runs the scenarios of SCENARIOS against one server, always from one port."""

    def __init__(self, server_port: int, workdir: Path) -> None:
        self.binary = shutil.which("sipp")
        if self.binary is None:
            raise BenchError("sipp is not installed (Debian package sip-tester)")
        self.server_port = server_port
        self.workdir = workdir
        self.port = free_port()
        self._runs = 0

    def run(
        self,
        scenario: str,
        *,
        rate: float,
        calls: int,
        injection: Path | None = None,
        keys: Mapping[str, str] | None = None,
        limit: int | None = None,
        recv_timeout_ms: int = 5000,
        slack: float = 20.0,
    ) -> SippRun:
        """`calls` calls of scenarios/<scenario>.xml at `rate` per second.

        Bounded three ways: `-m calls`, sipp's global `-timeout` (the time the calls
        need at the target rate plus `slack`), and a kill of this PID 15 s after that.
        """
        assert self.binary is not None
        self._runs += 1
        rundir = self.workdir / f"sipp-{self._runs:03d}-{scenario}-{int(rate)}"
        rundir.mkdir(parents=True)
        script = rundir / f"{scenario}.xml"
        shutil.copyfile(SCENARIOS / f"{scenario}.xml", script)
        bound = int(calls / max(rate, 1.0) + slack)
        concurrent = limit if limit is not None else max(50, int(rate * 2))
        command = [
            self.binary,
            f"{LOOPBACK}:{self.server_port}",
            "-sf", str(script),
            "-nostdin",
            "-nd",  # no default behaviours: a failed REGISTER must not send a BYE
            "-i", LOOPBACK,
            "-p", str(self.port),
            "-t", "u1",
            "-r", f"{rate:g}",
            "-rp", "1000",
            "-m", str(calls),
            "-l", str(concurrent),
            "-timeout", f"{bound}s",
            "-timeout_error",
            "-recv_timeout", str(recv_timeout_ms),
            "-trace_stat", "-stf", str(rundir / "stat.csv"), "-fd", "1",
            "-trace_rtt",
            "-trace_err", "-error_file", str(rundir / "errors.log"),
        ]  # fmt: skip
        if injection is not None:
            command += ["-inf", str(injection)]
        for key, value in {"expires": "3600", **(keys or {})}.items():
            command += ["-key", key, value]
        started = time.monotonic()
        with (rundir / "screen.log").open("wb") as screen:
            proc = subprocess.Popen(  # noqa: S603 - sipp with our own arguments
                command, cwd=rundir, stdin=subprocess.DEVNULL, stdout=screen, stderr=screen
            )
        returncode, cpu, killed = _wait_with_rusage(proc, bound + 15.0)
        wall = time.monotonic() - started
        errors = rundir / "errors.log"
        error_sample = errors.read_text(errors="replace")[:2000] if errors.exists() else ""
        return SippRun(
            scenario=scenario,
            target_rate=rate,
            calls=calls,
            returncode=returncode,
            killed=killed,
            wall_seconds=wall,
            sipp_cpu_seconds=cpu,
            stats=read_sipp_stats(rundir / "stat.csv"),
            response_times_ms=read_rtt(rundir),
            error_sample=error_sample,
            command=command,
        )


def _wait_with_rusage(proc: subprocess.Popen[bytes], timeout: float) -> tuple[int, float, bool]:
    """Wait for `proc` (killing exactly its PID after `timeout`); (exit code, CPU
    seconds it used, whether it was killed). os.wait4 gives the child's rusage."""
    deadline = time.monotonic() + timeout
    killed = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            code = os.waitstatus_to_exitcode(status)
            proc.returncode = code  # reaped here; Popen must not wait for it again
            return code, usage.ru_utime + usage.ru_stime, killed
        if time.monotonic() >= deadline and not killed:
            killed = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        time.sleep(0.02)


def write_injection_file(path: Path, accounts: Sequence[str], password: str = SIP_PASSWORD) -> None:
    """A sipp injection file, one account per line: field0 the account, field1 its
    credentials as sipp's authentication keyword (sipp expands keywords found in
    injected fields, but not a keyword inside another one)."""
    lines = ["SEQUENTIAL"]
    lines += [f"{a};[authentication username={a} password={password}]" for a in accounts]
    path.write_text("\n".join(lines) + "\n")


# --- the helpers run as subprocesses ---------------------------------------------------


def _add_users(data_dir: Path, first: int, count: int, sip_password: str) -> None:
    from teleoffice.config import load_settings  # noqa: PLC0415 - helper process only
    from teleoffice.store import db  # noqa: PLC0415
    from teleoffice.store.repos import UserRepo  # noqa: PLC0415

    settings = load_settings(data_dir=data_dir)
    engine = db.make_engine(settings.db_url)
    try:
        repo = UserRepo(db.session_factory(engine), realm=settings.realm)
        for extension in range(first, first + count):
            repo.add_user(
                f"bench{extension}",
                extension=str(extension),
                sip_password=sip_password,
                display_name=f"Bench {extension}",
            )
    finally:
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m teleoffice.bench.harness")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add-users", help="create benchmark users through UserRepo")
    add.add_argument("--data", type=Path, required=True)
    add.add_argument("--first", type=int, default=FIRST_EXTENSION)
    add.add_argument("--count", type=int, required=True)
    add.add_argument("--sip-password", default=SIP_PASSWORD)
    parsed = parser.parse_args(argv)
    if parsed.command == "add-users":
        _add_users(parsed.data, parsed.first, parsed.count, parsed.sip_password)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
