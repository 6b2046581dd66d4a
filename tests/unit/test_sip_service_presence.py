"""Presence through the SIP service: PUBLISH and SUBSCRIBE bytes in, responses
and NOTIFYs out, digest and the guard as for REGISTER, a real PresenceBook and
a fake clock (users are user<ext>, as sipkit's accounts make them)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from teleoffice.calls.presence import Changes, PresenceBook, PresenceState
from teleoffice.server.guard import AuthGuard, GuardLimits
from teleoffice.server.presence_sip import PIDF_TYPE, PresenceProviders
from teleoffice.server.sip_service import SipService
from teleoffice.sip.builders import make_response
from teleoffice.sip.dialog_info import DialogEntry, parse_dialog_info
from teleoffice.sip.digest import build_authorization
from teleoffice.sip.message import Request, Response
from teleoffice.sip.pidf import parse_pidf, presence_of
from teleoffice.sip.transaction import Address
from tests.unit.sipkit import PHONE, flush, make_service, send

NOW = 3_000_000.0
PASSWORDS = {"201": "secret201", "202": "secret202", "203": "secret203"}
_ids = itertools.count(1)


def pidf_body(activity: str | None = None, note: str | None = None) -> bytes:
    person = ""
    if activity or note:
        inner = f"<rpid:activities><rpid:{activity}/></rpid:activities>" if activity else ""
        inner += f"<dm:note>{note}</dm:note>" if note else ""
        person = f'<dm:person id="p">{inner}</dm:person>'
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf"'
        ' xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"'
        ' xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:201@127.0.0.1">'
        f'<tuple id="t"><status><basic>open</basic></status></tuple>{person}</presence>'
    ).encode()


@dataclass
class Site:
    """The model and the call list behind the service, changeable from a test."""

    book: PresenceBook = field(default_factory=lambda: PresenceBook(now=NOW - 10))
    dialogs: dict[str, list[DialogEntry]] = field(default_factory=dict)
    blocked: set[tuple[str, str]] = field(default_factory=set)
    hooked: list[Changes] = field(default_factory=list)

    def dialogs_of(self, username: str) -> list[DialogEntry]:
        return self.dialogs.get(username, [])

    def may_watch(self, target: str, watcher: str) -> bool:
        return (target, watcher) not in self.blocked


def make(guard: AuthGuard | None = None) -> tuple[SipService, Site]:
    site = Site()
    service = make_service(
        dict(PASSWORDS),
        guard=guard,
        service_options={
            "presence": PresenceProviders(
                model=site.book,
                dialogs_of=site.dialogs_of,
                may_watch=site.may_watch,
                on_change=site.hooked.append,
            )
        },
    )
    return service, site


def request_bytes(
    method: str,
    user: str,
    *,
    target: str | None = None,
    call_id: str,
    cseq: int,
    headers: tuple[str, ...] = (),
    body: bytes = b"",
    to_tag: str | None = None,
    source: Address = PHONE,
) -> bytes:
    target = target or user
    lines = [
        f"{method} sip:{target}@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP {source.host}:{source.port};branch=z9hG4bKq{next(_ids)};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@127.0.0.1>;tag=t{user}",
        f"To: <sip:{target}@127.0.0.1>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        *headers,
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def authenticated(
    service: SipService,
    build: Callable[[int, str | None], bytes],
    method: str,
    uri: str,
    user: str,
    now: float,
    password: str | None = None,
) -> tuple[Response, list[Request]]:
    """Send, answer the 401, send again: the final answer and what else was sent."""
    [challenge], _ = send(service, build(1, None), now)
    assert challenge.status == 401
    auth = build_authorization(
        challenge=challenge.headers.get_all("WWW-Authenticate")[0],
        method=method,
        uri=uri,
        username=user,
        password=password if password is not None else PASSWORDS[user],
    )
    [answer], requests = send(service, build(2, auth), now)
    return answer, requests


def publish(
    service: SipService,
    user: str = "201",
    now: float = NOW,
    *,
    body: bytes = b"",
    etag: str | None = None,
    expires: int = 3600,
    target: str | None = None,
    password: str | None = None,
) -> tuple[Response, list[Request]]:
    call_id = f"pub-{next(_ids)}"
    headers = ["Event: presence", f"Expires: {expires}"]
    if etag is not None:
        headers.append(f"SIP-If-Match: {etag}")
    if body:
        headers.append(f"Content-Type: {PIDF_TYPE}")

    def build(cseq: int, auth: str | None) -> bytes:
        extra = (*headers, f"Authorization: {auth}") if auth else tuple(headers)
        return request_bytes(
            "PUBLISH", user, target=target, call_id=call_id, cseq=cseq, headers=extra, body=body
        )

    uri = f"sip:{target or user}@127.0.0.1"
    return authenticated(service, build, "PUBLISH", uri, user, now, password)


def subscribe(
    service: SipService,
    target: str = "202",
    user: str = "201",
    now: float = NOW,
    *,
    event: str = "presence",
    expires: int = 3600,
) -> tuple[Response, list[Request]]:
    call_id = f"sub-{next(_ids)}"
    headers = [
        f"Contact: <sip:{user}@{PHONE.host}:{PHONE.port}>",
        f"Event: {event}",
        f"Expires: {expires}",
    ]

    def build(cseq: int, auth: str | None) -> bytes:
        extra = (*headers, f"Authorization: {auth}") if auth else tuple(headers)
        return request_bytes(
            "SUBSCRIBE", user, target=target, call_id=call_id, cseq=cseq, headers=extra
        )

    return authenticated(service, build, "SUBSCRIBE", f"sip:{target}@127.0.0.1", user, now)


def in_dialog(
    service: SipService, answer: Response, cseq: int, now: float, *, event: str, expires: int
) -> tuple[Response, list[Request]]:
    user = answer.from_.sip_uri.user or ""
    data = request_bytes(
        "SUBSCRIBE",
        user,
        target=answer.to.sip_uri.user,
        call_id=answer.call_id,
        cseq=cseq,
        to_tag=answer.to.tag,
        headers=(
            f"Contact: <sip:{user}@{PHONE.host}:{PHONE.port}>",
            f"Event: {event}",
            f"Expires: {expires}",
        ),
    )
    [response], notifies = send(service, data, now)
    return response, notifies


def reply(service: SipService, notify: Request, status: int, now: float) -> list[Request]:
    service.receive(make_response(notify, status).to_bytes(), PHONE, now)
    responses, requests = flush(service)
    assert responses == []
    return requests


def state_of(notify: Request) -> str:
    return notify.headers.get("Subscription-State") or ""


def shown(notify: Request) -> tuple[str, str | None]:
    return presence_of(parse_pidf(notify.body))


def options_answer(service: SipService) -> Response:
    data = request_bytes("OPTIONS", "201", target="", call_id="opt", cseq=1, headers=()).replace(
        b"sip:@127.0.0.1", b"sip:127.0.0.1"
    )
    [answer], _ = send(service, data, NOW)
    return answer


# ---- what is advertised ----------------------------------------------------------------


def test_options_lists_publish_and_all_three_event_packages() -> None:
    service, _ = make()
    answer = options_answer(service)
    assert "PUBLISH" in answer.token_list("Allow")
    assert "SUBSCRIBE" in answer.token_list("Allow")
    assert answer.token_list("Allow-Events") == ["message-summary", "presence", "dialog"]


def test_without_presence_publish_is_405_and_only_message_waiting_is_listed() -> None:
    service = make_service(dict(PASSWORDS))
    assert service.presence is None
    answer = options_answer(service)
    assert "PUBLISH" not in answer.token_list("Allow")
    assert answer.token_list("Allow-Events") == ["message-summary"]
    data = request_bytes(
        "PUBLISH", "201", call_id="p", cseq=1, headers=("Event: presence", "Expires: 60")
    )
    [refused], _ = send(service, data, NOW)
    assert refused.status == 405


@pytest.mark.parametrize("event", ["presence.winfo", "conference", "message-summary.x"])
def test_an_unknown_package_is_489_listing_every_package_without_a_challenge(event: str) -> None:
    service, _ = make()
    data = request_bytes(
        "SUBSCRIBE",
        "201",
        target="202",
        call_id="u",
        cseq=1,
        headers=("Contact: <sip:201@127.0.0.1:5062>", f"Event: {event}"),
    )
    [answer], notifies = send(service, data, NOW)
    assert (answer.status, notifies) == (489, [])
    assert answer.token_list("Allow-Events") == ["message-summary", "presence", "dialog"]
    assert service.counters.auth_failures == 0


# ---- PUBLISH -----------------------------------------------------------------------------


def test_publish_is_challenged_then_stored_in_the_model() -> None:
    service, site = make()
    answer, notifies = publish(service, body=pidf_body("away", "at lunch"))
    assert answer.status == 200
    etag = answer.headers.get("SIP-ETag")
    assert etag
    assert answer.headers.get("Expires") == "3600"
    assert notifies == []
    view = site.book.view("user201")
    assert (view.state, view.note) == (PresenceState.AWAY, "at lunch")
    [changes] = site.hooked  # for the composition root to persist
    assert changes.chosen["user201"].note == "at lunch"
    # Refresh and removal, each authenticated again (PUBLISH makes no dialog).
    refreshed, _ = publish(service, now=NOW + 60, etag=etag, expires=1800)
    assert refreshed.status == 200
    new_etag = refreshed.headers.get("SIP-ETag")
    assert new_etag
    removed, _ = publish(service, now=NOW + 61, etag=new_etag, expires=0)
    assert (removed.status, removed.headers.get("Expires")) == (200, "0")
    assert site.book.publications("user201") == ()
    stale, _ = publish(service, now=NOW + 62, etag=etag, expires=0)
    assert stale.status == 412


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        (("Event: presence", "Content-Type: application/sdp"), b"v=0\r\n", 415),
        (("Event: presence", "Content-Type: text/plain"), b"available", 415),
        (
            ("Event: presence", f"Content-Type: {PIDF_TYPE}", "Content-Encoding: gzip"),
            pidf_body(),
            415,
        ),
        (("Event: dialog", f"Content-Type: {PIDF_TYPE}"), pidf_body(), 489),
        (("Event: presence", "Expires: 1"), b"", 423),
        (("Event: presence",), b"", 400),  # initial without a body
        (("Event: presence;;", f"Content-Type: {PIDF_TYPE}"), pidf_body(), 400),
    ],
)
def test_publish_refusals_come_before_any_challenge(
    headers: tuple[str, ...], body: bytes, status: int
) -> None:
    service, site = make()
    data = request_bytes("PUBLISH", "201", call_id="r", cseq=1, headers=headers, body=body)
    [answer], _ = send(service, data, NOW)
    assert answer.status == status
    if status == 415:
        gzip = any("gzip" in h for h in headers)
        assert answer.headers.get("Accept-Encoding" if gzip else "Accept") == (
            "identity" if gzip else PIDF_TYPE
        )
    assert service.counters.auth_failures == 0
    assert site.book.publications("user201") == ()


def test_publish_for_another_user_is_403() -> None:
    service, site = make()
    answer, _ = publish(service, "201", target="202", body=pidf_body("away"))
    assert (answer.status, answer.reason) == (403, "Not Your Presence")
    assert site.book.publications("user202") == ()


def test_a_huge_or_hostile_body_is_400_after_authentication() -> None:
    service, site = make()
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:201@x"><note>&b;</note>'
        b"</presence>"
    )
    for body in (laughs, pidf_body(note="z" * 80_000), b"<presence/>"):
        answer, _ = publish(service, body=body)
        assert answer.status == 400
        assert answer.reason.startswith("Bad PIDF")
    assert site.book.publications("user201") == ()


def test_a_wrong_password_is_challenged_again_and_counted_by_the_guard() -> None:
    guard = AuthGuard(GuardLimits(source_limit=2, window=60, block_time=300))
    service, site = make(guard)
    for _ in range(2):
        answer, _ = publish(service, body=pidf_body("away"), password="guess")
        assert answer.status == 401
    assert service.counters.auth_failures == 2
    assert site.book.publications("user201") == ()
    data = request_bytes(
        "PUBLISH",
        "201",
        call_id="after",
        cseq=1,
        headers=("Event: presence", f"Content-Type: {PIDF_TYPE}"),
        body=pidf_body(),
    )
    assert send(service, data, NOW + 1) == ([], [])  # blocked: silence


# ---- SUBSCRIBE ---------------------------------------------------------------------------


def test_presence_watch_follows_the_other_phones_publications() -> None:
    service, _ = make()
    answer, [notify] = subscribe(service, "202", "201")
    assert answer.status == 200
    assert notify.method == "NOTIFY"
    assert notify.headers.get("Event") == "presence"
    assert notify.headers.get("Content-Type") == PIDF_TYPE
    assert state_of(notify) == "active;expires=3600"
    assert shown(notify) == ("offline", None)  # nothing known of 202 yet
    assert parse_pidf(notify.body).entity == "sip:202@127.0.0.1"
    assert reply(service, notify, 200, NOW) == []
    published, [update] = publish(service, "202", NOW + 1, body=pidf_body("busy", "meeting"))
    assert published.status == 200
    assert update.call_id == notify.call_id
    assert shown(update) == ("busy", "meeting")
    assert reply(service, update, 200, NOW + 1) == []
    assert service.presence is not None
    assert service.presence.count() == 1


def test_dialog_watch_lights_the_busy_lamp() -> None:
    service, site = make()
    answer, [notify] = subscribe(service, "202", "201", event="dialog")
    assert answer.status == 200
    info = parse_dialog_info(notify.body)
    assert (info.version, info.state, info.dialogs) == (0, "full", ())
    reply(service, notify, 200, NOW)
    site.dialogs["user202"] = [
        DialogEntry("c1", "c1@pbx", "recipient", "early", remote="sip:201@127.0.0.1")
    ]
    assert service.presence is not None
    assert service.presence.dialogs_changed("user202", NOW + 1) == 1
    _, [lamp] = flush(service)
    info = parse_dialog_info(lamp.body)
    assert (info.version, [d.state for d in info.dialogs]) == (1, ["early"])


def test_refresh_and_unsubscribe_in_the_dialog_need_no_challenge() -> None:
    service, _ = make()
    answer, [notify] = subscribe(service, expires=600)
    reply(service, notify, 200, NOW)
    response, [again] = in_dialog(service, answer, 3, NOW + 300, event="presence", expires=600)
    assert response.status == 200
    assert state_of(again) == "active;expires=600"
    reply(service, again, 200, NOW + 300)
    response, [final] = in_dialog(service, answer, 4, NOW + 301, event="presence", expires=0)
    assert response.status == 200
    assert state_of(final) == "terminated;reason=timeout"
    reply(service, final, 200, NOW + 301)
    gone, notifies = in_dialog(service, answer, 5, NOW + 302, event="presence", expires=600)
    assert (gone.status, notifies) == (481, [])


def test_unknown_extension_is_404_and_a_blocked_watcher_403() -> None:
    service, site = make()
    answer, notifies = subscribe(service, "299", "201")
    assert (answer.status, notifies) == (404, [])
    site.blocked.add(("user202", "user201"))
    answer, notifies = subscribe(service, "202", "201")
    assert (answer.status, notifies) == (403, [])
    answer, notifies = subscribe(service, "202", "201", event="dialog")
    assert (answer.status, notifies) == (403, [])
    assert service.presence is not None
    assert service.presence.count() == 0


def test_message_waiting_still_works_next_to_presence() -> None:
    service, _ = make()
    answer, [notify] = subscribe(service, "201", "201", event="message-summary")
    assert answer.status == 200
    assert notify.headers.get("Event") == "message-summary"
    assert reply(service, notify, 200, NOW) == []
    assert service.mwi.count() == 1
    assert service.presence is not None
    assert service.presence.count() == 0


def test_publication_expiry_runs_on_the_service_timers() -> None:
    service, site = make()
    publish(service, "202", body=pidf_body("away"), expires=120)
    site.book.set_chosen("user202", "available", None, NOW)
    _, [notify] = subscribe(service, "202", "201")
    assert shown(notify) == ("available", None)
    reply(service, notify, 200, NOW)
    service.handle_timers(NOW + 40)  # the transactions are over
    assert service.next_timer() == NOW + 120
    service.handle_timers(NOW + 120)
    _, [gone] = flush(service)
    assert shown(gone) == ("offline", None)


def test_unanswered_notify_times_out_through_the_service() -> None:
    service, _ = make()
    subscribe(service, "202", "201", event="dialog")
    for step in range(1, 70):
        service.handle_timers(NOW + step / 2)
    assert service.presence is not None
    assert service.presence.count() == 0
    assert service.presence.dialogs.counters.notify_failures == 1


def test_shutdown_ends_presence_subscriptions_too() -> None:
    service, _ = make()
    _, [a] = subscribe(service, "202", "201")
    _, [b] = subscribe(service, "201", "202", event="dialog")
    reply(service, a, 200, NOW)
    reply(service, b, 200, NOW)
    service.shutdown(NOW + 1)
    _, finals = flush(service)
    assert sorted(state_of(n) for n in finals) == ["terminated;reason=deactivated"] * 2
