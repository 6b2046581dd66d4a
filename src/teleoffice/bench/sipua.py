"""A small SIP user agent over asyncio UDP that timestamps every message it receives.

The benchmarks that time one thing inside the server (post-dial delay, the
telecommuter callback, presence fan-out, media, memory per call) drive it with
this peer rather than sipp: each datagram is stamped with `time.perf_counter()`
the moment the event loop hands it over, before any parsing, so what a
benchmark reports is the server's delay plus loopback transit and nothing of
ours but one callback. sipp still does the load tests (calls, REGISTER), where
its C speed matters more than timestamps.

It speaks just enough RFC 3261 for that, and no more: client transactions with
Timer A/E retransmissions (bounded by Timer B/F, 32 s), ACK for 2xx (new
transaction, to the Contact) and for non-2xx (same branch), BYE, digest answers
through teleoffice's own `build_authorization`, and an answering side that
replies to INVITE (180, then 200 with SDP, or a chosen failure), BYE, NOTIFY,
UPDATE, OPTIONS and INFO with the usual fields copied. Retransmitted requests
are answered again from a short memory. Responses are never parsed beyond what
is used here.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import cast

from teleoffice.sip.digest import build_authorization

LOOPBACK = "127.0.0.1"
RCVBUF = 8 * 2**20
SO_RCVBUFFORCE = 33  # Linux; not exported by Python's socket module
T1 = 0.5
TIMER_B = 32.0
COMPACT = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "o": "event",
}
Address = tuple[str, int]


class SipPeerError(RuntimeError):
    """The server did not answer, or answered something this peer cannot use."""


@dataclass(frozen=True, slots=True)
class Msg:
    """A received SIP message: start line, headers (lower-case names) and body."""

    start: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    at: float  # time.perf_counter() when the datagram arrived
    source: Address

    @property
    def is_response(self) -> bool:
        return self.start.startswith("SIP/2.0 ")

    @property
    def status(self) -> int:
        return int(self.start.split(" ", 2)[1]) if self.is_response else 0

    @property
    def method(self) -> str:
        if self.is_response:
            return self.header("cseq").split()[-1]
        return self.start.split(" ", 1)[0]

    def header(self, name: str) -> str:
        for key, value in self.headers:
            if key == name:
                return value
        return ""

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    @property
    def branch(self) -> str:
        via = self.header("via").split(",")[0]
        for part in via.split(";")[1:]:
            key, _, value = part.strip().partition("=")
            if key.lower() == "branch":
                return value
        return ""

    @property
    def call_id(self) -> str:
        return self.header("call-id")


def parse(data: bytes, at: float, source: Address) -> Msg | None:
    """The message in one datagram, or None for keepalives and garbage."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("utf-8", errors="replace").split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # folded line (RFC 3261 section 7.3.1)
            name, value = headers[-1]
            headers[-1] = (name, value + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        if not colon:
            continue
        key = name.strip().lower()
        headers.append((COMPACT.get(key, key), value.strip()))
    return Msg(lines[0], tuple(headers), body, at, source)


def uri_of(name_addr: str) -> str:
    """The URI inside `<...>` of a From/To/Contact value (or the bare value)."""
    if "<" in name_addr:
        return name_addr.split("<", 1)[1].split(">", 1)[0]
    return name_addr.split(";", 1)[0].strip()


def user_of(name_addr: str) -> str:
    uri = uri_of(name_addr)
    return uri.split(":", 1)[-1].split("@", 1)[0]


def tag_of(name_addr: str) -> str:
    tail = name_addr.rsplit(">", 1)[-1]
    for part in tail.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "tag":
            return value
    return ""


def target_of(uri: str, fallback: Address) -> Address:
    """Where a request to `uri` goes: its host and port when numeric, else `fallback`."""
    hostport = uri.split("@", 1)[-1].split(";", 1)[0]
    host, _, port = hostport.partition(":")
    if host == LOOPBACK and port.isdigit():
        return (host, int(port))
    return fallback


def sdp_offer(port: int, session: int, *, answer: bool = False) -> bytes:
    """A G.711 offer (or a PCMU answer) for RTP at 127.0.0.1:`port`."""
    formats = "0" if answer else "0 8"
    lines = [
        "v=0",
        f"o=- {session} 1 IN IP4 {LOOPBACK}",
        "s=-",
        f"c=IN IP4 {LOOPBACK}",
        "t=0 0",
        f"m=audio {port} RTP/AVP {formats}",
        "a=rtpmap:0 PCMU/8000",
    ]
    if not answer:
        lines.append("a=rtpmap:8 PCMA/8000")
    lines.append("a=sendrecv")
    return ("\r\n".join(lines) + "\r\n").encode()


def sdp_audio(body: bytes) -> Address | None:
    """The c= address and m=audio port of an SDP body."""
    host: str | None = None
    port: int | None = None
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("c=IN IP4 "):
            host = line.split()[2]
        elif line.startswith("m=audio "):
            port = int(line.split()[1])
    if host is None or port is None:
        return None
    return (host, port)


# --- the transport and client transactions ---------------------------------------------


class ClientTx:
    """One client transaction: its responses, as they come, with their arrival times."""

    def __init__(self, peer: SipPeer, request: bytes, dest: Address, method: str) -> None:
        self.peer = peer
        self.request = request
        self.dest = dest
        self.method = method
        self.sent_at = 0.0
        self.responses: asyncio.Queue[Msg] = asyncio.Queue()
        self.final: Msg | None = None
        self._retransmit: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.sent_at = time.perf_counter()
        self.peer.send(self.request, self.dest)
        self._retransmit = asyncio.create_task(self._resend())

    async def _resend(self) -> None:
        # Timer A (INVITE) or E (others): T1, doubling, capped at T2 = 4 s for non-INVITE.
        interval = T1
        deadline = self.sent_at + TIMER_B
        while time.perf_counter() + interval < deadline:
            await asyncio.sleep(interval)
            self.peer.retransmissions += 1
            self.peer.send(self.request, self.dest)
            interval = interval * 2 if self.method == "INVITE" else min(interval * 2, 4.0)

    def stop_retransmitting(self) -> None:
        if self._retransmit is not None:
            self._retransmit.cancel()
            self._retransmit = None

    def deliver(self, msg: Msg) -> None:
        if self.final is not None:
            return  # a retransmitted final response
        if self.method == "INVITE" or msg.status >= 200:
            self.stop_retransmitting()
        if msg.status >= 200:
            self.final = msg
        self.responses.put_nowait(msg)

    async def next(self, within: float = TIMER_B) -> Msg:
        try:
            return await asyncio.wait_for(self.responses.get(), within)
        except TimeoutError:
            self.stop_retransmitting()
            raise SipPeerError(f"no response to {self.method} within {within} s") from None

    async def final_response(self, within: float = TIMER_B) -> Msg:
        deadline = time.perf_counter() + within
        while True:
            msg = await self.next(max(0.01, deadline - time.perf_counter()))
            if msg.status >= 200:
                return msg


RequestHandler = Callable[["SipPeer", Msg], Awaitable[None] | None]


class SipPeer(asyncio.DatagramProtocol):
    """One UDP socket on 127.0.0.1 playing any number of user agents."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0
        self.transactions: dict[tuple[str, str], ClientTx] = {}
        self.on_request: RequestHandler | None = None
        self.retransmissions = 0
        self.received = 0
        self._answers: dict[tuple[str, str, str], bytes] = {}  # (branch, method, call-id)
        self._answer_order: list[tuple[str, str, str]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(cls, port: int = 0) -> SipPeer:
        loop = asyncio.get_running_loop()
        peer = cls()
        await loop.create_datagram_endpoint(lambda: peer, local_addr=(LOOPBACK, port))
        # One socket stands for hundreds of phones: a fan-out of NOTIFYs or a burst of
        # responses must not overflow the default receive buffer (~200 kB), or the
        # server's retransmissions, not its speed, would be measured.
        assert peer.transport is not None
        sock = peer.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
            except OSError:  # not root: as much as rmem_max allows
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        return peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # create_datagram_endpoint hands over a DatagramTransport (uvloop's is not
        # a subclass of asyncio's, so no isinstance check).
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.port = int(transport.get_extra_info("sockname")[1])

    def datagram_received(self, data: bytes, addr: Address) -> None:
        at = time.perf_counter()
        msg = parse(data, at, addr)
        if msg is None:
            return
        self.received += 1
        if msg.is_response:
            tx = self.transactions.get((msg.branch, msg.method))
            if tx is not None:
                tx.deliver(msg)
            return
        key = (msg.branch, msg.method, msg.call_id)
        cached = self._answers.get(key)
        if cached is not None:  # a retransmitted request: answer again, do nothing else
            self.send(cached, addr)
            return
        if self.on_request is None:
            self.default_answer(msg)
            return
        outcome = self.on_request(self, msg)
        if outcome is not None:
            task = asyncio.ensure_future(outcome)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def send(self, data: bytes, dest: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, dest)

    def close(self) -> None:
        for tx in self.transactions.values():
            tx.stop_retransmitting()
        for task in self._tasks:
            task.cancel()
        if self.transport is not None:
            self.transport.close()

    async def aclose(self) -> None:
        """Close, and let the loop run once so the socket is really closed (and its
        port free) before the caller goes on, even if the loop stops next."""
        self.close()
        await asyncio.sleep(0)

    # --- building and sending -------------------------------------------------------

    def via(self, branch: str) -> str:
        return f"SIP/2.0/UDP {LOOPBACK}:{self.port};branch={branch};rport"

    def request(
        self,
        method: str,
        uri: str,
        dest: Address,
        *,
        from_: str,
        to: str,
        call_id: str,
        cseq: int,
        headers: tuple[str, ...] = (),
        body: bytes = b"",
        branch: str | None = None,
    ) -> ClientTx:
        """Send a request in a new client transaction (ACK: sent once, no transaction)."""
        branch = branch or "z9hG4bK" + secrets.token_hex(8)
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: {self.via(branch)}",
            "Max-Forwards: 70",
            f"From: {from_}",
            f"To: {to}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            *headers,
            f"Content-Length: {len(body)}",
        ]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        tx = ClientTx(self, data, dest, method)
        if method == "ACK":
            self.send(data, dest)
            return tx
        self.transactions[(branch, method)] = tx
        tx.start()
        return tx

    def forget(self, tx: ClientTx) -> None:
        tx.stop_retransmitting()
        for key, value in list(self.transactions.items()):
            if value is tx:
                del self.transactions[key]

    def answer(
        self,
        req: Msg,
        status: int,
        reason: str,
        *,
        to_tag: str = "",
        headers: tuple[str, ...] = (),
        body: bytes = b"",
        remember: bool = True,
    ) -> None:
        to = req.header("to")
        if to_tag and not tag_of(to):
            to = f"{to};tag={to_tag}"
        lines = [f"SIP/2.0 {status} {reason}"]
        lines += [f"Via: {v}" for v in req.all("via")]
        lines += [
            f"From: {req.header('from')}",
            f"To: {to}",
            f"Call-ID: {req.call_id}",
            f"CSeq: {req.header('cseq')}",
            *headers,
            f"Content-Length: {len(body)}",
        ]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        self.send(data, req.source)
        if remember and status >= 200:
            key = (req.branch, req.method, req.call_id)
            self._answers[key] = data
            self._answer_order.append(key)
            if len(self._answer_order) > 20000:  # keep the memory bounded
                for old in self._answer_order[:10000]:
                    self._answers.pop(old, None)
                del self._answer_order[:10000]

    def default_answer(self, msg: Msg) -> None:
        """What any phone says to requests a benchmark does not care about."""
        if msg.method == "ACK":
            return
        if msg.method == "INVITE":  # a re-INVITE or an unexpected call: refuse politely
            self.answer(msg, 486, "Busy Here", to_tag=secrets.token_hex(4))
            return
        self.answer(msg, 200, "OK")


# --- user agent steps ------------------------------------------------------------------

_counter = itertools.count(1)


def new_call_id() -> str:
    return f"bench-{next(_counter)}-{secrets.token_hex(6)}"


def new_tag() -> str:
    return secrets.token_hex(5)


async def authorized(
    peer: SipPeer,
    method: str,
    uri: str,
    dest: Address,
    *,
    user: str,
    password: str,
    to: str,
    headers: tuple[str, ...] = (),
    body: bytes = b"",
    within: float = 10.0,
) -> Msg:
    """A request that answers one 401/407 with digest credentials; its final response."""
    from_ = f"<sip:{user}@{LOOPBACK}>;tag={new_tag()}"
    call_id = new_call_id()
    tx = peer.request(
        method, uri, dest, from_=from_, to=to, call_id=call_id, cseq=1, headers=headers, body=body
    )
    final = await tx.final_response(within)
    peer.forget(tx)
    if final.status not in (401, 407):
        return final
    field_name = "www-authenticate" if final.status == 401 else "proxy-authenticate"
    reply_name = "Authorization" if final.status == 401 else "Proxy-Authorization"
    credentials = build_authorization(
        challenge=final.header(field_name), method=method, uri=uri, username=user, password=password
    )
    tx = peer.request(
        method,
        uri,
        dest,
        from_=from_,
        to=to,
        call_id=call_id,
        cseq=2,
        headers=(*headers, f"{reply_name}: {credentials}"),
        body=body,
    )
    final = await tx.final_response(within)
    peer.forget(tx)
    return final


async def register(
    peer: SipPeer, server: Address, user: str, password: str, *, expires: int = 3600
) -> Msg:
    """Register `user` with this peer's address as its contact."""
    aor = f"<sip:{user}@{LOOPBACK}>"
    final = await authorized(
        peer,
        "REGISTER",
        f"sip:{server[0]}:{server[1]}",
        server,
        user=user,
        password=password,
        to=aor,
        headers=(f"Contact: <sip:{user}@{LOOPBACK}:{peer.port}>", f"Expires: {expires}"),
    )
    if final.status != 200:
        raise SipPeerError(f"REGISTER {user}: {final.start}")
    return final


@dataclass
class CallTimes:
    """One call placed by `place_call`: when each thing happened (perf_counter)."""

    from_user: str
    sent: float = 0.0
    trying: float | None = None
    ringing: float | None = None
    answered: float | None = None
    status: int = 0
    ended: float | None = None
    error: str = ""
    remote_media: Address | None = None
    dialog: dict[str, str] = field(default_factory=dict)


async def place_call(
    peer: SipPeer,
    server: Address,
    callee: str,
    *,
    from_user: str,
    media_port: int,
    hold: float | None = 0.0,
    within: float = 10.0,
) -> CallTimes:
    """INVITE sip:callee@server from `from_user` (no authentication: a trunk's call).

    With `hold` None the call stays up (hang it up later with `hang_up`); otherwise
    it lasts `hold` seconds after the 200 and is ended with BYE."""
    times = CallTimes(from_user=from_user)
    call_id = new_call_id()
    from_ = f"<sip:{from_user}@provider.test>;tag={new_tag()}"
    to = f"<sip:{callee}@{server[0]}>"
    uri = f"sip:{callee}@{server[0]}:{server[1]}"
    tx = peer.request(
        "INVITE",
        uri,
        server,
        from_=from_,
        to=to,
        call_id=call_id,
        cseq=1,
        headers=(
            f"Contact: <sip:{from_user}@{LOOPBACK}:{peer.port}>",
            "Content-Type: application/sdp",
        ),
        body=sdp_offer(media_port, next(_counter)),
    )
    times.sent = tx.sent_at
    try:
        while True:
            msg = await tx.next(within)
            if msg.status == 100:
                times.trying = times.trying or msg.at
            elif msg.status < 200:
                times.ringing = times.ringing or msg.at
            else:
                break
    except SipPeerError as exc:
        times.error = str(exc)
        peer.forget(tx)
        return times
    times.status = msg.status
    peer.forget(tx)
    if msg.status >= 300:
        # ACK of a failure: same branch, hop by hop (RFC 3261 section 17.1.1.3).
        peer.request(
            "ACK",
            uri,
            server,
            from_=from_,
            to=msg.header("to"),
            call_id=call_id,
            cseq=1,
            branch=msg.branch,
        )
        return times
    times.answered = msg.at
    times.remote_media = sdp_audio(msg.body)
    contact = uri_of(msg.header("contact")) or uri
    times.dialog = {
        "uri": contact,
        "from": from_,
        "to": msg.header("to"),
        "call_id": call_id,
        "dest": f"{target_of(contact, server)[0]}:{target_of(contact, server)[1]}",
    }
    dest = target_of(contact, server)
    peer.request("ACK", contact, dest, from_=from_, to=msg.header("to"), call_id=call_id, cseq=1)
    if hold is not None:
        await asyncio.sleep(hold)
        await hang_up(peer, times, within=within)
    return times


async def hang_up(peer: SipPeer, times: CallTimes, *, within: float = 10.0) -> None:
    dialog = times.dialog
    host, _, port = dialog["dest"].partition(":")
    tx = peer.request(
        "BYE",
        dialog["uri"],
        (host, int(port)),
        from_=dialog["from"],
        to=dialog["to"],
        call_id=dialog["call_id"],
        cseq=2,
    )
    try:
        final = await tx.final_response(within)
        times.ended = final.at
    except SipPeerError as exc:
        times.error = str(exc)
    finally:
        peer.forget(tx)


@dataclass
class Answering:
    """How a phone played by `answering_phone` answers INVITEs; what it saw."""

    media_port: int = 0
    ring_then: int = 200  # the final answer after 180: 200 (with SDP), or a failure status
    answer_delay: float = 0.0
    invites: dict[str, Msg] = field(default_factory=dict)  # by caller (From user)
    offers: dict[str, Address | None] = field(default_factory=dict)  # by caller
    ring_sent: dict[str, float] = field(default_factory=dict)  # by caller: 180 sent at
    byes: int = 0


def answering_phone(behaviour: Answering) -> RequestHandler:
    """A request handler: 180 then the final answer for INVITEs, 200 for the rest."""

    async def handle(peer: SipPeer, msg: Msg) -> None:
        if msg.method != "INVITE":
            if msg.method == "BYE":
                behaviour.byes += 1
            peer.default_answer(msg)
            return
        if tag_of(msg.header("to")):  # re-INVITE (session refresh): accept as is
            peer.answer(msg, 200, "OK", headers=(f"Contact: <sip:bench@{LOOPBACK}:{peer.port}>",))
            return
        caller = user_of(msg.header("from"))
        behaviour.invites.setdefault(caller, msg)
        behaviour.offers[caller] = sdp_audio(msg.body)
        tag = new_tag()
        contact = f"Contact: <sip:bench@{LOOPBACK}:{peer.port}>"
        peer.answer(msg, 180, "Ringing", to_tag=tag, headers=(contact,), remember=False)
        behaviour.ring_sent.setdefault(caller, time.perf_counter())
        if behaviour.answer_delay:
            await asyncio.sleep(behaviour.answer_delay)
        if behaviour.ring_then != 200:
            peer.answer(msg, behaviour.ring_then, "Refused", to_tag=tag)
            return
        peer.answer(
            msg,
            200,
            "OK",
            to_tag=tag,
            headers=(contact, "Content-Type: application/sdp"),
            body=sdp_offer(behaviour.media_port or peer.port + 1, next(_counter), answer=True),
        )

    return handle
