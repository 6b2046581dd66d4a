"""What the call tests need beyond the harness: tones, a recording phone, sipp in
the background, and a per-test PBX whose leaks are checked.

- `write_tone` / `analyse_wav`: 8 kHz mono WAVs for baresip to send, and the
  proof that a recording holds a given tone (energy plus Goertzel power).
- `Phone`: a baresip whose audio source is a file of ours and which records both
  directions of each call (`sndfile` module, `snd_path`).
- `SippProcess`: sipp running a scenario while the test does something else (a
  provider or a phone that waits for the PBX to call it).
- `CallLab`: one test's processes; `Drainer`: servers whose transactions are
  left to run out after their test (seconds in the lab; up to 32 s when a peer
  went quiet), so a
  module pays that wait once instead of once per test.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from teleoffice.bench.processes import LOOPBACK, free_port, wait_until
from teleoffice.media.analysis import goertzel_power, rms
from tests.e2e.harness import (
    SCENARIOS,
    TRACEBACK,
    Baresip,
    HarnessError,
    HasLog,
    Server,
    Sipp,
    SippResult,
    parse_sipp_trace,
    write_tone,
)

SAMPLE_RATE = 8000

# The shipped defaults, for the tests of overload control itself.
DEFAULT_OVERLOAD = {
    "TELEOFFICE_OVERLOAD_LAG_HIGH": "0.1",
    "TELEOFFICE_OVERLOAD_LAG_LOW": "0.03",
    "TELEOFFICE_OVERLOAD_BUSY_HIGH": "0.95",
    "TELEOFFICE_OVERLOAD_BUSY_LOW": "0.8",
}

# Counters of /healthz that must be back to zero once no call is up.
IDLE_COUNTERS = ("calls", "call_legs", "dialogs", "media_sessions", "media_ports")


# --- port blocks -------------------------------------------------------------------

_blocks_lock = threading.Lock()
_next_block: dict[str, int] = {}
_BLOCK_AREAS = {"server": (20000, 29999), "phone": (31000, 39999)}


def port_block(area: str, size: int) -> tuple[int, int]:
    """A range of `size` UDP ports no earlier test of this process was given.

    Ranges only make collisions between processes unlikely: teleoffice skips a
    media port it cannot bind, and baresip picks another one, so a port taken by
    somebody else costs nothing but a retry.
    """
    low, high = _BLOCK_AREAS[area]
    span = high - low + 1
    with _blocks_lock:
        # Start at a place that depends on the process, so parallel test processes
        # tend to use different blocks.
        offset = _next_block.get(area, (os.getpid() * 997) % span)
        if offset + size > span:
            offset = 0
        _next_block[area] = offset + size
    return low + offset, low + offset + size - 1


# --- tones -------------------------------------------------------------------------


@dataclass(frozen=True)
class ToneReport:
    """How loud a recording is and how its power splits over the candidate tones."""

    path: Path
    seconds: float
    rms: float
    powers: dict[float, float]

    @property
    def dominant(self) -> float:
        return max(self.powers, key=self.powers.__getitem__)

    def share(self, freq: float) -> float:
        """The tone's power as a fraction of the signal's mean square (1.0: pure tone)."""
        return self.powers[freq] / (self.rms**2) if self.rms else 0.0

    def __str__(self) -> str:
        powers = ", ".join(f"{f:g} Hz: {p:.0f}" for f, p in self.powers.items())
        return f"{self.path.name}: {self.seconds:.2f} s, rms {self.rms:.0f}, powers {powers}"


def analyse_wav(path: Path, candidates: Sequence[float], skip: float = 0.5) -> ToneReport:
    """Measure a 16-bit mono recording, leaving out its first `skip` seconds
    (jitter buffer start, silence before the first packet)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise HarnessError(
                f"{path}: {wav.getnchannels()} channel(s) of {8 * wav.getsampwidth()} bits, "
                "expected 16-bit mono"
            )
        rate = wav.getframerate()
        pcm = wav.readframes(wav.getnframes())
    pcm = pcm[int(skip * rate) * 2 :]
    return ToneReport(
        path=path,
        seconds=len(pcm) / 2 / rate,
        rms=rms(pcm),
        powers={freq: goertzel_power(pcm, freq, rate) for freq in candidates},
    )


def heard_tones(phone: Phone, tones: Sequence[float], timeout: float = 5.0) -> ToneReport:
    """What `phone` recorded of the far end, measured for `tones`, once complete."""
    path = phone.recording("dec", timeout)
    reports: list[ToneReport] = []

    def complete() -> bool:
        # sndfile fills in the WAV header's sizes when the call's audio stops.
        try:
            reports.append(analyse_wav(path, tones))
        except (EOFError, wave.Error):
            return False
        return reports[-1].seconds >= 2.0

    wait_until(complete, timeout, interval=0.2)
    assert reports, f"{path} never became a readable WAV"
    return reports[-1]


def assert_only_tone(report: ToneReport, freq: float, tones: Sequence[float]) -> None:
    """At least 2 s of `freq` and practically none of the other `tones`."""
    assert report.seconds >= 2.0, f"recording too short: {report}"
    # Not silence: the test tones are sent at amplitude 8000 (rms about 5600).
    assert report.rms > 2000, f"no sound: {report}"
    assert report.dominant == freq, f"expected {freq:g} Hz: {report}"
    assert report.share(freq) > 0.6, f"{freq:g} Hz is not most of the sound: {report}"
    for other in tones:
        if other != freq:
            assert report.share(other) < 0.05, f"{other:g} Hz leaked in: {report}"


# --- baresip -----------------------------------------------------------------------

# Long enough for any call of these tests: the call ends when the file does.
DEFAULT_SOURCE_SECONDS = 60.0

CALL_EVENTS = (
    "CALL_INCOMING",
    "CALL_RINGING",
    "CALL_PROGRESS",
    "CALL_ESTABLISHED",
    "CALL_CLOSED",
)


class Phone(Baresip):
    """A baresip that sends `audio_source` in its calls and records what it hears.

    It plays a file of ours (by default a quiet 425 Hz tone of
    DEFAULT_SOURCE_SECONDS) and, with `record`, loads `sndfile` so that each call
    leaves `dump-<time>-dec.wav` (what it received) and `-enc.wav` (what it sent)
    in `recordings_dir`.  An `aufile` source ends the call when the file ends.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        audio_source: Path | None = None,
        record: bool = False,
        presence: bool = False,
    ) -> None:
        super().__init__(workdir)
        # The `presence` module PUBLISHes the account's state (commands
        # presence_online / presence_offline; the account needs `pubint`).
        self.presence = presence
        if audio_source is None:
            workdir.mkdir(parents=True, exist_ok=True)
            audio_source = write_tone(
                workdir / "source.wav", 425, DEFAULT_SOURCE_SECONDS, amplitude=1000
            )
        self.audio_source = audio_source
        self.record = record
        # baresip's sndfile builds the file name in a small fixed buffer and
        # silently cuts a long one (the ".wav" goes first), as pytest's paths
        # under xdist are: the recordings go to a short folder of their own,
        # linked from the work folder for anyone looking at a failure.
        self.recordings_dir = Path(tempfile.mkdtemp(prefix="to-rec-", dir="/tmp"))
        workdir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            (workdir / "recordings").symlink_to(self.recordings_dir)
        self.rtp_range = port_block("phone", 40)

    @property
    def log_name(self) -> str:
        return f"baresip phone (SIP {self.sip_port}, ctrl {self.ctrl_port})"

    def write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        modules = ["g711.so", "aufile.so"]
        settings = [
            ("poll_method", "epoll"),
            ("sip_listen", f"{LOOPBACK}:{self.sip_port}"),
            ("net_interface", LOOPBACK),
            ("audio_player", "aufile,/dev/null"),
            ("audio_source", f"aufile,{self.audio_source}"),
            ("audio_alert", "aufile,/dev/null"),
            ("rtp_ports", f"{self.rtp_range[0]}-{self.rtp_range[1]}"),
            ("module_path", _module_path()),
        ]
        if self.record:
            self.recordings_dir.mkdir(parents=True, exist_ok=True)
            modules.append("sndfile.so")
            settings.append(("snd_path", str(self.recordings_dir)))
        settings += [("module", name) for name in modules]
        apps = ["account.so", "contact.so", "menu.so", "ctrl_tcp.so"]
        if self.presence:
            apps.append("presence.so")
        settings += [("module_app", name) for name in apps]
        settings.append(("ctrl_tcp_listen", f"{LOOPBACK}:{self.ctrl_port}"))
        text = "".join(f"{key}\t{value}\n" for key, value in settings)
        (self.config_dir / "config").write_text(text)
        # Accounts known at start-up: baresip's presence module only publishes
        # for those (it ignores user agents added later with `uanew`).
        (self.config_dir / "accounts").write_text("".join(f"{a}\n" for a in self.accounts))
        (self.config_dir / "contacts").write_text("")

    @staticmethod
    def account_line(
        user: str, password: str, server_port: int, *, answermode: str = "auto", params: str = ""
    ) -> str:
        """An `accounts` line (or `uanew` argument) for `user` at the server."""
        aor = f"sip:{user}@{LOOPBACK}:{server_port}"
        return (
            f"<{aor}>;auth_user={user};auth_pass={password};regint=600;answermode={answermode}"
            + params
        )

    def register(
        self,
        user: str,
        password: str,
        server_port: int,
        *,
        answermode: str = "auto",
        timeout: float = 10.0,
        params: str = "",
    ) -> str:
        """Create the user agent (`uanew`) and wait for REGISTER_OK; its AOR.

        `params` are more account parameters, such as ";pubint=60"."""
        aor = f"sip:{user}@{LOOPBACK}:{server_port}"
        line = self.account_line(user, password, server_port, answermode=answermode, params=params)
        reply = self.command("uanew", line)
        if not reply.get("ok"):
            raise HarnessError(f"baresip refused uanew: {reply}")
        outcome = self.wait_event(("REGISTER_OK", "REGISTER_FAIL"), timeout, aor=aor)
        if outcome is None or outcome.get("type") != "REGISTER_OK":
            raise HarnessError(f"{user} did not register within {timeout} s: {outcome}")
        return aor

    def dial(self, number: str, server_port: int) -> None:
        reply = self.command("dial", f"sip:{number}@{LOOPBACK}:{server_port}")
        if not reply.get("ok"):
            raise HarnessError(f"baresip refused to dial {number}: {reply}")

    def mark(self) -> int:
        """A position in the event stream; `wait_for(..., after=mark)` looks past it."""
        return len(self.messages())

    def wait_for(
        self, kinds: str | Sequence[str], timeout: float, *, after: int = 0
    ) -> dict[str, Any] | None:
        """The first event of one of `kinds` received after position `after`."""
        wanted = {kinds} if isinstance(kinds, str) else set(kinds)
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages()[after:]:
                if message.get("event") and message.get("type") in wanted:
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(0.05, left))

    def call_events(self) -> list[str]:
        """The types of the call events so far, in order."""
        return [str(e.get("type")) for e in self.events() if e.get("type") in CALL_EVENTS]

    def stop(self) -> int | None:
        code = super().stop()
        shutil.rmtree(self.recordings_dir, ignore_errors=True)
        return code

    def recording(self, direction: str, timeout: float = 5.0) -> Path:
        """The newest recording of `direction` ("dec": heard, "enc": sent)."""

        def found() -> list[Path]:
            return sorted(self.recordings_dir.glob(f"dump-*-{direction}.wav"))

        if not wait_until(lambda: bool(found()), timeout):
            listing = sorted(p.name for p in self.recordings_dir.glob("*"))
            raise HarnessError(f"no {direction} recording in {self.recordings_dir}: {listing}")
        return found()[-1]


def _module_path() -> str:
    for candidate in ("/usr/lib/baresip/modules", "/usr/local/lib/baresip/modules"):
        if Path(candidate).is_dir():
            return candidate
    return "/usr/lib/baresip/modules"


# --- sipp in the background ----------------------------------------------------------


class SippProcess:
    """One sipp run of scenarios/<scenario>.xml that the test starts, then waits for.

    It listens on its own port (`port`, default a free one) so a scenario can play a
    provider on the trunk's configured port, or a phone registered beforehand from
    that same port.  Every run is bounded: sipp's own `-timeout`, then SIGKILL.
    """

    def __init__(
        self,
        scenario: str,
        *,
        server_port: int,
        workdir: Path,
        port: int | None = None,
        service: str = "201",
        auth: tuple[str, str] | None = None,
        keys: Mapping[str, str] | None = None,
        calls: int = 1,
        rate: float | None = None,
        limit: int | None = None,
        duration_ms: int | None = None,
        timeout: float = 30.0,
        trace_msg: bool = True,
        extra: Sequence[str] = (),
    ) -> None:
        self.scenario = scenario
        self.server_port = server_port
        self.port = port if port is not None else free_port()
        self.media_port = free_port(span=4)
        self.timeout = timeout
        self.rundir = workdir / f"sipp-{scenario}-{self.port}-{time.monotonic_ns() % 10**9}"
        self.rundir.mkdir(parents=True, exist_ok=False)
        script = self.rundir / f"{scenario}.xml"
        shutil.copyfile(SCENARIOS / f"{scenario}.xml", script)
        self.stat_file = self.rundir / "stat.csv"
        self.error_file = self.rundir / "errors.log"
        self.trace_file = self.rundir / "messages.log"
        self.screen_file = self.rundir / "screen.log"
        command = [
            "sipp",
            f"{LOOPBACK}:{server_port}",
            "-sf", str(script),
            "-nostdin",
            "-i", LOOPBACK,
            "-p", str(self.port),
            "-mp", str(self.media_port),
            "-t", "u1",
            "-m", str(calls),
            "-s", service,
            "-timeout", f"{int(timeout)}s",
            "-timeout_error",
            "-recv_timeout", "10000",
            "-trace_stat", "-stf", str(self.stat_file), "-fd", "1",
            "-trace_err", "-error_file", str(self.error_file),
        ]  # fmt: skip
        if trace_msg:
            command += ["-trace_msg", "-message_file", str(self.trace_file)]
        if rate is not None:
            command += ["-r", f"{rate:g}"]
        if limit is not None:
            command += ["-l", str(limit)]
        if duration_ms is not None:
            command += ["-d", str(duration_ms)]
        if auth is not None:
            command += ["-au", auth[0], "-ap", auth[1]]
        for key, value in {"expires": "3600", **(keys or {})}.items():
            command += ["-key", key, value]
        self.command = [*command, *extra]
        self.proc: subprocess.Popen[bytes] | None = None
        self.result: SippResult | None = None

    @property
    def log_name(self) -> str:
        return f"sipp {self.scenario} (port {self.port})"

    def log_tail(self, lines: int = 60) -> str:
        parts = ["command: " + " ".join(self.command)]
        for path in (self.error_file, self.trace_file, self.screen_file):
            if path.exists():
                text = path.read_text(errors="replace").splitlines()
                parts += [f"--- {path.name} ---", *text[-lines:]]
        return "\n".join(parts)

    def start(self) -> SippProcess:
        with self.screen_file.open("wb") as screen:
            self.proc = subprocess.Popen(
                self.command,
                cwd=self.rundir,
                stdin=subprocess.DEVNULL,
                stdout=screen,
                stderr=subprocess.STDOUT,
            )
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float | None = None) -> SippResult:
        """sipp's outcome once it has exited (SIGKILLed after `timeout`, default its own
        timeout plus 10 s)."""
        if self.proc is None:
            raise HarnessError(f"{self.log_name} was never started")
        try:
            returncode = self.proc.wait(timeout=self.timeout + 10 if timeout is None else timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            returncode = -9
        trace = self.trace_file.read_text(errors="replace") if self.trace_file.exists() else ""
        self.result = SippResult(
            scenario=self.scenario,
            command=self.command,
            returncode=returncode,
            stats=read_stats(self.stat_file),
            errors=self.error_file.read_text(errors="replace") if self.error_file.exists() else "",
            trace=parse_sipp_trace(trace),
            screen=self.screen_file.read_text(errors="replace")[-4000:]
            if self.screen_file.exists()
            else "",
        )
        return self.result

    def stop(self) -> None:
        """End this sipp (its PID only): SIGTERM, then SIGKILL."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=5)


def read_stats(path: Path) -> dict[str, str]:
    """The last row of sipp's `-trace_stat` CSV, by column name."""
    if not path.exists():
        return {}
    rows = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    if len(rows) < 2:
        return {}
    return dict(zip(rows[0].split(";"), rows[-1].split(";"), strict=False))


def received(result: SippResult, start: str) -> list[str]:
    """The raw text of every message sipp received whose start line begins with `start`."""
    return [
        t.message.text()
        for t in result.trace
        if t.direction == "received" and t.message.start_line.startswith(start)
    ]


def statuses(result: SippResult) -> list[int]:
    return [m.status for m in result.responses]


# --- the call log ------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedCall:
    """One row of `teleoffice calls`."""

    direction: str
    caller: str
    callee: str
    outcome: str
    duration: str

    @property
    def caller_number(self) -> str:
        return self.caller.split(" ", 1)[0]

    @property
    def callee_number(self) -> str:
        return self.callee.split(" ", 1)[0]


_CALL_COLUMNS = ("TIME", "DIRECTION", "FROM", "TO", "OUTCOME", "DURATION")


def call_log(server: Server, limit: int = 50) -> list[LoggedCall]:
    """The call log as the CLI prints it (newest first), cut at its column headers."""
    lines = server.cli("calls", "--limit", str(limit)).stdout.splitlines()
    if not lines or not lines[0].startswith("TIME"):
        return []
    header = lines[0]
    found = [re.search(rf"\b{name}\b", header) for name in _CALL_COLUMNS]
    if not all(found):
        raise HarnessError(f"unexpected header of `teleoffice calls`: {header!r}")
    starts = [match.start() for match in found if match is not None]
    rows = []
    for line in lines[1:]:
        if not line.strip():
            continue
        cells = [
            line[start:end].strip()
            for start, end in zip(starts, [*starts[1:], len(line) + 1], strict=True)
        ]
        rows.append(LoggedCall(*cells[1:]))
    return rows


def wait_for_log(
    server: Server, count: int, timeout: float = 10.0, *, finished: bool = True
) -> list[LoggedCall]:
    """The call log once it holds `count` calls (all finished, unless told otherwise)."""
    rows: list[LoggedCall] = []

    def ready() -> bool:
        nonlocal rows
        rows = call_log(server)
        done = [r for r in rows if r.outcome != "in progress"] if finished else rows
        return len(done) >= count

    wait_until(ready, timeout, interval=0.3)
    return rows


# --- leak checks ---------------------------------------------------------------------


def counters(server: Server) -> dict[str, Any]:
    health = server.health()
    return {name: health.get(name) for name in (*IDLE_COUNTERS, "transactions")}


def wait_idle(server: Server, timeout: float = 10.0, *, transactions: bool = False) -> bool:
    """Whether every call counter (and, if asked, `transactions`) reaches zero in time."""
    names = (*IDLE_COUNTERS, "transactions") if transactions else IDLE_COUNTERS

    def idle() -> bool:
        health = server.health()
        return all(health.get(name) == 0 for name in names)

    return wait_until(idle, timeout, interval=0.25)


def tracebacks(server: Server) -> list[str]:
    """The tracebacks in the server log, each with a few lines of context."""
    lines = server.log_text().splitlines()
    marker = TRACEBACK.decode()
    return ["\n".join(lines[max(0, i - 2) : i + 25]) for i, ln in enumerate(lines) if marker in ln]


# Transactions outlive their last message. Test servers cap the timers that only
# absorb retransmissions (harness.LAB_TRANSACTION_LINGER), but a transaction whose
# peer went quiet still runs 64*T1 = 32 s (timers B, F, H, L of RFC 3261 section 17
# and RFC 6026); this leaves room for that and for scheduling.
DRAIN_SECONDS = 45.0


@dataclass
class _Handed:
    server: Server
    test: str
    since: float


@dataclass
class Drainer:
    """Servers whose tests are over, kept running until their transactions end.

    `settle` (at the end of a module) waits for each server's transactions to reach
    zero within DRAIN_SECONDS of its hand-over, stops it by PID and reports the ones
    that did not drain or that leaked anything else.
    """

    handed: list[_Handed] = field(default_factory=list)

    def hand_over(self, server: Server, test: str) -> None:
        self.handed.append(_Handed(server, test, time.monotonic()))

    def settle(self) -> list[str]:
        problems: list[str] = []
        for entry in self.handed:
            server = entry.server
            if not server.running:
                code = None if server.proc is None else server.proc.returncode
                problems.append(f"{entry.test}: the server died (exit status {code})")
                server.stop()
                continue
            left = max(1.0, entry.since + DRAIN_SECONDS - time.monotonic())
            try:
                drained = wait_idle(server, left, transactions=True)
                if not drained:
                    problems.append(
                        f"{entry.test}: not idle {DRAIN_SECONDS:.0f} s after the test: "
                        f"{counters(server)}\n{server.log_tail(40)}"
                    )
            except (OSError, HarnessError) as exc:
                problems.append(f"{entry.test}: /healthz failed while draining: {exc}")
            finally:
                code = server.stop()
            if code != 0:
                problems.append(f"{entry.test}: server exited with {code} on SIGTERM")
            found = tracebacks(server)
            if found:
                problems.append(f"{entry.test}: tracebacks in the server log:\n" + found[0])
        self.handed.clear()
        return problems


# --- one test's processes ------------------------------------------------------------


class CallLab:
    """The server, phones and sipp runs of one test; all stopped by their PIDs."""

    def __init__(self, root: Path, seed: Path, drainer: Drainer, test: str) -> None:
        self.root = root
        self.seed = seed
        self.drainer = drainer
        self.test = test
        self.servers: list[Server] = []
        self.phones: list[Phone] = []
        self.sipps: list[SippProcess] = []

    @property
    def log_owners(self) -> list[HasLog]:
        return [*self.servers, *self.phones, *self.sipps]

    def server(
        self,
        *,
        env: Mapping[str, str] | None = None,
        setup: Sequence[Sequence[str]] = (),
        rtp_ports: int = 200,
    ) -> Server:
        """A server with alice (201) and bob (202), configured by the CLI commands in
        `setup` before it starts, with RTP ports of its own."""
        low, high = port_block("server", rtp_ports)
        settings = {
            "TELEOFFICE_RTP_PORT_MIN": str(low),
            "TELEOFFICE_RTP_PORT_MAX": str(high),
            **(env or {}),
        }
        server = Server(self.root / f"server-{len(self.servers)}", env=settings)
        self.servers.append(server)
        server.prepare(self.seed)
        for args in setup:
            server.cli(*args)
        server.start()
        return server

    def phone(
        self,
        *,
        audio_source: Path | None = None,
        record: bool = False,
        presence: bool = False,
        accounts: Sequence[str] = (),
    ) -> Phone:
        """A started baresip; `accounts` (Phone.account_line) register at start-up."""
        phone = Phone(
            self.root / f"phone-{len(self.phones)}",
            audio_source=audio_source,
            record=record,
            presence=presence,
        )
        phone.accounts = list(accounts)
        phone.workdir.mkdir(parents=True, exist_ok=True)
        self.phones.append(phone)
        phone.start()
        return phone

    def sipp(self, scenario: str, server: Server, **options: Any) -> SippProcess:
        """A sipp run against `server` (not started yet); see `SippProcess`."""
        run = SippProcess(
            scenario, server_port=server.sip_port, workdir=self.root / "sipp", **options
        )
        self.sipps.append(run)
        return run

    def register_sipp(self, server: Server, port: int, user: str, password: str) -> None:
        """Register `user` with Contact sip:user@127.0.0.1:port (scenarios/register.xml),
        so that a sipp UAS started later on `port` receives that user's calls."""
        runner = Sipp(server.sip_port, self.root / "sipp-register", port=port)
        result = runner.run("register", service=user, auth=(user, password))
        if result.returncode != 0 or [r.status for r in result.responses] != [401, 200]:
            raise HarnessError(f"registering {user} from port {port} failed\n{result.describe()}")

    def alice_calls_bob(
        self,
        server: Server,
        *,
        talk_ms: int,
        timeout: float,
        calls: int = 1,
        rate: float | None = None,
        limit: int | None = None,
        trace_msg: bool = True,
        extra: Sequence[str] = (),
    ) -> tuple[SippProcess, SippProcess]:
        """sipp calls from alice (201, digest) to bob (202, a sipp UAS registered
        from its own port that answers every call): (alice, bob). Bob is started
        and listening; alice is created but not started, so the test chooses when."""
        bob_port = free_port()
        self.register_sipp(server, bob_port, "202", "secret202")
        bob = self.sipp(
            "call_uas_answer",
            server,
            port=bob_port,
            service="202",
            calls=calls,
            timeout=timeout,
            trace_msg=trace_msg,
            extra=extra,
        ).start()
        time.sleep(0.3)  # let the UAS open its socket
        alice = self.sipp(
            "call_uac",
            server,
            auth=("201", "secret201"),
            keys={"callee": "202"},
            calls=calls,
            rate=rate,
            limit=limit,
            duration_ms=talk_ms,
            timeout=timeout,
            trace_msg=trace_msg,
            extra=extra,
        )
        return alice, bob

    def assert_idle(self, server: Server, timeout: float = 10.0) -> None:
        """No call, leg, dialog or media left; no traceback in the log."""
        assert wait_idle(server, timeout), f"left over after the calls: {counters(server)}"
        found = tracebacks(server)
        assert not found, "traceback in the server log:\n" + found[0]

    def close(self) -> None:
        for run in self.sipps:
            run.stop()
        for phone in self.phones:
            phone.stop()
        for server in self.servers:
            if server.proc is not None:  # started and not stopped by the test
                self.drainer.hand_over(server, self.test)


def event_reason(event: dict[str, Any] | None) -> str:
    return "" if event is None else str(event.get("param", ""))


def status_in(text: str) -> int | None:
    """The first SIP status code in a baresip reason such as '486 Busy Here'."""
    found = re.search(r"\b([1-6][0-9]{2})\b", text)
    return int(found.group(1)) if found else None
