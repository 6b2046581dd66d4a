"""Tests of sip.transaction: the four RFC 3261 section 17 machines (+ RFC 6026).

The first part checks the tables themselves against transitions written out
here from the RFC figures, then drives every transition through the public API
and checks what goes on the wire and what the TU hears.  The second part runs
whole exchanges between two layers over the simulated network (lossy,
duplicating, reordering UDP; TCP), and a hypothesis test throws random
schedules at it.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from teleoffice.sip.builders import (
    make_ack_for_non2xx,
    make_cancel,
    make_request,
    make_response,
    new_branch,
)
from teleoffice.sip.errors import LocalProtocolError
from teleoffice.sip.headers import CSeq, NameAddr, Via
from teleoffice.sip.message import Headers, Request, Response, parse_message
from teleoffice.sip.transaction import (
    TABLES,
    AckReceived,
    AckTimeout,
    Address,
    Event,
    Input,
    Kind,
    RequestReceived,
    ResponseReceived,
    StepInput,
    StrayResponse,
    Timer,
    TransactionLayer,
    TransactionTerminated,
    TransactionTimeout,
    TxKey,
    TxState,
    is_rfc3261_branch,
    response_address,
)
from teleoffice.sip.uri import SipUri
from tests.unit.simnet import Endpoint, SimNet, is_method, is_status

S = TxState
I = Input  # noqa: E741
T = Timer
RFC4475 = Path("/work/shared/conformance/rfc4475")
PEER = Address("UDP", "192.0.2.2", 5060)


# ---------------------------------------------------------------------------
# The tables, against the RFC figures

# (state, input) -> (next state, messages sent, events reported), written from
# RFC 3261 figures 5-8 and the Accepted state of RFC 6026, for UDP.
TO, TT, RR = "TransactionTimeout", "TransactionTerminated", "ResponseReceived"
EXPECTED: dict[Kind, dict[tuple[TxState, StepInput], tuple[TxState, int, tuple[str, ...]]]] = {
    Kind.INVITE_CLIENT: {
        (S.CALLING, T.A): (S.CALLING, 1, ()),
        (S.CALLING, T.B): (S.TERMINATED, 0, (TO, TT)),
        (S.CALLING, I.PROVISIONAL): (S.PROCEEDING, 0, (RR,)),
        (S.CALLING, I.SUCCESS): (S.ACCEPTED, 0, (RR,)),
        (S.CALLING, I.FAILURE): (S.COMPLETED, 1, (RR,)),  # the ACK
        (S.PROCEEDING, I.PROVISIONAL): (S.PROCEEDING, 0, (RR,)),
        (S.PROCEEDING, I.SUCCESS): (S.ACCEPTED, 0, (RR,)),
        (S.PROCEEDING, I.FAILURE): (S.COMPLETED, 1, (RR,)),
        (S.COMPLETED, I.FAILURE): (S.COMPLETED, 1, ()),
        (S.COMPLETED, T.D): (S.TERMINATED, 0, (TT,)),
        (S.ACCEPTED, I.SUCCESS): (S.ACCEPTED, 0, (RR,)),
        (S.ACCEPTED, T.M): (S.TERMINATED, 0, (TT,)),
    },
    Kind.NON_INVITE_CLIENT: {
        (S.TRYING, T.E): (S.TRYING, 1, ()),
        (S.TRYING, T.F): (S.TERMINATED, 0, (TO, TT)),
        (S.TRYING, I.PROVISIONAL): (S.PROCEEDING, 0, (RR,)),
        (S.TRYING, I.SUCCESS): (S.COMPLETED, 0, (RR,)),
        (S.TRYING, I.FAILURE): (S.COMPLETED, 0, (RR,)),
        (S.PROCEEDING, T.E): (S.PROCEEDING, 1, ()),
        (S.PROCEEDING, T.F): (S.TERMINATED, 0, (TO, TT)),
        (S.PROCEEDING, I.PROVISIONAL): (S.PROCEEDING, 0, (RR,)),
        (S.PROCEEDING, I.SUCCESS): (S.COMPLETED, 0, (RR,)),
        (S.PROCEEDING, I.FAILURE): (S.COMPLETED, 0, (RR,)),
        (S.COMPLETED, T.K): (S.TERMINATED, 0, (TT,)),
    },
    Kind.INVITE_SERVER: {
        (S.PROCEEDING, I.REQUEST): (S.PROCEEDING, 1, ()),
        (S.PROCEEDING, I.SEND_PROVISIONAL): (S.PROCEEDING, 1, ()),
        (S.PROCEEDING, I.SEND_SUCCESS): (S.ACCEPTED, 1, ()),
        (S.PROCEEDING, I.SEND_FAILURE): (S.COMPLETED, 1, ()),
        (S.COMPLETED, I.REQUEST): (S.COMPLETED, 1, ()),
        (S.COMPLETED, T.G): (S.COMPLETED, 1, ()),
        (S.COMPLETED, T.H): (S.TERMINATED, 0, (TO, TT)),
        (S.COMPLETED, I.ACK): (S.CONFIRMED, 0, ()),
        (S.CONFIRMED, T.I): (S.TERMINATED, 0, (TT,)),
        (S.ACCEPTED, I.REQUEST): (S.ACCEPTED, 1, ()),
        (S.ACCEPTED, T.G): (S.ACCEPTED, 1, ()),
        (S.ACCEPTED, I.SEND_SUCCESS): (S.ACCEPTED, 1, ()),
        (S.ACCEPTED, I.ACK): (S.CONFIRMED, 0, ("AckReceived",)),
        (S.ACCEPTED, T.L): (S.TERMINATED, 0, ("AckTimeout", TT)),
    },
    Kind.NON_INVITE_SERVER: {
        (S.TRYING, I.SEND_PROVISIONAL): (S.PROCEEDING, 1, ()),
        (S.TRYING, I.SEND_SUCCESS): (S.COMPLETED, 1, ()),
        (S.TRYING, I.SEND_FAILURE): (S.COMPLETED, 1, ()),
        (S.PROCEEDING, I.REQUEST): (S.PROCEEDING, 1, ()),
        (S.PROCEEDING, I.SEND_PROVISIONAL): (S.PROCEEDING, 1, ()),
        (S.PROCEEDING, I.SEND_SUCCESS): (S.COMPLETED, 1, ()),
        (S.PROCEEDING, I.SEND_FAILURE): (S.COMPLETED, 1, ()),
        (S.COMPLETED, I.REQUEST): (S.COMPLETED, 1, ()),
        (S.COMPLETED, T.J): (S.TERMINATED, 0, (TT,)),
    },
}

# How to reach each state through the public API.
PATHS: dict[Kind, dict[TxState, list[StepInput]]] = {
    Kind.INVITE_CLIENT: {
        S.CALLING: [],
        S.PROCEEDING: [I.PROVISIONAL],
        S.COMPLETED: [I.FAILURE],
        S.ACCEPTED: [I.SUCCESS],
    },
    Kind.NON_INVITE_CLIENT: {
        S.TRYING: [],
        S.PROCEEDING: [I.PROVISIONAL],
        S.COMPLETED: [I.SUCCESS],
    },
    Kind.INVITE_SERVER: {
        S.PROCEEDING: [I.SEND_PROVISIONAL],
        S.COMPLETED: [I.SEND_FAILURE],
        S.CONFIRMED: [I.SEND_FAILURE, I.ACK],
        S.ACCEPTED: [I.SEND_SUCCESS],
    },
    Kind.NON_INVITE_SERVER: {
        S.TRYING: [],
        S.PROCEEDING: [I.SEND_PROVISIONAL],
        S.COMPLETED: [I.SEND_SUCCESS],
    },
}
NETWORK_INPUTS = {
    Kind.INVITE_CLIENT: (I.PROVISIONAL, I.SUCCESS, I.FAILURE),
    Kind.NON_INVITE_CLIENT: (I.PROVISIONAL, I.SUCCESS, I.FAILURE),
    Kind.INVITE_SERVER: (I.REQUEST, I.ACK),
    Kind.NON_INVITE_SERVER: (I.REQUEST,),
}
TU_INPUTS = (I.SEND_PROVISIONAL, I.SEND_SUCCESS, I.SEND_FAILURE)
STATUS = {
    I.PROVISIONAL: 180,
    I.SUCCESS: 200,
    I.FAILURE: 486,
    I.SEND_PROVISIONAL: 180,
    I.SEND_SUCCESS: 200,
    I.SEND_FAILURE: 486,
}


def wire(msg: Request | Response, transport: str = "UDP") -> Request | Response:
    """What the peer sees: the message serialized and parsed again."""
    return parse_message(msg.to_bytes(), stream=transport != "UDP")


def as_request(msg: Request | Response) -> Request:
    assert isinstance(msg, Request)
    return msg


def as_response(msg: Request | Response) -> Response:
    assert isinstance(msg, Response)
    return msg


def new_request(method: str, transport: str = "UDP", branch: str | None = None) -> Request:
    return make_request(
        method,
        SipUri(host="192.0.2.1", user="bob"),
        from_=addr("alice", "192.0.2.2", tag="ft"),
        to=addr("bob", "192.0.2.1"),
        call_id="call-1@192.0.2.2",
        cseq=1,
        via=Via(transport, "192.0.2.2", 5060, (("branch", branch or new_branch()),)),
        contact=addr("alice", "192.0.2.2"),
    )


def addr(user: str, host: str, tag: str | None = None) -> NameAddr:
    return NameAddr(SipUri(host=host, user=user), params=(("tag", tag),) if tag else ())


class Harness:
    """One transaction of `kind`, driven input by input through the public API."""

    def __init__(self, kind: Kind, transport: str = "UDP", linger: float | None = None) -> None:
        self.kind = kind
        self.layer = TransactionLayer(linger=linger)
        self.now = 0.0
        self.peer = Address(transport, PEER.host, PEER.port)
        self.transport = transport
        self.client = kind in (Kind.INVITE_CLIENT, Kind.NON_INVITE_CLIENT)
        method = "INVITE" if kind in (Kind.INVITE_CLIENT, Kind.INVITE_SERVER) else "OPTIONS"
        self.last_response: Response | None = None
        self.request = new_request(method, transport)
        if self.client:
            self.key = self.layer.send_request(self.request, self.peer, self.now)
            (data, dest), *_ = self.layer.outgoing()
            assert dest == self.peer
            self.seen_by_peer = as_request(parse_message(data, stream=transport != "UDP"))
        else:
            self.request_bytes = self.request.to_bytes()
            events = self.layer.receive(self.arrival(), self.peer, self.now)
            assert [type(e) for e in events] == [RequestReceived]
            assert isinstance(events[0], RequestReceived)
            self.key = events[0].key

    def arrival(self) -> Request:
        return as_request(parse_message(self.request_bytes, stream=self.transport != "UDP"))

    @property
    def state(self) -> TxState:
        return self.layer.state(self.key) or S.TERMINATED

    def apply(self, inp: StepInput) -> tuple[list[bytes], list[Event]]:
        self.layer.outgoing()
        events: list[Event]
        if isinstance(inp, Timer):
            events = self.fire(inp)
        elif self.client:
            resp = make_response(self.seen_by_peer, STATUS[inp], to_tag="remote")
            events = self.layer.receive(wire(resp, self.transport), self.peer, self.now)
        elif inp is I.REQUEST:
            events = self.layer.receive(self.arrival(), self.peer, self.now)
        elif inp is I.ACK:
            events = self.layer.receive(wire(self.ack(), self.transport), self.peer, self.now)
        else:
            resp = make_response(self.request, STATUS[inp], to_tag="local")
            self.layer.send_response(self.key, resp, self.now)
            self.last_response = resp
            events = []
        return [data for data, _ in self.layer.outgoing()], events

    def ack(self) -> Request:
        last = self.last_response
        if last is not None and last.status < 200:
            last = None
        if last is not None and last.status >= 300:
            return make_ack_for_non2xx(self.request, last)
        # The ACK for a 2xx: a request of its own with a new branch.  With no
        # final response yet, an ACK on the INVITE's branch.
        branch = new_branch() if last is not None else self.request.top_via.branch
        return make_request(
            "ACK",
            self.request.uri,
            from_=self.request.from_,
            to=last.to if last is not None else self.request.to,
            call_id=self.request.call_id,
            cseq=self.request.cseq.seq,
            via=Via(self.transport, "192.0.2.2", 5060, (("branch", branch or ""),)),
        )

    def fire(self, timer: Timer) -> list[Event]:
        deadline = self.layer.timers(self.key)[timer]
        # Let earlier timers (retransmissions) run first, then fire this one alone.
        while (due := self.layer.next_timer()) is not None and due < deadline:
            self.layer.handle_timers(due)
        self.layer.outgoing()
        self.now = deadline
        return self.layer.handle_timers(deadline)


def harness_in(
    kind: Kind, state: TxState, transport: str = "UDP", linger: float | None = None
) -> Harness:
    h = Harness(kind, transport, linger)
    for inp in PATHS[kind][state]:
        h.apply(inp)
    assert h.state is state
    return h


ALL_TRANSITIONS = [
    pytest.param(kind, state, inp, id=f"{kind.name}-{state.name}-{inp.name}")
    for kind, table in TABLES.items()
    for (state, inp) in table
]


@pytest.mark.parametrize("kind", list(Kind))
def test_tables_match_the_rfc_figures(kind: Kind) -> None:
    table = TABLES[kind]
    assert {k: step.next for k, step in table.items()} == {
        k: nxt for k, (nxt, _, _) in EXPECTED[kind].items()
    }


@pytest.mark.parametrize(("kind", "state", "inp"), ALL_TRANSITIONS)
def test_every_transition_through_the_api(kind: Kind, state: TxState, inp: StepInput) -> None:
    expected_state, expected_sent, expected_events = EXPECTED[kind][(state, inp)]
    h = harness_in(kind, state)
    sent, events = h.apply(inp)
    assert h.state is expected_state
    assert len(sent) == expected_sent
    assert tuple(type(e).__name__ for e in events) == expected_events
    if expected_state is S.TERMINATED:
        assert h.layer.transaction_count() == 0
        assert h.layer.next_timer() is None


@pytest.mark.parametrize("kind", list(Kind))
def test_inputs_without_an_entry_are_absorbed_or_refused(kind: Kind) -> None:
    table = TABLES[kind]
    for state in PATHS[kind]:
        for inp in NETWORK_INPUTS[kind]:
            if (state, inp) in table:
                continue
            h = harness_in(kind, state)
            sent, events = h.apply(inp)
            assert (sent, events, h.state) == ([], [], state), (state, inp)
        if kind in (Kind.INVITE_SERVER, Kind.NON_INVITE_SERVER):
            for inp in TU_INPUTS:
                if (state, inp) in table:
                    continue
                h = harness_in(kind, state)
                with pytest.raises(LocalProtocolError):
                    h.apply(inp)
                assert h.state is state


@pytest.mark.parametrize("transport", ["UDP", "TCP"])
@pytest.mark.parametrize("kind", list(Kind))
def test_running_timers_are_the_states_timer_inputs(kind: Kind, transport: str) -> None:
    retransmit = {T.A, T.E, T.G}
    for state in PATHS[kind]:
        h = harness_in(kind, state, transport)
        expected = {inp for (s, inp) in TABLES[kind] if s is state and isinstance(inp, Timer)}
        if transport == "TCP":
            expected -= retransmit
        assert set(h.layer.timers(h.key)) == expected, state


# ---------------------------------------------------------------------------
# Timer values


def test_timer_a_doubles_and_b_fires_at_64_t1() -> None:
    layer = TransactionLayer()
    key = layer.send_request(new_request("INVITE"), PEER, 0.0)
    sends = [0.0]
    layer.outgoing()
    events: list[Event] = []
    while (due := layer.next_timer()) is not None:
        events += layer.handle_timers(due)
        sends += [due] * len(layer.outgoing())
    assert sends == [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert [type(e) for e in events] == [TransactionTimeout, TransactionTerminated]
    assert layer.state(key) is None


def test_timer_e_caps_at_t2_and_runs_at_t2_in_proceeding() -> None:
    layer = TransactionLayer(t1=0.5, t2=4.0)
    key = layer.send_request(new_request("OPTIONS"), PEER, 0.0)
    layer.outgoing()
    sends: list[float] = []
    while (due := layer.next_timer()) is not None and due < 12:
        layer.handle_timers(due)
        sends += [due] * len(layer.outgoing())
    assert sends == [0.5, 1.5, 3.5, 7.5, 11.5]  # 0.5, 1, 2, 4, 4
    # A provisional: from the next firing on, E runs at T2 flat.
    h = Harness(Kind.NON_INVITE_CLIENT)
    h.now = 1.0
    h.apply(I.PROVISIONAL)
    assert h.layer.timers(h.key)[T.E] == 0.5  # the running one is kept
    h.layer.handle_timers(0.5)
    assert h.layer.timers(h.key)[T.E] == 4.5
    assert key != h.key


def test_configured_t1_scales_timeouts() -> None:
    layer = TransactionLayer(t1=0.1, t2=1.0, t4=2.0)
    key = layer.send_request(new_request("OPTIONS"), PEER, 10.0)
    timers = layer.timers(key)
    assert timers == {T.E: pytest.approx(10.1), T.F: pytest.approx(16.4)}
    with pytest.raises(LocalProtocolError):
        TransactionLayer(t1=2.0, t2=1.0)


# Per kind: the state reached by a final response and the timer that only absorbs
# retransmissions there, with its RFC value (T1 = 0.5, T4 = 5).
LINGERING = [
    (Kind.INVITE_CLIENT, S.COMPLETED, T.D, 32.0),
    (Kind.INVITE_CLIENT, S.ACCEPTED, T.M, 32.0),
    (Kind.NON_INVITE_CLIENT, S.COMPLETED, T.K, 5.0),
    (Kind.NON_INVITE_SERVER, S.COMPLETED, T.J, 32.0),
    (Kind.INVITE_SERVER, S.CONFIRMED, T.I, 5.0),
]


@pytest.mark.parametrize(("kind", "state", "timer", "rfc"), LINGERING)
def test_linger_caps_only_the_timers_that_absorb_retransmissions(
    kind: Kind, state: TxState, timer: Timer, rfc: float
) -> None:
    plain = harness_in(kind, state)
    assert plain.layer.timers(plain.key)[timer] - plain.now == pytest.approx(rfc)
    capped = harness_in(kind, state, linger=2.0)
    assert capped.layer.timers(capped.key)[timer] - capped.now == pytest.approx(2.0)
    capped.apply(timer)
    assert capped.state is S.TERMINATED


def test_linger_leaves_the_timers_that_decide_outcomes() -> None:
    # B, F (no answer), H (no ACK for a non-2xx) and L (no ACK for a 2xx) still
    # run 64*T1: cutting them would end calls, not just bookkeeping.
    for kind, state, timer in [
        (Kind.INVITE_CLIENT, S.CALLING, T.B),
        (Kind.NON_INVITE_CLIENT, S.TRYING, T.F),
        (Kind.INVITE_SERVER, S.COMPLETED, T.H),
        (Kind.INVITE_SERVER, S.ACCEPTED, T.L),
    ]:
        h = harness_in(kind, state, linger=1.0)
        assert h.layer.timers(h.key)[timer] - h.now == pytest.approx(32.0), timer
    with pytest.raises(LocalProtocolError):
        TransactionLayer(linger=-1.0)


def test_retransmissions_reuse_the_same_bytes() -> None:
    layer = TransactionLayer()
    layer.send_request(new_request("INVITE"), PEER, 0.0)
    first = layer.outgoing()[0][0]
    layer.handle_timers(0.5)
    again = layer.outgoing()[0][0]
    assert again is first


def test_tcp_zero_timers_terminate_at_the_next_tick() -> None:
    h = Harness(Kind.NON_INVITE_CLIENT, "TCP")
    h.apply(I.SUCCESS)
    assert h.layer.timers(h.key) == {T.K: 0.0}
    assert h.layer.next_timer() == 0.0
    assert [type(e) for e in h.layer.handle_timers(0.0)] == [TransactionTerminated]
    assert h.layer.transaction_count() == 0


# ---------------------------------------------------------------------------
# Matching and API contracts


def test_send_response_refuses_misuse() -> None:
    h = Harness(Kind.NON_INVITE_SERVER)
    with pytest.raises(LocalProtocolError):
        h.layer.send_response(
            TxKey(True, "OPTIONS", "z9hG4bKnope", "x"), make_response(h.request, 200), 0
        )
    wrong = make_response(h.request, 200)
    wrong.cseq = CSeq(99, "OPTIONS")
    with pytest.raises(LocalProtocolError):
        h.layer.send_response(h.key, wrong, 0)
    h.apply(I.SEND_SUCCESS)
    with pytest.raises(LocalProtocolError):
        h.layer.send_response(h.key, make_response(h.request, 500), 0)
    client = Harness(Kind.NON_INVITE_CLIENT)
    with pytest.raises(LocalProtocolError):
        client.layer.send_response(client.key, make_response(client.request, 200), 0)


def test_send_request_refuses_ack_and_missing_or_reused_branch() -> None:
    layer = TransactionLayer()
    with pytest.raises(LocalProtocolError):
        layer.send_request(new_request("ACK"), PEER, 0)
    req = new_request("OPTIONS")
    layer.send_request(req, PEER, 0)
    with pytest.raises(LocalProtocolError):
        layer.send_request(req, PEER, 0)
    no_branch = new_request("OPTIONS")
    no_branch.vias = [Via("UDP", "192.0.2.2", 5060)]
    with pytest.raises(LocalProtocolError):
        layer.send_request(no_branch, PEER, 0)


def test_malformed_input_is_dropped_not_raised() -> None:
    layer = TransactionLayer()
    no_via = Request("OPTIONS", SipUri(host="x"), Headers([("CSeq", "1 OPTIONS")]))
    assert layer.receive(no_via, PEER, 0) == []
    bad = Response(200, "OK", Headers([("Via", "SIP/2.0/UDP h;branch=z9hG4bKx"), ("CSeq", "junk")]))
    assert layer.receive(bad, PEER, 0) == []
    assert layer.transaction_count() == 0


def test_response_without_transaction_is_stray() -> None:
    layer = TransactionLayer()
    resp = as_response(wire(make_response(new_request("INVITE"), 200)))
    events = layer.receive(resp, PEER, 0)
    assert events == [StrayResponse(resp, PEER)]
    # Right branch, wrong sent-by (section 18.1.2): not ours either.
    h = Harness(Kind.INVITE_CLIENT)
    forged = make_response(h.seen_by_peer, 200)
    forged.vias = [Via("UDP", "203.0.113.5", 5060, h.seen_by_peer.top_via.params)]
    assert [type(e) for e in h.layer.receive(wire(forged), PEER, 0)] == [StrayResponse]
    assert h.state is S.CALLING


def test_late_provisional_after_final_is_absorbed() -> None:
    h = Harness(Kind.INVITE_CLIENT)
    h.apply(I.FAILURE)
    assert h.apply(I.PROVISIONAL) == ([], [])
    h2 = Harness(Kind.INVITE_CLIENT)
    h2.apply(I.SUCCESS)
    assert h2.apply(I.PROVISIONAL) == ([], [])
    assert h2.apply(I.FAILURE) == ([], [])


def test_ack_for_non2xx_goes_to_the_invite_address_with_its_branch() -> None:
    h = Harness(Kind.INVITE_CLIENT)
    h.layer.outgoing()
    resp = make_response(h.seen_by_peer, 486, to_tag="r")
    h.layer.receive(wire(resp), PEER, 0)
    ((data, dest),) = h.layer.outgoing()
    ack = as_request(parse_message(data))
    assert dest == PEER
    assert ack.method == "ACK"
    assert ack.top_via.branch == h.request.top_via.branch
    assert ack.to.tag == "r"
    # A retransmitted 486 gets the very same ACK again, and no second event.
    assert h.layer.receive(wire(resp), PEER, 0) == []
    assert h.layer.outgoing() == [(data, dest)]


def test_2xx_ack_is_reported_and_stray_ack_too() -> None:
    h = harness_in(Kind.INVITE_SERVER, S.ACCEPTED)
    ack = as_request(wire(h.ack()))
    events = h.layer.receive(ack, PEER, 0)
    assert events == [AckReceived(ack, PEER)]
    assert h.state is S.CONFIRMED
    # A second copy of the ACK is absorbed by the transaction...
    assert h.layer.receive(as_request(wire(h.ack())), PEER, 0) == []
    # ... and one that matches no transaction at all goes to the TU (dialog layer).
    h.fire(T.I)
    late = as_request(wire(h.ack()))
    assert h.layer.receive(late, PEER, 0) == [AckReceived(late, PEER)]


def test_ack_on_the_invite_branch_confirms_a_2xx_too() -> None:
    # Some phones reuse the INVITE's branch for the 2xx ACK.
    h = harness_in(Kind.INVITE_SERVER, S.ACCEPTED)
    assert h.last_response is not None
    ack = make_request(
        "ACK",
        h.request.uri,
        from_=h.request.from_,
        to=h.last_response.to,
        call_id=h.request.call_id,
        cseq=1,
        via=h.request.top_via,
    )
    assert [type(e) for e in h.layer.receive(as_request(wire(ack)), PEER, 0)] == [AckReceived]
    assert h.state is S.CONFIRMED


def test_cancel_matches_its_invite() -> None:
    h = harness_in(Kind.INVITE_SERVER, S.PROCEEDING)
    cancel = as_request(wire(make_cancel(h.request)))
    (event,) = h.layer.receive(cancel, PEER, 0)
    assert isinstance(event, RequestReceived)
    assert event.cancels == h.key
    assert event.key != h.key
    assert event.key.method == "CANCEL"
    # A retransmitted CANCEL is absorbed; an unrelated one matches nothing.
    assert h.layer.receive(as_request(wire(make_cancel(h.request))), PEER, 0) == []
    other = as_request(wire(make_cancel(new_request("INVITE"))))
    (event2,) = h.layer.receive(other, PEER, 0)
    assert isinstance(event2, RequestReceived)
    assert event2.cancels is None


def test_invite_retransmission_in_accepted_resends_the_2xx() -> None:
    h = harness_in(Kind.INVITE_SERVER, S.ACCEPTED)
    assert h.last_response is not None
    sent, events = h.apply(I.REQUEST)
    assert events == []
    assert [as_response(parse_message(d)).status for d in sent] == [200]


# ---------------------------------------------------------------------------
# RFC 2543 peers (the RFC 4475 torture messages badbranch and inv2543)


def load(name: str) -> bytes:
    return (RFC4475 / f"{name}.dat").read_bytes()


def test_badbranch_is_matched_the_rfc2543_way() -> None:
    data = load("badbranch")
    layer = TransactionLayer()
    source = Address("UDP", "192.0.2.1", 5060)
    (event,) = layer.receive(parse_message(data), source, 0)
    assert isinstance(event, RequestReceived)
    assert not is_rfc3261_branch(event.request.top_via.branch)
    assert event.key.legacy
    assert layer.receive(parse_message(data), source, 0.1) == []  # absorbed
    layer.send_response(event.key, make_response(event.request, 200), 0.2)
    ((answer, dest),) = layer.outgoing()
    assert dest == Address("UDP", "192.0.2.1", 5060)
    assert layer.receive(parse_message(data), source, 0.3) == []
    assert layer.outgoing() == [(answer, dest)]
    # Another request, same bare cookie, different CSeq: a new transaction.
    other = data.replace(b"CSeq: 8 OPTIONS", b"CSeq: 9 OPTIONS")
    assert [type(e) for e in layer.receive(parse_message(other), source, 0.4)] == [RequestReceived]
    assert layer.transaction_count() == 2


def test_inv2543_invite_ack_and_cancel() -> None:
    data = load("inv2543")
    source = Address("UDP", "192.0.2.5", 5060)
    layer = TransactionLayer()
    (event,) = layer.receive(parse_message(data), source, 0)
    assert isinstance(event, RequestReceived)
    invite_key = event.key
    assert layer.receive(parse_message(data), source, 0.5) == []

    cancel = data.replace(b"INVITE sip:", b"CANCEL sip:").replace(b"56 INVITE", b"56 CANCEL")
    (cancel_event,) = layer.receive(
        parse_message(cancel.split(b"\r\n\r\n")[0] + b"\r\n\r\n"), source, 1
    )
    assert isinstance(cancel_event, RequestReceived)
    assert cancel_event.cancels == invite_key

    layer.send_response(invite_key, make_response(event.request, 487, to_tag="b1"), 1)
    ((_, dest),) = [o for o in layer.outgoing() if o[0].startswith(b"SIP/2.0 487")]
    assert dest == Address("UDP", "iftgw.example.com", 5060)

    head = data.split(b"\r\n\r\n")[0]
    ack = (
        head.replace(b"INVITE sip:", b"ACK sip:")
        .replace(b"56 INVITE", b"56 ACK")
        .replace(b"user=phone\r\nCall-ID", b"user=phone;tag=b1\r\nCall-ID")
        .replace(b"Content-Type: application/sdp\r\n", b"")
        + b"\r\n\r\n"
    )
    # An ACK with another To tag is not for this transaction.
    wrong = ack.replace(b";tag=b1", b";tag=zz")
    assert [type(e) for e in layer.receive(parse_message(wrong), source, 2)] == [AckReceived]
    assert layer.state(invite_key) is S.COMPLETED
    assert layer.receive(parse_message(ack), source, 2) == []
    assert layer.state(invite_key) is S.CONFIRMED


def test_rfc2543_2xx_ack_is_reported() -> None:
    data = load("inv2543")
    source = Address("UDP", "192.0.2.5", 5060)
    layer = TransactionLayer()
    (event,) = layer.receive(parse_message(data), source, 0)
    assert isinstance(event, RequestReceived)
    layer.send_response(event.key, make_response(event.request, 200, to_tag="b2"), 0)
    head = data.split(b"\r\n\r\n")[0]
    ack = (
        head.replace(b"INVITE sip:", b"ACK sip:")
        .replace(b"56 INVITE", b"56 ACK")
        .replace(b"user=phone\r\nCall-ID", b"user=phone;tag=b2\r\nCall-ID")
        + b"\r\n\r\n"
    )
    assert [type(e) for e in layer.receive(parse_message(ack), source, 1)] == [AckReceived]
    assert layer.state(event.key) is S.CONFIRMED


# ---------------------------------------------------------------------------
# response_address (RFC 3261 section 18.2.2, RFC 3581)


def via_request(via: str) -> Request:
    return as_request(
        parse_message(
            b"OPTIONS sip:x@192.0.2.1 SIP/2.0\r\nVia: "
            + via.encode()
            + b"\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@192.0.2.1>\r\nCall-ID: c\r\n"
            b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
    )


@pytest.mark.parametrize(
    ("via", "source", "expected"),
    [
        ("SIP/2.0/UDP pc.example.com:5070;branch=z9hG4bK1", PEER, ("UDP", "pc.example.com", 5070)),
        ("SIP/2.0/UDP pc.example.com;branch=z9hG4bK1", PEER, ("UDP", "pc.example.com", 5060)),
        (
            "SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK1;received=203.0.113.9",
            PEER,
            ("UDP", "203.0.113.9", 5070),
        ),
        (
            "SIP/2.0/UDP 10.0.0.5:5070;branch=z9hG4bK1;received=203.0.113.9;rport=41000",
            PEER,
            ("UDP", "203.0.113.9", 41000),
        ),
        ("SIP/2.0/UDP 10.0.0.5:5070;rport;branch=z9hG4bK1", PEER, ("UDP", "10.0.0.5", 5070)),
        (
            "SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1;maddr=224.0.1.75;ttl=1",
            PEER,
            ("UDP", "10.0.0.5", 5060),
        ),
        ("SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bK1", PEER, ("UDP", "2001:db8::9", 5070)),
        (
            "SIP/2.0/TCP 10.0.0.5:5070;branch=z9hG4bK1;received=203.0.113.9",
            Address("TCP", "203.0.113.9", 50123),
            ("TCP", "203.0.113.9", 50123),
        ),
    ],
)
def test_response_address(via: str, source: Address, expected: tuple[str, str, int]) -> None:
    assert response_address(via_request(via), source) == Address(*expected)


# ---------------------------------------------------------------------------
# Whole exchanges over the simulated network

UAS_TAG = "uas"


def answering(*statuses: int, cancel_status: int = 487) -> Callable[[Endpoint, Event], None]:
    """A server TU that answers each new request with `statuses` at once; a
    CANCEL gets 200 and its INVITE `cancel_status` (RFC 3261 section 9.2)."""

    def handle(ep: Endpoint, event: Event) -> None:
        if not isinstance(event, RequestReceived):
            return
        now = ep.clock.now
        req = event.request
        if req.method == "CANCEL":
            ep.layer.send_response(
                event.key, make_response(req, 200 if event.cancels else 481), now
            )
            if event.cancels and ep.layer.state(event.cancels) is S.PROCEEDING:
                invite = invites[event.cancels]
                ep.layer.send_response(
                    event.cancels, make_response(invite, cancel_status, to_tag=UAS_TAG), now
                )
            return
        invites[event.key] = req
        for status in statuses:
            ep.layer.send_response(event.key, make_response(req, status, to_tag=UAS_TAG), now)

    invites: dict[TxKey, Request] = {}
    return handle


def acking(server: Endpoint, transport: str = "UDP") -> Callable[[Endpoint, Event], None]:
    """A client TU that ACKs every 2xx to an INVITE (RFC 3261 section 13.2.2.4)."""

    def handle(ep: Endpoint, event: Event) -> None:
        if isinstance(event, ResponseReceived | StrayResponse):
            resp = event.response
            if resp.cseq.method == "INVITE" and 200 <= resp.status < 300:
                ep.layer.send_stateless(ack_for_2xx(ep, resp, transport), server.address(transport))

    return handle


def ack_for_2xx(ep: Endpoint, resp: Response, transport: str = "UDP") -> Request:
    return make_request(
        "ACK",
        SipUri(host="192.0.2.2", user="bob"),
        from_=resp.from_,
        to=resp.to,
        call_id=resp.call_id,
        cseq=resp.cseq.seq,
        via=ep.via(transport),
    )


def pair(net: SimNet, *statuses: int, transport: str = "UDP") -> tuple[Endpoint, Endpoint]:
    server = net.add("uas", "192.0.2.2", handler=answering(*statuses))
    client = net.add("uac", "192.0.2.1", handler=acking(server, transport))
    return client, server


def statuses_of(ep: Endpoint) -> list[int]:
    return [
        e.response.status for e in ep.of_type(ResponseReceived) if isinstance(e, ResponseReceived)
    ]


def assert_clean(*endpoints: Endpoint) -> None:
    for ep in endpoints:
        assert ep.layer.transaction_count() == 0, ep.name
        assert ep.layer.next_timer() is None, ep.name


@pytest.mark.parametrize("drops", [1, 2, 3])
def test_invite_survives_lost_invites(drops: int) -> None:
    net = SimNet()
    client, server = pair(net, 100, 180, 200)
    net.drop_next(is_method("INVITE"), drops)
    client.layer.send_request(client.request_to(server), server.address(), 0.0)
    net.run()
    assert len(net.sent("INVITE")) == drops + 1
    assert len(server.of_type(RequestReceived)) == 1
    assert statuses_of(client) == [100, 180, 200]
    assert len(server.of_type(AckReceived)) == 1
    assert server.of_type(AckTimeout) == []
    assert_clean(client, server)


@pytest.mark.parametrize("drops", [1, 2, 3])
def test_lost_2xx_is_retransmitted_until_acked(drops: int) -> None:
    net = SimNet()
    client, server = pair(net, 180, 200)
    net.drop_next(is_status(200), drops)
    client.layer.send_request(client.request_to(server), server.address(), 0.0)
    net.run()
    assert len(net.sent("SIP/2.0 200")) == drops + 1
    assert statuses_of(client) == [180, 200]
    assert len(net.sent("ACK")) == 1
    assert len(server.of_type(AckReceived)) == 1
    assert_clean(client, server)


@pytest.mark.parametrize("drops", [1, 2, 3])
def test_lost_acks_get_2xx_again_until_one_arrives(drops: int) -> None:
    net = SimNet()
    client, server = pair(net, 200)
    net.drop_next(is_method("ACK"), drops)
    client.layer.send_request(client.request_to(server), server.address(), 0.0)
    net.run()
    # Each retransmitted 2xx reaches the client TU, which ACKs it again.
    assert len(net.sent("SIP/2.0 200")) == drops + 1
    assert statuses_of(client) == [200] * (drops + 1)
    assert len(net.sent("ACK")) == drops + 1
    assert len(server.of_type(AckReceived)) == 1
    assert_clean(client, server)


@pytest.mark.parametrize("drops", [1, 2, 3])
def test_lost_non2xx_and_its_ack(drops: int) -> None:
    net = SimNet()
    client, server = pair(net, 486)
    net.drop_next(is_status(486), drops)
    net.drop_next(is_method("ACK"), drops)
    client.layer.send_request(client.request_to(server), server.address(), 0.0)
    net.run()
    assert statuses_of(client) == [486]
    delivered_486 = net.sent("SIP/2.0 486", fate="delivered")
    assert len(delivered_486) == drops + 1  # one for each ACK that was lost, plus one
    assert len(net.sent("ACK")) == drops + 1
    assert server.of_type(TransactionTimeout) == []
    assert_clean(client, server)


@pytest.mark.parametrize("drops", [1, 2, 3])
def test_non_invite_survives_loss_both_ways(drops: int) -> None:
    net = SimNet()
    client, server = pair(net, 200)
    net.drop_next(is_method("OPTIONS"), drops)
    net.drop_next(is_status(200), drops)
    client.layer.send_request(client.request_to(server, "OPTIONS"), server.address(), 0.0)
    net.run()
    assert statuses_of(client) == [200]
    assert len(server.of_type(RequestReceived)) == 1
    assert len(net.sent("OPTIONS")) == 2 * drops + 1
    assert_clean(client, server)


def test_duplicates_are_absorbed() -> None:
    net = SimNet(duplicate=1.0)  # every UDP message arrives twice (the copy a little later)
    client, server = pair(net, 100, 486)
    client.layer.send_request(client.request_to(server), server.address(), 0.0)
    client.layer.send_request(client.request_to(server, "BYE"), server.address(), 0.0)
    net.run()
    assert len(server.of_type(RequestReceived)) == 2
    assert sorted(statuses_of(client)) == [100, 100, 486, 486]  # one each per transaction
    assert_clean(client, server)


def test_provisional_overtaken_by_final_is_dropped() -> None:
    net = SimNet()
    client, server = pair(net, 180, 486)
    net.delay_next(is_status(180), 1.0)
    client.layer.send_request(client.request_to(server), server.address(), 0.0)
    net.run()
    assert statuses_of(client) == [486]
    assert_clean(client, server)
    net2 = SimNet()
    client2, server2 = pair(net2, 100, 200)
    net2.delay_next(is_status(100), 1.0)
    client2.layer.send_request(client2.request_to(server2, "REGISTER"), server2.address(), 0.0)
    net2.run()
    assert statuses_of(client2) == [200]
    assert_clean(client2, server2)


@pytest.mark.parametrize(("method", "t1"), [("INVITE", 0.5), ("OPTIONS", 0.5), ("INVITE", 0.1)])
def test_timeout_after_64_t1(method: str, t1: float) -> None:
    net = SimNet(t1=t1, t2=4 * t1 * 8)
    client, server = pair(net, 200)
    net.drop_next(is_method(method), 1000)
    client.layer.send_request(client.request_to(server, method), server.address(), 0.0)
    net.run()
    ((when, event),) = [(t, e) for t, e in client.events if isinstance(e, TransactionTimeout)]
    assert when == pytest.approx(64 * t1)
    assert event.request.method == method
    assert_clean(client, server)


@pytest.mark.parametrize("method", ["INVITE", "OPTIONS"])
def test_tcp_never_retransmits(method: str) -> None:
    net = SimNet()
    client, server = pair(net, transport="TCP")  # the server never answers
    client.layer.send_request(
        client.request_to(server, method, transport="TCP"), server.address("TCP"), 0
    )
    net.run(until=100)
    assert len(net.sent(method)) == 1
    assert [type(e) for _, e in client.events] == [TransactionTimeout, TransactionTerminated]
    assert client.events[0][0] == 32.0


def test_tcp_exchange_is_one_copy_each_and_ends_at_once() -> None:
    net = SimNet()
    client, server = pair(net, 180, 486, transport="TCP")
    client.layer.send_request(client.request_to(server, transport="TCP"), server.address("TCP"), 0)
    net.run()
    assert [p.line.split()[0] for p in net.log] == ["INVITE", "SIP/2.0", "SIP/2.0", "ACK"]
    assert statuses_of(client) == [180, 486]
    # Timers D and I are zero on TCP: both sides are gone right after the ACK.
    assert net.clock.now < 0.1
    assert_clean(client, server)


def test_2xx_retransmitted_until_ack_timeout() -> None:
    net = SimNet()
    client, server = pair(net, 200)
    net.drop_next(is_method("ACK"), 1000)
    client.layer.send_request(client.request_to(server), server.address(), 0.0)
    net.run()
    sends = [round(p.time - 0.01, 6) for p in net.sent("SIP/2.0 200")]
    assert sends == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    ((when, _),) = [(t, e) for t, e in server.events if isinstance(e, AckTimeout)]
    assert when == pytest.approx(0.01 + 32)
    assert server.of_type(AckReceived) == []
    assert_clean(client, server)


def test_cancel_over_the_network() -> None:
    net = SimNet()
    server = net.add("uas", "192.0.2.2", handler=answering(180))
    invite = Request("INVITE", SipUri(host="x"))

    def uac(ep: Endpoint, event: Event) -> None:
        if isinstance(event, ResponseReceived) and event.response.status == 180:
            ep.layer.send_request(make_cancel(invite), server.address(), ep.clock.now)

    client = net.add("uac", "192.0.2.1", handler=uac)
    invite = client.request_to(server)
    client.layer.send_request(invite, server.address(), 0.0)
    net.run()
    got = {
        (e.response.cseq.method, e.response.status)
        for e in client.of_type(ResponseReceived)
        if isinstance(e, ResponseReceived)
    }
    assert got == {("INVITE", 180), ("CANCEL", 200), ("INVITE", 487)}
    (cancel_event,) = [
        e
        for e in server.of_type(RequestReceived)
        if isinstance(e, RequestReceived) and e.request.method == "CANCEL"
    ]
    assert cancel_event.cancels is not None
    assert cancel_event.cancels.method == "INVITE"
    assert len(net.sent("ACK")) == 1
    assert_clean(client, server)


# ---------------------------------------------------------------------------
# Random schedules


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    transport=st.sampled_from(["UDP", "UDP", "TCP"]),
    method=st.sampled_from(["INVITE", "OPTIONS"]),
    provisionals=st.lists(st.tuples(st.floats(0, 4), st.sampled_from([100, 180, 183])), max_size=3),
    final=st.tuples(st.floats(0, 6), st.sampled_from([200, 202, 404, 486, 500, 603])),
    cancel_at=st.none() | st.floats(0, 8),
    ack_2xx=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
    loss=st.floats(0, 0.6),
    duplicate=st.floats(0, 0.6),
    jitter=st.floats(0, 1.5),
    chaos=st.floats(0, 10),
    replays=st.lists(st.tuples(st.floats(0, 60), st.integers(0, 10_000)), max_size=6),
)
def test_random_schedules_never_raise_and_leave_nothing(
    transport: str,
    method: str,
    provisionals: list[tuple[float, int]],
    final: tuple[float, int],
    cancel_at: float | None,
    ack_2xx: bool,
    seed: int,
    loss: float,
    duplicate: float,
    jitter: float,
    chaos: float,
    replays: list[tuple[float, int]],
) -> None:
    net = SimNet(rng=random.Random(seed), loss=loss, duplicate=duplicate, jitter=jitter)
    net.chaos_until = chaos

    def send_if_open(ep: Endpoint, key: TxKey, req: Request, status: int) -> None:
        # The TU answers only while the transaction still waits for it.
        if ep.layer.state(key) in (S.TRYING, S.PROCEEDING):
            ep.layer.send_response(key, make_response(req, status, to_tag=UAS_TAG), ep.clock.now)

    def uas(ep: Endpoint, event: Event) -> None:
        if not isinstance(event, RequestReceived):
            return
        req, key, now = event.request, event.key, ep.clock.now
        if req.method == "CANCEL":
            ep.layer.send_response(key, make_response(req, 200 if event.cancels else 481), now)
            if event.cancels is not None and event.cancels in pending:
                send_if_open(ep, event.cancels, pending[event.cancels], 487)
            return
        pending[key] = req
        at = now
        for delay, status in [*provisionals, final]:
            at += delay
            net.call_at(at, functools.partial(send_if_open, ep, key, req, status))

    pending: dict[TxKey, Request] = {}
    server = net.add("uas", "192.0.2.2", handler=uas)

    def uac(ep: Endpoint, event: Event) -> None:
        if isinstance(event, ResponseReceived | StrayResponse):
            resp = event.response
            if ack_2xx and resp.cseq.method == "INVITE" and 200 <= resp.status < 300:
                ep.layer.send_stateless(ack_for_2xx(ep, resp, transport), server.address(transport))

    client = net.add("uac", "192.0.2.1", handler=uac)
    request = client.request_to(server, method, transport=transport)
    key = client.layer.send_request(request, server.address(transport), 0.0)

    def cancel() -> None:
        if client.layer.state(key) is S.PROCEEDING:
            client.layer.send_request(
                make_cancel(request), server.address(transport), net.clock.now
            )

    if method == "INVITE" and cancel_at is not None:
        net.call_at(cancel_at, cancel)

    def replay(index: int) -> None:
        if net.log:
            packet = net.log[index % len(net.log)]
            names = {"uas": server, "uac": client}
            if packet.dest in names:
                net.inject(packet.data, names[packet.source], names[packet.dest], transport)

    for when, index in replays:
        net.call_at(when, functools.partial(replay, index))

    net.run()
    assert_clean(client, server)
    finals = [
        e.response.status
        for e in client.of_type(ResponseReceived)
        if isinstance(e, ResponseReceived) and e.response.status >= 200 and e.key == key
    ]
    timeouts = [
        e
        for e in client.of_type(TransactionTimeout)
        if isinstance(e, TransactionTimeout) and e.key == key
    ]
    # The client transaction ended one way or the other, never both.
    assert bool(finals) != bool(timeouts)
    if method != "INVITE" or (finals and finals[0] >= 300):
        assert len(finals) <= 1  # only INVITE 2xx reach the TU more than once
