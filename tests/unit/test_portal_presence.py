"""The presence routes of the portal: my presence, the directory, blocking, and
what a user may and may not do, on a real migrated database.

The routes get a `PresenceService`; here it is a small one built on the real
`PresenceBook` and `PresenceRepo` (not a mock), doing what the protocol asks
of the composition root's: persist, couple DND to routing, announce.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from teleoffice.calls.presence import (
    Changes,
    Chosen,
    PresenceBook,
    PresenceState,
    PresenceView,
)
from teleoffice.portal import EventHub
from teleoffice.portal.presence import DirectoryEntry, PresenceService
from teleoffice.store import PresenceRepo, Sessions, UserRepo
from tests.unit.portal_kit import (
    REALM,
    START,
    FakeClock,
    Portal,
    cheap_hasher,
    error_of,
    open_portal,
)


class RecordingHub(EventHub):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[dict[str, Any], list[str]]] = []

    def publish(self, event: Mapping[str, Any], users: Iterable[str]) -> int:
        users = list(users)
        self.published.append((dict(event), users))
        return super().publish(event, users)


class BookService:
    """A presence service on one PresenceBook, the way the protocol describes."""

    def __init__(
        self,
        sessions: Sessions,
        users: UserRepo,
        hub: EventHub,
        routing_dnd: Callable[[str, bool], None],
    ) -> None:
        self.repo = PresenceRepo(sessions)
        self.users = users
        self.hub = hub
        self.routing_dnd = routing_dnd
        self.clock: Callable[[], float] = FakeClock()
        self.book = self.restore()

    def restore(self) -> PresenceBook:
        stored = {
            name: Chosen(record.state, record.note, record.updated_at.timestamp())
            for name, record in self.repo.load_all().items()
        }
        return PresenceBook(stored, now=self.clock())

    def view(self, username: str) -> PresenceView:
        return self.book.view(username)

    async def everyone(self) -> Sequence[DirectoryEntry]:
        records = await asyncio.to_thread(self.users.list_users)
        return [
            DirectoryEntry(r.username, r.display_name, r.extension, self.book.view(r.username))
            for r in records
        ]

    async def set_chosen(
        self, username: str, state: PresenceState, note: str | None
    ) -> PresenceView:
        changes = self.book.set_chosen(username, state, note, self.clock())
        await asyncio.to_thread(self.apply, changes)
        return self.book.view(username)

    def apply(self, changes: Changes) -> None:
        for name, choice in changes.chosen.items():
            self.repo.save(
                name, choice.state, choice.note, datetime.fromtimestamp(choice.since, UTC)
            )
        for name, on in changes.dnd.items():
            self.routing_dnd(name, on)
        everybody = [user.username for user in self.users.list_users()]
        for name in changes:
            blocked = self.repo.blocked(name)
            view = self.book.view(name)
            self.hub.publish(
                {"type": "presence.changed", "username": name, "state": view.state},
                [user for user in everybody if user not in blocked],
            )

    async def blocked(self, username: str) -> set[str]:
        return await asyncio.to_thread(self.repo.blocked, username)

    async def blockers(self, watcher: str) -> set[str]:
        return await asyncio.to_thread(self.repo.blockers, watcher)

    async def block(self, username: str, watcher: str) -> bool:
        at = datetime.fromtimestamp(self.clock(), UTC)
        return await asyncio.to_thread(self.repo.block, username, watcher, at)

    async def unblock(self, username: str, watcher: str) -> bool:
        return await asyncio.to_thread(self.repo.unblock, username, watcher)


def _conforms(service: BookService) -> PresenceService:
    return service  # mypy checks that the test service fits the protocol


class Routing:
    """Where the service couples DND: the users' routing flag, for real."""

    def __init__(self) -> None:
        self.users: UserRepo | None = None
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, username: str, on: bool) -> None:
        self.calls.append((username, on))
        assert self.users is not None
        self.users.update(username, dnd=on)


@pytest.fixture
def routing() -> Routing:
    return Routing()


@pytest.fixture
def portal(sessions: Sessions, routing: Routing) -> Iterator[Portal]:
    hub = RecordingHub()
    users = UserRepo(sessions, realm=REALM, hasher=cheap_hasher())
    service = BookService(sessions, users, hub, routing)
    routing.users = users
    for portal in open_portal(sessions, hub=hub, presence=_conforms(service)):
        service.clock = portal.clock  # one clock for the portal and the service
        yield portal


def service_of(portal: Portal) -> BookService:
    service = portal.context.presence
    assert isinstance(service, BookService)
    return service


def my_presence(portal: Portal, user: str) -> dict[str, Any]:
    response = portal.client.get("/api/me/presence", headers=portal.as_user(user))
    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, dict)
    return body


def put_presence(portal: Portal, user: str, body: object) -> Any:
    return portal.client.put("/api/me/presence", json=body, headers=portal.as_user(user))


def directory(portal: Portal, user: str) -> dict[str, dict[str, Any]]:
    response = portal.client.get("/api/presence", headers=portal.as_user(user))
    assert response.status_code == 200, response.text
    return {entry["username"]: entry for entry in response.json()}


START_ISO = datetime.fromtimestamp(START, UTC).isoformat().replace("+00:00", "Z")


# --- authentication and availability --------------------------------------------------------

ROUTES = [
    ("GET", "/api/me/presence"),
    ("PUT", "/api/me/presence"),
    ("GET", "/api/presence"),
    ("GET", "/api/me/presence/blocked"),
    ("GET", "/api/me/presence/blocked/bob"),
    ("PUT", "/api/me/presence/blocked/bob"),
    ("DELETE", "/api/me/presence/blocked/bob"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_a_login(portal: Portal, method: str, path: str) -> None:
    body = {"state": "away"} if method == "PUT" and path.endswith("presence") else None
    response = portal.client.request(method, path, json=body)
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthenticated"


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_without_a_presence_service_the_routes_answer_503(
    sessions: Sessions, method: str, path: str
) -> None:
    for portal in open_portal(sessions):
        body = {"state": "away"} if method == "PUT" and path.endswith("presence") else None
        response = portal.client.request(method, path, json=body, headers=portal.as_user("alice"))
        assert response.status_code == 503
        assert error_of(response)["code"] == "unavailable"


def test_openapi_documents_the_presence_routes(portal: Portal) -> None:
    schema = portal.client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths["/api/me/presence"]) == {"get", "put"}
    assert set(paths["/api/me/presence/blocked/{username}"]) == {"get", "put", "delete"}
    assert paths["/api/presence"]["get"]["tags"] == ["presence"]
    assert "presence" in {tag["name"] for tag in schema["tags"]}


# --- my presence ------------------------------------------------------------------------------


def test_a_user_with_no_client_and_no_choice_is_offline(portal: Portal) -> None:
    assert my_presence(portal, "alice") == {
        "state": "offline",
        "note": None,
        "on_the_phone": False,
        "chosen": "available",
        "since": START_ISO,
    }


def test_setting_my_presence_shows_everywhere_and_is_stored(portal: Portal) -> None:
    portal.clock.advance(60)
    response = put_presence(portal, "alice", {"state": "away", "note": "  lunch, back at 2  "})
    assert response.status_code == 200, response.text
    expected = {
        "state": "away",
        "note": "lunch, back at 2",
        "on_the_phone": False,
        "chosen": "away",
        "since": datetime.fromtimestamp(START + 60, UTC).isoformat().replace("+00:00", "Z"),
    }
    assert response.json() == expected
    assert my_presence(portal, "alice") == expected
    entry = directory(portal, "bob")["alice"]
    assert (entry["state"], entry["note"]) == ("away", "lunch, back at 2")
    service = service_of(portal)
    stored = service.repo.get("alice")
    assert stored is not None
    assert (stored.state, stored.note) == (PresenceState.AWAY, "lunch, back at 2")
    assert stored.updated_at.timestamp() == START + 60
    # Everybody's portal heard of it.
    hub = service.hub
    assert isinstance(hub, RecordingHub)
    assert hub.published == [
        (
            {"type": "presence.changed", "username": "alice", "state": PresenceState.AWAY},
            ["admin", "alice", "bob", "carol"],
        )
    ]


def test_the_choice_survives_a_restart(portal: Portal) -> None:
    put_presence(portal, "alice", {"state": "busy", "note": "デプロイ中 🚀"})
    service = service_of(portal)
    service.book = service.restore()  # what a restart does
    body = my_presence(portal, "alice")
    assert (body["state"], body["note"], body["chosen"]) == ("busy", "デプロイ中 🚀", "busy")


def test_leaving_out_the_note_clears_it(portal: Portal) -> None:
    put_presence(portal, "alice", {"state": "away", "note": "lunch"})
    assert put_presence(portal, "alice", {"state": "away"}).json()["note"] is None
    assert put_presence(portal, "alice", {"state": "away", "note": "   "}).json()["note"] is None
    assert put_presence(portal, "alice", {"state": "away", "note": None}).json()["note"] is None
    stored = service_of(portal).repo.get("alice")
    assert stored is not None
    assert stored.note is None


def test_available_with_nothing_connected_shows_offline_but_is_kept(portal: Portal) -> None:
    body = put_presence(portal, "alice", {"state": "available", "note": "in today"}).json()
    assert (body["state"], body["chosen"], body["note"]) == ("offline", "available", "in today")
    service = service_of(portal)
    service.book.set_online("alice", 1, portal.clock())  # a portal tab connects
    assert my_presence(portal, "alice")["state"] == "available"


def test_a_call_shows_busy_over_my_choice(portal: Portal) -> None:
    put_presence(portal, "alice", {"state": "away", "note": "lunch"})
    service_of(portal).book.set_calls("alice", 1, portal.clock())
    body = my_presence(portal, "alice")
    assert (body["state"], body["on_the_phone"], body["chosen"], body["note"]) == (
        "busy",
        True,
        "away",
        "lunch",
    )
    assert directory(portal, "bob")["alice"]["on_the_phone"] is True


def test_do_not_disturb_switches_routing_on_and_off(portal: Portal, routing: Routing) -> None:
    assert put_presence(portal, "alice", {"state": "dnd"}).status_code == 200
    assert routing.calls == [("alice", True)]
    me = portal.client.get("/api/me", headers=portal.as_user("alice")).json()
    assert me["dnd"] is True
    put_presence(portal, "alice", {"state": "dnd", "note": "focus"})  # still DND
    put_presence(portal, "alice", {"state": "away"})
    assert routing.calls == [("alice", True), ("alice", False)]
    assert portal.client.get("/api/me", headers=portal.as_user("alice")).json()["dnd"] is False


def test_a_user_changes_only_their_own_presence(portal: Portal) -> None:
    put_presence(portal, "bob", {"state": "dnd", "note": "bob's"})
    put_presence(portal, "alice", {"state": "away", "note": "alice's"})
    assert (my_presence(portal, "bob")["state"], my_presence(portal, "bob")["note"]) == (
        "dnd",
        "bob's",
    )
    # There is no way to name somebody else.
    for method, path in (
        ("PUT", "/api/presence/bob"),
        ("PUT", "/api/presence"),
        ("PUT", "/api/me/presence/bob"),
    ):
        response = portal.client.request(
            method, path, json={"state": "offline"}, headers=portal.as_user("alice")
        )
        assert response.status_code in (404, 405), path
    response = put_presence(portal, "alice", {"state": "away", "username": "bob"})
    assert response.status_code == 422
    assert my_presence(portal, "bob")["state"] == "dnd"


@pytest.mark.parametrize(
    "note",
    [
        "Ушёл на обед, вернусь в 14:00",
        "会議中です。午後に折り返します",
        "🌴 on vacation 👨‍👩‍👧 back Monday 🏴󠁧󠁢󠁳󠁣󠁴󠁿",
        "في اجتماع حتى الساعة 3",
        "Ελληνικά και עברית",
        "😀" * 200,
        "ж" * 200,
    ],
)
def test_notes_in_any_language_are_accepted(portal: Portal, note: str) -> None:
    response = put_presence(portal, "alice", {"state": "away", "note": note})
    assert response.status_code == 200, response.text
    assert response.json()["note"] == note
    assert my_presence(portal, "alice")["note"] == note
    assert directory(portal, "admin")["alice"]["note"] == note
    stored = service_of(portal).repo.get("alice")
    assert stored is not None
    assert stored.note == note


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"state": "away", "note": "x" * 201}, "note"),
        ({"state": "away", "note": "😀" * 201}, "note"),
        ({"state": "away", "note": "line\nbreak"}, "note"),
        ({"state": "away", "note": "tab\there"}, "note"),
        ({"state": "away", "note": "nul\x00"}, "note"),
        ({"state": "away", "note": "\x1b[2J cleared your screen"}, "note"),
        ({"state": "away", "note": "del\x7f"}, "note"),
        ({"state": "away", "note": "c1\x85"}, "note"),
        ({"state": "away", "note": "ltr\u202eevil"}, "note"),
        ({"state": "away", "note": "\u2066isolate"}, "note"),
        ({"state": "away", "note": "sep\u2028"}, "note"),
        ({"state": "away", "note": 42}, "note"),
        ({"state": "away", "note": ["lunch"]}, "note"),
        ({"state": "gone"}, "state"),
        ({"state": "Away"}, "state"),
        ({"state": "on-the-phone"}, "state"),
        ({"state": None}, "state"),
        ({"state": 1}, "state"),
        ({"note": "no state"}, "state"),
        ({"state": "away", "since": "2020-01-01T00:00:00Z"}, "since"),
        ({"state": "away", "on_the_phone": True}, "on_the_phone"),
    ],
)
def test_hostile_or_malformed_input_is_refused_and_changes_nothing(
    portal: Portal, body: dict[str, Any], field: str
) -> None:
    put_presence(portal, "alice", {"state": "busy", "note": "before"})
    response = put_presence(portal, "alice", body)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "invalid_input"
    assert field in error["message"]
    after = my_presence(portal, "alice")
    assert (after["state"], after["note"]) == ("busy", "before")
    stored = service_of(portal).repo.get("alice")
    assert stored is not None
    assert stored.note == "before"


def test_a_lone_surrogate_is_refused(portal: Portal) -> None:
    # Valid JSON, but not text that can be stored or sent on as UTF-8.
    response = portal.client.put(
        "/api/me/presence",
        content=b'{"state": "away", "note": "bad \\ud800 half"}',
        headers={**portal.as_user("alice"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    assert "control" in error_of(response)["message"]
    assert my_presence(portal, "alice")["note"] is None


# --- the directory ----------------------------------------------------------------------------


def test_everyone_logged_in_reads_the_directory(portal: Portal) -> None:
    put_presence(portal, "bob", {"state": "away", "note": "🍜"})
    for reader in ("alice", "bob", "admin"):
        response = portal.client.get("/api/presence", headers=portal.as_user(reader))
        assert response.status_code == 200
        entries = response.json()
        assert [e["username"] for e in entries] == ["admin", "alice", "bob", "carol"]
        assert entries[0] == {
            "username": "admin",
            "display_name": "Administrator",
            "extension": "200",
            "state": "offline",
            "note": None,
            "on_the_phone": False,
            "since": START_ISO,
        }
        assert (entries[2]["state"], entries[2]["note"]) == ("away", "🍜")


def test_a_user_who_blocks_me_shows_as_offline_to_me_only(portal: Portal) -> None:
    put_presence(portal, "alice", {"state": "busy", "note": "secret project"})
    service_of(portal).book.set_calls("alice", 1, portal.clock())
    response = portal.client.put("/api/me/presence/blocked/bob", headers=portal.as_user("alice"))
    assert response.status_code == 204
    hidden = directory(portal, "bob")["alice"]
    assert hidden == {
        "username": "alice",
        "display_name": "alice",
        "extension": "201",
        "state": "offline",
        "note": None,
        "on_the_phone": False,
        "since": None,
    }
    shown = directory(portal, "admin")["alice"]
    assert (shown["state"], shown["note"], shown["on_the_phone"]) == (
        "busy",
        "secret project",
        True,
    )
    assert directory(portal, "alice")["alice"]["note"] == "secret project"
    # Blocking is one way: alice still sees bob.
    put_presence(portal, "bob", {"state": "away", "note": "hi"})
    assert directory(portal, "alice")["bob"]["note"] == "hi"


# --- blocking ---------------------------------------------------------------------------------


def blocked_url(username: str) -> str:
    return f"/api/me/presence/blocked/{username}"


def test_blocking_unblocking_and_asking(portal: Portal) -> None:
    alice = portal.as_user("alice")
    assert portal.client.get("/api/me/presence/blocked", headers=alice).json() == []
    assert portal.client.get(blocked_url("bob"), headers=alice).status_code == 404
    assert portal.client.put(blocked_url("bob"), headers=alice).status_code == 204
    assert portal.client.put(blocked_url("bob"), headers=alice).status_code == 204  # again
    assert portal.client.put(blocked_url("carol"), headers=alice).status_code == 204
    assert portal.client.get("/api/me/presence/blocked", headers=alice).json() == [
        {"username": "bob"},
        {"username": "carol"},
    ]
    response = portal.client.get(blocked_url("bob"), headers=alice)
    assert response.status_code == 200
    assert response.json() == {"username": "bob"}
    assert portal.client.delete(blocked_url("bob"), headers=alice).status_code == 204
    response = portal.client.delete(blocked_url("bob"), headers=alice)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    assert portal.client.get(blocked_url("bob"), headers=alice).status_code == 404
    assert service_of(portal).repo.all_blocks() == {"alice": {"carol"}}


def test_blocks_are_my_own(portal: Portal) -> None:
    portal.client.put(blocked_url("bob"), headers=portal.as_user("alice"))
    bob = portal.as_user("bob")
    # Bob cannot see whom alice blocks, nor lift her block on him.
    assert portal.client.get("/api/me/presence/blocked", headers=bob).json() == []
    assert portal.client.get(blocked_url("alice"), headers=bob).status_code == 404
    assert portal.client.delete(blocked_url("alice"), headers=bob).status_code == 404
    assert service_of(portal).repo.all_blocks() == {"alice": {"bob"}}


def test_blocking_needs_another_real_user(portal: Portal) -> None:
    alice = portal.as_user("alice")
    response = portal.client.put(blocked_url("alice"), headers=alice)
    assert response.status_code == 422
    assert "yourself" in error_of(response)["message"]
    response = portal.client.put(blocked_url("dave"), headers=alice)
    assert response.status_code == 404
    assert "dave" in error_of(response)["message"]
    assert portal.client.delete(blocked_url("dave"), headers=alice).status_code == 404
    for bad in ("-bob", "b%20ob", "x" * 65, "b%0Aob"):
        assert portal.client.put(blocked_url(bad), headers=alice).status_code == 422, bad
    assert service_of(portal).repo.all_blocks() == {}
