"""Hostile input: a flood of malformed datagrams, TCP garbage, cut-up TCP streams.

One server serves the whole module, so the wait for its UDP transactions to end
(RFC 3261 timer J after the last non-INVITE request over UDP, capped in the lab by
harness.LAB_TRANSACTION_LINGER) runs once, at the end, after the TCP tests (which
leave no lingering transactions).

Every input is generated from a fixed seed, so a failure replays exactly. UDP
datagrams cannot exceed 65,507 octets on IPv4, so "oversize" over UDP means the
largest datagram possible; a 70 KB message is sent over TCP instead.
"""

from __future__ import annotations

import random
import socket
import string
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from teleoffice.bench.processes import LOOPBACK, wait_until
from tests.e2e.harness import (
    TRACEBACK,
    Server,
    SipMessage,
    StreamSplitter,
    TcpClient,
    build_request,
    expect_status,
    options,
    parse_message,
    register_over_tcp,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

SEED = 20240607
FLOOD_SIZE = 1000
MAX_UDP_PAYLOAD = 65507  # 65535 - 8 (UDP header) - 20 (IPv4 header)
DRAIN_BOUND = 40.0  # seconds after the last UDP request by which transactions must end


# --- generating bad input -------------------------------------------------------


def valid_messages(port: int) -> list[bytes]:
    uri = f"sip:{LOOPBACK}"
    sdp = (
        b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
        b"t=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
    return [
        build_request("OPTIONS", uri, local_port=port, headers=[("Accept", "application/sdp")]),
        build_request(
            "REGISTER",
            uri,
            local_port=port,
            user="201",
            headers=[("Contact", f"<sip:201@{LOOPBACK}:{port}>"), ("Expires", "3600")],
        ),
        build_request(
            "INVITE",
            f"sip:202@{LOOPBACK}",
            local_port=port,
            user="201",
            to_user="202",
            headers=[
                ("Contact", f"<sip:201@{LOOPBACK}:{port}>"),
                ("Content-Type", "application/sdp"),
            ],
            body=sdp,
        ),
        build_request(
            "MESSAGE",
            f"sip:202@{LOOPBACK}",
            local_port=port,
            to_user="202",
            headers=[("Content-Type", "text/plain")],
            body=b"hello, robustness",
        ),
    ]


def _printable(rng: random.Random, size: int) -> bytes:
    alphabet = string.ascii_letters + string.digits + string.punctuation + " \t"
    return "".join(rng.choice(alphabet) for _ in range(size)).encode()


def random_datagram(rng: random.Random, valid: list[bytes]) -> bytes:
    return rng.randbytes(rng.randint(1, 1500))


def truncated(rng: random.Random, valid: list[bytes]) -> bytes:
    message = rng.choice(valid)
    return message[: rng.randint(1, len(message) - 1)]


def corrupted_header(rng: random.Random, valid: list[bytes]) -> bytes:
    head, _, body = rng.choice(valid).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    index = rng.randrange(1, len(lines))
    name, _, value = lines[index].partition(b":")
    damage: list[Callable[[], bytes]] = [
        lambda: name + b": " + rng.randbytes(rng.randint(1, 60)),
        lambda: name + b": " + _printable(rng, rng.randint(1, 60)),
        lambda: name + value,  # no colon
        lambda: name + b":",  # empty value
        lambda: name + b": 99999999999999999999999999",
        lambda: name + b": -1",
        lambda: name + b":" + value[: len(value) // 2] + b"\r" + value[len(value) // 2 :],
        lambda: name + b":" + value + b"\n" + _printable(rng, 10),
        lambda: name + b": " + b"x" * rng.randint(1000, 8000),
        lambda: rng.randbytes(6) + b":" + value,
        lambda: name + b": " + b'"' + value,  # unbalanced quote
        lambda: name + b": <" + value,  # unbalanced angle bracket
    ]
    lines[index] = rng.choice(damage)()
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def oversize(rng: random.Random, valid: list[bytes]) -> bytes:
    if rng.random() < 0.3:
        return rng.randbytes(MAX_UDP_PAYLOAD)
    head, _, body = rng.choice(valid).partition(b"\r\n\r\n")
    filler = MAX_UDP_PAYLOAD - len(head) - len(body) - len(b"\r\nX-Filler: \r\n\r\n")
    return head + b"\r\nX-Filler: " + b"a" * filler + b"\r\n\r\n" + body


def nul_bytes(rng: random.Random, valid: list[bytes]) -> bytes:
    choice = rng.random()
    if choice < 0.2:
        return b"\x00" * rng.randint(1, 2000)
    message = bytearray(rng.choice(valid))
    if choice < 0.6:
        for position in rng.sample(range(len(message)), rng.randint(1, 5)):
            message[position] = 0
        return bytes(message)
    position = rng.randrange(len(message))
    return bytes(message[:position]) + b"\x00" * rng.randint(1, 64) + bytes(message[position:])


KINDS: list[tuple[str, int, Callable[[random.Random, list[bytes]], bytes]]] = [
    ("random bytes", 300, random_datagram),
    ("truncated", 250, truncated),
    ("corrupted header", 250, corrupted_header),
    ("max-size datagram", 50, oversize),
    ("NUL bytes", 150, nul_bytes),
]


def flood_datagrams(seed: int, port: int) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    valid = valid_messages(port)
    datagrams = [(kind, make(rng, valid)) for kind, count, make in KINDS for _ in range(count)]
    rng.shuffle(datagrams)
    assert len(datagrams) == FLOOD_SIZE
    return datagrams


# --- the flood, once per module ---------------------------------------------------


@dataclass
class Flood:
    sent: Counter[str] = field(default_factory=Counter)
    replies: list[SipMessage] = field(default_factory=list)
    unparsable_replies: list[bytes] = field(default_factory=list)
    last_udp_request: float = 0.0


def _collect(sock: socket.socket, flood: Flood, stop: threading.Event) -> None:
    sock.settimeout(0.1)
    while not stop.is_set():
        try:
            data, _ = sock.recvfrom(65535)
        except TimeoutError:
            continue
        except OSError:
            return
        try:
            flood.replies.append(parse_message(data))
        except ValueError:
            flood.unparsable_replies.append(data)


@pytest.fixture(scope="module")
def flood(module_server: Server) -> Flood:
    result = Flood()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
        sock.bind((LOOPBACK, 0))
        port = int(sock.getsockname()[1])
        stop = threading.Event()
        reader = threading.Thread(target=_collect, args=(sock, result, stop), daemon=True)
        reader.start()
        try:
            for number, (kind, data) in enumerate(flood_datagrams(SEED, port)):
                sock.sendto(data, (LOOPBACK, module_server.sip_port))
                result.sent[kind] += 1
                # A little pacing, so the server's socket buffer does not simply
                # overflow and the datagrams really reach the parser.
                time.sleep(0.002 if len(data) > 10_000 else 0.0002 if number % 4 == 0 else 0)
            result.last_udp_request = time.monotonic()
            time.sleep(1.0)  # the last answers
        finally:
            stop.set()
            reader.join(timeout=2)
    return result


# --- tests ----------------------------------------------------------------------


def test_flood_of_malformed_datagrams_leaves_the_server_alive(
    module_server: Server, flood: Flood
) -> None:
    assert sum(flood.sent.values()) == FLOOD_SIZE
    for reply in flood.replies:
        assert TRACEBACK not in reply.raw, reply.text()
        assert reply.is_response, reply.text()
        assert reply.status != 500, reply.text()
    assert not flood.unparsable_replies, flood.unparsable_replies[:3]

    over_udp = options(module_server.sip_port, "udp")
    flood.last_udp_request = time.monotonic()
    expect_status(over_udp, 200, "OPTIONS over UDP after the flood")
    expect_status(options(module_server.sip_port, "tcp"), 200, "OPTIONS over TCP after the flood")
    assert module_server.health()["status"] == "ok"
    assert module_server.running
    assert TRACEBACK.decode() not in module_server.log_text()


def _garbage_binary() -> bytes:
    # A TLS ClientHello's first octets, then noise: binary on the SIP port.
    return b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + random.Random(SEED).randbytes(500)


def _garbage_content_length() -> bytes:
    message = build_request("OPTIONS", f"sip:{LOOPBACK}", transport="TCP")
    return message.replace(b"Content-Length: 0", b"Content-Length: twelve")


def _garbage_oversize() -> bytes:
    message = build_request("OPTIONS", f"sip:{LOOPBACK}", transport="TCP")
    head, _, _ = message.partition(b"\r\n\r\n")
    return head + b"\r\nX-Filler: " + b"a" * 70_000 + b"\r\n\r\n"


GARBAGE = {
    "binary": _garbage_binary,
    "unframable-content-length": _garbage_content_length,
    "70KB-message": _garbage_oversize,
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_tcp_garbage_is_closed_while_another_client_registers(
    module_server: Server, kind: str
) -> None:
    garbage = TcpClient(module_server.sip_port)
    try:
        try:
            garbage.send(GARBAGE[kind]())
        except OSError:
            garbage.closed_by_peer = True  # closed before we finished writing
        reply, _ = register_over_tcp(module_server.sip_port, "202", "secret202", expires=600)
        expect_status(reply, 200, f"REGISTER over TCP next to a {kind} connection")
        closed, replies = garbage.wait_closed(5.0)
        assert closed, f"the server kept the {kind} connection open for 5 s"
        for message in replies:
            assert message.is_response, message.text()
            assert message.status >= 400, message.text()
            assert TRACEBACK not in message.raw, message.text()
    finally:
        garbage.close()
    assert module_server.health()["status"] == "ok"


def _stream_messages(port: int, count: int, rng: random.Random) -> list[tuple[str, bytes]]:
    """(Call-ID, message) pairs: OPTIONS, REGISTER without credentials, MESSAGE with a body."""
    uri = f"sip:{LOOPBACK}"
    messages: list[tuple[str, bytes]] = []
    for number in range(count):
        call_id = f"split-{number}"
        kind = number % 3
        if kind == 0:
            data = build_request("OPTIONS", uri, transport="TCP", local_port=port, call_id=call_id)
        elif kind == 1:
            data = build_request(
                "REGISTER",
                uri,
                transport="TCP",
                local_port=port,
                user="201",
                call_id=call_id,
                headers=[("Contact", f"<sip:201@{LOOPBACK}:{port};transport=tcp>")],
            )
        else:
            data = build_request(
                "MESSAGE",
                f"sip:202@{LOOPBACK}",
                transport="TCP",
                local_port=port,
                to_user="202",
                call_id=call_id,
                headers=[("Content-Type", "text/plain")],
                body=_printable(rng, rng.randint(1, 300)).replace(b"\r", b" "),
            )
        messages.append((f"{call_id}@e2e", data))
    return messages


EXPECTED_BY_METHOD = {"OPTIONS": 200, "REGISTER": 401}


def test_tcp_messages_cut_at_random_boundaries_are_all_answered(module_server: Server) -> None:
    rng = random.Random(SEED + 1)
    count = 200
    with TcpClient(module_server.sip_port) as conn:
        messages = _stream_messages(conn.port, count, rng)
        stream = b"".join(data for _, data in messages)
        answers: list[SipMessage] = []
        failure: list[BaseException] = []

        def read() -> None:
            splitter = StreamSplitter()
            conn.sock.settimeout(20.0)
            try:
                while len(answers) < count:
                    chunk = conn.sock.recv(65536)
                    if not chunk:
                        return
                    answers.extend(m for m in splitter.feed(chunk) if m.status >= 200)
            except (OSError, ValueError) as exc:
                failure.append(exc)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        position = 0
        while position < len(stream):
            size = rng.choice([1, 2, 3, rng.randint(4, 40), rng.randint(41, 400)])
            conn.send(stream[position : position + size])
            position += size
            if rng.random() < 0.3:
                time.sleep(0.001)  # make the cut reach the server as its own segment
        reader.join(timeout=20.0)

    assert not failure, failure
    by_call: dict[str, list[SipMessage]] = {}
    for answer in answers:
        by_call.setdefault(answer.header("call-id") or "", []).append(answer)
    missing = [call_id for call_id, _ in messages if call_id not in by_call]
    assert not missing, f"{len(missing)} of {count} messages unanswered, e.g. {missing[:5]}"
    for call_id, data in messages:
        (answer,) = by_call[call_id]
        method = data.split(b" ", 1)[0].decode()
        assert answer.status not in (400, 500), f"{method} {call_id} got\n{answer.text()}"
        if method in EXPECTED_BY_METHOD:
            assert answer.status == EXPECTED_BY_METHOD[method], answer.text()


def test_transactions_drain_after_the_flood(module_server: Server, flood: Flood) -> None:
    deadline = flood.last_udp_request + DRAIN_BOUND
    assert wait_until(
        lambda: module_server.health()["transactions"] == 0,
        max(1.0, deadline - time.monotonic()),
        interval=0.5,
    ), f"transactions still open {DRAIN_BOUND} s after the flood: {module_server.health()}"
    expect_status(options(module_server.sip_port, "tcp"), 200, "OPTIONS over TCP at the end")
    assert TRACEBACK.decode() not in module_server.log_text()
