"""The portal as a browser would use it, and what the telecommuter tests need
beyond calls_kit, for the end-to-end tests.

- `Portal`: one user's session with the REST API (`POST /api/login`, then the
  bearer token on every request), on httpx, never through a proxy; `Portals`
  closes a test's sessions.
- `EventStream`: the `/api/events` WebSocket read by a thread of its own
  (websockets' sync client) that keeps every event it receives and answers the
  server's pings, so a test can wait for "call.answered" while it drives SIP.
- `HomePhone` / `home_phone`: a baresip that plays a telecommuter's home line:
  an account for the home number that never registers, reached through a trunk
  pointed at the phone's SIP port.
- `Site` / `make_site`: a module's seed data with the trunks "home" and "pstn"
  at ports of the module's own; `Listener`: a socket where a peer would be, to
  prove nothing arrives; `sipp_received_at`: when sipp received a message.
- `timeline`, `spans`, `heard_for`: what a recording held over time, 50 ms at a
  time (which tones, or silence), for cadences (ringback 1 s on 4 s off, busy
  0.5/0.5, call waiting 0.2/0.2/0.2 every 5 s) and for who was heard when.

Every wait is bounded, every socket is on 127.0.0.1, and nothing here reads the
server's own code: what the tests compare against is what came over the wire.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
import wave
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from teleoffice.bench.processes import LOOPBACK, free_port, wait_until
from teleoffice.media.analysis import goertzel_power, rms
from tests.e2e.calls_kit import CallLab, Phone
from tests.e2e.harness import HarnessError, Server

Event = dict[str, Any]


class ApiError(AssertionError):
    """The API answered with another status than the test expected."""


class Portal:
    """One logged-in user of the portal on `127.0.0.1:http_port`."""

    def __init__(
        self, http_port: int, username: str, password: str, *, timeout: float = 5.0
    ) -> None:
        self.http_port = http_port
        self.username = username
        self.base_url = f"http://{LOOPBACK}:{http_port}"
        # trust_env=False: a proxy from the environment must never see loopback calls.
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout, trust_env=False)
        reply = self.http.post("/api/login", json={"username": username, "password": password})
        if reply.status_code != 200:
            self.http.close()
            raise ApiError(f"login of {username} failed: {reply.status_code} {reply.text}")
        self.token = str(reply.json()["token"])
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        self.streams: list[EventStream] = []

    def request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """The raw reply to one request (JSON body when `body` is given)."""
        if body is None:
            return self.http.request(method, path)
        return self.http.request(method, path, json=body)

    def call(self, method: str, path: str, body: Any = None, *, expect: int = 200) -> Any:
        """Send a request, insist on status `expect`, return the JSON reply (None if empty)."""
        reply = self.request(method, path, body)
        if reply.status_code != expect:
            raise ApiError(
                f"{method} {path} {json.dumps(body) if body is not None else ''}: "
                f"expected {expect}, got {reply.status_code} {reply.text}"
            )
        return reply.json() if reply.content else None

    def refused(self, method: str, path: str, body: Any = None, *, status: int) -> dict[str, str]:
        """Send a request that must fail with `status`; its `{"code", "message"}`."""
        reply = self.request(method, path, body)
        if reply.status_code != status:
            raise ApiError(
                f"{method} {path}: expected {status}, got {reply.status_code} {reply.text}"
            )
        error = reply.json().get("error")
        if not isinstance(error, dict) or not error.get("message"):
            raise ApiError(f"{method} {path}: no error message in {reply.text}")
        return {"code": str(error.get("code")), "message": str(error["message"])}

    # the parts of the API the telecommuter tests use most

    def telecommuter(self) -> dict[str, Any]:
        return dict(self.call("GET", "/api/me/telecommuter"))

    def start_telecommuter(self, number: str) -> dict[str, Any]:
        return dict(self.call("PUT", "/api/me/telecommuter", {"number": number}))

    def end_telecommuter(self) -> dict[str, Any]:
        return dict(self.call("DELETE", "/api/me/telecommuter"))

    def settings(self, **changes: Any) -> dict[str, Any]:
        return dict(self.call("PATCH", "/api/me/settings", changes))

    def place_call(self, to: str) -> str:
        """POST /api/calls; the new call's id."""
        return str(self.call("POST", "/api/calls", {"to": to}, expect=201)["id"])

    def calls(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/api/calls"))

    def hang_up(self, call_id: str) -> None:
        self.call("DELETE", f"/api/calls/{call_id}", expect=204)

    def control(self, call_id: str, action: str) -> list[dict[str, Any]]:
        return list(self.call("POST", f"/api/calls/{call_id}/{action}"))

    def call_log(self) -> list[dict[str, Any]]:
        return list(self.call("GET", "/api/me/call-log"))

    def events(self, timeout: float = 5.0) -> EventStream:
        """Open the live event stream; returns once its `hello` has arrived."""
        stream = EventStream(self.http_port, self.token, timeout=timeout)
        self.streams.append(stream)
        return stream

    def close(self) -> None:
        for stream in self.streams:
            stream.close()
        self.http.close()


class EventStream:
    """`/api/events` of one session, collected by a reader thread.

    The thread answers `{"type": "ping"}` with `{"type": "pong"}` (the server
    closes a connection that stops answering) and keeps every other message,
    in order; `wait_for` looks for one from a position `mark` gave.
    """

    def __init__(self, http_port: int, token: str, *, timeout: float = 5.0) -> None:
        url = f"ws://{LOOPBACK}:{http_port}/api/events?token={token}"
        # proxy=None: websockets would otherwise honour the environment's proxies.
        self.connection: ClientConnection = connect(
            url, open_timeout=timeout, close_timeout=2, proxy=None, compression=None, legacy=True
        )
        self._messages: list[Event] = []
        self._condition = threading.Condition()
        self.ended = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True, name="portal-events")
        self._reader.start()
        hello = self.wait_for("hello", timeout)
        if hello is None:
            self.close()
            raise HarnessError(f"no hello on /api/events within {timeout} s")
        self.hello: Event = hello

    def _read(self) -> None:
        try:
            for raw in self.connection:
                try:
                    message = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(message, dict):
                    continue
                if message.get("type") == "ping":
                    with contextlib.suppress(ConnectionClosed):
                        self.connection.send(json.dumps({"type": "pong"}))
                    continue
                with self._condition:
                    self._messages.append(message)
                    self._condition.notify_all()
        except (ConnectionClosed, OSError):
            pass
        finally:
            self.ended.set()
            with self._condition:
                self._condition.notify_all()

    def messages(self) -> list[Event]:
        with self._condition:
            return list(self._messages)

    def mark(self) -> int:
        """A position in the stream; `wait_for(..., after=mark)` looks past it."""
        with self._condition:
            return len(self._messages)

    def of_type(self, *kinds: str, after: int = 0) -> list[Event]:
        return [m for m in self.messages()[after:] if m.get("type") in kinds]

    def types(self, after: int = 0) -> list[str]:
        return [str(m.get("type")) for m in self.messages()[after:]]

    def wait_for(
        self,
        kinds: str | Sequence[str],
        timeout: float,
        *,
        after: int = 0,
        where: Callable[[Event], bool] | None = None,
    ) -> Event | None:
        """The first message of one of `kinds` (matching `where`) after `after`."""
        wanted = {kinds} if isinstance(kinds, str) else set(kinds)
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                for message in self._messages[after:]:
                    if message.get("type") in wanted and (where is None or where(message)):
                        return message
                left = deadline - time.monotonic()
                if left <= 0 or self.ended.is_set():
                    return None
                self._condition.wait(left)

    def wait_call(
        self, kind: str, call_id: str | None, timeout: float, *, after: int = 0
    ) -> Event | None:
        """The first `call.*` event of `kind` for call `call_id` (any call if None)."""
        return self.wait_for(
            kind,
            timeout,
            after=after,
            where=lambda m: call_id is None or m.get("call", {}).get("id") == call_id,
        )

    def calls_seen(self, after: int = 0) -> Iterator[tuple[str, Event]]:
        """(event type, call) of every call event so far."""
        for message in self.messages()[after:]:
            kind = str(message.get("type"))
            if kind.startswith("call.") and isinstance(message.get("call"), dict):
                yield kind, message["call"]

    def close(self) -> None:
        with contextlib.suppress(OSError, ConnectionClosed, RuntimeError):
            self.connection.close()
        self._reader.join(timeout=3)


class HomePhone(Phone):
    """A telecommuter's home phone: a baresip line for `number` (as the trunk
    sends it, without the prefix) that does not register anywhere.

    baresip 1.0 routes an incoming INVITE to the user agent whose address of
    record has the Request-URI's user part (it has no catch-all account), so the
    phone rings only when teleoffice asks for exactly this number: a call that
    arrives with any other Request-URI gets 404 from baresip.
    """

    def __init__(
        self,
        workdir: Path,
        number: str,
        *,
        audio_source: Path | None = None,
        record: bool = False,
        sip_port: int | None = None,
    ) -> None:
        super().__init__(workdir, audio_source=audio_source, record=record)
        if sip_port is not None:
            # The port a trunk already points at (PORT+1 must be free too: baresip's TLS).
            self.sip_port = sip_port
        self.number = number
        self.aor = f"sip:{number}@{LOOPBACK}"

    @property
    def log_name(self) -> str:
        return f"baresip home phone {self.number} (SIP {self.sip_port}, ctrl {self.ctrl_port})"

    def plug_in(self, *, answermode: str = "auto") -> str:
        """Create the line (`uanew`, regint=0: nothing to register with); its AOR."""
        line = f"<{self.aor}>;regint=0;answermode={answermode}"
        reply = self.command("uanew", line)
        if not reply.get("ok"):
            raise HarnessError(f"baresip refused uanew {line}: {reply}")
        return self.aor


def home_phone(
    lab: CallLab,
    number: str,
    *,
    answermode: str = "auto",
    audio_source: Path | None = None,
    record: bool = False,
    sip_port: int | None = None,
) -> HomePhone:
    """A started `HomePhone` with its line plugged in, stopped (by PID) with the lab."""
    phone = HomePhone(
        lab.root / f"home-{number}-{len(lab.phones)}",
        number,
        audio_source=audio_source,
        record=record,
        sip_port=sip_port,
    )
    phone.workdir.mkdir(parents=True, exist_ok=True)
    lab.phones.append(phone)
    phone.start()
    phone.plug_in(answermode=answermode)
    return phone


class Portals:
    """The portal sessions of one test, all closed when it ends."""

    def __init__(self) -> None:
        self.open: list[Portal] = []

    def login(self, server: Server, username: str, password: str) -> Portal:
        portal = Portal(server.http_port, username, password)
        self.open.append(portal)
        return portal

    def close(self) -> None:
        for portal in self.open:
            portal.close()
        self.open.clear()


# --- a module's site: seed data and trunk ports ----------------------------------------


@dataclass(frozen=True)
class Site:
    """Seed data for a module's servers, with two trunks at ports of the module's
    own: "home" (prefix 8) for the telecommuter's home line and "pstn" (prefix 9)
    for the provider.  Each test starts its home line or provider on those ports
    (after the previous test's are gone) and only copies the data."""

    data: Path
    home_port: int  # span 2: a baresip there takes PORT+1 too (TLS)
    pstn_port: int


def trunk_commands(home_port: int, pstn_port: int) -> list[list[str]]:
    return [
        ["trunk", "add", "home", "--host", LOOPBACK, "--port", str(home_port), "--prefix", "8"],
        ["trunk", "add", "pstn", "--host", LOOPBACK, "--port", str(pstn_port), "--prefix", "9"],
    ]


def make_site(workdir: Path, seeded_data: Path, commands: Sequence[Sequence[str]]) -> Site:
    """Copy the session's seed, run `commands` and add the two trunks (CLI)."""
    home_port, pstn_port = free_port(span=2), free_port()
    server = Server(workdir)
    server.prepare(seeded_data)
    for args in (*commands, *trunk_commands(home_port, pstn_port)):
        server.cli(*args)
    return Site(server.data_dir, home_port, pstn_port)


_TRACE_STAMP = re.compile(r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)$", re.MULTILINE)


def sipp_received_at(trace_file: Path, start: str) -> list[float]:
    """When sipp received each message whose start line begins with `start`, as
    epoch seconds, from the local-time stamps of its -trace_msg log."""
    if not trace_file.exists():
        return []
    parts = _TRACE_STAMP.split(trace_file.read_text(errors="replace"))
    found: list[float] = []
    for stamp, chunk in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in chunk.splitlines() if line.strip()]
        if len(lines) >= 2 and "message received" in lines[0] and lines[1].startswith(start):
            found.append(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp())
    return found


class Listener:
    """A UDP socket where a peer would be, to prove that not one packet arrives."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, port))

    def nothing_within(self, seconds: float) -> bool:
        self.sock.settimeout(seconds)
        try:
            data, _ = self.sock.recvfrom(65535)
        except TimeoutError:
            return True
        raise AssertionError(
            f"a packet arrived where nothing should:\n{data.decode(errors='replace')}"
        )

    def close(self) -> None:
        self.sock.close()


# --- what a phone heard, over time ----------------------------------------------------

WINDOW = 0.05  # seconds per slice: 400 samples, 20 Hz resolution, finer than any cadence
SILENCE_RMS = 200.0  # below this a slice is silence (the tones here are at rms 1500+)
# A tone is "in" a slice when it holds this share of the slice's power: a tone
# alone holds nearly all of it, and two of similar level mixed about half each.
PRESENT_SHARE = 0.2

Slice = frozenset[float] | None  # the candidate tones heard in a slice; None: silence


@dataclass(frozen=True)
class Run:
    """Consecutive slices of a recording that heard the same thing."""

    what: Slice
    start: float
    seconds: float

    @property
    def end(self) -> float:
        return self.start + self.seconds

    def __str__(self) -> str:
        if self.what is None:
            label = "silence"
        else:
            label = "+".join(f"{f:g}" for f in sorted(self.what)) or "other"
        return f"{label}@{self.start:.2f}+{self.seconds:.2f}"


def read_recording(phone: Phone, direction: str = "dec", timeout: float = 5.0) -> bytes:
    """The PCM of the phone's newest recording once baresip has closed it (sndfile
    writes the WAV header's sizes when the call's audio stops)."""
    path = phone.recording(direction, timeout)
    pcm = b""

    def complete() -> bool:
        nonlocal pcm
        try:
            with wave.open(str(path), "rb") as wav:
                if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                    raise HarnessError(f"{path}: not 16-bit mono")
                pcm = wav.readframes(wav.getnframes())
        except (EOFError, wave.Error):
            return False
        return len(pcm) > 0

    if not wait_until(complete, timeout, interval=0.2):
        raise HarnessError(f"{path} never became a complete WAV")
    return pcm


def timeline(pcm: bytes, candidates: Sequence[float], rate: int = 8000) -> list[Slice]:
    """For each WINDOW of 16-bit mono `pcm`: the candidate tones it holds (an empty
    set for sound that is none of them), or None for silence."""
    step = int(rate * WINDOW) * 2
    out: list[Slice] = []
    for offset in range(0, len(pcm) - step + 1, step):
        chunk = pcm[offset : offset + step]
        level = rms(chunk)
        if level < SILENCE_RMS:
            out.append(None)
            continue
        mean_square = level * level
        out.append(
            frozenset(
                f
                for f in candidates
                if goertzel_power(chunk, f, rate) / mean_square >= PRESENT_SHARE
            )
        )
    return out


def runs(slices: Sequence[Slice]) -> list[Run]:
    """`timeline` slices merged into runs of the same thing."""
    merged: list[Run] = []
    for index, what in enumerate(slices):
        if merged and merged[-1].what == what:
            last = merged[-1]
            merged[-1] = Run(what, last.start, last.seconds + WINDOW)
        else:
            merged.append(Run(what, index * WINDOW, WINDOW))
    return merged


def spans(slices: Sequence[Slice], freq: float, *, at_least: float = 0.0) -> list[Run]:
    """The stretches in which `freq` was heard (alone or with others), each at
    least `at_least` seconds long."""
    present = [frozenset((freq,)) if s is not None and freq in s else None for s in slices]
    return [r for r in runs(present) if r.what is not None and r.seconds >= at_least - 1e-9]


def heard_for(slices: Sequence[Slice], freq: float, start: float = 0.0, end: float = 1e9) -> float:
    """Seconds in which `freq` was heard between `start` and `end`."""
    return sum(
        WINDOW
        for index, s in enumerate(slices)
        if s is not None and freq in s and start <= index * WINDOW < end
    )


def describe(slices: Sequence[Slice]) -> str:
    """The recording as runs, for assertion messages."""
    return " ".join(str(r) for r in runs(slices))
