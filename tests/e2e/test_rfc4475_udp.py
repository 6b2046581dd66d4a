"""The 49 RFC 4475 torture messages, sent over UDP to a running server.

The messages carry foreign Via addresses. The server answers to the Via's
`received` address (127.0.0.1, where the datagram came from) at the sent-by port,
or at the source port when the Via asks for `rport` (RFC 3581). So that the answer
reaches the test's socket, `;rport` is inserted right after the sent-by of the top
Via, a purely textual change that keeps every other byte. Which messages are sent
unchanged, and why, is pinned down in UNCHANGED below and checked by a test.

Many messages share a Via branch (most use z9hG4bKkdjuw), so two of them with the
same branch, sent-by and method are one transaction to the server (RFC 3261 section
17.2.3): the second is a retransmission, whose answer goes to where the first came
from. Such messages therefore go to a second server (SLOT below), never to one
whose transaction they would join.

For every message: the final answer (or silence) must be the one EXPECTED_STATUS
names, no answer may carry a Python traceback, and the server must still answer
an OPTIONS with 200 afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conformance.rfc4475 import EXPECTED_STATUS
from tests.e2e.harness import TRACEBACK, Server, SipMessage, UdpClient, expect_status, options

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "rfc4475"
NAMES = sorted(path.stem for path in CORPUS.glob("*.dat"))

# Messages sent byte for byte as they are, with the reason.
UNCHANGED = {
    # Responses: nobody answers a response; the server must drop them.
    "bcast": "response",
    "bigcode": "response",
    "noreason": "response",
    "scalarlg": "response",
    "unreason": "response",
    # Its top Via asks for rport already, so the answer comes back as it is.
    "mpart01": "rport",
}
# Messages whose answer could not reach the test (no rport, Via not amendable): for
# these only liveness would be checked. The corpus has none; the test keeps it so.
UNOBSERVABLE: set[str] = set()

# The first line of the header that starts the top Via: `Via:` or compact `v:`.
_VIA_LINE = re.compile(rb"^(?:via|v)[ \t]*:", re.IGNORECASE)
# Linear white space, which may fold the value onto the next line (RFC 3261 25.1):
# wsinv spreads its top Via over three lines ("Via  : SIP  /   2.0\r\n /UDP\r\n    192...").
_LWS = rb"(?:[ \t]*\r\n)?[ \t]+"
_SWS = rb"(?:" + _LWS + rb")?"
# HCOLON, then sent-protocol (SIP / version / transport), LWS, and the sent-by.
_VIA_SENT_BY = re.compile(
    rb"(?:via|v)[ \t]*:"
    + _SWS
    + rb"SIP"
    + _SWS
    + rb"/"
    + _SWS
    + rb"[0-9.]+"
    + _SWS
    + rb"/"
    + _SWS
    + rb"[A-Za-z]+"
    + _LWS
    + rb"(?P<sent_by>[^;,\s]+)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Prepared:
    data: bytes
    how: str  # "amended", or the UNCHANGED reason, or "unamendable"

    @property
    def observable(self) -> bool:
        """Whether an answer, if the server sends one, comes back to the test socket."""
        return self.how in {"amended", "rport", "response"}


def prepare(data: bytes) -> Prepared:
    """Insert `;rport` after the sent-by of the top Via when that is a plain text edit."""
    if data.startswith(b"SIP/"):
        return Prepared(data, "response")
    head_end = data.find(b"\r\n\r\n")
    head = data if head_end < 0 else data[:head_end]
    offset = 0
    for line in head.split(b"\r\n"):
        if offset and _VIA_LINE.match(line):
            # The whole top Via value: this line plus folded continuation lines,
            # up to the first comma (the next via-parm).
            value = _unfolded_from(head, offset).split(b",")[0]
            if re.search(rb";[ \t]*rport[ \t]*(?:[;=]|$)", value, re.IGNORECASE):
                return Prepared(data, "rport")
            found = _VIA_SENT_BY.match(head, offset)
            if found is None:
                return Prepared(data, "unamendable")
            cut = found.end("sent_by")
            return Prepared(data[:cut] + b";rport" + data[cut:], "amended")
        offset += len(line) + 2
    return Prepared(data, "unamendable")


def _unfolded_from(head: bytes, offset: int) -> bytes:
    lines = head[offset:].split(b"\r\n")
    value = [lines[0]]
    for line in lines[1:]:
        if line[:1] not in (b" ", b"\t"):
            break
        value.append(line)
    return b" ".join(part.strip() for part in value)


_BRANCH = re.compile(rb";[ \t]*branch[ \t]*=[ \t]*([^;,\s]+)", re.IGNORECASE)
_CALL_ID = re.compile(rb"^(?:call-id|i)[ \t]*:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


def transaction_key(data: bytes) -> tuple[bytes, ...] | None:
    """What a server may match a request's transaction on, taken conservatively:
    branch (or, without one, the Call-ID), sent-by host (any port) and method."""
    if data.startswith(b"SIP/"):
        return None
    head = data.split(b"\r\n\r\n", 1)[0]
    via = _VIA_SENT_BY.search(head)
    host = via.group("sent_by").lower().rsplit(b":", 1)[0] if via else b""
    branch = _BRANCH.search(head[via.start() :] if via else head)
    call_id = _CALL_ID.search(head)
    ident = branch.group(1) if branch else call_id.group(1) if call_id else b""
    return (ident, host, data.split(b" ", 1)[0])


def _assign_slots(names: list[str]) -> dict[str, int]:
    """Each message to the first server none of whose messages shares its key."""
    used: list[set[tuple[bytes, ...]]] = []
    slots: dict[str, int] = {}
    for name in names:
        key = transaction_key((CORPUS / f"{name}.dat").read_bytes())
        slot = next((i for i, keys in enumerate(used) if key is None or key not in keys), None)
        if slot is None:
            used.append(set())
            slot = len(used) - 1
        if key is not None:
            used[slot].add(key)
        slots[name] = slot
    return slots


SLOT = _assign_slots(NAMES)


@dataclass
class ServerPool:
    """Servers started on demand, one per slot, for the whole module."""

    root: Path
    seed: Path
    servers: dict[int, Server] = field(default_factory=dict)

    @property
    def log_owners(self) -> list[Server]:
        return list(self.servers.values())

    def get(self, slot: int) -> Server:
        if slot not in self.servers:
            server = Server(self.root / f"server-{slot}")
            server.prepare(self.seed)
            self.servers[slot] = server
            server.start()
        return self.servers[slot]


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory, seeded_data: Path) -> Iterator[ServerPool]:
    servers = ServerPool(tmp_path_factory.mktemp("rfc4475"), seeded_data)
    try:
        yield servers
    finally:
        for server in servers.servers.values():
            server.stop()


def test_the_corpus_is_complete() -> None:
    assert len(NAMES) == 49, f"expected the 49 RFC 4475 messages in {CORPUS}"
    assert set(NAMES) == set(EXPECTED_STATUS)
    # Messages that would join another's transaction need a second server, no more.
    assert sorted(name for name, slot in SLOT.items() if slot) == [
        "badvers", "cparam02", "regescrt", "unkscm",
    ]  # fmt: skip


def test_only_the_listed_messages_are_sent_unchanged() -> None:
    prepared = {name: prepare((CORPUS / f"{name}.dat").read_bytes()) for name in NAMES}
    unchanged = {name: p.how for name, p in prepared.items() if p.how != "amended"}
    assert unchanged == {**UNCHANGED, **dict.fromkeys(UNOBSERVABLE, "unamendable")}
    for name, p in prepared.items():
        original = (CORPUS / f"{name}.dat").read_bytes()
        if p.how == "amended":
            assert p.data.replace(b";rport", b"", 1) == original
            assert len(p.data) == len(original) + len(b";rport")


def _describe(name: str, sent: bytes, received: list[SipMessage]) -> str:
    first_line = sent.split(b"\r\n", 1)[0][:100]
    lines = [f"{name}: sent {len(sent)} bytes, first line {first_line!r}"]
    lines += [f"--- received ---\n{m.text()}" for m in received] or ["(nothing received)"]
    return "\n".join(lines)


@pytest.mark.parametrize("name", NAMES)
def test_torture_message_over_udp(pool: ServerPool, name: str) -> None:
    server = pool.get(SLOT[name])
    prepared = prepare((CORPUS / f"{name}.dat").read_bytes())
    expected = EXPECTED_STATUS[name]
    with UdpClient(server.sip_port) as client:
        client.send(prepared.data)
        # Provisional answers (100 Trying) are skipped; the wait ends at a final one.
        received = client.receive(1.0)

    report = _describe(name, prepared.data, received)
    for message in received:
        assert TRACEBACK not in message.raw, report
        assert message.is_response, report
    finals = [m.status for m in received if m.status >= 200]
    if prepared.observable:
        if expected is None:
            assert received == [], f"no answer expected\n{report}"
        else:
            assert finals == [expected], f"expected {expected}\n{report}"
    else:
        assert name in UNOBSERVABLE

    expect_status(options(server.sip_port), 200, f"OPTIONS after {name}")


def test_no_bindings_and_no_tracebacks_left(pool: ServerPool) -> None:
    """After the whole corpus (REGISTERs among it): nothing stored, nothing crashed."""
    pool.get(0)  # when run on its own
    for server in pool.servers.values():
        assert server.health()["registrations"] == 0
        assert server.registrations() == []
        assert TRACEBACK.decode() not in server.log_text()
