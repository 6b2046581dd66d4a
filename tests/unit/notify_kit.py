"""A transaction layer under a notifier (RFC 6665: MWI, presence, dialog, or the
generic machinery itself), shared by their unit tests.

The bench feeds what a phone sends into the real `TransactionLayer`, hands the
transaction events to the notifier under test and collects what went out.
"""

from __future__ import annotations

from typing import Protocol

from teleoffice.sip.builders import make_response
from teleoffice.sip.message import Request, Response, parse_message
from teleoffice.sip.transaction import (
    Address,
    Event,
    RequestReceived,
    ResponseReceived,
    TransactionLayer,
    TransactionTimeout,
    TxKey,
)
from tests.unit.sipkit import split_sent

LOCAL = Address("UDP", "192.0.2.1", 5060)
PHONE = Address("UDP", "198.51.100.7", 5062)


class Notifying(Protocol):
    """The client-transaction side every notifier has (its NOTIFYs)."""

    def owns(self, key: TxKey) -> bool: ...

    def response(self, key: TxKey, response: Response, now: float) -> object: ...

    def timeout(self, key: TxKey, now: float) -> object: ...

    def handle_timers(self, now: float) -> object: ...


class NotifierBench:
    """Subclasses set `notifier` to what they test, built on `self.tx`."""

    notifier: Notifying

    def __init__(self) -> None:
        self.tx = TransactionLayer()

    def out(self) -> tuple[list[Response], list[Request]]:
        """Everything sent since the last call: responses, then requests."""
        return split_sent(self.tx.outgoing())

    def received(self, data: bytes | str, now: float, source: Address = PHONE) -> RequestReceived:
        """A request from the phone, through the transaction layer."""
        request = parse_message(data.encode() if isinstance(data, str) else data)
        assert isinstance(request, Request)
        [event] = self.tx.receive(request, source, now)
        assert isinstance(event, RequestReceived)
        return event

    def answer(
        self, notify: Request, status: int, now: float, headers: list[tuple[str, str]] | None = None
    ) -> list[Request]:
        """The phone answers one of our NOTIFYs; what we sent in reply."""
        response = make_response(notify, status, headers=headers or [])
        self._deliver(self.tx.receive(response, PHONE, now), now)
        return self.out()[1]

    def tick(self, now: float) -> list[Request]:
        """Time passes: retransmissions, timeouts, refresh and expiry timers."""
        self._deliver(self.tx.handle_timers(now), now)
        self.notifier.handle_timers(now)
        return self.out()[1]

    def _deliver(self, events: list[Event], now: float) -> None:
        for event in events:
            if isinstance(event, ResponseReceived):
                assert self.notifier.owns(event.key)
                self.notifier.response(event.key, event.response, now)
            elif isinstance(event, TransactionTimeout):
                self.notifier.timeout(event.key, now)
