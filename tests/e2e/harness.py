"""Real processes on loopback for the end-to-end tests: teleoffice, sipp, baresip.

Every process gets ports of its own, listens on 127.0.0.1 only, is waited for with
a bound and is ended by its own PID. Nothing here skips a test: a missing peer is
a failure, since `make test` installs the peers.

Besides the process wrappers there is a deliberately small SIP toolkit (building a
request, splitting a response stream, answering a digest challenge). The tests use
it instead of the server's own parser, so that a parser bug cannot hide itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import secrets
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import wave
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, cast

from teleoffice.bench.processes import (
    LOOPBACK,
    clean_environment,
    end_process,
    free_port,
    log_tail,
    read_sipp_stats,
    teleoffice_command,
)

SCENARIOS = Path(__file__).resolve().parent / "scenarios"
TRACEBACK = b"Traceback (most recent call last)"

# The default directory of every test server: (user, extension, SIP password, name).
DEFAULT_USERS: tuple[tuple[str, str, str, str], ...] = (
    ("alice", "201", "secret201", "Alice"),
    ("bob", "202", "secret202", "Bob"),
)


class HarnessError(RuntimeError):
    """A process under test did not start, answer or stop as it must."""


class HasLog(Protocol):
    """Something whose log tail belongs in the report of a failed test."""

    @property
    def log_name(self) -> str: ...

    def log_tail(self, lines: int = 60) -> str: ...


# --- waiting and ports ----------------------------------------------------------


# --- a small independent SIP toolkit ---------------------------------------------

_COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "e": "content-encoding",
    "k": "supported",
    "s": "subject",
    "o": "event",
    "u": "allow-events",
    "r": "refer-to",
}


@dataclass(frozen=True)
class SipMessage:
    """A message as received: start line, unfolded header fields, body, raw bytes."""

    start_line: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    raw: bytes

    @property
    def is_response(self) -> bool:
        return self.start_line.startswith("SIP/")

    @property
    def status(self) -> int:
        """The status code of a response (ValueError for a request)."""
        if not self.is_response:
            raise ValueError(f"not a response: {self.start_line!r}")
        return int(self.start_line.split(" ", 2)[1])

    @property
    def reason(self) -> str:
        parts = self.start_line.split(" ", 2)
        return parts[2] if len(parts) > 2 else ""

    def header_all(self, name: str) -> list[str]:
        """Every value of a header field (long or compact name), in order."""
        wanted = _COMPACT.get(name.lower(), name.lower())
        return [v for n, v in self.headers if _COMPACT.get(n.lower(), n.lower()) == wanted]

    def header(self, name: str) -> str | None:
        values = self.header_all(name)
        return values[0] if values else None

    def text(self) -> str:
        return self.raw.decode("utf-8", errors="replace")


def parse_message(raw: bytes) -> SipMessage:
    """Split a message into its parts. Lenient: only for reading the server's output."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        head, _, body = raw.partition(b"\n\n")
    lines = head.decode("utf-8", errors="replace").replace("\r\n", "\n").split("\n")
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        raise ValueError("empty message")
    fields: list[list[str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and fields:
            fields[-1][1] += " " + line.strip()
        elif ":" in line:
            name, _, value = line.partition(":")
            fields.append([name.strip(), value.strip()])
    return SipMessage(
        start_line=lines[0].strip(),
        headers=tuple((n, v) for n, v in fields),
        body=body,
        raw=raw,
    )


def split_header_values(value: str) -> list[str]:
    """Split a comma-separated header value, respecting quotes and <...>."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    angle = False
    escaped = False
    for ch in value:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            angle = True
        elif not quoted and ch == ">":
            angle = False
        elif ch == "," and not quoted and not angle:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    if "".join(current).strip():
        parts.append("".join(current).strip())
    return parts


def contact_bindings(message: SipMessage) -> dict[str, int | None]:
    """Contact URI (without <>) -> its expires parameter, for every Contact value."""
    result: dict[str, int | None] = {}
    for value in message.header_all("contact"):
        for item in split_header_values(value):
            if item == "*":
                continue
            if "<" in item:
                uri = item[item.index("<") + 1 : item.index(">")]
                params = item[item.index(">") + 1 :]
            else:
                uri, _, rest = item.partition(";")
                params = ";" + rest
            found = re.search(r";\s*expires\s*=\s*(\d+)", params, re.IGNORECASE)
            result[uri.strip()] = int(found.group(1)) if found else None
    return result


class StreamSplitter:
    """Cut a TCP byte stream into messages by their Content-Length."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[SipMessage]:
        self._buffer += data
        out: list[SipMessage] = []
        while True:
            self._buffer = self._buffer.lstrip(b"\r\n")
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return out
            head = parse_message(self._buffer[: end + 4])
            length = int(head.header("content-length") or "0")
            total = end + 4 + length
            if len(self._buffer) < total:
                return out
            out.append(parse_message(self._buffer[:total]))
            self._buffer = self._buffer[total:]


def new_branch() -> str:
    return "z9hG4bK-e2e-" + secrets.token_hex(8)


def build_request(
    method: str,
    uri: str,
    *,
    transport: Literal["UDP", "TCP"] = "UDP",
    local_port: int = 5060,
    user: str = "e2e",
    to_user: str | None = None,
    domain: str = LOOPBACK,
    call_id: str | None = None,
    cseq: int = 1,
    branch: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> bytes:
    """A well-formed request from 127.0.0.1 whose Via asks for rport (RFC 3581)."""
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/{transport} {LOOPBACK}:{local_port};branch={branch or new_branch()};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{domain}>;tag={secrets.token_hex(4)}",
        f"To: <sip:{to_user or user}@{domain}>",
        f"Call-ID: {call_id or secrets.token_hex(10)}@e2e",
        f"CSeq: {cseq} {method}",
        *(f"{name}: {value}" for name, value in headers),
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def parse_challenge(value: str) -> dict[str, str]:
    """The parameters of one `Digest k=v, k="v"` challenge."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise ValueError(f"not a Digest challenge: {value!r}")
    params: dict[str, str] = {}
    for key, quoted, token in re.findall(r'([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))', rest):
        params[key.lower()] = quoted if quoted or not token else token
    return params


def digest_authorization(
    challenge: dict[str, str], *, method: str, uri: str, username: str, password: str
) -> str:
    """An Authorization value answering a Digest challenge (RFC 2617 / 7616, qop=auth)."""
    algorithm = challenge.get("algorithm", "MD5")
    hashes: dict[str, Callable[[bytes], Any]] = {
        "md5": hashlib.md5,
        "sha-256": hashlib.sha256,
    }
    new_hash = hashes[algorithm.lower()]

    def h(text: str) -> str:
        return str(new_hash(text.encode()).hexdigest())

    realm, nonce = challenge["realm"], challenge["nonce"]
    ha1 = h(f"{username}:{realm}:{password}")
    ha2 = h(f"{method}:{uri}")
    parts = [
        f'username="{username}"',
        f'realm="{realm}"',
        f'nonce="{nonce}"',
        f'uri="{uri}"',
        f"algorithm={algorithm}",
    ]
    qops = [q.strip() for q in challenge.get("qop", "").split(",") if q.strip()]
    if "auth" in qops:
        cnonce, nc = secrets.token_hex(8), "00000001"
        response = h(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        parts += ["qop=auth", f'cnonce="{cnonce}"', f"nc={nc}"]
    else:
        response = h(f"{ha1}:{nonce}:{ha2}")
    parts.append(f'response="{response}"')
    if "opaque" in challenge:
        parts.append(f'opaque="{challenge["opaque"]}"')
    return "Digest " + ", ".join(parts)


def pick_challenge(response: SipMessage) -> dict[str, str]:
    """The MD5 challenge of a 401 if offered, else the first one."""
    challenges = [parse_challenge(v) for v in response.header_all("www-authenticate")]
    if not challenges:
        raise HarnessError(f"no WWW-Authenticate in:\n{response.text()}")
    for challenge in challenges:
        if challenge.get("algorithm", "MD5").upper() == "MD5":
            return challenge
    return challenges[0]


class UdpClient:
    """A UDP socket on 127.0.0.1 (own port) that sends requests and collects replies."""

    def __init__(self, server_port: int) -> None:
        self.server = (LOOPBACK, server_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.port = int(self.sock.getsockname()[1])

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, self.server)

    def receive(self, timeout: float, *, until_final: bool = True) -> list[SipMessage]:
        """Messages arriving within `timeout`; stop at the first final response if asked."""
        deadline = time.monotonic() + timeout
        received: list[SipMessage] = []
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                break
            message = parse_message(data)
            received.append(message)
            if until_final and message.is_response and message.status >= 200:
                break
        return received

    def request(self, data: bytes, timeout: float = 2.0) -> list[SipMessage]:
        """Send, retransmit once after 500 ms (RFC 3261 timer E), collect until final."""
        self.send(data)
        got = self.receive(min(0.5, timeout))
        if not any(m.is_response and m.status >= 200 for m in got):
            self.send(data)
            got += self.receive(max(0.0, timeout - 0.5))
        return got

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> UdpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TcpClient:
    """One TCP connection to the server, reading whole messages off the stream."""

    def __init__(self, server_port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((LOOPBACK, server_port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = int(self.sock.getsockname()[1])
        self._splitter = StreamSplitter()
        self._pending: list[SipMessage] = []
        self.closed_by_peer = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_message(self, timeout: float) -> SipMessage | None:
        """The next message, or None on timeout or when the server closed the stream."""
        deadline = time.monotonic() + timeout
        while not self._pending:
            left = deadline - time.monotonic()
            if left <= 0 or self.closed_by_peer:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.closed_by_peer = True
                return None
            self._pending.extend(self._splitter.feed(chunk))
        return self._pending.pop(0)

    def request(self, data: bytes, timeout: float = 3.0) -> SipMessage | None:
        """Send a request and return its final response (provisional ones skipped)."""
        self.send(data)
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.read_message(left)
            if message is None:
                return None
            if message.is_response and message.status >= 200:
                return message
        return None

    def wait_closed(self, timeout: float) -> tuple[bool, list[SipMessage]]:
        """Whether the server closes the connection within `timeout`; what it sent first."""
        seen: list[SipMessage] = []
        deadline = time.monotonic() + timeout
        while not self.closed_by_peer and (left := deadline - time.monotonic()) > 0:
            try:
                message = self.read_message(left)
            except (OSError, ValueError):
                self.closed_by_peer = True
                break
            if message is not None:
                seen.append(message)
        return self.closed_by_peer, seen

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> TcpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def expect_status(message: SipMessage | None, status: int, what: str) -> SipMessage:
    """Assert that `message` is a response with `status`; say what came instead."""
    assert message is not None, f"{what}: no answer"
    assert message.status == status, f"{what}: expected {status}, got\n{message.text()}"
    return message


def options(server_port: int, transport: Literal["udp", "tcp"] = "udp") -> SipMessage | None:
    """Send one OPTIONS to the server itself; its final response or None."""
    uri = f"sip:{LOOPBACK}:{server_port}"
    if transport == "udp":
        with UdpClient(server_port) as client:
            data = build_request("OPTIONS", uri, local_port=client.port)
            finals = [m for m in client.request(data) if m.is_response and m.status >= 200]
            return finals[0] if finals else None
    with TcpClient(server_port) as conn:
        return conn.request(build_request("OPTIONS", uri, transport="TCP", local_port=conn.port))


def register_over_tcp(
    server_port: int, user: str, password: str, *, expires: int = 3600
) -> tuple[SipMessage | None, int]:
    """REGISTER with digest over one TCP connection: (final response, local port)."""
    uri = f"sip:{LOOPBACK}:{server_port}"
    call_id = secrets.token_hex(10)
    with TcpClient(server_port) as conn:

        def register(cseq: int, *extra: tuple[str, str]) -> SipMessage | None:
            headers = [
                ("Contact", f"<sip:{user}@{LOOPBACK}:{conn.port};transport=tcp>"),
                ("Expires", str(expires)),
                *extra,
            ]
            request = build_request(
                "REGISTER",
                uri,
                transport="TCP",
                local_port=conn.port,
                user=user,
                call_id=call_id,
                cseq=cseq,
                headers=headers,
            )
            return conn.request(request)

        first = register(1)
        if first is None or first.status != 401:
            return first, conn.port
        authorization = digest_authorization(
            pick_challenge(first), method="REGISTER", uri=uri, username=user, password=password
        )
        return register(2, ("Authorization", authorization)), conn.port


# --- teleoffice ------------------------------------------------------------------


# Overload thresholds no functional test reaches (see Server).
LENIENT_OVERLOAD = {
    "TELEOFFICE_OVERLOAD_LAG_HIGH": "5",
    "TELEOFFICE_OVERLOAD_LAG_LOW": "4",
    "TELEOFFICE_OVERLOAD_BUSY_HIGH": "1",
    "TELEOFFICE_OVERLOAD_BUSY_LOW": "0.99",
}


# Loopback loses nothing, so finished transactions need not wait the RFC's 32 s
# for retransmissions: with this cap a module's servers drain in seconds.
LAB_TRANSACTION_LINGER = {"TELEOFFICE_SIP_TRANSACTION_LINGER": "4"}


class Server:
    """One `teleoffice serve` on its own ports and its own data directory."""

    def __init__(
        self,
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 15.0,
    ) -> None:
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.log_path = workdir / "server.log"
        # Functional tests share two cores with peers and other tests: overload
        # control (tested on its own in test_overload.py, with the shipped
        # defaults) must not shed their REGISTERs because the machine is busy.
        self.env = clean_environment({**LENIENT_OVERLOAD, **LAB_TRANSACTION_LINGER, **(env or {})})
        self.ready_timeout = ready_timeout
        self.sip_port = free_port()
        self.http_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.exit_codes: list[int | None] = []  # None: it would not die
        self._starts = 0
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # set-up through the command line

    @property
    def log_name(self) -> str:
        return f"teleoffice (SIP {self.sip_port}, HTTP {self.http_port})"

    def cli(
        self, *args: str, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        command = [*teleoffice_command(), "--data", str(self.data_dir), *args]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise HarnessError(
                f"`teleoffice {' '.join(args)}` exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.cli("init")

    def add_user(
        self, name: str, extension: str, sip_password: str, display_name: str | None = None
    ) -> None:
        args = ["user", "add", name, "--extension", extension, "--sip-password", sip_password]
        if display_name is not None:
            args += ["--display-name", display_name]
        self.cli(*args)

    def prepare(self, template: Path | None = None) -> None:
        """A data directory with the default users: copied from `template` when given
        (a directory an earlier `prepare` filled), else created through the CLI."""
        if template is not None:
            shutil.copytree(template, self.data_dir)
            return
        self.init()
        for name, extension, password, display in DEFAULT_USERS:
            self.add_user(name, extension, password, display)

    # the running server

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        if self.running:
            raise HarnessError("server already running")
        self._starts += 1
        command = [
            *teleoffice_command(),
            "--data",
            str(self.data_dir),
            "serve",
            "--sip",
            f"{LOOPBACK}:{self.sip_port}",
            "--http",
            f"{LOOPBACK}:{self.http_port}",
        ]
        with self.log_path.open("ab") as log:
            log.write(f"=== start #{self._starts}: {' '.join(command)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.workdir,
            )
        proc = self.proc
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if proc.poll() is not None:
                raise HarnessError(
                    f"{self.log_name} exited with {proc.returncode} while starting:\n"
                    + self.log_tail()
                )
            with contextlib.suppress(OSError, ValueError, HarnessError):
                if self.health().get("status") == "ok":
                    return
            if time.monotonic() >= deadline:
                self.exit_codes.append(end_process(proc, 5.0))
                raise HarnessError(
                    f"{self.log_name}: /healthz not ok within {self.ready_timeout} s:\n"
                    + self.log_tail()
                )
            time.sleep(0.1)

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM the server's PID (SIGKILL after `grace`); its exit status."""
        if self.proc is None:
            return None
        code = end_process(self.proc, grace)
        self.proc = None
        self.exit_codes.append(code)
        return code

    def restart(self) -> int | None:
        code = self.stop()
        self.start()
        return code

    def health(self, timeout: float = 3.0) -> dict[str, Any]:
        url = f"http://{LOOPBACK}:{self.http_port}/healthz"
        try:
            with self._opener.open(url, timeout=timeout) as reply:
                if reply.status != 200:
                    raise HarnessError(f"/healthz answered {reply.status}")
                payload = json.loads(reply.read())
        except urllib.error.HTTPError as exc:
            raise HarnessError(f"/healthz answered {exc.code}") from exc
        if not isinstance(payload, dict):
            raise HarnessError(f"/healthz returned {payload!r}")
        return cast(dict[str, Any], payload)

    def registrations(self) -> list[str]:
        """The bindings `teleoffice registrations` lists, one line each (no header)."""
        lines = self.cli("registrations").stdout.splitlines()
        return [
            line
            for line in lines
            if line.strip()
            and not line.startswith("ACCOUNT")
            and "no phones registered" not in line
        ]

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return log_tail(self.log_path, lines)


# --- sipp ------------------------------------------------------------------------


@dataclass(frozen=True)
class TracedMessage:
    """One message of sipp's -trace_msg log."""

    direction: Literal["sent", "received"]
    transport: str
    message: SipMessage


_TRACE_SEPARATOR = re.compile(r"^-{20,} .*$", re.MULTILINE)
_TRACE_TITLE = re.compile(r"^(UDP|TCP|TLS|SCTP) message (sent|received)")


def parse_sipp_trace(text: str) -> list[TracedMessage]:
    traced: list[TracedMessage] = []
    for chunk in _TRACE_SEPARATOR.split(text):
        title, _, rest = chunk.lstrip("\r\n").partition("\n")
        found = _TRACE_TITLE.match(title)
        if not found or not rest.strip():
            continue
        body = rest.lstrip("\r\n").replace("\r\n", "\n").rstrip("\n")
        raw = body.replace("\n", "\r\n").encode() + b"\r\n\r\n"
        direction: Literal["sent", "received"] = "sent" if found.group(2) == "sent" else "received"
        traced.append(TracedMessage(direction, found.group(1), parse_message(raw)))
    return traced


@dataclass
class SippResult:
    scenario: str
    command: list[str]
    returncode: int
    stats: dict[str, str]
    errors: str
    trace: list[TracedMessage]
    screen: str

    def _count(self, column: str) -> int:
        value = self.stats.get(column, "0").strip()
        return int(value) if value.isdigit() else 0

    @property
    def successful(self) -> int:
        return self._count("SuccessfulCall(C)")

    @property
    def failed(self) -> int:
        return self._count("FailedCall(C)")

    @property
    def responses(self) -> list[SipMessage]:
        return [
            t.message for t in self.trace if t.direction == "received" and t.message.is_response
        ]

    @property
    def last_response(self) -> SipMessage:
        responses = self.responses
        if not responses:
            raise AssertionError(f"sipp received no response\n{self.describe()}")
        return responses[-1]

    def describe(self) -> str:
        """Everything useful when an assertion about this run fails."""
        lines = [
            f"sipp {self.scenario}: exit {self.returncode}, "
            f"{self.successful} successful, {self.failed} failed",
            "command: " + " ".join(self.command),
        ]
        if self.errors.strip():
            lines += ["--- unexpected messages (sipp -trace_err) ---", self.errors.strip()[-3000:]]
        for traced in self.trace:
            lines += [f"--- {traced.direction} ({traced.transport}) ---", traced.message.text()]
        if not self.trace:
            lines += ["--- sipp screen ---", self.screen[-3000:]]
        return "\n".join(lines)


class Sipp:
    """Runs sipp scenarios from tests/e2e/scenarios against one server, from one port."""

    def __init__(self, server_port: int, workdir: Path, *, port: int | None = None) -> None:
        if shutil.which("sipp") is None:
            raise HarnessError("sipp is not installed (Debian package sip-tester)")
        self.server_port = server_port
        self.workdir = workdir
        self.port = port if port is not None else free_port()
        self._runs = 0

    @property
    def contact_uri(self) -> str:
        """What the scenarios put in Contact for `service` 201 (without transport)."""
        return f"sip:201@{LOOPBACK}:{self.port}"

    def run(
        self,
        scenario: str,
        *,
        service: str = "201",
        auth: tuple[str, str] | None = None,
        keys: Mapping[str, str] | None = None,
        transport: Literal["udp", "tcp"] = "udp",
        calls: int = 1,
        timeout: float = 30.0,
    ) -> SippResult:
        """Run scenarios/<scenario>.xml `calls` times; never longer than `timeout` + 10 s."""
        self._runs += 1
        rundir = self.workdir / f"sipp-{self._runs:02d}-{scenario}"
        rundir.mkdir(parents=True, exist_ok=False)
        script = rundir / f"{scenario}.xml"
        shutil.copyfile(SCENARIOS / f"{scenario}.xml", script)
        stat_file, error_file, trace_file = (
            rundir / "stat.csv",
            rundir / "errors.log",
            rundir / "messages.log",
        )
        command = [
            "sipp",
            f"{LOOPBACK}:{self.server_port}",
            "-sf", str(script),
            "-nostdin",
            "-i", LOOPBACK,
            "-p", str(self.port),
            "-t", "t1" if transport == "tcp" else "u1",
            "-m", str(calls),
            "-s", service,
            "-timeout", f"{int(timeout)}s",
            "-timeout_error",
            "-recv_timeout", "8000",
            "-trace_stat", "-stf", str(stat_file),
            "-trace_err", "-error_file", str(error_file),
            "-trace_msg", "-message_file", str(trace_file),
        ]  # fmt: skip
        if auth is not None:
            command += ["-au", auth[0], "-ap", auth[1]]
        # Every scenario may use [expires]; sipp refuses an undefined keyword.
        for key, value in {"expires": "3600", **(keys or {})}.items():
            command += ["-key", key, value]
        try:
            completed = subprocess.run(
                command,
                cwd=rundir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout + 10,
                check=False,
            )
            returncode = completed.returncode
            screen = (completed.stdout + completed.stderr).decode(errors="replace")
        except subprocess.TimeoutExpired as exc:
            returncode = -9
            screen = f"sipp killed after {exc.timeout} s"
        return SippResult(
            scenario=scenario,
            command=command,
            returncode=returncode,
            stats=read_sipp_stats(stat_file),
            errors=error_file.read_text(errors="replace") if error_file.exists() else "",
            trace=parse_sipp_trace(trace_file.read_text(errors="replace"))
            if trace_file.exists()
            else [],
            screen=screen,
        )


# --- baresip ---------------------------------------------------------------------

BARESIP_MODULES = ("g711.so", "aufile.so")
BARESIP_APP_MODULES = ("account.so", "contact.so", "menu.so", "ctrl_tcp.so")


def _baresip_module_path() -> str:
    for candidate in ("/usr/lib/baresip/modules", "/usr/local/lib/baresip/modules"):
        if Path(candidate).is_dir():
            return candidate
    return "/usr/lib/baresip/modules"


@dataclass
class _Inbox:
    messages: list[dict[str, Any]] = field(default_factory=list)
    condition: threading.Condition = field(default_factory=threading.Condition)


def write_tone(path: Path, freq: float, seconds: float, amplitude: int = 8000) -> Path:
    """An 8 kHz 16-bit mono WAV holding a sine of `freq` Hz."""
    count = int(8000 * seconds)
    step = 2 * math.pi * freq / 8000
    pcm = array("h", (round(amplitude * math.sin(step * n)) for n in range(count)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(pcm.tobytes())
    return path


class Baresip:
    """A headless baresip driven over ctrl_tcp (netstring-framed JSON)."""

    def __init__(self, workdir: Path, *, accounts: Sequence[str] = ()) -> None:
        if shutil.which("baresip") is None:
            raise HarnessError("baresip is not installed (Debian package baresip-core)")
        self.workdir = workdir
        self.config_dir = workdir / "baresip"
        self.log_path = workdir / "baresip.log"
        self.accounts = list(accounts)
        self.sip_port = free_port(span=2)  # PORT for UDP/TCP, PORT+1 for TLS
        self.ctrl_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._reader: threading.Thread | None = None
        self._inbox = _Inbox()
        self._tokens = 0

    @property
    def log_name(self) -> str:
        return f"baresip (SIP {self.sip_port}, ctrl {self.ctrl_port})"

    def log_tail(self, lines: int = 60) -> str:
        events = [json.dumps(m) for m in self.messages() if m.get("event")]
        return (
            log_tail(self.log_path, lines) + "\n--- ctrl_tcp events ---\n" + "\n".join(events[-30:])
        )

    def source_wav(self) -> Path:
        path = self.workdir / "default-source.wav"
        if not path.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            write_tone(path, 425, 60.0, amplitude=1000)
        return path

    def write_config(self) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        settings = [
            ("poll_method", "epoll"),
            ("sip_listen", f"{LOOPBACK}:{self.sip_port}"),
            ("net_interface", LOOPBACK),
            ("audio_player", "aufile,/dev/null"),
            # baresip's own ring.wav is not S16LE, which aufile refuses (the call
            # then closes as media starts): send a quiet tone of our own.
            ("audio_source", f"aufile,{self.source_wav()}"),
            ("audio_alert", "aufile,/dev/null"),
            ("rtp_ports", "30000-30999"),
            ("module_path", _baresip_module_path()),
            *(("module", name) for name in BARESIP_MODULES),
            *(("module_app", name) for name in BARESIP_APP_MODULES),
            ("ctrl_tcp_listen", f"{LOOPBACK}:{self.ctrl_port}"),
        ]
        text = "".join(f"{key}\t{value}\n" for key, value in settings)
        (self.config_dir / "config").write_text(text)
        (self.config_dir / "accounts").write_text("".join(f"{a}\n" for a in self.accounts))
        (self.config_dir / "contacts").write_text("")

    def start(self, timeout: float = 10.0) -> None:
        self.write_config()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                ["baresip", "-f", str(self.config_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout
        while self._sock is None:
            if self.proc.poll() is not None:
                raise HarnessError(
                    f"baresip exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                self._sock = socket.create_connection((LOOPBACK, self.ctrl_port), timeout=1.0)
            except OSError:
                if time.monotonic() >= deadline:
                    self.stop()
                    raise HarnessError(f"baresip ctrl_tcp not up in {timeout} s") from None
                time.sleep(0.1)
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read_loop, args=(self._sock,), daemon=True)
        self._reader.start()

    def _read_loop(self, sock: socket.socket) -> None:
        buffer = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while True:
                colon = buffer.find(b":")
                if colon < 0 or not buffer[:colon].isdigit():
                    break
                length = int(buffer[:colon])
                end = colon + 1 + length
                if len(buffer) < end + 1:
                    break
                payload, buffer = buffer[colon + 1 : end], buffer[end + 1 :]
                try:
                    message = json.loads(payload)
                except ValueError:
                    continue
                if isinstance(message, dict):
                    with self._inbox.condition:
                        self._inbox.messages.append(message)
                        self._inbox.condition.notify_all()

    def messages(self) -> list[dict[str, Any]]:
        with self._inbox.condition:
            return list(self._inbox.messages)

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [
            m for m in self.messages() if m.get("event") and (kind is None or m.get("type") == kind)
        ]

    def _wait(
        self, match: Callable[[dict[str, Any]], bool], timeout: float
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        with self._inbox.condition:
            while True:
                for message in self._inbox.messages:
                    if match(message):
                        return message
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._inbox.condition.wait(left)

    def command(self, command: str, params: str = "", timeout: float = 5.0) -> dict[str, Any]:
        if self._sock is None:
            raise HarnessError("baresip is not running")
        self._tokens += 1
        token = f"e2e-{self._tokens}"
        payload = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._sock.sendall(str(len(payload)).encode() + b":" + payload + b",")
        reply = self._wait(lambda m: bool(m.get("response")) and m.get("token") == token, timeout)
        if reply is None:
            raise HarnessError(f"baresip did not answer {command!r} within {timeout} s")
        return reply

    def wait_event(
        self, kinds: str | Sequence[str], timeout: float, *, aor: str | None = None
    ) -> dict[str, Any] | None:
        """The first event of one of `kinds` (for account `aor` if given), or None."""
        wanted = {kinds} if isinstance(kinds, str) else set(kinds)

        def match(message: dict[str, Any]) -> bool:
            return (
                bool(message.get("event"))
                and message.get("type") in wanted
                and (aor is None or message.get("accountaor") == aor)
            )

        return self._wait(match, timeout)

    def add_account(self, user: str, password: str, server_port: int, *, regint: int = 300) -> str:
        """Create a user agent for `user` at the server (`uanew`), which registers it;
        returns its address of record."""
        aor = f"sip:{user}@{LOOPBACK}:{server_port}"
        line = f"<{aor}>;auth_user={user};auth_pass={password};regint={regint}"
        reply = self.command("uanew", line)
        if not reply.get("ok"):
            raise HarnessError(f"baresip refused uanew: {reply}")
        return aor

    def delete_account(self, aor: str) -> dict[str, Any]:
        """Delete the user agent (`uadel`), which un-registers it first."""
        return self.command("uadel", aor)

    def stop(self) -> int | None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None
        code = None if self.proc is None else end_process(self.proc, 5.0)
        if self._reader is not None:
            self._reader.join(timeout=2)
        return code


def iter_logged(values: Iterator[object] | Sequence[object]) -> Iterator[HasLog]:
    """The processes among fixture values whose logs a failure report should show."""
    seen: set[int] = set()
    for value in values:
        owners: Sequence[HasLog] = ()
        if isinstance(value, Server | Baresip):
            owners = (value,)
        elif hasattr(value, "log_owners"):
            owners = cast(Sequence[HasLog], value.log_owners)
        for owner in owners:
            if id(owner) not in seen:
                seen.add(id(owner))
                yield owner
