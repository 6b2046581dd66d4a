"""Presence over SIP on its own (server.presence_sip): PUBLISH into a real
PresenceBook, presence and dialog subscriptions, on a transaction layer with a
fake clock and plain callables for the directory."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest

from teleoffice.calls.presence import Changes, PresenceBook, PresenceState
from teleoffice.server.presence_sip import (
    DIALOG_INFO_TYPE,
    PIDF_TYPE,
    Directory,
    PresenceAgent,
    PresenceLimits,
    Watcher,
    device_key,
)
from teleoffice.server.subscriptions import SubscriptionLimits
from teleoffice.sip.dialog_info import DialogEntry, parse_dialog_info
from teleoffice.sip.message import Request, Response
from teleoffice.sip.pidf import DND_ACTIVITY, parse_pidf, presence_of
from teleoffice.sip.transaction import (
    Address,
)
from tests.unit.notify_kit import NotifierBench

NOW = 50_000.0
LOCAL = Address("UDP", "192.0.2.1", 5060)
PHONE = Address("UDP", "198.51.100.7", 5062)
_ids = itertools.count(1)


def pidf_body(
    basic: str = "open",
    activity: str | None = None,
    note: str | None = None,
    entity: str = "sip:201@pbx.test",
) -> bytes:
    person = ""
    if activity is not None or note is not None:
        inner = f"<rpid:activities><rpid:{activity}/></rpid:activities>" if activity else ""
        inner += f"<dm:note>{note}</dm:note>" if note else ""
        person = f'<dm:person id="p1">{inner}</dm:person>'
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf"'
        ' xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"'
        ' xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"'
        f' entity="{entity}"><tuple id="t1"><status><basic>{basic}</basic></status></tuple>'
        f"{person}</presence>"
    ).encode()


@dataclass
class World:
    """Accounts, extensions, blocks and calls, changeable from a test."""

    accounts: dict[str, Watcher | None] = field(
        default_factory=lambda: {
            "201": Watcher("alice", "201"),
            "202": Watcher("bob", "202"),
            "203": Watcher("carol", "203"),
            "299": None,  # a hot desk nobody is logged in on
        }
    )
    extensions: dict[str, str] = field(
        default_factory=lambda: {"201": "alice", "202": "bob", "203": "carol"}
    )
    blocked: set[tuple[str, str]] = field(default_factory=set)  # (target, watcher)
    dialogs: dict[str, list[DialogEntry]] = field(default_factory=dict)
    broken_dialogs: bool = False

    def who_is(self, account: str) -> Watcher | None:
        return self.accounts.get(account)

    def may_watch(self, target: str, watcher: str) -> bool:
        return (target, watcher) not in self.blocked

    def dialogs_of(self, username: str) -> list[DialogEntry]:
        if self.broken_dialogs:
            raise RuntimeError("engine gone")
        return self.dialogs.get(username, [])


class Bench(NotifierBench):
    def __init__(self, limits: PresenceLimits | None = None) -> None:
        super().__init__()
        self.world = World()
        self.book = PresenceBook(now=NOW - 100)
        self.hooked: list[Changes] = []
        self.agent = self.notifier = PresenceAgent(
            transactions=self.tx,
            respond=self.tx.send_response,
            local=lambda peer: LOCAL,
            domain="pbx.test",
            model=self.book,
            dialogs_of=self.world.dialogs_of,
            directory=Directory(
                who_is=self.world.who_is,
                user_of_extension=self.world.extensions.get,
                may_watch=self.world.may_watch,
            ),
            on_change=self.hooked.append,
            limits=limits,
        )

    # ---- PUBLISH ------------------------------------------------------------------------

    def publish(
        self, account: str = "201", now: float = NOW, **kwargs: object
    ) -> tuple[Response, list[Request]]:
        got = self.received(publish_bytes(account, **kwargs), now)  # type: ignore[arg-type]
        error = self.agent.check_publish(got.request)
        if error is not None:
            self.tx.send_response(got.key, error, now)
        else:
            self.agent.publish(got.key, got.request, account, now, PHONE)
        [answer], notifies = self.out()
        return answer, notifies

    # ---- SUBSCRIBE ----------------------------------------------------------------------

    def subscribe(
        self, target: str = "202", account: str = "201", now: float = NOW, **kwargs: object
    ) -> tuple[Response, list[Request]]:
        data = subscribe_bytes(target, account=account, **kwargs)  # type: ignore[arg-type]
        got = self.received(data, now)
        error = self.agent.check(got.request)
        if error is not None:
            self.tx.send_response(got.key, error, now)
        else:
            self.agent.subscribe(got.key, got.request, PHONE, account, now)
        [answer], notifies = self.out()
        return answer, notifies

    def refresh(
        self, answer: Response, cseq: int, now: float, **kwargs: object
    ) -> tuple[Response, list[Request]]:
        data = subscribe_bytes(
            answer.to.sip_uri.user or "",
            account=answer.from_.sip_uri.user or "",
            call_id=answer.call_id,
            cseq=cseq,
            to_tag=answer.to.tag,
            **kwargs,  # type: ignore[arg-type]
        )
        got = self.received(data, now)
        assert self.agent.in_dialog(got.key, got.request, PHONE, now)
        [response], notifies = self.out()
        return response, notifies


def publish_bytes(
    account: str = "201",
    *,
    target: str | None = None,
    to: str | None = None,
    body: bytes | None = None,
    etag: str | None = None,
    expires: int | None = 3600,
    event: str | None = "presence",
    content_type: str = PIDF_TYPE,
) -> bytes:
    n = next(_ids)
    target = target or account
    lines = [
        f"PUBLISH sip:{target}@pbx.test SIP/2.0",
        f"Via: SIP/2.0/UDP {PHONE.host}:{PHONE.port};branch=z9hG4bKp{n};rport",
        "Max-Forwards: 70",
        f"From: <sip:{account}@pbx.test>;tag=pub{n}",
        f"To: <sip:{to or target}@pbx.test>",
        f"Call-ID: pub-{n}",
        "CSeq: 1 PUBLISH",
    ]
    if event is not None:
        lines.append(f"Event: {event}")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if etag is not None:
        lines.append(f"SIP-If-Match: {etag}")
    payload = body or b""
    if payload:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


def subscribe_bytes(
    target: str = "202",
    *,
    account: str = "201",
    event: str = "presence",
    expires: int | None = 3600,
    call_id: str | None = None,
    cseq: int = 1,
    to_tag: str | None = None,
    accept: str | None = None,
    host: str = "pbx.test",
) -> bytes:
    n = next(_ids)
    lines = [
        f"SUBSCRIBE sip:{target}@{host} SIP/2.0",
        f"Via: SIP/2.0/UDP {PHONE.host}:{PHONE.port};branch=z9hG4bKs{n};rport",
        "Max-Forwards: 70",
        f"From: <sip:{account}@pbx.test>;tag=w{account}",
        f"To: <sip:{target}@{host}>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id or f'sub-{n}'}",
        f"CSeq: {cseq} SUBSCRIBE",
        f"Contact: <sip:{account}@{PHONE.host}:{PHONE.port}>",
        f"Event: {event}",
    ]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if accept is not None:
        lines.append(f"Accept: {accept}")
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def state_of(notify: Request) -> str:
    return notify.headers.get("Subscription-State") or ""


def shown(notify: Request) -> tuple[str, str | None]:
    assert notify.headers.get("Content-Type") == PIDF_TYPE
    return presence_of(parse_pidf(notify.body))


def entry(dialog_id: str, state: str = "confirmed", **kwargs: object) -> DialogEntry:
    return DialogEntry(
        id=dialog_id,
        call_id=f"call-{dialog_id}",
        direction="recipient",
        state=state,  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


# ---- PUBLISH ---------------------------------------------------------------------------


def test_initial_publication_sets_the_users_state_and_answers_with_an_etag() -> None:
    bench = Bench()
    answer, notifies = bench.publish(body=pidf_body(activity="away", note="lunch"))
    assert answer.status == 200
    etag = answer.headers.get("SIP-ETag")
    assert etag
    assert answer.headers.get("Expires") == "3600"
    assert notifies == []  # nobody watches yet
    view = bench.book.view("alice")
    assert (view.state, view.note) == (PresenceState.AWAY, "lunch")
    [publication] = bench.book.publications("alice")
    assert publication.etag == etag
    assert publication.expires_at == NOW + 3600
    assert bench.agent.publications_accepted == 1


def test_refresh_modify_and_remove_follow_the_entity_tags() -> None:
    bench = Bench()
    first, _ = bench.publish(body=pidf_body(activity="away"))
    etag1 = first.headers.get("SIP-ETag")
    # Refresh: no body, the tag; a new tag comes back (RFC 3903 section 6).
    refreshed, _ = bench.publish(now=NOW + 100, etag=etag1, expires=600)
    assert refreshed.status == 200
    etag2 = refreshed.headers.get("SIP-ETag")
    assert etag2
    assert etag2 != etag1
    assert refreshed.headers.get("Expires") == "600"
    assert bench.book.publications("alice")[0].expires_at == NOW + 700
    # The old tag is spent.
    stale, _ = bench.publish(now=NOW + 101, etag=etag1)
    assert stale.status == 412
    # Modify: a body and the current tag.
    modified, _ = bench.publish(now=NOW + 102, etag=etag2, body=pidf_body(activity="busy"))
    assert modified.status == 200
    assert bench.book.view("alice").state is PresenceState.BUSY
    etag3 = modified.headers.get("SIP-ETag")
    assert etag3
    # Remove: Expires 0 and the tag; no new tag.
    removed, _ = bench.publish(now=NOW + 103, etag=etag3, expires=0)
    assert removed.status == 200
    assert removed.headers.get("Expires") == "0"
    assert removed.headers.get("SIP-ETag") is None
    assert bench.book.publications("alice") == ()
    again, _ = bench.publish(now=NOW + 104, etag=etag3, expires=0)
    assert again.status == 412


def test_a_publication_remembers_the_address_it_came_from() -> None:
    # The composition root matches it against registrar bindings: a phone that
    # publishes speaks for itself, its registration does not count twice.
    bench = Bench()
    bench.publish(body=pidf_body())
    (publication,) = bench.book.publications("alice")
    assert publication.device == device_key(PHONE.host, PHONE.port) == "198.51.100.7:5062"


@pytest.mark.parametrize("kind", ["refresh", "modify", "remove"])
def test_an_unknown_or_foreign_etag_is_412_and_changes_nothing(kind: str) -> None:
    bench = Bench()
    bobs, _ = bench.publish("202", body=pidf_body(activity="away"))
    bob_tag = bobs.headers.get("SIP-ETag")
    assert bob_tag
    for tag in ("no-such-tag", bob_tag, "x" * 300):
        kwargs: dict[str, object] = {"etag": tag}
        if kind == "modify":
            kwargs["body"] = pidf_body(activity="busy")
        elif kind == "remove":
            kwargs["expires"] = 0
        answer, _ = bench.publish("201", **kwargs)  # type: ignore[arg-type]
        assert answer.status == 412
    assert bench.book.publications("alice") == ()
    assert len(bench.book.publications("bob")) == 1
    assert bench.book.view("bob").state is PresenceState.AWAY


@pytest.mark.parametrize(
    ("kwargs", "status", "header"),
    [
        ({"event": "dialog"}, 489, ("Allow-Events", "presence")),
        ({"event": None}, 489, ("Allow-Events", "presence")),
        ({"expires": 10}, 423, ("Min-Expires", "60")),
        ({"content_type": "application/xpidf+xml"}, 415, ("Accept", PIDF_TYPE)),
        ({"content_type": "text/plain"}, 415, ("Accept", PIDF_TYPE)),
        ({"body": None}, 400, None),  # an initial publication needs a body
        ({"expires": 0}, 400, None),  # a removal needs SIP-If-Match
    ],
)
def test_refusals_before_anything_is_published(
    kwargs: dict[str, object], status: int, header: tuple[str, str] | None
) -> None:
    bench = Bench()
    options: dict[str, object] = {"body": pidf_body(activity="away")}
    options.update(kwargs)
    answer, notifies = bench.publish(**options)  # type: ignore[arg-type]
    assert (answer.status, notifies) == (status, [])
    if header is not None:
        assert answer.headers.get(header[0]) == header[1]
    assert bench.book.publications("alice") == ()


def test_absurd_expires_is_shortened_to_the_maximum() -> None:
    bench = Bench(PresenceLimits(publish_max_expires=1800))
    answer, _ = bench.publish(body=pidf_body(), expires=2**32 - 1)
    assert answer.headers.get("Expires") == "1800"
    answer, _ = bench.publish(body=pidf_body(), expires=None)
    assert answer.headers.get("Expires") == "1800"  # the default, an hour, shortened too


@pytest.mark.parametrize(
    ("account", "target", "to"),
    [
        ("201", "202", None),  # bob's presence, by Request-URI
        ("201", "201", "202"),  # ... or by To
        ("201", "bob", None),  # by username
        ("201", "999", None),  # nobody's
    ],
)
def test_publishing_someone_elses_presence_is_403(
    account: str, target: str, to: str | None
) -> None:
    bench = Bench()
    answer, _ = bench.publish(account, target=target, to=to, body=pidf_body(activity="away"))
    assert (answer.status, answer.reason) == (403, "Not Your Presence")
    assert bench.book.publications("bob") == ()
    assert bench.book.publications("alice") == ()


def test_the_username_and_the_hot_desk_account_name_the_user_too() -> None:
    bench = Bench()
    assert bench.publish("201", target="alice", body=pidf_body())[0].status == 200
    # Carol is logged in on the phone of account 201: it publishes for her,
    # to its own address of record.
    bench.world.accounts["201"] = Watcher("carol", "203")
    answer, _ = bench.publish("201", target="201", body=pidf_body(activity="away"))
    assert answer.status == 200
    assert bench.book.view("carol").state is PresenceState.AWAY
    assert len(bench.book.publications("alice")) == 1
    # Nobody on the phone: nobody to publish for.
    refused, _ = bench.publish("299", body=pidf_body())
    assert (refused.status, refused.reason) == (403, "Account Has No User")


HOSTILE_BODIES = {
    "not xml": b"hello, I am available",
    "truncated": pidf_body()[:-20],
    "billion laughs": (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:201@pbx.test">'
        b"<note>&lol2;</note></presence>"
    ),
    "external entity": (
        b'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:201@pbx.test">'
        b"<note>&x;</note></presence>"
    ),
    "wrong namespace": pidf_body().replace(b"urn:ietf:params:xml:ns:pidf", b"urn:example"),
    "too deep": (
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:201@pbx.test">'
        + b"<x>" * 200
        + b"</x>" * 200
        + b"</presence>"
    ),
    "huge": pidf_body(note="a" * 70_000),
    "not utf-8": pidf_body(note="caf\xe9").replace(b"caf\xc3\xa9", b"caf\xe9"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_BODIES))
def test_bad_or_hostile_pidf_is_400_and_changes_nothing(name: str) -> None:
    bench = Bench()
    ok, _ = bench.publish(body=pidf_body(activity="away", note="before"))
    etag = ok.headers.get("SIP-ETag")
    for tag in (None, etag):  # initial and modify alike
        answer, notifies = bench.publish(now=NOW + 1, body=HOSTILE_BODIES[name], etag=tag)
        assert answer.status == 400
        assert answer.reason.startswith("Bad PIDF")
        assert len(answer.reason) <= 120
        assert answer.reason.isprintable()
        assert notifies == []
    view = bench.book.view("alice")
    assert (view.state, view.note) == (PresenceState.AWAY, "before")
    assert len(bench.book.publications("alice")) == 1


def test_notes_are_tidied_rather_than_refused() -> None:
    bench = Bench()
    note = "back\u202e soon   " + "\u00e9" * 300
    answer, _ = bench.publish(body=pidf_body(activity="away", note=note))
    assert answer.status == 200
    stored = bench.book.view("alice").note
    assert stored is not None
    assert "\u202e" not in stored
    assert len(stored) <= 200


def test_on_the_phone_shows_busy_without_changing_the_chosen_state() -> None:
    bench = Bench()
    bench.publish(body=pidf_body(activity="away", note="gone"))
    bench.publish(account="201", now=NOW + 1, body=pidf_body(activity="on-the-phone"))
    view = bench.book.view("alice")
    assert view.on_the_phone
    assert view.state is PresenceState.BUSY
    assert view.chosen is PresenceState.AWAY


def test_dnd_published_by_a_phone_is_the_users_choice() -> None:
    bench = Bench()
    body = pidf_body(basic="closed", activity="busy")  # linphone's DND
    assert bench.publish(body=body)[0].status == 200
    assert bench.book.view("alice").state is PresenceState.DND


# ---- presence subscriptions -------------------------------------------------------------------


def test_a_watcher_gets_the_presence_at_once_and_on_every_change() -> None:
    bench = Bench()
    bench.book.set_online("bob", 1, NOW)
    answer, [notify] = bench.subscribe("202")
    assert answer.status == 200
    assert answer.headers.get("Expires") == "3600"
    assert notify.headers.get("Event") == "presence"
    assert state_of(notify) == "active;expires=3600"
    assert shown(notify) == ("available", None)
    document = parse_pidf(notify.body)
    assert document.entity == "sip:202@pbx.test"  # the URI as subscribed
    bench.answer(notify, 200, NOW)
    # Bob publishes from his phone: alice's watch hears of it.
    _, [update] = bench.publish("202", now=NOW + 1, body=pidf_body(activity="away", note="gym"))
    assert shown(update) == ("away", "gym")
    bench.answer(update, 200, NOW + 1)
    # A change elsewhere (the portal) is told by the composition root.
    bench.book.set_chosen("bob", "dnd", None, NOW + 2)
    assert bench.agent.changed("bob", NOW + 2) == 1
    [dnd] = bench.out()[1]
    assert shown(dnd) == ("dnd", None)
    person = parse_pidf(dnd.body).person
    assert person is not None
    assert DND_ACTIVITY in person.activities


def test_a_change_nobody_can_see_sends_no_notify() -> None:
    bench = Bench()
    _, [notify] = bench.subscribe("202")
    bench.answer(notify, 200, NOW)
    assert bench.agent.changed("bob", NOW + 1) == 1  # asked, but the document is the same
    assert bench.out() == ([], [])


def test_the_entity_echoes_the_subscribed_host_but_not_garbage() -> None:
    bench = Bench()
    _, [notify] = bench.subscribe("202", host="192.0.2.1:5060")
    assert parse_pidf(notify.body).entity == "sip:202@192.0.2.1:5060"
    _, [other] = bench.subscribe("202", host="a" * 300 + ".example")
    assert parse_pidf(other.body).entity == "sip:202@pbx.test"


def test_on_a_call_shows_busy_on_the_phone() -> None:
    bench = Bench()
    bench.book.set_chosen("bob", "available", None, NOW)
    _, [notify] = bench.subscribe("202")
    bench.answer(notify, 200, NOW)
    bench.book.set_calls("bob", 1, NOW + 1)
    bench.agent.changed("bob", NOW + 1)
    [busy] = bench.out()[1]
    document = parse_pidf(busy.body)
    assert presence_of(document)[0] == "busy"
    assert document.person is not None
    assert "on-the-phone" in document.person.activities


@pytest.mark.parametrize(
    ("account", "target", "status", "reason"),
    [
        ("201", "999", 404, "Not Found"),  # no such extension
        ("201", "", 404, "Not Found"),  # no user part at all
        ("299", "202", 403, "Account Has No User"),  # nobody on this phone
    ],
)
def test_who_may_subscribe(account: str, target: str, status: int, reason: str) -> None:
    bench = Bench()
    data = subscribe_bytes(target, account=account)
    if not target:
        data = data.replace(b"sip:@pbx.test", b"sip:pbx.test")
    got = bench.received(data, NOW)
    assert bench.agent.check(got.request) is None
    bench.agent.subscribe(got.key, got.request, PHONE, account, NOW)
    [answer], notifies = bench.out()
    assert (answer.status, answer.reason, notifies) == (status, reason, [])
    assert bench.agent.count() == 0


@pytest.mark.parametrize("event", ["presence", "dialog"])
def test_a_blocked_watcher_is_refused_with_403(event: str) -> None:
    bench = Bench()
    bench.world.blocked.add(("bob", "alice"))
    answer, notifies = bench.subscribe("202", event=event)
    assert (answer.status, notifies) == (403, [])
    assert bench.agent.count() == 0
    # Others still may.
    assert bench.subscribe("202", account="203", event=event)[0].status == 200


def test_a_block_during_a_subscription_ends_it_rejected_without_state() -> None:
    bench = Bench()
    _, [presence] = bench.subscribe("202")
    _, [dialog] = bench.subscribe("202", event="dialog")
    _, [carols] = bench.subscribe("202", account="203")
    for notify in (presence, dialog, carols):
        bench.answer(notify, 200, NOW)
    bench.world.blocked.add(("bob", "alice"))
    assert bench.agent.watchers_changed("bob", NOW + 1) == 3
    finals = bench.out()[1]
    assert len(finals) == 2  # carol's watch goes on silently
    for final in finals:
        assert state_of(final) == "terminated;reason=rejected"
        assert final.body == b""
    assert bench.agent.count() == 1
    # Even a change that is not about the block re-checks it.
    bench.world.blocked.add(("bob", "carol"))
    bench.book.set_chosen("bob", "away", None, NOW + 2)
    bench.agent.changed("bob", NOW + 2)
    [final] = bench.out()[1]
    assert state_of(final) == "terminated;reason=rejected"
    assert bench.agent.count() == 0


def test_hot_desking_moves_the_watch_to_the_new_user_and_their_rights() -> None:
    bench = Bench(PresenceLimits(presence=SubscriptionLimits(retry_after=120)))
    bench.world.blocked.add(("bob", "carol"))
    _, [first] = bench.subscribe("202", account="201")
    _, [second] = bench.subscribe("203", account="201")
    bench.answer(first, 200, NOW)
    bench.answer(second, 200, NOW)
    # Carol logs in on alice's phone: bob blocked her, carol may watch herself.
    bench.world.accounts["201"] = Watcher("carol", "203")
    assert bench.agent.account_changed("201", NOW + 1) == 2
    [final] = bench.out()[1]
    assert final.call_id == first.call_id
    assert state_of(final) == "terminated;reason=rejected"
    # Nobody logged in: try again later.
    bench.world.accounts["201"] = None
    bench.agent.account_changed("201", NOW + 2)
    [later] = bench.out()[1]
    assert later.call_id == second.call_id
    assert state_of(later) == "terminated;reason=probation;retry-after=120"
    assert bench.agent.count() == 0


def test_a_deleted_user_ends_with_noresource_and_a_reassigned_number_deactivated() -> None:
    bench = Bench()
    _, [bobs] = bench.subscribe("202")
    _, [carols] = bench.subscribe("203")
    bench.answer(bobs, 200, NOW)
    bench.answer(carols, 200, NOW)
    del bench.world.extensions["202"]
    bench.world.extensions["203"] = "dave"
    bench.agent.changed("bob", NOW + 1)
    bench.agent.changed("carol", NOW + 1)
    finals = {n.call_id: state_of(n) for n in bench.out()[1]}
    assert finals == {
        bobs.call_id: "terminated;reason=noresource",
        carols.call_id: "terminated;reason=deactivated",
    }


def test_refresh_gets_full_state_and_unsubscribe_a_final_notify_with_it() -> None:
    bench = Bench()
    answer, [notify] = bench.subscribe("202", expires=600)
    bench.answer(notify, 200, NOW)
    response, [again] = bench.refresh(answer, 2, NOW + 300, expires=600)
    assert response.status == 200
    assert again.body == notify.body  # unchanged, but sent: a refresh gets the state
    bench.answer(again, 200, NOW + 300)
    response, [final] = bench.refresh(answer, 3, NOW + 400, expires=0)
    assert state_of(final) == "terminated;reason=timeout"
    assert shown(final) == ("offline", None)
    assert bench.agent.count() == 0


def test_accept_must_admit_pidf_for_presence_and_dialog_info_for_dialog() -> None:
    bench = Bench()
    refused, _ = bench.subscribe("202", accept="application/xpidf+xml")
    assert (refused.status, refused.headers.get("Accept")) == (406, PIDF_TYPE)
    refused, _ = bench.subscribe("202", event="dialog", accept=PIDF_TYPE)
    assert (refused.status, refused.headers.get("Accept")) == (406, DIALOG_INFO_TYPE)
    assert bench.subscribe("202", accept=f"{PIDF_TYPE}, multipart/related")[0].status == 200


def test_an_unknown_package_is_489_listing_both() -> None:
    bench = Bench()
    answer, _ = bench.subscribe("202", event="presence.winfo")
    assert answer.status == 489
    assert answer.headers.get("Allow-Events") == "presence"


def test_a_flood_of_subscriptions_is_held_to_the_limits() -> None:
    limits = SubscriptionLimits(max_per_account=3, max_total=5, retry_after=30)
    bench = Bench(PresenceLimits(presence=limits, dialog=limits))
    statuses = [bench.subscribe("202", account="201")[0].status for _ in range(10)]
    assert statuses == [200] * 3 + [403] * 7
    statuses = [bench.subscribe("201", account="202")[0].status for _ in range(3)]
    assert statuses == [200, 200, 503]
    assert bench.agent.presence.count() == 5
    # The dialog package has a table of its own.
    assert bench.subscribe("202", account="201", event="dialog")[0].status == 200


def test_publication_expiry_is_driven_by_the_timers_and_notified() -> None:
    bench = Bench()
    bench.publish("202", body=pidf_body(activity="away"), expires=120)
    _, [notify] = bench.subscribe("202", expires=3600)
    assert shown(notify) == ("away", None)
    bench.answer(notify, 200, NOW)
    assert bench.agent.next_timer() == NOW + 120
    assert bench.tick(NOW + 119) == []
    # The phone went quiet: its publication goes, and with it the only sign
    # that bob is reachable (the chosen "away" stays).
    bench.book.set_chosen("bob", "available", None, NOW + 100)
    bench.agent.changed("bob", NOW + 100)
    [available] = bench.out()[1]
    bench.answer(available, 200, NOW + 100)
    assert shown(available) == ("available", None)
    [gone] = bench.tick(NOW + 120)
    assert shown(gone) == ("offline", None)
    assert bench.book.publications("bob") == ()


def test_notify_timeout_removes_the_watch() -> None:
    bench = Bench()
    bench.subscribe("202")
    for t in range(1, 40):
        bench.tick(NOW + t)
    assert bench.agent.count() == 0
    assert bench.agent.presence.counters.notify_failures == 1


# ---- dialog subscriptions ---------------------------------------------------------------------


def test_dialog_watch_gets_full_state_with_a_growing_version() -> None:
    bench = Bench()
    answer, [first] = bench.subscribe("202", event="dialog")
    assert answer.status == 200
    assert first.headers.get("Content-Type") == DIALOG_INFO_TYPE
    assert first.headers.get("Event") == "dialog"
    info = parse_dialog_info(first.body)
    assert (info.version, info.state, info.dialogs, info.entity) == (
        0,
        "full",
        (),
        "sip:202@pbx.test",
    )
    bench.answer(first, 200, NOW)
    ringing = entry("d1", "early", remote="sip:201@pbx.test")
    bench.world.dialogs["bob"] = [ringing]
    assert bench.agent.dialogs_changed("bob", NOW + 1) == 1
    [second] = bench.out()[1]
    info = parse_dialog_info(second.body)
    assert (info.version, info.state) == (1, "full")
    assert info.dialogs == (ringing,)
    bench.answer(second, 200, NOW + 1)
    # Nothing new: nothing sent, and the version is not spent.
    bench.agent.dialogs_changed("bob", NOW + 2)
    assert bench.out() == ([], [])
    bench.world.dialogs["bob"] = [entry("d1", "terminated")]
    bench.agent.dialogs_changed("bob", NOW + 3)
    [third] = bench.out()[1]
    info = parse_dialog_info(third.body)
    assert (info.version, info.state, info.dialogs) == (2, "full", ())


def test_dialog_changes_coalesce_while_a_notify_is_in_flight() -> None:
    bench = Bench()
    _, [first] = bench.subscribe("202", event="dialog")
    bench.world.dialogs["bob"] = [entry("d1", "early")]
    bench.agent.dialogs_changed("bob", NOW + 1)
    bench.world.dialogs["bob"] = [entry("d1", "confirmed")]
    bench.agent.dialogs_changed("bob", NOW + 2)
    assert bench.out() == ([], [])
    [second] = bench.answer(first, 200, NOW + 3)
    info = parse_dialog_info(second.body)
    assert info.version == 1
    assert [d.state for d in info.dialogs] == ["confirmed"]


def test_partial_dialog_info_sends_only_what_changed() -> None:
    bench = Bench(PresenceLimits(partial_dialogs=True))
    one, two = entry("d1", "confirmed"), entry("d2", "early")
    bench.world.dialogs["bob"] = [one]
    answer, [first] = bench.subscribe("202", event="dialog")
    assert parse_dialog_info(first.body).state == "full"
    bench.answer(first, 200, NOW)
    bench.world.dialogs["bob"] = [one, two]
    bench.agent.dialogs_changed("bob", NOW + 1)
    [second] = bench.out()[1]
    info = parse_dialog_info(second.body)
    assert (info.version, info.state, info.dialogs) == (1, "partial", (two,))
    bench.answer(second, 200, NOW + 1)
    bench.world.dialogs["bob"] = [two]  # d1 hung up
    bench.agent.dialogs_changed("bob", NOW + 2)
    [third] = bench.out()[1]
    info = parse_dialog_info(third.body)
    assert (info.version, info.state) == (2, "partial")
    assert [(d.id, d.state) for d in info.dialogs] == [("d1", "terminated")]
    # A NOTIFY the phone may have missed: the next one is full state.
    assert bench.answer(third, 500, NOW + 2, [("Retry-After", "5")]) == []
    bench.world.dialogs["bob"] = [entry("d2", "confirmed")]
    bench.agent.dialogs_changed("bob", NOW + 10)
    [fourth] = bench.out()[1]
    info = parse_dialog_info(fourth.body)
    assert (info.version, info.state, [d.id for d in info.dialogs]) == (3, "full", ["d2"])
    bench.answer(fourth, 200, NOW + 10)
    # So is the one after a refresh.
    _, [fifth] = bench.refresh(answer, 2, NOW + 20, event="dialog")
    assert parse_dialog_info(fifth.body).state == "full"


def test_a_failing_dialog_source_repeats_what_was_shown() -> None:
    bench = Bench()
    bench.world.dialogs["bob"] = [entry("d1")]
    answer, [first] = bench.subscribe("202", event="dialog")
    bench.answer(first, 200, NOW)
    bench.world.broken_dialogs = True
    response, [again] = bench.refresh(answer, 2, NOW + 1, event="dialog")
    assert response.status == 200
    info = parse_dialog_info(again.body)
    assert [d.id for d in info.dialogs] == ["d1"]
    assert info.version == 1


def test_shutdown_deactivates_both_packages() -> None:
    bench = Bench()
    bench.subscribe("202")
    bench.subscribe("202", event="dialog")
    bench.agent.shutdown(NOW + 1)
    finals = bench.out()[1]
    assert sorted(state_of(n) for n in finals) == ["terminated;reason=deactivated"] * 2
    assert bench.agent.count() == 0


# ---- the composition root's hook -----------------------------------------------------------


def test_every_change_a_publication_makes_goes_to_the_hook_before_the_notifies() -> None:
    bench = Bench()
    _, [notify] = bench.subscribe("201", account="202")
    bench.answer(notify, 200, NOW)
    answer, [update] = bench.publish(body=pidf_body(activity="away", note="out"))
    assert answer.status == 200
    [changes] = bench.hooked
    assert changes.users == {"alice"}
    assert changes.chosen["alice"].state is PresenceState.AWAY  # to persist
    assert shown(update) == ("away", "out")
    bench.answer(update, 200, NOW)
    # Refused or empty-handed publications say nothing.
    bench.publish(etag="nope", expires=0)
    bench.publish(etag=answer.headers.get("SIP-ETag"), now=NOW + 1)  # a refresh: nothing new
    assert len(bench.hooked) == 1


def test_a_publication_running_out_goes_to_the_hook_and_the_watchers() -> None:
    bench = Bench()
    _, [notify] = bench.subscribe("202", account="201")
    bench.answer(notify, 200, NOW)
    # A phone coming up: reachable, but no choice made.
    _, [up] = bench.publish("202", body=pidf_body(), expires=120)
    assert shown(up) == ("available", None)
    bench.answer(up, 200, NOW)
    assert bench.hooked[-1].chosen == {}
    [gone] = bench.tick(NOW + 120)
    assert shown(gone) == ("offline", None)
    assert state_of(gone).startswith("active")
    assert bench.hooked[-1].users == {"bob"}
    assert len(bench.hooked) == 2


def test_a_failing_hook_costs_neither_the_answer_nor_the_notifies() -> None:
    bench = Bench()
    _, [notify] = bench.subscribe("201", account="202")
    bench.answer(notify, 200, NOW)

    def broken(changes: Changes) -> None:
        raise RuntimeError("database is locked")

    bench.agent.on_change = broken
    answer, [update] = bench.publish(body=pidf_body(activity="busy"))
    assert answer.status == 200
    assert shown(update) == ("busy", None)


def test_a_directory_error_shows_nothing_rather_than_too_much() -> None:
    bench = Bench()
    answer, [first] = bench.subscribe("202", event="dialog")
    bench.answer(first, 200, NOW)
    bench.world.dialogs["bob"] = [entry("d1")]

    def broken(target: str, watcher: str) -> bool:
        raise RuntimeError("blocks not loaded")

    bench.agent.dialogs.directory = Directory(
        who_is=bench.world.who_is, user_of_extension=bench.world.extensions.get, may_watch=broken
    )
    bench.agent.dialogs_changed("bob", NOW + 1)
    assert bench.out() == ([], [])
    # A refresh must be answered with a NOTIFY, but it carries no state.
    response, [bare] = bench.refresh(answer, 2, NOW + 2, event="dialog")
    assert response.status == 200
    assert state_of(bare).startswith("active")
    assert bare.body == b""
    bench.answer(bare, 200, NOW + 2)
    # Once the directory answers again, full state follows (version 1: the
    # bare NOTIFY spent none).
    bench.agent.dialogs.directory = bench.agent.directory
    bench.agent.dialogs_changed("bob", NOW + 3)
    [full] = bench.out()[1]
    info = parse_dialog_info(full.body)
    assert (info.version, info.state, [d.id for d in info.dialogs]) == (1, "full", ["d1"])
