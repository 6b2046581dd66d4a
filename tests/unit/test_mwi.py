"""The message-summary notifier on its own (server.mwi): a transaction layer, a
fake clock and plain callables for the directory, the mailbox and the registrar."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from teleoffice.calls.registrar import Binding
from teleoffice.server.mwi import (
    CONTENT_TYPE,
    EventHeader,
    Mailbox,
    MessageWaiting,
    MwiLimits,
    parse_event,
    summary_body,
)
from teleoffice.sip.errors import ParseError
from teleoffice.sip.message import Request, Response, parse_message
from teleoffice.sip.transaction import (
    Address,
)
from tests.unit.notify_kit import NotifierBench

NOW = 5_000.0
LOCAL = Address("UDP", "192.0.2.1", 5060)
PHONE = Address("UDP", "198.51.100.7", 5062)
_ids = itertools.count(1)


# ---- the pure parts ----------------------------------------------------------------


def test_summary_body_says_yes_only_for_new_messages() -> None:
    assert summary_body((2, 5), "sip:201@pbx.test") == (
        b"Messages-Waiting: yes\r\nMessage-Account: sip:201@pbx.test\r\nVoice-Message: 2/5\r\n"
    )
    assert summary_body((0, 5), "sip:201@pbx.test").startswith(b"Messages-Waiting: no\r\n")
    # Nobody's mailbox (a hot desk nobody is logged in on): the lamp is off.
    assert summary_body(None, None) == b"Messages-Waiting: no\r\n"


def test_event_header_keeps_the_package_and_echoes_only_the_id() -> None:
    event = parse_event(" message-summary ;id=42;foo=bar")
    assert event == EventHeader("message-summary", (("id", "42"), ("foo", "bar")))
    assert event.id == "42"
    assert str(event) == "message-summary;id=42"
    assert str(parse_event("message-summary")) == "message-summary"


@pytest.mark.parametrize("value", ["", ";id=1", "message summary", "message-summary;", "a;b=\x01"])
def test_malformed_event_headers_are_parse_errors(value: str) -> None:
    with pytest.raises(ParseError):
        parse_event(value)


# ---- a notifier on a transaction layer -----------------------------------------------


@dataclass
class World:
    """Everything the notifier asks about, changeable from a test."""

    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    mailboxes: dict[str, Mailbox | None] = field(
        default_factory=lambda: {"201": Mailbox("alice", "201"), "202": Mailbox("bob", "202")}
    )
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    unsolicited: set[str] = field(default_factory=set)
    count_calls: int = 0
    broken_counts: bool = False

    def count(self, username: str) -> tuple[int, int]:
        self.count_calls += 1
        if self.broken_counts:
            raise RuntimeError("database is locked")
        return self.counts.get(username, (0, 0))

    def mailbox_of(self, account: str) -> Mailbox | None:
        return self.mailboxes.get(account)


class Bench(NotifierBench):
    def __init__(self, limits: MwiLimits | None = None) -> None:
        super().__init__()
        self.world = World()
        self.mwi = self.notifier = MessageWaiting(
            transactions=self.tx,
            respond=self.tx.send_response,
            local=lambda peer: LOCAL,
            domain="pbx.test",
            mailbox_of=self.world.mailbox_of,
            contacts=lambda account, now: [
                b for b in self.world.bindings.get(account, []) if b.expires_at > now
            ],
            counts=self.world.count,
            unsolicited=self.world.unsolicited.__contains__,
            limits=limits,
        )

    def subscribe(
        self,
        account: str = "201",
        now: float = NOW,
        *,
        expires: int | None = 3600,
        source: Address = PHONE,
        event: str = "message-summary",
    ) -> tuple[Response, list[Request]]:
        request = self.received(subscribe_text(account, expires=expires, event=event), now)
        assert self.mwi.check(request.request) is None
        self.mwi.subscribe(request.key, request.request, source, account, now)
        [answer], notifies = self.out()
        return answer, notifies

    def refresh(
        self,
        answer: Response,
        cseq: int,
        now: float,
        *,
        expires: int | None,
        source: Address = PHONE,
    ) -> tuple[Response, list[Request]]:
        text = subscribe_text(
            answer.to.sip_uri.user or "",
            expires=expires,
            call_id=answer.call_id,
            cseq=cseq,
            to_tag=answer.to.tag,
            source=source,
        )
        received = self.received(text, now, source)
        assert self.mwi.in_dialog(received.key, received.request, source, now)
        [response], notifies = self.out()
        return response, notifies


def subscribe_text(
    account: str,
    *,
    expires: int | None = 3600,
    event: str = "message-summary",
    call_id: str | None = None,
    cseq: int = 1,
    to_tag: str | None = None,
    source: Address = PHONE,
) -> str:
    n = next(_ids)
    lines = [
        f"SUBSCRIBE sip:{account}@pbx.test SIP/2.0",
        f"Via: SIP/2.0/UDP {source.host}:{source.port};branch=z9hG4bKm{n};rport",
        "Max-Forwards: 70",
        f"From: <sip:{account}@pbx.test>;tag=phone{account}",
        f"To: <sip:{account}@pbx.test>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id or f'mwi-{n}'}",
        f"CSeq: {cseq} SUBSCRIBE",
        f"Contact: <sip:{account}@{source.host}:{source.port}>",
        f"Event: {event}",
    ]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    return "\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n"


def state_of(notify: Request) -> str:
    return notify.headers.get("Subscription-State") or ""


def test_subscription_gets_200_then_a_notify_with_the_mailbox_state() -> None:
    bench = Bench()
    bench.world.counts["alice"] = (1, 4)
    answer, [notify] = bench.subscribe()
    assert answer.status == 200
    assert answer.headers.get("Expires") == "3600"
    assert answer.contacts[0].sip_uri.host == LOCAL.host
    assert notify.method == "NOTIFY"
    assert str(notify.uri) == f"sip:201@{PHONE.host}:{PHONE.port}"
    assert notify.call_id == answer.call_id
    assert notify.from_.tag == answer.to.tag
    assert notify.to.tag == "phone201"
    assert notify.headers.get("Event") == "message-summary"
    assert state_of(notify) == "active;expires=3600"
    assert notify.headers.get("Content-Type") == CONTENT_TYPE
    assert notify.body == summary_body((1, 4), "sip:201@pbx.test")
    assert bench.mwi.count() == 1
    assert bench.mwi.next_timer() == NOW + 3600


def test_a_change_while_a_notify_is_in_flight_waits_and_is_coalesced() -> None:
    bench = Bench()
    _, [first] = bench.subscribe()
    bench.world.counts["alice"] = (1, 0)
    assert bench.mwi.changed("alice", NOW + 1) == 1
    bench.world.counts["alice"] = (2, 0)
    assert bench.mwi.changed("alice", NOW + 2) == 1
    assert bench.out() == ([], [])  # nothing while the first is unanswered
    [second] = bench.answer(first, 200, NOW + 3)
    assert second.cseq.seq == first.cseq.seq + 1
    assert second.body == summary_body((2, 0), "sip:201@pbx.test")  # the latest state
    assert bench.answer(second, 200, NOW + 4) == []


def test_expiry_while_a_notify_is_in_flight_sends_the_final_one_after_it() -> None:
    bench = Bench()
    _, [first] = bench.subscribe(expires=60)
    bench.mwi.handle_timers(NOW + 60)
    assert bench.out() == ([], [])
    [final] = bench.answer(first, 200, NOW + 60.1)
    assert state_of(final) == "terminated;reason=timeout"
    assert bench.mwi.count() == 0
    assert bench.mwi.next_timer() is None


@pytest.mark.parametrize(
    ("status", "headers", "kept"),
    [
        (481, [], False),
        (408, [], False),
        (500, [], False),
        (403, [], False),
        (503, [("Retry-After", "30")], True),
        (202, [], True),
    ],
)
def test_notify_failures_remove_the_subscription(
    status: int, headers: list[tuple[str, str]], kept: bool
) -> None:
    bench = Bench()
    _, [notify] = bench.subscribe()
    assert bench.answer(notify, status, NOW + 1, headers) == []
    assert bench.mwi.count() == (1 if kept else 0)
    assert bench.mwi.counters.notify_failures == (0 if kept else 1)


def test_unanswered_notify_times_out_and_removes_the_subscription() -> None:
    bench = Bench()
    answer, _ = bench.subscribe()
    for t in range(1, 40):  # Timer F: 64*T1 = 32 s of retransmissions
        bench.tick(NOW + t)
    assert bench.mwi.count() == 0
    assert bench.mwi.counters.notify_failures == 1
    # A later refresh is not ours any more (the service answers it 481).
    text = subscribe_text("201", call_id=answer.call_id, cseq=2, to_tag=answer.to.tag)
    received = bench.received(text, NOW + 60)
    assert not bench.mwi.in_dialog(received.key, received.request, PHONE, NOW + 60)


def test_refresh_extends_and_reports_the_new_duration() -> None:
    bench = Bench()
    answer, [notify] = bench.subscribe(expires=600)
    bench.answer(notify, 200, NOW)
    response, [again] = bench.refresh(answer, 2, NOW + 500, expires=900)
    assert response.status == 200
    assert response.headers.get("Expires") == "900"
    assert state_of(again) == "active;expires=900"
    assert bench.mwi.next_timer() == NOW + 1400
    # The old deadline is gone: nothing happens at NOW + 600.
    bench.answer(again, 200, NOW + 501)
    assert bench.tick(NOW + 600) == []
    assert bench.mwi.count() == 1


def test_refreshing_in_a_loop_does_not_grow_the_timer_heap() -> None:
    bench = Bench()
    answer, [notify] = bench.subscribe()
    bench.answer(notify, 200, NOW)
    for cseq in range(2, 302):
        now = NOW + cseq / 100
        _, [again] = bench.refresh(answer, cseq, now, expires=3600)
        bench.answer(again, 200, now)
    assert len(bench.mwi._expiries) <= 2 * bench.mwi.count() + 64
    assert bench.mwi.next_timer() == NOW + 3.01 + 3600


def test_refresh_from_a_new_address_moves_the_notifies_there() -> None:
    bench = Bench()
    answer, [notify] = bench.subscribe()
    bench.answer(notify, 200, NOW)
    moved = Address("UDP", "198.51.100.99", 6000)  # the NAT gave the phone a new mapping
    text = subscribe_text("201", call_id=answer.call_id, cseq=3, to_tag=answer.to.tag, source=moved)
    received = bench.received(text, NOW + 1, moved)
    assert bench.mwi.in_dialog(received.key, received.request, moved, NOW + 1)
    sent = bench.tx.outgoing()
    [(_, response_to), (raw, notify_to)] = sent
    assert response_to == notify_to == moved
    again = parse_message(raw)
    assert isinstance(again, Request)
    assert str(again.uri) == "sip:201@198.51.100.99:6000"  # the new Contact (target refresh)


def test_refresh_with_an_older_cseq_is_refused() -> None:
    bench = Bench()
    answer, [notify] = bench.subscribe()
    bench.answer(notify, 200, NOW)
    bench.refresh(answer, 5, NOW + 1, expires=3600)
    response, notifies = bench.refresh(answer, 4, NOW + 2, expires=3600)
    assert response.status == 500
    assert notifies == []


def test_counts_that_fail_repeat_the_last_known_state() -> None:
    bench = Bench()
    bench.world.counts["alice"] = (3, 1)
    _, [first] = bench.subscribe()
    bench.answer(first, 200, NOW)
    bench.world.broken_counts = True
    bench.mwi.changed("alice", NOW + 1)
    [second] = bench.out()[1]
    assert second.body == first.body


def test_a_broken_directory_shows_no_mailbox_rather_than_failing() -> None:
    bench = Bench()

    def broken(account: str) -> Mailbox | None:
        raise RuntimeError(account)

    bench.mwi.mailbox_of = broken
    _, [notify] = bench.subscribe()
    assert notify.body == b"Messages-Waiting: no\r\n"


def test_hot_desking_moves_the_lamp_to_the_new_user() -> None:
    bench = Bench()
    bench.world.counts = {"alice": (0, 0), "carol": (4, 0)}
    _, [first] = bench.subscribe()
    bench.answer(first, 200, NOW)
    bench.world.mailboxes["201"] = Mailbox("carol", "203")
    assert bench.mwi.account_changed("201", NOW + 1) == 1
    [notify] = bench.out()[1]
    assert notify.body == summary_body((4, 0), "sip:203@pbx.test")
    bench.answer(notify, 200, NOW + 1)
    # The subscription now follows carol's mailbox, not alice's.
    assert bench.mwi.changed("alice", NOW + 2) == 0
    assert bench.mwi.changed("carol", NOW + 2) == 1
    # Nobody logged in: the lamp goes off.
    bench.answer(bench.out()[1][0], 200, NOW + 2)
    bench.world.mailboxes["201"] = None
    bench.mwi.account_changed("201", NOW + 3)
    [off] = bench.out()[1]
    assert off.body == b"Messages-Waiting: no\r\n"


def test_limits_per_account_and_in_total() -> None:
    bench = Bench(MwiLimits(max_per_account=2, max_total=3, retry_after=120))
    assert bench.subscribe("201")[0].status == 200
    assert bench.subscribe("201")[0].status == 200
    refused, notifies = bench.subscribe("201")
    assert (refused.status, notifies) == (403, [])
    assert bench.subscribe("202")[0].status == 200
    full, notifies = bench.subscribe("202")
    assert (full.status, full.headers.get("Retry-After"), notifies) == (503, "120", [])
    assert bench.mwi.count() == 3


def test_expires_is_clamped_to_the_maximum() -> None:
    bench = Bench(MwiLimits(max_expires=1800))
    answer, [notify] = bench.subscribe(expires=2**32 - 1)
    assert answer.headers.get("Expires") == "1800"
    assert state_of(notify) == "active;expires=1800"
    answer, _ = bench.subscribe(expires=None)  # the package's default, an hour
    assert answer.headers.get("Expires") == "1800"


def binding(account: str, port: int, host: str = "203.0.113.5") -> Binding:
    return Binding(
        account=account,
        contact=f"<sip:{account}@{host}:{port}>",
        uri=f"sip:{account}@{host}:{port}",
        expires_at=NOW + 3600,
        call_id="reg",
        cseq=1,
        q=None,
        transport="UDP",
        source_host=host,
        source_port=port,
    )


def test_unsolicited_notifies_go_to_each_registered_contact_that_wants_them() -> None:
    bench = Bench()
    bench.world.counts["bob"] = (1, 0)
    bench.world.bindings["202"] = [binding("202", 5070), binding("202", 5072)]
    bench.mwi.note_registered("202")
    assert bench.mwi.changed("bob", NOW) == 0  # not asked for
    bench.world.unsolicited.add("202")
    assert bench.mwi.changed("bob", NOW) == 2
    _, notifies = bench.out()
    assert sorted(str(n.uri) for n in notifies) == [
        "sip:202@203.0.113.5:5070",
        "sip:202@203.0.113.5:5072",
    ]
    for notify in notifies:
        assert notify.to.tag is None  # out of any dialog
        assert notify.from_.tag
        assert str(notify.to.uri) == "sip:202@pbx.test"
        assert state_of(notify) == "terminated"
        assert notify.headers.get("Event") == "message-summary"
        assert notify.body == summary_body((1, 0), "sip:202@pbx.test")
    # Their answers are ours and change nothing.
    assert bench.answer(notifies[0], 200, NOW) == []
    assert bench.answer(notifies[1], 405, NOW) == []
    assert bench.mwi.count() == 0


def test_unsolicited_skips_a_subscribed_device_and_forgets_unregistered_accounts() -> None:
    bench = Bench()
    bench.world.unsolicited.add("201")
    # The subscribing phone and a second device of the same account.
    bench.world.bindings["201"] = [binding("201", PHONE.port, PHONE.host), binding("201", 5090)]
    bench.mwi.note_registered("201")
    _, [notify] = bench.subscribe()
    bench.answer(notify, 200, NOW)
    assert bench.mwi.changed("alice", NOW + 1) == 2
    in_dialog, unsolicited = sorted(bench.out()[1], key=lambda n: n.to.tag is None)
    assert in_dialog.to.tag == "phone201"
    assert unsolicited.to.tag is None
    assert str(unsolicited.uri) == "sip:201@203.0.113.5:5090"
    bench.answer(in_dialog, 200, NOW + 1)
    # Once its registrations are gone, the account is no candidate any more,
    # even when a binding reappears without a new REGISTER through us.
    bench.world.bindings["201"] = []
    assert bench.mwi.changed("alice", NOW + 2) == 1
    bench.answer(bench.out()[1][0], 200, NOW + 2)
    bench.world.bindings["201"] = [binding("201", 5090)]
    assert bench.mwi.changed("alice", NOW + 3) == 1  # the subscription only
    bench.answer(bench.out()[1][0], 200, NOW + 3)
    bench.mwi.note_registered("201")
    assert bench.mwi.changed("alice", NOW + 4) == 2


def test_shutdown_deactivates_every_subscription() -> None:
    bench = Bench()
    _, [a] = bench.subscribe("201")
    _, [b] = bench.subscribe("202")
    bench.answer(b, 200, NOW)
    bench.mwi.shutdown(NOW + 1)  # even the one whose NOTIFY is still unanswered
    _, finals = bench.out()
    assert sorted(state_of(n) for n in finals) == ["terminated;reason=deactivated"] * 2
    assert bench.mwi.count() == 0
    assert a.call_id in {n.call_id for n in finals}
