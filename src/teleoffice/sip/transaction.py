"""The SIP transaction layer (RFC 3261 section 17, updated by RFC 6026), sans-IO.

Theory of operation
-------------------
A transaction is one request and the responses to it.  Its job is to make an
unreliable transport look reliable to the layer above (the transaction user,
TU: the UA core or the proxy core): it retransmits the request until a response
comes, retransmits the final response until the ACK comes, absorbs duplicates,
and gives up after 64*T1 with an event.

There are four machines (RFC 3261 figures 5 to 8, with the "Accepted" state that
RFC 6026 adds to both INVITE machines).  Each is a table: `(state, input) ->
Step(next state, actions, timers to start, timers to stop)`.  Inputs are what
arrives from the network (a response of some class, a retransmitted request, an
ACK), what the TU sends (a provisional, a 2xx, a 3xx-6xx) and the timers, which
are inputs themselves.  A missing entry means the input does not belong in that
state: from the network it is silently absorbed (a late provisional after the
final, a duplicate, a reordered copy), from the TU it is a bug on our side and
raises `LocalProtocolError`.

Nothing here reads a clock or touches a socket.  Every entry point takes `now`;
`next_timer()` says when `handle_timers(now)` wants to be called next, and
`outgoing()` drains the bytes to send with their destination.  A message is
serialized once; retransmissions reuse the same bytes.

Timers are kept in one heap with lazy deletion: stopping a timer only forgets
it in its transaction, and a popped heap entry that no longer matches is
skipped.  Timers that are zero on reliable transports (D, I, J, K) are armed
for `now` rather than run inline, so termination is always reported by
`receive` or `handle_timers`, never from inside `send_response`.

Two departures from the letter of the RFCs, both on purpose:

* The INVITE server transaction sends no 100 Trying by itself (section 17.2.1
  lets the TU do it).  Our UA core answers every INVITE with 100 at once, and
  without a 200 ms timer the machine stays a plain table.
* In "Accepted" the INVITE server transaction retransmits the 2xx itself, on
  timer G's schedule (T1 doubling up to T2), and answers a retransmitted INVITE
  with the 2xx.  RFC 3261 section 13.3.1.4 gives that duty to the UA core and
  RFC 6026 keeps it there; doing it here keeps the one copy of the 2xx's bytes
  and its timers in one place.  The ACK for the 2xx (a request of its own, with
  a new branch) is matched to the transaction by Call-ID, tags and CSeq number,
  reported as `AckReceived`, and moves the transaction to "Confirmed", where it
  absorbs stragglers for T4 like a non-2xx would.  If Timer L fires first, the
  TU gets `AckTimeout` and should end the call with a BYE (section 13.3.1.4).

RFC 2543 peers put no magic cookie in their branch (or a bare one, as the
RFC 4475 torture message "badbranch" does).  Their requests are matched by the
older rules of section 17.2.3: Request-URI, From tag, To tag, Call-ID, CSeq
number and top Via.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from enum import Enum
from typing import TypeAlias

from teleoffice.sip.builders import MAGIC_COOKIE, make_ack_for_non2xx
from teleoffice.sip.errors import LocalProtocolError, RemoteProtocolError
from teleoffice.sip.headers import Via
from teleoffice.sip.message import Request, Response
from teleoffice.sip.uri import remove_param

# ---------------------------------------------------------------------------
# Addresses and keys


@dataclass(frozen=True, slots=True)
class Address:
    """Where a message came from or goes to.

    `transport` is "UDP", "TCP", "TLS" or "WS"; only UDP is unreliable, so only
    UDP gets retransmissions (RFC 3261 section 17.1.1.2).
    """

    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        return self.transport.upper() != "UDP"


@dataclass(frozen=True, slots=True)
class TxKey:
    """Identifies a transaction (RFC 3261 sections 17.1.3 and 17.2.3).

    A client transaction is its branch and method: we made the branch, so it is
    unique.  A server transaction adds the sent-by of the top Via, since two
    clients could pick the same branch.  ACK is matched to INVITE, so `method`
    is never "ACK".  For a request from an RFC 2543 peer `branch` is empty and
    `legacy` holds the fields that identify it instead.
    """

    server: bool
    method: str
    branch: str
    sent_by: str = ""
    legacy: tuple[str, ...] = ()


def is_rfc3261_branch(branch: str | None) -> bool:
    """True when the branch carries the magic cookie and something after it.

    A bare cookie promises uniqueness without providing it (the RFC 4475
    message "badbranch" sends exactly that), so it gets the RFC 2543 treatment.
    """
    return (
        branch is not None and branch.startswith(MAGIC_COOKIE) and len(branch) > len(MAGIC_COOKIE)
    )


def response_address(request: Request, source: Address) -> Address:
    """Where to send responses to `request` (RFC 3261 section 18.2.2, RFC 3581).

    On a reliable transport the answer goes back on the connection the request
    came on, i.e. to its source.  Over UDP it goes to the top Via's `received`
    (the address the packet really came from, stamped by the UA core) or else its
    sent-by host, and to the `rport` value when the client asked for one (RFC
    3581 section 4: the port the packet came from, which is the one a NAT keeps
    open) or else the sent-by port, default 5060.  `maddr` is ignored on purpose:
    honouring it would let anyone aim our responses at a third party, and no
    phone teleoffice serves relies on multicast responses.
    """
    if source.reliable:
        return source
    via = request.top_via
    host = via.received or via.host
    _, rport = via.rport
    port = rport if rport is not None else (via.port or 5060)
    return Address(source.transport, host.strip("[]"), port)


# ---------------------------------------------------------------------------
# Events reported to the TU


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A new request: the TU must answer it with `send_response(key, ...)`.

    For a CANCEL, `cancels` is the INVITE server transaction it matches (RFC 3261
    section 9.2), or None when there is none and the TU answers 481.
    """

    key: TxKey
    request: Request
    source: Address
    cancels: TxKey | None = None


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response for one of our client transactions.  For an INVITE in
    "Accepted" each 2xx retransmission comes again, so the TU re-sends its ACK."""

    key: TxKey
    response: Response


@dataclass(frozen=True, slots=True)
class AckReceived:
    """An ACK for a 2xx: for the dialog layer, not for any transaction."""

    request: Request
    source: Address


@dataclass(frozen=True, slots=True)
class TransactionTimeout:
    """Timer B or F: no final response came; the TU acts as if a 408 had
    (RFC 3261 section 8.1.3.1).  For an INVITE server transaction it is timer H:
    the ACK for our 3xx-6xx never came (section 17.2.1)."""

    key: TxKey
    request: Request


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """Reserved for the transport layer reporting that a message could not be sent."""

    key: TxKey


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    key: TxKey


@dataclass(frozen=True, slots=True)
class AckTimeout:
    """Timer L: our 2xx to an INVITE was never ACKed.  RFC 3261 section 13.3.1.4:
    the UAS should confirm the dialog and then end it with a BYE."""

    key: TxKey


@dataclass(frozen=True, slots=True)
class StrayResponse:
    """A response that matches no client transaction (a proxy forwards it, a UA
    may use a late 2xx to re-send the ACK)."""

    response: Response
    source: Address


Event: TypeAlias = (
    RequestReceived
    | ResponseReceived
    | AckReceived
    | TransactionTimeout
    | TransportFailed
    | TransactionTerminated
    | AckTimeout
    | StrayResponse
)


# ---------------------------------------------------------------------------
# The state machines as data


class TxState(Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    ACCEPTED = "Accepted"  # RFC 6026
    CONFIRMED = "Confirmed"
    TERMINATED = "Terminated"


class Kind(Enum):
    INVITE_CLIENT = "INVITE client"
    NON_INVITE_CLIENT = "non-INVITE client"
    INVITE_SERVER = "INVITE server"
    NON_INVITE_SERVER = "non-INVITE server"


class Timer(Enum):
    """The timers of RFC 3261 table 4 and RFC 6026 (L and M)."""

    A = "A"  # INVITE request retransmission (UDP)
    B = "B"  # INVITE transaction timeout
    D = "D"  # wait for response retransmissions after a non-2xx
    E = "E"  # non-INVITE request retransmission (UDP)
    F = "F"  # non-INVITE transaction timeout
    G = "G"  # final response retransmission (UDP); also the 2xx in Accepted
    H = "H"  # wait for the ACK of a non-2xx
    I = "I"  # noqa: E741 - the RFC's name; absorb ACK retransmissions
    J = "J"  # absorb non-INVITE request retransmissions
    K = "K"  # absorb non-INVITE response retransmissions
    L = "L"  # wait for the ACK of a 2xx (RFC 6026)
    M = "M"  # absorb 2xx retransmissions and forks (RFC 6026)


class Input(Enum):
    # From the network, at a client transaction.
    PROVISIONAL = "1xx received"
    SUCCESS = "2xx received"
    FAILURE = "3xx-6xx received"
    # From the network, at a server transaction.
    REQUEST = "request retransmission"
    ACK = "ACK received"
    # From the TU, at a server transaction.
    SEND_PROVISIONAL = "TU sends 1xx"
    SEND_SUCCESS = "TU sends 2xx"
    SEND_FAILURE = "TU sends 3xx-6xx"


class Action(Enum):
    SEND_REQUEST = "send the request"  # first send and each retransmission
    DELIVER_REQUEST = "RequestReceived to the TU"
    DELIVER_RESPONSE = "ResponseReceived to the TU"
    SEND_ACK = "send the ACK for a non-2xx"
    SEND_RESPONSE = "send the TU's response and keep it"
    RESEND_RESPONSE = "retransmit the last response"
    DELIVER_ACK = "AckReceived to the TU"
    REPORT_TIMEOUT = "TransactionTimeout to the TU"
    REPORT_ACK_TIMEOUT = "AckTimeout to the TU"


@dataclass(frozen=True, slots=True)
class Step:
    next: TxState
    actions: tuple[Action, ...] = ()
    start: tuple[Timer, ...] = ()
    stop: tuple[Timer, ...] = ()


StepInput: TypeAlias = Input | Timer
Table: TypeAlias = dict[tuple[TxState, StepInput], Step]

S = TxState

# The first step of each machine, taken when the transaction is created.
INITIAL: dict[Kind, Step] = {
    # 17.1.1.2: send the INVITE, timer A for retransmission (UDP), B to give up.
    Kind.INVITE_CLIENT: Step(S.CALLING, (Action.SEND_REQUEST,), start=(Timer.A, Timer.B)),
    # 17.1.2.2: the same with E and F.
    Kind.NON_INVITE_CLIENT: Step(S.TRYING, (Action.SEND_REQUEST,), start=(Timer.E, Timer.F)),
    # 17.2.1: the INVITE goes to the TU, which sends the 100 Trying.
    Kind.INVITE_SERVER: Step(S.PROCEEDING, (Action.DELIVER_REQUEST,)),
    # 17.2.2
    Kind.NON_INVITE_SERVER: Step(S.TRYING, (Action.DELIVER_REQUEST,)),
}

# Action tuples that recur in the tables below.
_TO_TU = (Action.DELIVER_RESPONSE,)
_SEND = (Action.SEND_REQUEST,)
_RESPOND = (Action.SEND_RESPONSE,)
_RESEND = (Action.RESEND_RESPONSE,)
_AB, _EF, _GH, _GL = (Timer.A, Timer.B), (Timer.E, Timer.F), (Timer.G, Timer.H), (Timer.G, Timer.L)

INVITE_CLIENT: Table = {
    # Figure 5, with RFC 6026: a 2xx leads to Accepted, not
    # Terminated, so retransmitted 2xx and 2xx from other forks still find the
    # transaction (and reach the TU, which ACKs each) until timer M.
    (S.CALLING, Timer.A): Step(S.CALLING, _SEND, start=(Timer.A,)),
    (S.CALLING, Timer.B): Step(S.TERMINATED, (Action.REPORT_TIMEOUT,)),
    (S.CALLING, Input.PROVISIONAL): Step(S.PROCEEDING, _TO_TU, stop=_AB),
    (S.CALLING, Input.SUCCESS): Step(S.ACCEPTED, _TO_TU, start=(Timer.M,), stop=_AB),
    (S.CALLING, Input.FAILURE): Step(
        S.COMPLETED, (*_TO_TU, Action.SEND_ACK), start=(Timer.D,), stop=_AB
    ),
    # In Proceeding the INVITE is no longer retransmitted and nothing times
    # out: the TU cancels when it has waited long enough (section 9.1).
    (S.PROCEEDING, Input.PROVISIONAL): Step(S.PROCEEDING, _TO_TU),
    (S.PROCEEDING, Input.SUCCESS): Step(S.ACCEPTED, _TO_TU, start=(Timer.M,)),
    (S.PROCEEDING, Input.FAILURE): Step(S.COMPLETED, (*_TO_TU, Action.SEND_ACK), start=(Timer.D,)),
    # A retransmitted final means our ACK was lost: send it again, but the TU
    # has already seen the response.  Provisionals and 2xx are absorbed.
    (S.COMPLETED, Input.FAILURE): Step(S.COMPLETED, (Action.SEND_ACK,)),
    (S.COMPLETED, Timer.D): Step(S.TERMINATED),
    (S.ACCEPTED, Input.SUCCESS): Step(S.ACCEPTED, _TO_TU),
    (S.ACCEPTED, Timer.M): Step(S.TERMINATED),
}

NON_INVITE_CLIENT: Table = {
    # Figure 6.  Timer E keeps running in Proceeding, at T2 (see _interval).
    (S.TRYING, Timer.E): Step(S.TRYING, _SEND, start=(Timer.E,)),
    (S.TRYING, Timer.F): Step(S.TERMINATED, (Action.REPORT_TIMEOUT,)),
    (S.TRYING, Input.PROVISIONAL): Step(S.PROCEEDING, _TO_TU),
    (S.TRYING, Input.SUCCESS): Step(S.COMPLETED, _TO_TU, start=(Timer.K,), stop=_EF),
    (S.TRYING, Input.FAILURE): Step(S.COMPLETED, _TO_TU, start=(Timer.K,), stop=_EF),
    (S.PROCEEDING, Timer.E): Step(S.PROCEEDING, _SEND, start=(Timer.E,)),
    (S.PROCEEDING, Timer.F): Step(S.TERMINATED, (Action.REPORT_TIMEOUT,)),
    (S.PROCEEDING, Input.PROVISIONAL): Step(S.PROCEEDING, _TO_TU),
    (S.PROCEEDING, Input.SUCCESS): Step(S.COMPLETED, _TO_TU, start=(Timer.K,), stop=_EF),
    (S.PROCEEDING, Input.FAILURE): Step(S.COMPLETED, _TO_TU, start=(Timer.K,), stop=_EF),
    # Completed only absorbs response retransmissions (no entry needed) until K.
    (S.COMPLETED, Timer.K): Step(S.TERMINATED),
}

INVITE_SERVER: Table = {
    # Figure 7, with RFC 6026 (a 2xx leads to Accepted).  An ACK
    # in Proceeding is absorbed: there is no final response for it to confirm.
    (S.PROCEEDING, Input.REQUEST): Step(S.PROCEEDING, _RESEND),
    (S.PROCEEDING, Input.SEND_PROVISIONAL): Step(S.PROCEEDING, _RESPOND),
    (S.PROCEEDING, Input.SEND_SUCCESS): Step(S.ACCEPTED, _RESPOND, start=_GL),
    (S.PROCEEDING, Input.SEND_FAILURE): Step(S.COMPLETED, _RESPOND, start=_GH),
    (S.COMPLETED, Input.REQUEST): Step(S.COMPLETED, _RESEND),
    (S.COMPLETED, Timer.G): Step(S.COMPLETED, _RESEND, start=(Timer.G,)),
    (S.COMPLETED, Timer.H): Step(S.TERMINATED, (Action.REPORT_TIMEOUT,)),
    (S.COMPLETED, Input.ACK): Step(S.CONFIRMED, start=(Timer.I,), stop=_GH),
    # Confirmed absorbs ACK and INVITE retransmissions (no entries) until I.
    (S.CONFIRMED, Timer.I): Step(S.TERMINATED),
    (S.ACCEPTED, Input.REQUEST): Step(S.ACCEPTED, _RESEND),
    (S.ACCEPTED, Timer.G): Step(S.ACCEPTED, _RESEND, start=(Timer.G,)),
    # RFC 6026: the TU may pass a 2xx again while Accepted; it goes out as given.
    (S.ACCEPTED, Input.SEND_SUCCESS): Step(S.ACCEPTED, _RESPOND),
    (S.ACCEPTED, Input.ACK): Step(S.CONFIRMED, (Action.DELIVER_ACK,), start=(Timer.I,), stop=_GL),
    (S.ACCEPTED, Timer.L): Step(S.TERMINATED, (Action.REPORT_ACK_TIMEOUT,)),
}

NON_INVITE_SERVER: Table = {
    # Figure 8.  A retransmission in Trying is absorbed: there is nothing to
    # resend yet, and the TU must not see the request twice.
    (S.TRYING, Input.SEND_PROVISIONAL): Step(S.PROCEEDING, _RESPOND),
    (S.TRYING, Input.SEND_SUCCESS): Step(S.COMPLETED, _RESPOND, start=(Timer.J,)),
    (S.TRYING, Input.SEND_FAILURE): Step(S.COMPLETED, _RESPOND, start=(Timer.J,)),
    (S.PROCEEDING, Input.REQUEST): Step(S.PROCEEDING, _RESEND),
    (S.PROCEEDING, Input.SEND_PROVISIONAL): Step(S.PROCEEDING, _RESPOND),
    (S.PROCEEDING, Input.SEND_SUCCESS): Step(S.COMPLETED, _RESPOND, start=(Timer.J,)),
    (S.PROCEEDING, Input.SEND_FAILURE): Step(S.COMPLETED, _RESPOND, start=(Timer.J,)),
    (S.COMPLETED, Input.REQUEST): Step(S.COMPLETED, _RESEND),
    (S.COMPLETED, Timer.J): Step(S.TERMINATED),
}

TABLES: dict[Kind, Table] = {
    Kind.INVITE_CLIENT: INVITE_CLIENT,
    Kind.NON_INVITE_CLIENT: NON_INVITE_CLIENT,
    Kind.INVITE_SERVER: INVITE_SERVER,
    Kind.NON_INVITE_SERVER: NON_INVITE_SERVER,
}

# Retransmission timers exist only on unreliable transports (sections 17.1.1.2,
# 17.1.2.2, 17.2.1); on TCP the transport retransmits.
_RETRANSMIT_TIMERS = frozenset({Timer.A, Timer.E, Timer.G})


def _status_input(status: int) -> Input:
    if status < 200:
        return Input.PROVISIONAL
    if status < 300:
        return Input.SUCCESS
    return Input.FAILURE


_SEND_INPUT = {
    Input.PROVISIONAL: Input.SEND_PROVISIONAL,
    Input.SUCCESS: Input.SEND_SUCCESS,
    Input.FAILURE: Input.SEND_FAILURE,
}


# ---------------------------------------------------------------------------
# One transaction's mutable state


@dataclass(eq=False, slots=True)
class _Transaction:
    key: TxKey
    kind: Kind
    request: Request
    peer: Address  # destination of the request (client) or of responses (server)
    state: TxState = TxState.TERMINATED  # set by the initial step
    request_bytes: bytes = b""
    response: Response | None = None
    response_bytes: bytes | None = None
    ack_bytes: bytes | None = None
    # Timer -> heap token of its live entry; a heap entry is live only while its
    # token is still the one recorded here.
    timers: dict[Timer, tuple[float, int]] = field(default_factory=dict)
    intervals: dict[Timer, float] = field(default_factory=dict)
    ack_key: tuple[str, str, str, int] | None = None  # set once a 2xx is sent


@dataclass(frozen=True, slots=True)
class _Inputs:
    """What came with an input, for the actions that need it."""

    message: Request | Response | None = None
    source: Address | None = None
    cancels: TxKey | None = None


# ---------------------------------------------------------------------------
# The layer


class TransactionLayer:
    """All client and server transactions of one SIP element."""

    def __init__(
        self,
        t1: float = 0.5,
        t2: float = 4.0,
        t4: float = 5.0,
        *,
        linger: float | None = None,
    ) -> None:
        """`linger`, when given, caps the timers that only keep a finished
        transaction around to absorb retransmissions over UDP (D, I, J, K and
        RFC 6026's M).  RFC 3261 sizes them for the worst network (64*T1 = 32 s);
        on a loss-free network such as a loopback test lab nothing is retransmitted
        that late, and the cap lets the transaction count fall to zero in seconds.
        Timers that end a transaction because the peer went quiet (B, F, H, L)
        are never capped: they decide outcomes, not just bookkeeping."""
        if not 0 < t1 <= t2:
            raise LocalProtocolError("timers need 0 < T1 <= T2")
        if linger is not None and linger < 0:
            raise LocalProtocolError("linger must not be negative")
        self.t1 = t1
        self.t2 = t2
        self.t4 = t4
        self.linger = linger
        self._txs: dict[TxKey, _Transaction] = {}
        # 2xx ACKs carry a branch of their own; they are matched to the INVITE
        # server transaction by (Call-ID, From tag, To tag, CSeq number).
        self._ack_index: dict[tuple[str, str, str, int], _Transaction] = {}
        self._heap: list[tuple[float, int, _Transaction, Timer]] = []
        self._tokens = itertools.count()
        self._out: list[tuple[bytes, Address]] = []
        # Events produced where no event list can be returned (send_response);
        # handed out by the next receive or handle_timers.
        self._pending: list[Event] = []

    # ---- queries ------------------------------------------------------------

    def transaction_count(self) -> int:
        return len(self._txs)

    def state(self, key: TxKey) -> TxState | None:
        tx = self._txs.get(key)
        return None if tx is None else tx.state

    def timers(self, key: TxKey) -> dict[Timer, float]:
        """The running timers of a transaction and their deadlines (for tests
        and diagnostics)."""
        tx = self._txs.get(key)
        return {} if tx is None else {t: deadline for t, (deadline, _) in tx.timers.items()}

    def next_timer(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, token, tx, timer = heap[0]
            if self._live(tx, timer, token):
                return deadline
            heapq.heappop(heap)
        return None

    def outgoing(self) -> list[tuple[bytes, Address]]:
        out, self._out = self._out, []
        return out

    # ---- inputs -------------------------------------------------------------

    def receive(self, msg: Request | Response, source: Address, now: float) -> list[Event]:
        """A parsed message from the network.  Malformed input is dropped, never raised."""
        events = self._take_pending()
        try:
            if isinstance(msg, Request):
                self._receive_request(msg, source, now, events)
            else:
                self._receive_response(msg, source, now, events)
        except RemoteProtocolError:
            pass
        return events

    def handle_timers(self, now: float) -> list[Event]:
        events = self._take_pending()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, token, tx, timer = heapq.heappop(heap)
            if not self._live(tx, timer, token):
                continue
            del tx.timers[timer]
            self._apply(tx, timer, now, _Inputs(), events)
        return events

    def send_request(self, req: Request, dest: Address, now: float) -> TxKey:
        """Start a client transaction for `req`.  ACKs never have one (an ACK for
        a non-2xx is sent by the INVITE transaction, one for a 2xx by the TU with
        `send_stateless`)."""
        if req.method == "ACK":
            raise LocalProtocolError("an ACK has no client transaction; use send_stateless")
        try:
            branch = req.top_via.branch
        except RemoteProtocolError as exc:
            raise LocalProtocolError(f"request without a usable Via: {exc}") from None
        if branch is None:
            raise LocalProtocolError("a request needs a Via branch to start a transaction")
        key = TxKey(server=False, method=req.method, branch=branch)
        if key in self._txs:
            raise LocalProtocolError(f"a client transaction with branch {branch} exists")
        kind = Kind.INVITE_CLIENT if req.method == "INVITE" else Kind.NON_INVITE_CLIENT
        tx = _Transaction(key, kind, req, dest, request_bytes=req.to_bytes())
        self._txs[key] = tx
        self._start(tx, now, _Inputs(), [])
        return key

    def send_response(self, key: TxKey, resp: Response, now: float) -> None:
        """Send the TU's response on server transaction `key` (it goes to the
        `response_address` of the request).  Raises LocalProtocolError when the
        transaction is gone or has already sent what forbids this response."""
        tx = self._txs.get(key)
        if tx is None or not key.server:
            raise LocalProtocolError(f"no server transaction {key}")
        if not 100 <= resp.status <= 699:
            raise LocalProtocolError(f"status {resp.status} is not a SIP status code")
        try:
            same = resp.cseq == tx.request.cseq
        except RemoteProtocolError:
            same = False
        if not same:
            raise LocalProtocolError("the response's CSeq is not the request's")
        inp = _SEND_INPUT[_status_input(resp.status)]
        if (tx.state, inp) not in TABLES[tx.kind]:
            raise LocalProtocolError(
                f"cannot send {resp.status} in state {tx.state.value}"
                f" of an {tx.kind.value} transaction"
            )
        if inp is Input.SEND_SUCCESS and tx.kind is Kind.INVITE_SERVER:
            self._index_for_ack(tx, resp)
        self._apply(tx, inp, now, _Inputs(message=resp), self._pending)

    def send_stateless(self, msg: Request | Response, dest: Address) -> None:
        """Send without a transaction: ACK for a 2xx, a stateless proxy's
        forwarding, an answer to a request that could not be parsed."""
        self._out.append((msg.to_bytes(), dest))

    # ---- matching -------------------------------------------------------------

    def _receive_response(
        self, resp: Response, source: Address, now: float, events: list[Event]
    ) -> None:
        via = resp.top_via
        tx = None
        if via.branch is not None:
            tx = self._txs.get(TxKey(server=False, method=resp.cseq.method, branch=via.branch))
        # Section 18.1.2: a response whose sent-by is not the one we put in the
        # request is not ours, whatever its branch says.
        if tx is None or tx.request.top_via.sent_by != via.sent_by:
            events.append(StrayResponse(resp, source))
            return
        self._apply(tx, _status_input(resp.status), now, _Inputs(message=resp), events)

    def _receive_request(
        self, req: Request, source: Address, now: float, events: list[Event]
    ) -> None:
        via = req.top_via
        if req.method == "ACK":
            tx = self._find_ack_target(req, via)
            if tx is None:
                events.append(AckReceived(req, source))
            else:
                self._apply(tx, Input.ACK, now, _Inputs(message=req, source=source), events)
            return
        key = server_key(req, via)
        tx = self._txs.get(key)
        if tx is not None:
            self._apply(tx, Input.REQUEST, now, _Inputs(message=req, source=source), events)
            return
        cancels = None
        if req.method == "CANCEL":
            # Section 9.2: the CANCEL matches the INVITE whose transaction it
            # would match if its method were INVITE.
            invite_key = server_key(req, via, method="INVITE")
            if invite_key in self._txs:
                cancels = invite_key
        kind = Kind.INVITE_SERVER if req.method == "INVITE" else Kind.NON_INVITE_SERVER
        tx = _Transaction(key, kind, req, response_address(req, source))
        self._txs[key] = tx
        self._start(tx, now, _Inputs(message=req, source=source, cancels=cancels), events)

    def _find_ack_target(self, ack: Request, via: Via) -> _Transaction | None:
        to_tag = ack.to.tag or ""
        if is_rfc3261_branch(via.branch):
            tx = self._txs.get(server_key(ack, via, method="INVITE"))
        else:
            # Section 17.2.3 for RFC 2543: the ACK's To tag is the one of our
            # response, which the INVITE had only if it was sent in a dialog.
            tx = None
            for tag in dict.fromkeys((to_tag, "")):
                candidate = self._txs.get(server_key(ack, via, method="INVITE", to_tag=tag))
                if candidate is not None and _response_to_tag(candidate) == to_tag:
                    tx = candidate
                    break
        if tx is None:
            from_tag = ack.from_.tag or ""
            tx = self._ack_index.get((ack.call_id, from_tag, to_tag, ack.cseq.seq))
        return tx

    def _index_for_ack(self, tx: _Transaction, resp: Response) -> None:
        try:
            ack_key = (
                tx.request.call_id,
                tx.request.from_.tag or "",
                resp.to.tag or "",
                tx.request.cseq.seq,
            )
        except RemoteProtocolError as exc:
            raise LocalProtocolError(f"cannot send this 2xx: {exc}") from None
        if tx.ack_key is not None and tx.ack_key != ack_key:
            # A second 2xx with another To tag: the first one's ACK still counts.
            return
        tx.ack_key = ack_key
        self._ack_index[ack_key] = tx

    # ---- running the machines ---------------------------------------------------

    def _start(self, tx: _Transaction, now: float, ctx: _Inputs, events: list[Event]) -> None:
        self._run(tx, INITIAL[tx.kind], now, ctx, events)

    def _apply(
        self, tx: _Transaction, inp: StepInput, now: float, ctx: _Inputs, events: list[Event]
    ) -> None:
        step = TABLES[tx.kind].get((tx.state, inp))
        if step is not None:  # no entry: the input is absorbed (see module docstring)
            self._run(tx, step, now, ctx, events)

    def _run(
        self, tx: _Transaction, step: Step, now: float, ctx: _Inputs, events: list[Event]
    ) -> None:
        for timer in step.stop:
            tx.timers.pop(timer, None)
        tx.state = step.next
        for action in step.actions:
            self._do(tx, action, ctx, events)
        if step.next is TxState.TERMINATED:
            self._terminate(tx, events)
            return
        for timer in step.start:
            self._arm(tx, timer, now)

    def _do(self, tx: _Transaction, action: Action, ctx: _Inputs, events: list[Event]) -> None:
        match action:
            case Action.SEND_REQUEST:
                self._out.append((tx.request_bytes, tx.peer))
            case Action.DELIVER_REQUEST:
                assert isinstance(ctx.message, Request)
                assert ctx.source is not None
                events.append(RequestReceived(tx.key, ctx.message, ctx.source, ctx.cancels))
            case Action.DELIVER_RESPONSE:
                assert isinstance(ctx.message, Response)
                events.append(ResponseReceived(tx.key, ctx.message))
            case Action.SEND_ACK:
                if tx.ack_bytes is None:
                    assert isinstance(ctx.message, Response)
                    tx.ack_bytes = make_ack_for_non2xx(tx.request, ctx.message).to_bytes()
                # Section 17.1.1.3: to the address the INVITE went to.
                self._out.append((tx.ack_bytes, tx.peer))
            case Action.SEND_RESPONSE:
                assert isinstance(ctx.message, Response)
                tx.response = ctx.message
                tx.response_bytes = ctx.message.to_bytes()
                self._out.append((tx.response_bytes, tx.peer))
            case Action.RESEND_RESPONSE:
                if tx.response_bytes is not None:
                    self._out.append((tx.response_bytes, tx.peer))
            case Action.DELIVER_ACK:
                assert isinstance(ctx.message, Request)
                assert ctx.source is not None
                events.append(AckReceived(ctx.message, ctx.source))
            case Action.REPORT_TIMEOUT:
                events.append(TransactionTimeout(tx.key, tx.request))
            case Action.REPORT_ACK_TIMEOUT:
                events.append(AckTimeout(tx.key))

    def _terminate(self, tx: _Transaction, events: list[Event]) -> None:
        tx.timers.clear()
        if self._txs.get(tx.key) is tx:
            del self._txs[tx.key]
        if tx.ack_key is not None and self._ack_index.get(tx.ack_key) is tx:
            del self._ack_index[tx.ack_key]
        events.append(TransactionTerminated(tx.key))

    # ---- timers -------------------------------------------------------------

    def _arm(self, tx: _Transaction, timer: Timer, now: float) -> None:
        interval = self._interval(tx, timer)
        if interval is None:
            return
        tx.intervals[timer] = interval
        token = next(self._tokens)
        tx.timers[timer] = (now + interval, token)
        heapq.heappush(self._heap, (now + interval, token, tx, timer))

    def _interval(self, tx: _Transaction, timer: Timer) -> float | None:
        """How long `timer` runs this time; None when it is not used on this transport.

        Values from RFC 3261 table 4 and RFC 6026 (L and M).
        """
        reliable = tx.peer.reliable
        if timer in _RETRANSMIT_TIMERS and reliable:
            return None
        previous = tx.intervals.get(timer)
        t1, t2 = self.t1, self.t2
        match timer:
            case Timer.A:
                # 17.1.1.2: T1, doubling each time, no cap (B stops it at 64*T1).
                return t1 if previous is None else 2 * previous
            case Timer.E:
                # 17.1.2.2: doubling up to T2 in Trying; T2 flat in Proceeding.
                if previous is None:
                    return t1
                return t2 if tx.state is TxState.PROCEEDING else min(2 * previous, t2)
            case Timer.G:
                # 17.2.1 for a non-2xx; 13.3.1.4 gives the 2xx the same schedule.
                return t1 if previous is None else min(2 * previous, t2)
            case Timer.D:
                # "At least 32 seconds" for UDP: long enough to absorb every
                # retransmission of the final response (the server's timer H).
                return 0.0 if reliable else self._lingering(max(32.0, 64 * t1))
            case Timer.I | Timer.K:
                return 0.0 if reliable else self._lingering(self.t4)
            case Timer.J:
                return 0.0 if reliable else self._lingering(64 * t1)
            case Timer.M:
                # RFC 6026 section 8.4: only absorbs retransmitted 2xx responses.
                return self._lingering(64 * t1)
            case Timer.B | Timer.F | Timer.H | Timer.L:
                return 64 * t1

    def _lingering(self, interval: float) -> float:
        return interval if self.linger is None else min(interval, self.linger)

    def _live(self, tx: _Transaction, timer: Timer, token: int) -> bool:
        armed = tx.timers.get(timer)
        return armed is not None and armed[1] == token

    def _take_pending(self) -> list[Event]:
        events, self._pending = self._pending, []
        return events


def server_key(
    req: Request, via: Via | None = None, *, method: str | None = None, to_tag: str | None = None
) -> TxKey:
    """The server transaction key of `req` (RFC 3261 section 17.2.3).

    `method` overrides the request's (ACK and CANCEL look for their INVITE).
    `to_tag` overrides the To tag used by RFC 2543 matching.
    """
    via = via or req.top_via
    method = method or req.method
    if method == "ACK":
        method = "INVITE"
    branch = via.branch
    if is_rfc3261_branch(branch):
        assert branch is not None
        return TxKey(server=True, method=method, branch=branch, sent_by=via.sent_by)
    # RFC 2543: the request is identified by its Request-URI, tags, Call-ID,
    # CSeq number and top Via.  The received/rport stamps are left out so that a
    # retransmission from another port of the same NAT still matches.
    bare_via = Via(
        via.transport,
        via.host.lower(),
        via.port,
        remove_param(remove_param(via.params, "received"), "rport"),
        via.protocol,
    )
    legacy = (
        str(req.uri),
        req.from_.tag or "",
        (req.to.tag or "") if to_tag is None else to_tag,
        req.call_id,
        str(req.cseq.seq),
        str(bare_via),
    )
    return TxKey(server=True, method=method, branch="", sent_by=via.sent_by, legacy=legacy)


def _response_to_tag(tx: _Transaction) -> str | None:
    if tx.response is None:
        return None
    try:
        return tx.response.to.tag or ""
    except RemoteProtocolError:
        return None
