"""Message waiting through the SIP service: SUBSCRIBE bytes in, responses and
NOTIFYs out, digest and the guard as for REGISTER, a fake clock."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from teleoffice.server.guard import AuthGuard, GuardLimits
from teleoffice.server.mwi import Mailbox, MwiLimits, summary_body
from teleoffice.server.sip_service import SipService
from teleoffice.sip.builders import make_response
from teleoffice.sip.digest import build_authorization
from teleoffice.sip.message import Request, Response, parse_message
from teleoffice.sip.transaction import Address
from tests.unit.sipkit import PHONE, flush, make_service, register, send

NOW = 2_000_000.0
PASSWORDS = {"201": "secret201", "202": "secret202"}
_ids = itertools.count(1)


@dataclass
class Mailboxes:
    """The counts and unsolicited settings a test changes (users are user<ext>)."""

    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    unsolicited: set[str] = field(default_factory=set)

    def count(self, username: str) -> tuple[int, int]:
        return self.counts.get(username, (0, 0))

    def wants_unsolicited(self, account: str) -> bool:
        return account in self.unsolicited


def make(**options: object) -> tuple[SipService, Mailboxes]:
    boxes = Mailboxes()
    service = make_service(
        dict(PASSWORDS),
        service_options={
            "counts": boxes.count,
            "unsolicited": boxes.wants_unsolicited,
            **options,
        },
    )
    return service, boxes


def subscribe_bytes(
    user: str = "201",
    *,
    call_id: str = "mwi-1",
    cseq: int = 1,
    expires: int | str | None = 3600,
    event: str | None = "message-summary",
    to_tag: str | None = None,
    authorization: str | None = None,
    extra: tuple[str, ...] = (),
    source: Address = PHONE,
) -> bytes:
    branch = f"z9hG4bKs{next(_ids)}"
    lines = [
        f"SUBSCRIBE sip:{user}@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/{source.transport} {source.host}:{source.port};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@127.0.0.1>;tag=ph{user}",
        f"To: <sip:{user}@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} SUBSCRIBE",
        f"Contact: <sip:{user}@{source.host}:{source.port}>",
    ]
    if event is not None:
        lines.append(f"Event: {event}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    lines.extend(extra)
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def subscribe(
    service: SipService,
    now: float = NOW,
    *,
    user: str = "201",
    password: str | None = None,
    source: Address = PHONE,
    **kwargs: object,
) -> tuple[Response, list[Request]]:
    """SUBSCRIBE, answer the challenge; the final answer and the NOTIFYs sent."""
    call_id = str(kwargs.pop("call_id", f"mwi-{next(_ids)}"))
    first, _ = send(
        service,
        subscribe_bytes(user, call_id=call_id, cseq=1, source=source, **kwargs),  # type: ignore[arg-type]
        now,
        source,
    )
    assert [r.status for r in first] == [401]
    auth = build_authorization(
        challenge=first[0].headers.get_all("WWW-Authenticate")[0],
        method="SUBSCRIBE",
        uri=f"sip:{user}@127.0.0.1",
        username=user,
        password=password if password is not None else PASSWORDS[user],
    )
    final, notifies = send(
        service,
        subscribe_bytes(
            user,
            call_id=call_id,
            cseq=2,
            authorization=auth,
            source=source,
            **kwargs,  # type: ignore[arg-type]
        ),
        now,
        source,
    )
    [answer] = final
    return answer, notifies


def in_dialog(
    service: SipService, answer: Response, cseq: int, now: float, **kwargs: object
) -> tuple[Response, list[Request]]:
    data = subscribe_bytes(
        answer.from_.sip_uri.user or "",
        call_id=answer.call_id,
        cseq=cseq,
        to_tag=answer.to.tag,
        **kwargs,  # type: ignore[arg-type]
    )
    responses, notifies = send(service, data, now)
    [response] = responses
    return response, notifies


def reply(service: SipService, notify: Request, status: int, now: float) -> list[Request]:
    """The phone answers a NOTIFY; whatever the service sends next."""
    service.receive(make_response(notify, status).to_bytes(), PHONE, now)
    responses, requests = flush(service)
    assert responses == []
    return requests


def state_of(notify: Request) -> str:
    return notify.headers.get("Subscription-State") or ""


# ---- the happy path ------------------------------------------------------------------


def test_subscribe_is_challenged_then_accepted_with_an_immediate_notify() -> None:
    service, boxes = make()
    boxes.counts["user201"] = (2, 5)
    answer, [notify] = subscribe(service)
    assert answer.status == 200
    assert answer.headers.get("Expires") == "3600"
    assert answer.to.tag
    [contact] = answer.contacts
    assert contact.sip_uri.host == "127.0.0.1"
    assert contact.sip_uri.port == 5060
    # RFC 6665: in the dialog the 200 made, from our tag to theirs.
    assert notify.method == "NOTIFY"
    assert str(notify.uri) == "sip:201@127.0.0.1:5062"
    assert (notify.call_id, notify.from_.tag, notify.to.tag) == (
        answer.call_id,
        answer.to.tag,
        "ph201",
    )
    assert notify.headers.get("Event") == "message-summary"
    assert state_of(notify) == "active;expires=3600"
    assert notify.headers.get("Content-Type") == "application/simple-message-summary"
    assert notify.body == (
        b"Messages-Waiting: yes\r\nMessage-Account: sip:201@127.0.0.1\r\nVoice-Message: 2/5\r\n"
    )
    assert service.mwi.count() == 1
    assert service.counters.responses_sent[200] == 1


def test_a_phone_on_tls_gets_our_tls_port_in_via_and_contact() -> None:
    # TLS listens on a port of its own: a NOTIFY's Via sent-by and Contact must
    # name it (RFC 3261 section 18.2.1), or the phone answers to the UDP port.
    service, _ = make()
    service.b2bua.tls_port = 5061
    tls_phone = Address("TLS", "127.0.0.1", 40123)
    answer, [notify] = subscribe(service, source=tls_phone)
    assert answer.status == 200
    [contact] = answer.contacts
    assert (contact.sip_uri.port, contact.sip_uri.param("transport")) == (5061, "tls")
    via = notify.top_via
    assert (via.transport, via.host, via.port) == ("TLS", "127.0.0.1", 5061)
    [notify_contact] = notify.contacts
    assert notify_contact.sip_uri.port == 5061


def test_old_messages_only_leave_the_lamp_off() -> None:
    service, boxes = make()
    boxes.counts["user201"] = (0, 3)
    _, [notify] = subscribe(service)
    assert notify.body.startswith(b"Messages-Waiting: no\r\n")
    assert b"Voice-Message: 0/3\r\n" in notify.body


def test_event_id_is_echoed() -> None:
    service, _ = make()
    _, [notify] = subscribe(service, event="message-summary;id=77")
    assert notify.headers.get("Event") == "message-summary;id=77"


def test_changed_notifies_every_subscription_of_that_mailbox_only() -> None:
    service, boxes = make()
    desk = Address("UDP", "127.0.0.1", 5062)
    soft = Address("UDP", "127.0.0.1", 5064)
    _, [a] = subscribe(service, source=desk)
    _, [b] = subscribe(service, source=soft)
    _, [c] = subscribe(service, user="202")
    for notify in (a, b, c):
        reply(service, notify, 200, NOW)
    boxes.counts["user201"] = (1, 0)
    assert service.mwi.changed("user201", NOW + 5) == 2
    _, notifies = flush(service)
    assert {n.call_id for n in notifies} == {a.call_id, b.call_id}
    for notify in notifies:
        assert notify.body == summary_body((1, 0), "sip:201@127.0.0.1")
        assert state_of(notify) == "active;expires=3595"
    assert service.mwi.changed("nobody", NOW + 5) == 0


def test_refresh_in_the_dialog_needs_no_new_challenge_and_gets_a_notify() -> None:
    service, _ = make()
    answer, [notify] = subscribe(service, expires=600)
    reply(service, notify, 200, NOW)
    response, [again] = in_dialog(service, answer, 3, NOW + 500, expires=1200)
    assert response.status == 200
    assert response.headers.get("Expires") == "1200"
    assert state_of(again) == "active;expires=1200"
    assert again.cseq.seq == notify.cseq.seq + 1
    assert service.mwi.next_timer() == NOW + 1700


def test_unsubscribe_ends_with_a_final_notify_and_forgets_the_dialog() -> None:
    service, _ = make()
    answer, [notify] = subscribe(service)
    reply(service, notify, 200, NOW)
    response, [final] = in_dialog(service, answer, 3, NOW + 10, expires=0)
    assert response.status == 200
    assert response.headers.get("Expires") == "0"
    assert state_of(final) == "terminated;reason=timeout"
    assert final.body.startswith(b"Messages-Waiting: ")
    assert service.mwi.count() == 0
    assert reply(service, final, 200, NOW + 10) == []
    again, notifies = in_dialog(service, answer, 4, NOW + 20, expires=3600)
    assert (again.status, notifies) == (481, [])


def test_subscription_expires_by_timer_with_a_final_notify() -> None:
    service, _ = make()
    _, [notify] = subscribe(service, expires=120)
    reply(service, notify, 200, NOW)
    service.handle_timers(NOW + 40)  # the transactions are over
    assert service.next_timer() == NOW + 120
    service.handle_timers(NOW + 119)
    assert flush(service) == ([], [])
    service.handle_timers(NOW + 120)
    _, [final] = flush(service)
    assert state_of(final) == "terminated;reason=timeout"
    assert service.mwi.count() == 0


def test_fetch_with_expires_zero_gets_one_notify_and_keeps_nothing() -> None:
    service, boxes = make()
    boxes.counts["user201"] = (1, 1)
    answer, [notify] = subscribe(service, expires=0)
    assert answer.status == 200
    assert answer.headers.get("Expires") == "0"
    assert state_of(notify) == "terminated;reason=timeout"
    assert notify.body == summary_body((1, 1), "sip:201@127.0.0.1")
    assert service.mwi.count() == 0


def test_notify_answered_481_removes_the_subscription() -> None:
    service, _ = make()
    answer, [notify] = subscribe(service)
    assert reply(service, notify, 481, NOW + 1) == []
    assert service.mwi.count() == 0
    again, _ = in_dialog(service, answer, 3, NOW + 2)
    assert again.status == 481


def test_unanswered_notify_times_out_and_removes_the_subscription() -> None:
    service, _ = make()
    subscribe(service)
    for step in range(1, 70):
        service.handle_timers(NOW + step / 2)
    _, retransmissions = flush(service)
    assert retransmissions  # UDP: the NOTIFY was sent again before giving up
    assert {r.method for r in retransmissions} == {"NOTIFY"}
    assert service.mwi.count() == 0
    assert service.mwi.counters.notify_failures == 1


def test_options_advertises_subscribe_and_the_event_package() -> None:
    service, _ = make()
    data = (
        b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKopt\r\n"
        b"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: opt\r\n"
        b"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
    [answer], _ = send(service, data, NOW)
    assert "SUBSCRIBE" in answer.token_list("Allow")
    assert answer.headers.get("Allow-Events") == "message-summary"


# ---- refusals and hostile input --------------------------------------------------------


@pytest.mark.parametrize("event", ["presence", "dialog", "message-summary.winfo", None])
def test_unknown_or_missing_event_gets_489_without_a_challenge(event: str | None) -> None:
    service, _ = make()
    [answer], notifies = send(service, subscribe_bytes(event=event), NOW)
    assert answer.status == 489
    assert answer.headers.get("Allow-Events") == "message-summary"
    assert notifies == []
    assert service.counters.auth_failures == 0


def test_malformed_event_is_a_bad_request() -> None:
    service, _ = make()
    [answer], _ = send(service, subscribe_bytes(event="message-summary;;"), NOW)
    assert answer.status == 400


@pytest.mark.parametrize(
    ("accept", "status"),
    [
        ("Accept: application/pidf+xml", 406),
        ("Accept: text/plain, application/sdp", 406),
        ("Accept: application/simple-message-summary", 401),
        ("Accept: application/*", 401),
        ("Accept: text/plain, */*", 401),
    ],
)
def test_accept_must_admit_the_message_summary_format(accept: str, status: int) -> None:
    service, _ = make()
    [answer], _ = send(service, subscribe_bytes(extra=(accept,)), NOW)
    assert answer.status == status
    if status == 406:
        assert answer.headers.get("Accept") == "application/simple-message-summary"


def test_too_brief_expires_gets_423_with_min_expires() -> None:
    service, _ = make(mwi_limits=MwiLimits(min_expires=120))
    [answer], _ = send(service, subscribe_bytes(expires=30), NOW)
    assert answer.status == 423
    assert answer.headers.get("Min-Expires") == "120"


def test_huge_expires_is_shortened_and_absurd_expires_refused() -> None:
    service, _ = make()
    answer, [notify] = subscribe(service, expires=2**32 - 1)
    assert answer.headers.get("Expires") == "3600"
    assert state_of(notify) == "active;expires=3600"
    for value in ("99999999999999999999", "-5", "soon"):
        [bad], notifies = send(service, subscribe_bytes(expires=value), NOW)
        assert (bad.status, notifies) == (400, [])


def test_subscribe_without_contact_is_a_bad_request() -> None:
    service, _ = make()
    data = subscribe_bytes().replace(b"Contact: <sip:201@127.0.0.1:5062>\r\n", b"")
    [answer], _ = send(service, data, NOW)
    assert (answer.status, answer.reason) == (400, "Missing Contact")


def test_wrong_password_is_challenged_again_and_counted_by_the_guard() -> None:
    guard = AuthGuard(GuardLimits(source_limit=2, window=60, block_time=300))
    boxes = Mailboxes()
    service = make_service(dict(PASSWORDS), guard=guard, service_options={"counts": boxes.count})
    for attempt in range(2):
        [challenge], _ = send(service, subscribe_bytes(call_id=f"bad-{attempt}"), NOW)
        auth = build_authorization(
            challenge=challenge.headers.get_all("WWW-Authenticate")[0],
            method="SUBSCRIBE",
            uri="sip:201@127.0.0.1",
            username="201",
            password="guess",
        )
        [answer], notifies = send(
            service, subscribe_bytes(call_id=f"bad-{attempt}", cseq=2, authorization=auth), NOW
        )
        assert (answer.status, notifies) == (401, [])
    assert service.counters.auth_failures == 2
    assert service.mwi.count() == 0
    # The address is now blocked: silence, like for REGISTER.
    assert send(service, subscribe_bytes(call_id="after"), NOW + 1) == ([], [])


def test_per_account_limit_gives_403_and_total_limit_503() -> None:
    service, _ = make(mwi_limits=MwiLimits(max_per_account=2, max_total=3, retry_after=90))
    assert subscribe(service)[0].status == 200
    assert subscribe(service)[0].status == 200
    refused, notifies = subscribe(service)
    assert (refused.status, refused.reason, notifies) == (403, "Too Many Subscriptions", [])
    assert subscribe(service, user="202")[0].status == 200
    full, notifies = subscribe(service, user="202")
    assert (full.status, full.headers.get("Retry-After"), notifies) == (503, "90", [])
    assert service.mwi.count() == 3


def test_subscribe_in_an_unknown_dialog_gets_481() -> None:
    service, _ = make()
    [answer], _ = send(service, subscribe_bytes(to_tag="not-ours"), NOW)
    assert answer.status == 481


def test_the_mailbox_is_the_authenticated_accounts_whatever_the_request_uri() -> None:
    service, boxes = make()
    boxes.counts = {"user201": (0, 0), "user202": (9, 9)}
    data_uri = b"SUBSCRIBE sip:202@127.0.0.1 SIP/2.0"
    first, _ = send(
        service,
        subscribe_bytes(call_id="peek").replace(b"SUBSCRIBE sip:201@127.0.0.1 SIP/2.0", data_uri),
        NOW,
    )
    auth = build_authorization(
        challenge=first[0].headers.get_all("WWW-Authenticate")[0],
        method="SUBSCRIBE",
        uri="sip:202@127.0.0.1",
        username="201",
        password="secret201",
    )
    data = subscribe_bytes(call_id="peek", cseq=2, authorization=auth).replace(
        b"SUBSCRIBE sip:201@127.0.0.1 SIP/2.0", data_uri
    )
    [answer], [notify] = send(service, data, NOW)
    assert answer.status == 200
    assert notify.body == summary_body((0, 0), "sip:201@127.0.0.1")


# ---- providers and the phone's user ------------------------------------------------------


def test_mailbox_of_overrides_whose_lamp_a_phone_shows() -> None:
    who: dict[str, Mailbox | None] = {"201": Mailbox("carol", "203")}
    service, boxes = make(mailbox_of=who.get)
    boxes.counts["carol"] = (1, 0)
    _, [notify] = subscribe(service)
    assert notify.body == summary_body((1, 0), "sip:203@127.0.0.1")
    reply(service, notify, 200, NOW)
    who["201"] = None  # carol logs out of the phone
    assert service.mwi.account_changed("201", NOW + 1) == 1
    _, [off] = flush(service)
    assert off.body == b"Messages-Waiting: no\r\n"


def test_unsolicited_notify_goes_to_the_registered_contacts_of_accounts_that_want_it() -> None:
    service, boxes = make()
    phone202 = Address("UDP", "127.0.0.1", 5072)
    ok = register(
        service,
        NOW,
        user="202",
        password="secret202",
        source=phone202,
        contact="<sip:202@127.0.0.1:5072>",
        call_id="reg-202",
    )
    assert ok.status == 200
    boxes.counts["user202"] = (3, 0)
    assert service.mwi.changed("user202", NOW + 1) == 0
    boxes.unsolicited.add("202")
    assert service.mwi.changed("user202", NOW + 1) == 1
    sent = service.outgoing()
    [(raw, destination)] = sent
    assert destination == phone202
    notify = parse_message(raw)
    assert isinstance(notify, Request)
    assert notify.method == "NOTIFY"
    assert str(notify.uri) == "sip:202@127.0.0.1:5072"
    assert notify.to.tag is None
    assert state_of(notify) == "terminated"
    assert notify.body == summary_body((3, 0), "sip:202@127.0.0.1")
    service.receive(make_response(notify, 200).to_bytes(), phone202, NOW + 1)
    assert service.outgoing() == []


def test_shutdown_tells_every_subscriber() -> None:
    service, _ = make()
    _, [notify] = subscribe(service)
    reply(service, notify, 200, NOW)
    service.shutdown(NOW + 1)
    _, [final] = flush(service)
    assert state_of(final) == "terminated;reason=deactivated"
