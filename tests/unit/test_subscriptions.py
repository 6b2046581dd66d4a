"""The generic RFC 6665 notifier (server.subscriptions) with a small package of
its own: a transaction layer, a fake clock, no sockets."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from teleoffice.server.subscriptions import (
    PROBATION,
    REJECTED,
    Notification,
    Notifier,
    Subscription,
    SubscriptionLimits,
    accepts,
    event_of,
)
from teleoffice.sip.errors import ParseError
from teleoffice.sip.headers import MAX_CSEQ
from teleoffice.sip.message import Request, Response, parse_message
from teleoffice.sip.transaction import (
    Address,
    TransactionLayer,
)
from tests.unit.notify_kit import NotifierBench

NOW = 10_000.0
LOCAL = Address("UDP", "192.0.2.1", 5060)
PHONE = Address("UDP", "198.51.100.7", 5062)
_ids = itertools.count(1)


@dataclass
class Seen:
    """The package's state per subscription: the last value sent."""

    value: int | None = None


@dataclass
class Gauges:
    """A toy event package ("x-gauge"): each resource is a number; a NOTIFY is
    sent only when the number differs from the last one sent, unless full
    state is due.  A missing resource ends the subscription (noresource)."""

    values: dict[str, int] = field(default_factory=lambda: {"tank": 1, "pump": 7})
    renders: int = 0


class GaugeNotifier(Notifier[Seen]):
    def __init__(self, gauges: Gauges, tx: TransactionLayer, limits: SubscriptionLimits) -> None:
        super().__init__(
            package="x-gauge",
            content_type="text/plain",
            transactions=tx,
            respond=tx.send_response,
            local=lambda peer: LOCAL,
            limits=limits,
        )
        self.gauges = gauges

    def render(self, sub: Subscription[Seen], now: float) -> Notification | None:
        del now
        self.gauges.renders += 1
        assert sub.resource is not None
        value = self.gauges.values.get(sub.resource)
        if value is None:
            sub.ending = "noresource"
            return None
        if value == sub.state.value and not sub.resync and sub.ending is None:
            return None
        sub.state.value = value
        return Notification(f"{sub.resource}={value}".encode(), "text/plain")


def subscribe_text(
    resource: str = "tank",
    *,
    account: str = "201",
    expires: int | None = 600,
    event: str | None = "x-gauge",
    call_id: str | None = None,
    cseq: int = 1,
    to_tag: str | None = None,
    accept: str | None = None,
    contact: bool = True,
) -> str:
    n = next(_ids)
    lines = [
        f"SUBSCRIBE sip:{resource}@pbx.test SIP/2.0",
        f"Via: SIP/2.0/UDP {PHONE.host}:{PHONE.port};branch=z9hG4bKg{n};rport",
        "Max-Forwards: 70",
        f"From: <sip:{account}@pbx.test>;tag=ph{account}",
        f"To: <sip:{resource}@pbx.test>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id or f'g-{n}'}",
        f"CSeq: {cseq} SUBSCRIBE",
    ]
    if contact:
        lines.append(f"Contact: <sip:{account}@{PHONE.host}:{PHONE.port}>")
    if event is not None:
        lines.append(f"Event: {event}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if accept is not None:
        lines.append(f"Accept: {accept}")
    return "\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n"


class Bench(NotifierBench):
    notifier: GaugeNotifier

    def __init__(self, limits: SubscriptionLimits | None = None) -> None:
        super().__init__()
        self.gauges = Gauges()
        self.notifier = GaugeNotifier(self.gauges, self.tx, limits or SubscriptionLimits())

    def subscribe(
        self, resource: str = "tank", now: float = NOW, **kwargs: object
    ) -> tuple[Response, list[Request], Subscription[Seen] | None]:
        got = self.received(subscribe_text(resource, **kwargs), now)  # type: ignore[arg-type]
        assert self.notifier.check(got.request) is None
        account = got.request.from_.sip_uri.user or ""
        sub = self.notifier.accept(
            got.key, got.request, PHONE, account, now, state=Seen(), resource=resource
        )
        [answer], notifies = self.out()
        return answer, notifies, sub

    def refresh(
        self, answer: Response, cseq: int, now: float, **kwargs: object
    ) -> tuple[Response, list[Request]]:
        text = subscribe_text(
            answer.to.sip_uri.user or "",
            call_id=answer.call_id,
            cseq=cseq,
            to_tag=answer.to.tag,
            **kwargs,  # type: ignore[arg-type]
        )
        got = self.received(text, now)
        assert self.notifier.in_dialog(got.key, got.request, PHONE, now)
        [response], notifies = self.out()
        return response, notifies


def full_state_due(sub: Subscription[Seen]) -> bool:
    return sub.resync


def state_of(notify: Request) -> str:
    return notify.headers.get("Subscription-State") or ""


# ---- pure helpers -----------------------------------------------------------------


def test_accepts_matches_types_wildcards_and_treats_empty_as_none() -> None:
    def request(*accept: str) -> Request:
        text = subscribe_text(accept=None)
        extra = "".join(f"Accept: {a}\r\n" for a in accept)
        message = parse_message(text.replace("Content-Length", extra + "Content-Length").encode())
        assert isinstance(message, Request)
        return message

    assert accepts(request(), ["application/pidf+xml"])
    assert accepts(request("application/pidf+xml;q=0.5"), ["application/pidf+xml"])
    assert accepts(request("text/plain", "application/*"), ["application/pidf+xml"])
    assert accepts(request("*/*"), ["application/pidf+xml"])
    assert not accepts(request("application/xpidf+xml"), ["application/pidf+xml"])
    # An Accept header with no value at all admits nothing (the parser drops an
    # empty list header, so only a request built in code can carry one).
    empty = request()
    empty.headers.add("Accept", "")
    assert not accepts(empty, ["application/pidf+xml"])


def test_event_of_reads_the_first_event_and_rejects_garbage() -> None:
    good = parse_message(subscribe_text(event="x-gauge;id=3").encode())
    assert isinstance(good, Request)
    event = event_of(good)
    assert event is not None
    assert (event.package, event.id) == ("x-gauge", "3")
    missing = parse_message(subscribe_text(event=None).encode())
    assert isinstance(missing, Request)
    assert event_of(missing) is None
    bad = parse_message(subscribe_text(event="x gauge").encode())
    assert isinstance(bad, Request)
    with pytest.raises(ParseError):
        event_of(bad)


# ---- check ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"event": None}, 489),
        ({"event": "presence"}, 489),
        ({"accept": "application/pidf+xml"}, 406),
        ({"expires": 5}, 423),
        ({"contact": False}, 400),
        ({"expires": 0}, None),  # a fetch is fine
        ({"event": "X-Gauge"}, None),  # package names compare without case
    ],
)
def test_check_refuses_what_needs_no_identity(
    kwargs: dict[str, object], status: int | None
) -> None:
    bench = Bench()
    got = bench.received(subscribe_text(**kwargs), NOW)  # type: ignore[arg-type]
    error = bench.notifier.check(got.request)
    assert (error.status if error else None) == status
    if status == 489:
        assert error is not None
        assert error.headers.get("Allow-Events") == "x-gauge"
    if status == 423:
        assert error is not None
        assert error.headers.get("Min-Expires") == "60"


def test_allow_events_can_be_widened_by_the_service() -> None:
    bench = Bench()
    bench.notifier.allow_events = "x-gauge, presence"
    got = bench.received(subscribe_text(event="dialog"), NOW)
    error = bench.notifier.check(got.request)
    assert error is not None
    assert error.headers.get("Allow-Events") == "x-gauge, presence"


# ---- the life of a subscription ---------------------------------------------------------


def test_accept_answers_notifies_and_indexes_by_resource() -> None:
    bench = Bench()
    answer, [notify], sub = bench.subscribe("tank", expires=600)
    assert answer.status == 200
    assert answer.headers.get("Expires") == "600"
    assert sub is not None
    assert sub.resource == "tank"
    assert notify.body == b"tank=1"
    assert notify.headers.get("Content-Type") == "text/plain"
    assert state_of(notify) == "active;expires=600"
    assert bench.notifier.subscriptions_for("tank") == [sub]
    assert bench.notifier.subscriptions_of("201") == [sub]
    assert bench.notifier.subscriptions_for("pump") == []
    assert bench.notifier.next_timer() == NOW + 600


def test_render_returning_none_sends_nothing_until_something_changes() -> None:
    bench = Bench()
    _, [first], _ = bench.subscribe()
    bench.answer(first, 200, NOW)
    assert bench.notifier.notify_resource("tank", NOW + 1) == 1  # told, but nothing new
    assert bench.out() == ([], [])
    bench.gauges.values["tank"] = 2
    bench.notifier.notify_resource("tank", NOW + 2)
    [second] = bench.out()[1]
    assert second.body == b"tank=2"


def test_refresh_forces_full_state_even_when_nothing_changed() -> None:
    bench = Bench()
    answer, [first], _ = bench.subscribe()
    bench.answer(first, 200, NOW)
    response, [again] = bench.refresh(answer, 2, NOW + 100)
    assert response.status == 200
    assert again.body == b"tank=1"
    assert state_of(again) == "active;expires=600"


def test_coalescing_sends_only_the_latest_state_after_the_one_in_flight() -> None:
    bench = Bench()
    _, [first], _ = bench.subscribe()
    for value in (2, 3, 4):
        bench.gauges.values["tank"] = value
        bench.notifier.notify_resource("tank", NOW + value)
    assert bench.out() == ([], [])
    renders = bench.gauges.renders
    [second] = bench.answer(first, 200, NOW + 5)
    assert second.body == b"tank=4"
    assert bench.gauges.renders == renders + 1  # rendered once, when sent
    assert bench.answer(second, 200, NOW + 6) == []


def test_a_kept_failure_asks_for_full_state_next_time() -> None:
    bench = Bench()
    _, [first], sub = bench.subscribe()
    assert sub is not None
    assert not full_state_due(sub)
    assert bench.answer(first, 503, NOW + 1, [("Retry-After", "10")]) == []
    assert full_state_due(sub)
    assert bench.notifier.count() == 1
    # Nothing changed, but the subscriber may have missed the last state.
    bench.notifier.notify(sub, NOW + 20)
    [again] = bench.out()[1]
    assert again.body == b"tank=1"


def test_the_resource_vanishing_ends_the_subscription_with_noresource() -> None:
    bench = Bench()
    _, [first], _ = bench.subscribe("pump")
    bench.answer(first, 200, NOW)
    del bench.gauges.values["pump"]
    bench.notifier.notify_resource("pump", NOW + 1)
    [final] = bench.out()[1]
    assert state_of(final) == "terminated;reason=noresource"
    assert final.body == b""
    assert final.headers.get("Content-Type") is None
    assert bench.notifier.count() == 0
    assert bench.notifier.subscriptions_for("pump") == []


def test_end_with_a_reason_and_probation_carries_retry_after() -> None:
    bench = Bench(SubscriptionLimits(retry_after=90))
    _, [a], sub_a = bench.subscribe("tank")
    _, [b], sub_b = bench.subscribe("pump")
    assert sub_a is not None
    assert sub_b is not None
    bench.answer(a, 200, NOW)
    bench.answer(b, 200, NOW)
    bench.notifier.end(sub_a, REJECTED, NOW + 1)
    bench.notifier.end(sub_b, PROBATION, NOW + 1)
    bench.notifier.end(sub_b, REJECTED, NOW + 1)  # already ended: no second NOTIFY
    finals = bench.out()[1]
    assert [state_of(n) for n in finals] == [
        "terminated;reason=rejected",
        "terminated;reason=probation;retry-after=90",
    ]
    assert bench.notifier.count() == 0
    assert bench.notifier.next_timer() is None


def test_end_while_a_notify_is_in_flight_waits_for_it() -> None:
    bench = Bench()
    _, [first], sub = bench.subscribe()
    assert sub is not None
    bench.notifier.end(sub, REJECTED, NOW + 1)
    assert bench.out() == ([], [])
    [final] = bench.answer(first, 200, NOW + 2)
    assert state_of(final) == "terminated;reason=rejected"
    # A refresh arriving now is for a subscription that is over.
    answer_text = subscribe_text(call_id=first.call_id, cseq=2, to_tag=first.from_.tag)
    got = bench.received(answer_text, NOW + 3)
    assert not bench.notifier.in_dialog(got.key, got.request, PHONE, NOW + 3)


def test_a_refresh_for_another_event_id_is_481() -> None:
    bench = Bench()
    answer, [first], _ = bench.subscribe(event="x-gauge;id=1")
    bench.answer(first, 200, NOW)
    response, notifies = bench.refresh(answer, 2, NOW + 1, event="x-gauge;id=2")
    assert (response.status, notifies) == (481, [])
    response, notifies = bench.refresh(answer, 3, NOW + 1, event="x-gauge;id=1")
    assert response.status == 200
    assert notifies[0].headers.get("Event") == "x-gauge;id=1"


def test_refresh_below_the_minimum_is_423_and_keeps_the_subscription() -> None:
    bench = Bench()
    answer, [first], _ = bench.subscribe()
    bench.answer(first, 200, NOW)
    response, notifies = bench.refresh(answer, 2, NOW + 1, expires=1)
    assert (response.status, notifies) == (423, [])
    assert bench.notifier.count() == 1
    assert bench.notifier.next_timer() == NOW + 600


def test_fetch_sends_one_final_notify_and_keeps_nothing() -> None:
    bench = Bench(SubscriptionLimits(max_total=0))  # a fetch is not held to the limits
    answer, [notify], sub = bench.subscribe(expires=0)
    assert sub is None
    assert answer.status == 200
    assert answer.headers.get("Expires") == "0"
    assert state_of(notify) == "terminated;reason=timeout"
    assert notify.body == b"tank=1"
    assert bench.notifier.count() == 0
    assert bench.notifier.subscriptions_for("tank") == []
    assert bench.answer(notify, 200, NOW) == []


def test_limits_per_account_and_in_total_count_refusals() -> None:
    bench = Bench(SubscriptionLimits(max_per_account=2, max_total=3, retry_after=45))
    for _ in range(2):
        assert bench.subscribe(account="201")[0].status == 200
    refused, notifies, sub = bench.subscribe(account="201")
    assert (refused.status, refused.reason, notifies, sub) == (
        403,
        "Too Many Subscriptions",
        [],
        None,
    )
    assert bench.subscribe(account="202")[0].status == 200
    full, notifies, _ = bench.subscribe(account="203")
    assert (full.status, full.headers.get("Retry-After"), notifies) == (503, "45", [])
    assert bench.notifier.count() == 3
    assert bench.notifier.counters.refused == 2
    assert bench.notifier.counters.subscriptions_created == 3


def test_a_flood_of_subscriptions_never_grows_past_the_limits() -> None:
    bench = Bench(SubscriptionLimits(max_per_account=5, max_total=20))
    statuses = [bench.subscribe(account=f"{200 + n % 7}")[0].status for n in range(100)]
    assert statuses.count(200) == 20
    assert bench.notifier.count() == 20
    assert all(len(bench.notifier.subscriptions_of(f"{200 + n}")) <= 5 for n in range(7))


def test_reindex_moves_a_subscription_to_another_resource() -> None:
    bench = Bench()
    _, [first], sub = bench.subscribe("tank")
    assert sub is not None
    bench.answer(first, 200, NOW)
    bench.notifier.reindex(sub, "pump")
    assert bench.notifier.subscriptions_for("tank") == []
    assert bench.notifier.subscriptions_for("pump") == [sub]
    assert bench.notifier.notify_resource("tank", NOW + 1) == 0
    assert bench.notifier.notify_resource("pump", NOW + 1) == 1
    [notify] = bench.out()[1]
    assert notify.body == b"pump=7"


def test_a_dialog_whose_cseq_ran_out_is_forgotten() -> None:
    bench = Bench()
    _, [first], sub = bench.subscribe()
    assert sub is not None
    bench.answer(first, 200, NOW)
    sub.dialog.local_seq = MAX_CSEQ
    bench.gauges.values["tank"] = 5
    bench.notifier.notify_resource("tank", NOW + 1)
    assert bench.out() == ([], [])
    assert bench.notifier.count() == 0


def test_notify_timeout_removes_and_answers_to_unknown_keys_are_ignored() -> None:
    bench = Bench()
    bench.subscribe()
    for t in range(1, 40):
        bench.tick(NOW + t)
    assert bench.notifier.count() == 0
    assert bench.notifier.counters.notify_failures == 1


def test_tracked_notifies_outside_subscriptions_are_owned_and_change_nothing() -> None:
    bench = Bench()
    _, [first], _ = bench.subscribe()
    # Pretend the first NOTIFY was an unsolicited one: the answer is swallowed.
    key = next(iter(bench.notifier._keys))
    bench.notifier._keys[key] = None
    assert bench.notifier.owns(key)
    assert bench.answer(first, 500, NOW) == []
    assert bench.notifier.counters.notify_failures == 0
    bench.notifier.track(key)
    bench.notifier.terminated(key)
    assert not bench.notifier.owns(key)


def test_shutdown_deactivates_everyone_at_once() -> None:
    bench = Bench()
    bench.subscribe("tank")
    _, [b], _ = bench.subscribe("pump")
    bench.answer(b, 200, NOW)
    bench.notifier.shutdown(NOW + 1)
    finals = bench.out()[1]
    assert sorted(state_of(n) for n in finals) == ["terminated;reason=deactivated"] * 2
    assert bench.notifier.count() == 0
