"""A fake clock and an in-memory network for testing the sans-IO SIP core.

Endpoints each own a `TransactionLayer`.  Whatever a layer queues in
`outgoing()` is serialized bytes; the network carries those bytes, may lose,
duplicate, delay or reorder them (UDP only: a reliable transport delivers every
message once and in order), and hands them to the destination parsed afresh by
`parse_message`, exactly as a socket would.  Time only moves when `run` moves
it, jumping to the next delivery or timer, so a 32-second timeout takes
microseconds.

Tests attach a `handler` to an endpoint to play its transaction user: it gets
every event and may call the layer back (send a response, an ACK...).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from teleoffice.sip.builders import make_request, new_branch, new_call_id, new_tag
from teleoffice.sip.errors import ParseError
from teleoffice.sip.headers import NameAddr, Via
from teleoffice.sip.message import Request, Response, parse_message
from teleoffice.sip.transaction import Address, Event, TransactionLayer
from teleoffice.sip.uri import SipUri

Message = Request | Response
Match = Callable[[Message], bool]


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def first_line(data: bytes) -> str:
    return data.split(b"\r\n", 1)[0].decode("utf-8", "replace")


def is_method(method: str) -> Match:
    return lambda m: isinstance(m, Request) and m.method == method


def is_status(status: int, method: str | None = None) -> Match:
    def match(m: Message) -> bool:
        if not isinstance(m, Response) or m.status != status:
            return False
        return method is None or m.cseq.method == method

    return match


@dataclass
class Packet:
    """One message put on the wire, and what became of it."""

    time: float
    source: str
    dest: str
    data: bytes
    fate: str  # "delivered", "dropped", "undeliverable"

    @property
    def line(self) -> str:
        return first_line(self.data)


@dataclass
class Rule:
    """Do something to the next `count` messages that `match`."""

    match: Match
    count: int
    action: str  # "drop" or "delay"
    delay: float = 0.0


Handler = Callable[["Endpoint", Event], None]


@dataclass(eq=False)
class Endpoint:
    name: str
    host: str
    port: int
    layer: TransactionLayer
    clock: FakeClock
    handler: Handler | None = None
    events: list[tuple[float, Event]] = field(default_factory=list)

    def address(self, transport: str = "UDP") -> Address:
        return Address(transport, self.host, self.port)

    def via(self, transport: str = "UDP", branch: str | None = None) -> Via:
        return Via(transport, self.host, self.port, (("branch", branch or new_branch()),))

    def uri(self, user: str) -> SipUri:
        return SipUri(host=self.host, port=self.port, user=user)

    def of_type(self, kind: type[Event]) -> list[Event]:
        return [event for _, event in self.events if isinstance(event, kind)]

    def request_to(
        self,
        peer: Endpoint,
        method: str = "INVITE",
        *,
        transport: str = "UDP",
        cseq: int = 1,
        body: bytes = b"",
    ) -> Request:
        """A fresh out-of-dialog request from this endpoint to `peer`."""
        return make_request(
            method,
            peer.uri("bob"),
            from_=NameAddr(self.uri("alice"), params=(("tag", new_tag()),)),
            to=NameAddr(peer.uri("bob")),
            call_id=new_call_id(self.host),
            cseq=cseq,
            via=self.via(transport),
            contact=NameAddr(self.uri("alice")),
            body=body,
        )


class SimNet:
    def __init__(
        self,
        clock: FakeClock | None = None,
        *,
        rng: random.Random | None = None,
        loss: float = 0.0,
        duplicate: float = 0.0,
        latency: float = 0.01,
        jitter: float = 0.0,
        t1: float = 0.5,
        t2: float = 4.0,
        t4: float = 5.0,
    ) -> None:
        self.clock = clock or FakeClock()
        self.rng = rng or random.Random(0)
        self.loss = loss
        self.duplicate = duplicate
        self.latency = latency
        self.jitter = jitter
        self.timers = (t1, t2, t4)
        self.endpoints: dict[tuple[str, int], Endpoint] = {}
        self.log: list[Packet] = []
        self.rules: list[Rule] = []
        self.chaos_until = float("inf")  # loss/dup/jitter apply before this time only
        self._flight: list[tuple[float, int, bytes, Address, Endpoint, Endpoint]] = []
        self._calls: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()

    # ---- set-up -------------------------------------------------------------

    def add(
        self, name: str, host: str, port: int = 5060, handler: Handler | None = None
    ) -> Endpoint:
        t1, t2, t4 = self.timers
        endpoint = Endpoint(name, host, port, TransactionLayer(t1, t2, t4), self.clock, handler)
        self.endpoints[(host, port)] = endpoint
        return endpoint

    def drop_next(self, match: Match, count: int = 1) -> None:
        self.rules.append(Rule(match, count, "drop"))

    def delay_next(self, match: Match, delay: float, count: int = 1) -> None:
        self.rules.append(Rule(match, count, "delay", delay))

    def call_at(self, when: float, action: Callable[[], None]) -> None:
        """Run `action` (a TU decision such as "answer now") at simulated time `when`."""
        heapq.heappush(self._calls, (when, next(self._seq), action))

    # ---- traffic ------------------------------------------------------------

    def inject(self, data: bytes, source: Endpoint, dest: Endpoint, transport: str = "UDP") -> None:
        """Put raw bytes on the wire now, as if `source` had sent them (replays)."""
        self._send(source, data, dest.address(transport))

    def pump(self) -> None:
        """Move every endpoint's queued output onto the wire."""
        for endpoint in list(self.endpoints.values()):
            for data, dest in endpoint.layer.outgoing():
                self._send(endpoint, data, dest)

    def _send(self, source: Endpoint, data: bytes, dest: Address) -> None:
        now = self.clock.now
        target = self.endpoints.get((dest.host, dest.port))
        dest_name = target.name if target else f"{dest.host}:{dest.port}"
        if target is None:
            self.log.append(Packet(now, source.name, dest_name, data, "undeliverable"))
            return
        delay = self.latency
        copies = 1
        if not dest.reliable:
            rule = self._rule_for(data, dest)
            if rule is not None and rule.action == "drop":
                self.log.append(Packet(now, source.name, dest_name, data, "dropped"))
                return
            if rule is not None:
                delay += rule.delay
            if now < self.chaos_until:
                if self.rng.random() < self.loss:
                    self.log.append(Packet(now, source.name, dest_name, data, "dropped"))
                    return
                if self.rng.random() < self.duplicate:
                    copies = 2
                delay += self.rng.uniform(0, self.jitter)
        self.log.append(Packet(now, source.name, dest_name, data, "delivered"))
        src_addr = Address(dest.transport, source.host, source.port)
        for copy in range(copies):
            extra = copy * self.rng.uniform(0, max(self.jitter, self.latency))
            heapq.heappush(
                self._flight, (now + delay + extra, next(self._seq), data, src_addr, source, target)
            )

    def _rule_for(self, data: bytes, dest: Address) -> Rule | None:
        if not self.rules:
            return None
        msg = parse_message(data, stream=dest.reliable)
        for rule in self.rules:
            if rule.count > 0 and rule.match(msg):
                rule.count -= 1
                return rule
        return None

    # ---- time ---------------------------------------------------------------

    def next_time(self) -> float | None:
        times = [t for e in self.endpoints.values() if (t := e.layer.next_timer()) is not None]
        if self._flight:
            times.append(self._flight[0][0])
        if self._calls:
            times.append(self._calls[0][0])
        return min(times) if times else None

    def run(self, until: float | None = None, *, max_steps: int = 100_000) -> float:
        """Deliver messages and fire timers in time order, up to `until` (or until
        nothing is left to do).  Returns the clock."""
        for _ in range(max_steps):
            self.pump()
            due = self.next_time()
            if due is None or (until is not None and due > until):
                break
            self.clock.now = max(self.clock.now, due)
            self._step()
        else:
            raise AssertionError("simulation did not settle")
        if until is not None:
            self.clock.now = max(self.clock.now, until)
        return self.clock.now

    def advance(self, seconds: float) -> float:
        return self.run(self.clock.now + seconds)

    def idle(self) -> bool:
        self.pump()
        return self.next_time() is None

    def _step(self) -> None:
        now = self.clock.now
        while self._flight and self._flight[0][0] <= now:
            _, _, data, src_addr, _, target = heapq.heappop(self._flight)
            try:
                msg = parse_message(data, stream=src_addr.reliable)
            except ParseError:
                continue
            self._dispatch(target, target.layer.receive(msg, src_addr, now))
            self.pump()
        for endpoint in list(self.endpoints.values()):
            self._dispatch(endpoint, endpoint.layer.handle_timers(now))
            self.pump()
        while self._calls and self._calls[0][0] <= now:
            heapq.heappop(self._calls)[2]()
            self.pump()

    def _dispatch(self, endpoint: Endpoint, events: list[Event]) -> None:
        for event in events:
            endpoint.events.append((self.clock.now, event))
            if endpoint.handler is not None:
                endpoint.handler(endpoint, event)

    # ---- inspection ---------------------------------------------------------

    def sent(self, prefix: str, source: str | None = None, fate: str | None = None) -> list[Packet]:
        """Packets whose first line starts with `prefix` ("INVITE", "SIP/2.0 200")."""
        return [
            p
            for p in self.log
            if p.line.startswith(prefix)
            and (source is None or p.source == source)
            and (fate is None or p.fate == fate)
        ]
