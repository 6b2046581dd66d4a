"""sippy's B2BUA (PyPI `sippy`), the peer the call benchmarks compare teleoffice with.

The package is installed by the benchmark into a virtual environment of its own
(never the project's: it pins Flask, websockets and more that teleoffice does not
want), created once and reused: `ensure_sippy(venv)`. It ships the console
scripts `b2bua_simple` (a plain B2BUA that sends every call to one next hop; no
authentication, no media relay, no routing), `b2bua_radius` and `b2bua`;
the benchmarks run `b2bua_simple -f -l 127.0.0.1 -p PORT -n 127.0.0.1:NEXT`.

Known quirk: sippy 2.5 refuses to send a BYE to a Contact whose `transport`
parameter is in upper case (`transport=UDP`, sipp's `[transport]`), so the
benchmark scenarios leave that parameter out.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
from pathlib import Path

from teleoffice.bench.harness import BenchError, ProcSample, sample_process
from teleoffice.bench.processes import (
    LOOPBACK,
    clean_environment,
    end_process,
    free_port,
    wait_until,
)

SIPPY_REQUIREMENT = "sippy==2.5.0"  # pinned: the comparison should not move under us
SCRIPT = "b2bua_simple"


def ensure_sippy(venv: Path, log: object = print) -> Path:
    """The `b2bua_simple` script of `venv`, creating the venv and installing sippy
    when missing. BenchError with pip's output when that fails."""
    venv = venv.resolve()
    script = venv / "bin" / SCRIPT
    if script.exists():
        return script
    if callable(log):
        log(f"  installing {SIPPY_REQUIREMENT} into {venv} (once)")
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", SIPPY_REQUIREMENT],
    ]
    for command in steps:
        done = subprocess.run(  # noqa: S603 - python and pip with our own arguments
            command,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise BenchError(
                f"installing sippy failed: {' '.join(command)} exited {done.returncode}\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )
    if not script.exists():
        raise BenchError(f"sippy installed, but {script} is missing")
    return script


class SippyB2bua:
    """One `b2bua_simple` on a free loopback port relaying every call to `next_hop`."""

    def __init__(self, script: Path, workdir: Path, next_hop: int) -> None:
        self.script = script
        self.workdir = workdir
        self.port = free_port()
        self.next_hop = next_hop
        self.log_path = workdir / "sippy.log"
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError("sippy is not running")
        return self.proc.pid

    def start(self) -> None:
        command = [
            str(self.script),
            "-f",  # foreground: the PID we hold is the B2BUA itself
            "-l", LOOPBACK,
            "-p", str(self.port),
            "-n", f"{LOOPBACK}:{self.next_hop}",
        ]  # fmt: skip
        # SIPLOG_BEND=none: no per-message logging, as teleoffice runs at WARNING.
        env = clean_environment({"SIPLOG_BEND": "none", "SIPLOG_LVL": "ERR"})
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - sippy's script from its venv
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=env,
            )
        # It binds its port after importing (about a second): wait until it answers.
        if not wait_until(self._answers, 15.0, interval=0.1) or self.proc.poll() is not None:
            raise BenchError(
                f"b2bua_simple exited {self.proc.returncode}:\n"
                + self.log_path.read_text(errors="replace")[-2000:]
            )

    def _answers(self) -> bool:
        """Whether it answers an OPTIONS (b2bua_simple says 501: any answer will do)."""
        if self.proc is not None and self.proc.poll() is not None:
            return True  # exited: start() reports it
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind((LOOPBACK, 0))
            sock.settimeout(0.1)
            port = sock.getsockname()[1]
            sock.sendto(
                (
                    f"OPTIONS sip:{LOOPBACK}:{self.port} SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP {LOOPBACK}:{port};branch=z9hG4bK{secrets.token_hex(6)}\r\n"
                    f"From: <sip:probe@{LOOPBACK}>;tag={secrets.token_hex(4)}\r\n"
                    f"To: <sip:{LOOPBACK}:{self.port}>\r\n"
                    f"Call-ID: {secrets.token_hex(8)}\r\nCSeq: 1 OPTIONS\r\n"
                    "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                ).encode(),
                (LOOPBACK, self.port),
            )
            try:
                return bool(sock.recv(65535))
            except OSError:  # timeout, or nothing listening yet (ICMP)
                return False

    def sample(self) -> ProcSample:
        return sample_process(self.pid)

    def tracebacks(self) -> int:
        try:
            return self.log_path.read_text(errors="replace").count("Traceback")
        except FileNotFoundError:
            return 0

    def stop(self) -> None:
        if self.proc is not None:
            end_process(self.proc, 5.0)

    def __enter__(self) -> SippyB2bua:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
