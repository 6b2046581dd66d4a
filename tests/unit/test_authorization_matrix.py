"""Who may do what: every route of the whole application, for every role.

The application is the real one (`teleoffice.app.Application`: the portal
API, the telephony routes, the admin routes, the UI), in-process, on an SQLite
database of the test's own. Four roles: anonymous, the users alice and bob,
and the administrator admin.

`MATRIX` has one entry per route, keyed by "METHOD /path/template" as the
application declares it ("WS" for WebSockets, "MOUNT" for mounted static
files). Every route of the application must have an entry, and every entry a
route, so a route added without deciding who may use it fails
`test_every_route_has_a_matrix_entry`. An entry says:

- who may use the route: `public(...)` (anyone), `user(...)` (anyone logged
  in, on their own things) or `admin(...)` (administrators only);
- the request to make (a concrete path, a JSON body) and the statuses the
  permitted roles get for it.

For every entry, `check_route` checks: anonymous gets 401 and changes
nothing; on admin routes alice and bob get 403 and change nothing; each
permitted role gets its expected status, and a user's request changes nothing
that belongs to anybody else. In paths and bodies, `{message}`, `{call}` and
`{phone}` become the acting user's own voicemail message, live call and desk
phone (anonymous acts on alice's).

The second half (`CROSS_USER`) has alice's objects attacked by bob: her
voicemail messages and calls by id, her presence blocks, her telecommuter
state. Somebody else's object is invisible: 404 (as if it did not exist) or
403, and nothing changes.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from starlette.routing import BaseRoute, Mount, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocketDisconnect

from teleoffice.store.presence import PresenceRepo
from tests.unit.app_kit import ROLES, SAVED_NUMBER, USERS, World, open_world, seed_database
from tests.unit.portal_kit import PASSWORDS, error_of

TELECOMMUTER_NUMBER = "90699999"


class Access(enum.Enum):
    PUBLIC = "anyone"
    USER = "any logged-in user"
    ADMIN = "administrators"


@dataclass(frozen=True, slots=True)
class Entry:
    """Who may use one route, the request to make, and what permitted roles get.

    `ok` empty means "authorized": any status but 401 and 403, below 500 (for
    admin routes whose exact answer depends on bodies the admin tests cover).
    """

    access: Access
    path: str | None = None  # None: the route's own path (no parameters)
    body: Any = None
    ok: frozenset[int] = frozenset()


def public(path: str | None = None, ok: int = 200) -> Entry:
    return Entry(Access.PUBLIC, path, None, frozenset({ok}))


def user(path: str | None = None, body: Any = None, ok: int | tuple[int, ...] = 200) -> Entry:
    return Entry(Access.USER, path, body, frozenset(ok if isinstance(ok, tuple) else (ok,)))


def admin(path: str | None = None, body: Any = None, ok: int | tuple[int, ...] = ()) -> Entry:
    return Entry(Access.ADMIN, path, body, frozenset(ok if isinstance(ok, tuple) else (ok,)))


MATRIX: dict[str, Entry] = {
    # --- public: operations, the API description, logging in, the UI
    "GET /healthz": public(),
    "GET /metrics": public(),
    "GET /openapi.json": public(),
    "GET /docs": public(),
    "GET /docs/oauth2-redirect": public(),
    "GET /redoc": public(),
    "POST /api/login": Entry(
        Access.PUBLIC, body={"username": "bob", "password": PASSWORDS["bob"]}, ok=frozenset({200})
    ),
    "GET /": public(),
    "MOUNT /static": public(),
    # --- any user, on their own account
    "POST /api/logout": user(ok=204),
    "GET /api/me": user(),
    "PATCH /api/me/settings": user(body={"dnd": True, "forward_busy": "203"}),
    "PUT /api/me/password": user(
        body={"current_password": "wrong", "new_password": "n3w-pass!"}, ok=403
    ),
    "GET /api/me/call-log": user(),
    "GET /api/me/saved-numbers": user(),
    "POST /api/me/saved-numbers": user(body={"number": "90600000", "label": "mobile"}, ok=201),
    "DELETE /api/me/saved-numbers/{number}": user(f"/api/me/saved-numbers/{SAVED_NUMBER}", ok=204),
    "GET /api/me/voicemail": user(),
    "PUT /api/me/voicemail/pin": user(body={"pin": "4321"}, ok=204),
    "GET /api/me/voicemail/greeting": user(),
    "DELETE /api/me/voicemail/greeting": user(ok=204),
    "PATCH /api/me/voicemail/{message_id}": user("/api/me/voicemail/{message}", {"heard": True}),
    "DELETE /api/me/voicemail/{message_id}": user("/api/me/voicemail/{message}", ok=204),
    "GET /api/me/voicemail/{message_id}/audio": user("/api/me/voicemail/{message}/audio"),
    "GET /api/me/presence": user(),
    "PUT /api/me/presence": user(body={"state": "away", "note": "lunch"}),
    "GET /api/presence": user(),
    "GET /api/me/presence/blocked": user(),
    "GET /api/me/presence/blocked/{username}": user("/api/me/presence/blocked/carol"),
    "PUT /api/me/presence/blocked/{username}": user("/api/me/presence/blocked/carol", ok=204),
    "DELETE /api/me/presence/blocked/{username}": user("/api/me/presence/blocked/carol", ok=204),
    "GET /api/me/telecommuter": user(),
    "PUT /api/me/telecommuter": user(body={"number": TELECOMMUTER_NUMBER}),
    "DELETE /api/me/telecommuter": user(ok=409),  # nobody is on at the start
    "GET /api/me/location": user(),
    "PUT /api/me/location": user(body={"phone": "{phone}"}),
    "DELETE /api/me/location": user(),
    # No phone is registered, so the user's own line cannot ring: refused, nothing dialled.
    "POST /api/calls": user(body={"to": "203"}, ok=409),
    "GET /api/calls": user(),
    "DELETE /api/calls/{call_id}": user("/api/calls/{call}", ok=204),
    "POST /api/calls/{call_id}/transfer": user("/api/calls/{call}/transfer", {"to": "203"}, ok=409),
    "POST /api/calls/{call_id}/{action}": user("/api/calls/{call}/hold", ok=409),
    "WS /api/events": user(),
    # --- administrators only
    "GET /api/admin/users": admin(ok=200),
    "GET /api/admin/users/{username}": admin("/api/admin/users/bob", ok=200),
    "POST /api/admin/users": admin(body={"username": "dave", "extension": "204"}, ok=201),
    "PATCH /api/admin/users/{username}": admin("/api/admin/users/bob", {"dnd": True}, ok=200),
    "DELETE /api/admin/users/{username}": admin("/api/admin/users/carol", ok=204),
    "POST /api/admin/users/{username}/password": admin("/api/admin/users/bob/password", {}),
    "DELETE /api/admin/users/{username}/telecommuter": admin(
        "/api/admin/users/bob/telecommuter", ok=409
    ),
    "GET /api/admin/users/{username}/voicemail": admin("/api/admin/users/bob/voicemail", ok=200),
    "PATCH /api/admin/users/{username}/voicemail": admin(
        "/api/admin/users/bob/voicemail", {"enabled": False}
    ),
    "GET /api/admin/restrictions": admin(ok=200),
    "GET /api/admin/restrictions/{name}": admin("/api/admin/restrictions/spare", ok=200),
    "POST /api/admin/restrictions": admin(body={"name": "new", "allowed": ["internal"]}, ok=201),
    "PATCH /api/admin/restrictions/{name}": admin(
        "/api/admin/restrictions/spare", {"description": "changed"}, ok=200
    ),
    "DELETE /api/admin/restrictions/{name}": admin("/api/admin/restrictions/spare", ok=204),
    "POST /api/admin/restrictions/{name}/check": admin(
        "/api/admin/restrictions/spare/check", {"number": "201", "internal": True}
    ),
    "GET /api/admin/trunks": admin(ok=200),
    "GET /api/admin/trunks/{name}": admin("/api/admin/trunks/provider", ok=200),
    "POST /api/admin/trunks": admin(body={"name": "second", "host": "198.51.100.2", "prefix": "8"}),
    "PATCH /api/admin/trunks/{name}": admin("/api/admin/trunks/provider", {"use_pai": True}),
    "DELETE /api/admin/trunks/{name}": admin("/api/admin/trunks/provider"),
    "GET /api/admin/phones": admin(),
    "GET /api/admin/phones/{account}": admin("/api/admin/phones/201"),
    "GET /api/admin/live": admin(),
}


# --- the application's routes -----------------------------------------------------


def _routes(app: FastAPI) -> Iterator[tuple[BaseRoute, str, set[str]]]:
    """(route, full path, methods) of every route, included routers flattened.

    Recent FastAPI versions keep included routers as one entry each in
    `app.routes`; `iter_route_contexts` walks them with their prefixes.
    """
    walk = getattr(fastapi.routing, "iter_route_contexts", None)
    if walk is None:
        for route in app.routes:
            yield route, str(getattr(route, "path", "")), set(getattr(route, "methods", None) or ())
        return
    for context in walk(app.routes):
        yield context.original_route, str(context.path), set(context.methods or ())


def route_keys(app: FastAPI) -> set[str]:
    keys: set[str] = set()
    for route, path, methods in _routes(app):
        if isinstance(route, Mount):
            keys.add(f"MOUNT {path}")
        elif isinstance(route, WebSocketRoute | fastapi.routing.APIWebSocketRoute):
            keys.add(f"WS {path}")
        else:
            # Starlette answers HEAD for every GET route by itself.
            keys.update(f"{m} {path}" for m in methods if not (m == "HEAD" and "GET" in methods))
    return keys


def static_file(app: FastAPI, mount_path: str) -> str:
    """The URL of one file the static mount serves."""
    for route, path, _ in _routes(app):
        if isinstance(route, Mount) and path == mount_path and isinstance(route.app, StaticFiles):
            directory = Path(str(route.app.directory))
            first = next(p for p in sorted(directory.rglob("*")) if p.is_file())
            return f"{mount_path}/{first.relative_to(directory).as_posix()}"
    raise AssertionError(f"no static files mounted at {mount_path}")


@pytest.fixture(scope="module")
def seeded_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data folder every world starts from, made once."""
    return seed_database(tmp_path_factory.mktemp("seeded"))


@pytest.fixture
def world(seeded_database: Path, tmp_path: Path) -> Iterator[World]:
    """A world of the test's own, for requests that change it."""
    yield from open_world(seeded_database, tmp_path)


@pytest.fixture(scope="module")
def shared_world(
    seeded_database: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One world for all the requests that only read (building one takes a
    quarter of a second, mostly FastAPI preparing its routes); the snapshots
    taken around every request would show one that wrote."""
    yield from open_world(seeded_database, tmp_path_factory.mktemp("shared"))


# --- the matrix ------------------------------------------------------------------------


def test_every_route_has_a_matrix_entry(shared_world: World) -> None:
    routes = route_keys(shared_world.app.http)
    assert sorted(routes - MATRIX.keys()) == [], "routes without a MATRIX entry"
    assert sorted(MATRIX.keys() - routes) == [], "MATRIX entries for routes that do not exist"


def _check_websocket(world: World, entry: Entry, path: str) -> None:
    # The handshake is accepted, then closed at once with 4401 (seen on receive).
    with pytest.raises(WebSocketDisconnect) as refused, world.client.websocket_connect(path) as ws:
        ws.receive_json()
    assert refused.value.code == 4401
    for role in USERS:
        with world.client.websocket_connect(f"{path}?token={world.tokens[role]}") as socket:
            hello = socket.receive_json()
        assert hello["type"] == "hello"
        assert hello["user"] == role


def _assert_status(response: Any, entry: Entry, what: str) -> None:
    status = response.status_code
    if entry.ok:
        assert status in entry.ok, (what, status, response.text[:300])
    else:
        assert status not in (401, 403), (what, status, response.text[:300])
        assert status < 500, (what, status, response.text[:300])


def _unchanged_except(before: Mapping[str, Any], after: Mapping[str, Any], actor: str) -> None:
    changed = sorted(key for key in before if before[key] != after[key] and key != actor)
    assert changed == [], f"{actor}'s request changed what belongs to {changed}"


def check_route(world: World, key: str) -> None:
    entry = MATRIX[key]
    method, template = key.split(" ", 1)
    path = entry.path or template
    if method == "WS":
        _check_websocket(world, entry, path)
        return
    if method == "MOUNT":
        method, path = "GET", static_file(world.app.http, template)

    if entry.access is Access.PUBLIC:
        for role in ROLES:
            _assert_status(world.request(role, method, path, entry.body), entry, role)
        return

    before = world.snapshot()
    anonymous = world.request("anonymous", method, path, entry.body)
    assert anonymous.status_code == 401, anonymous.text
    assert error_of(anonymous)["code"] == "unauthenticated"
    permitted: tuple[str, ...] = USERS
    if entry.access is Access.ADMIN:
        permitted = ("admin",)
        for role in ("alice", "bob"):
            denied = world.request(role, method, path, entry.body)
            assert denied.status_code == 403, (role, denied.text)
            assert error_of(denied)["code"] == "forbidden"
    assert world.snapshot() == before, "a refused request changed something"

    for role in permitted:
        response = world.request(role, method, path, entry.body)
        _assert_status(response, entry, role)
        after = world.snapshot()
        if entry.access is Access.USER:
            _unchanged_except(before, after, role)
        before = after


_READS = sorted(key for key in MATRIX if key.split(" ", 1)[0] in ("GET", "MOUNT", "WS"))
_WRITES = sorted(MATRIX.keys() - set(_READS))


@pytest.mark.parametrize("key", _READS)
def test_reading_route_access(shared_world: World, key: str) -> None:
    check_route(shared_world, key)


@pytest.mark.parametrize("key", _WRITES)
def test_writing_route_access(world: World, key: str) -> None:
    check_route(world, key)


# --- one user against another --------------------------------------------------------

# Bob acting on alice's things, each by its id or her name: (method, path, body,
# the statuses that are fine). Ids are alice's own: {message} and {call} are filled
# in for alice.
CROSS_USER: list[tuple[str, str, Any, frozenset[int]]] = [
    ("GET", "/api/me/voicemail/{message}/audio", None, frozenset({404})),
    ("PATCH", "/api/me/voicemail/{message}", {"heard": True}, frozenset({404})),
    ("DELETE", "/api/me/voicemail/{message}", None, frozenset({404})),
    ("DELETE", "/api/calls/{call}", None, frozenset({404})),
    ("POST", "/api/calls/{call}/transfer", {"to": "203"}, frozenset({404})),
    *(
        ("POST", f"/api/calls/{{call}}/{action}", None, frozenset({404}))
        for action in ("answer", "reject", "hold", "resume")
    ),
    ("DELETE", "/api/admin/users/alice/telecommuter", None, frozenset({403})),
    ("PATCH", "/api/admin/users/alice", {"dnd": True}, frozenset({403})),
    ("POST", "/api/admin/users/alice/password", {"password": "taken-over!"}, frozenset({403})),
    ("GET", "/api/admin/users/alice/voicemail", None, frozenset({403})),
    ("PATCH", "/api/admin/users/alice/voicemail", {"enabled": False}, frozenset({403})),
]


def _as_bob_on_alices(world: World, method: str, path: str, body: Any) -> Any:
    """Bob's request, with alice's ids in the path."""
    response = world.client.request(
        method,
        world.fill(path, "alice"),
        json=world.fill(body, "alice"),
        headers=world.headers("bob"),
    )
    world.client.cookies.clear()
    return response


def start_telecommuting(world: World, name: str) -> None:
    response = world.request(name, "PUT", "/api/me/telecommuter", {"number": TELECOMMUTER_NUMBER})
    assert response.status_code == 200, response.text
    assert response.json()["active"] is True


def test_a_user_cannot_act_on_another_users_things(world: World) -> None:
    start_telecommuting(world, "alice")
    for method, path, body, fine in CROSS_USER:
        before = world.snapshot()
        response = _as_bob_on_alices(world, method, path, body)
        assert response.status_code in fine, (method, path, response.status_code, response.text)
        assert world.snapshot() == before, (method, path, "changed something")
    # Alice's things are all still there, and still hers.
    message = world.values["alice"]["message"]
    assert world.request("alice", "GET", f"/api/me/voicemail/{message}/audio").status_code == 200
    assert [call["id"] for call in world.request("alice", "GET", "/api/calls").json()] == [
        "call-alice"
    ]
    assert world.request("alice", "GET", "/api/me/telecommuter").json()["active"] is True


def test_a_user_sees_only_their_own_calls_mailbox_and_state(world: World) -> None:
    start_telecommuting(world, "alice")
    calls = world.request("bob", "GET", "/api/calls").json()
    assert [call["id"] for call in calls] == ["call-bob"]
    mailbox = world.request("bob", "GET", "/api/me/voicemail").json()
    assert [str(m["id"]) for m in mailbox["messages"]] == [world.values["bob"]["message"]]
    mine = world.request("bob", "GET", "/api/me/telecommuter").json()
    assert mine["active"] is False
    assert TELECOMMUTER_NUMBER not in str(mine)
    # The live connection's first message is bob's own state, nothing of alice's.
    with world.client.websocket_connect(f"/api/events?token={world.tokens['bob']}") as socket:
        hello = socket.receive_text()
    assert "call-bob" in hello
    assert "call-alice" not in hello
    assert TELECOMMUTER_NUMBER not in hello


def test_ending_ones_own_telecommuter_mode_leaves_anothers_alone(world: World) -> None:
    start_telecommuting(world, "alice")
    refused = world.request("bob", "DELETE", "/api/me/telecommuter")
    assert refused.status_code == 409  # bob is not on; alice's mode is not his to end
    assert world.request("alice", "GET", "/api/me/telecommuter").json()["active"] is True
    ended = world.request("admin", "DELETE", "/api/admin/users/alice/telecommuter")
    assert ended.status_code == 200  # an administrator may (rule T7)
    assert world.request("alice", "GET", "/api/me/telecommuter").json()["active"] is False


def test_presence_settings_are_ones_own(world: World) -> None:
    assert world.request("alice", "PUT", "/api/me/presence/blocked/bob").status_code == 204
    note = {"state": "away", "note": "at the dentist"}
    assert world.request("alice", "PUT", "/api/me/presence", note).status_code == 200
    # Bob's own lists say nothing of alice's blocks; he cannot lift hers.
    assert [
        b["username"] for b in world.request("bob", "GET", "/api/me/presence/blocked").json()
    ] == ["carol"]
    # Routes name the watcher, never the blocker: bob unblocking "bob" is about
    # his own list, where he is not.
    assert world.request("bob", "DELETE", "/api/me/presence/blocked/bob").status_code == 404
    assert world.request("bob", "GET", "/api/me/presence/blocked/bob").status_code == 404
    # In his directory alice shows offline without her note ("polite blocking").
    directory = {e["username"]: e for e in world.request("bob", "GET", "/api/presence").json()}
    assert directory["alice"]["state"] == "offline"
    assert "dentist" not in str(directory["alice"])
    assert PresenceRepo(world.app.sessions).blocked("alice") == {"bob", "carol"}
