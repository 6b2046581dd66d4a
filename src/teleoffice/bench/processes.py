"""Running teleoffice and its SIP peers as processes, for the benchmarks and the
end-to-end tests alike: free loopback ports, bounded waits, ending exactly the
processes we started, and reading sipp's statistics."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

LOOPBACK = "127.0.0.1"


class NoFreePort(RuntimeError):
    """Loopback has no run of free ports of the size asked for."""


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll `predicate` until it holds or `timeout` seconds pass; the last verdict."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


_handed_out: set[int] = set()
_ports_lock = threading.Lock()


def _bindable(port: int) -> bool:
    """Whether both a UDP and a TCP socket can bind 127.0.0.1:port right now."""
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind((LOOPBACK, port))
            except OSError:
                return False
    return True


def free_port(span: int = 1) -> int:
    """A port P such that P .. P+span-1 are free for both UDP and TCP on loopback.

    The kernel picks the candidate (bind to port 0); ports handed out earlier in this
    process are never handed out again, so two peers of one run cannot collide.
    """
    with _ports_lock:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind((LOOPBACK, 0))
                base = int(probe.getsockname()[1])
            wanted = range(base, base + span)
            if base + span > 65535 or any(p in _handed_out for p in wanted):
                continue
            if all(_bindable(p) for p in wanted):
                _handed_out.update(wanted)
                return base
    raise NoFreePort(f"no {span} consecutive free port(s) on {LOOPBACK}")


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no file {path})"
    return "\n".join(text.splitlines()[-lines:])


def end_process(proc: subprocess.Popen[bytes], grace: float) -> int | None:
    """SIGTERM exactly this PID, wait `grace` seconds, then SIGKILL exactly this PID."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
    return proc.returncode


def teleoffice_command() -> list[str]:
    """The `teleoffice` entry point next to the running interpreter (.venv/bin)."""
    script = Path(sys.executable).parent / "teleoffice"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "teleoffice"]


def clean_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without TELEOFFICE_* settings, plus `extra`, so a
    server sees only what its starter passes it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEOFFICE_")}
    env.update(extra or {})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def read_sipp_stats(path: Path) -> dict[str, str]:
    """The last row of sipp's semicolon-separated statistics, by column name."""
    if not path.exists():
        return {}
    rows = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0].split(";"), rows[-1].split(";"), strict=False))
