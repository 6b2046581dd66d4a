"""The REST API against a real `teleoffice serve`: restrictions (rule T11) and security.

Restrictions: a number the user's profile bars gets 403 from `POST /api/calls`
and not one SIP packet (the user's desk phone, which the PBX rings first for a
call placed from the portal, stays silent; the provider hears nothing).  A
profile the administrator assigns through the API applies to the API and to
the phone alike, and a forward to a barred number is never placed.

Security: every route but the login needs a token; users see and touch only
their own calls and settings; administration needs an administrator; hostile
input gets a JSON 4xx, changes nothing, and the server keeps serving HTTP and SIP.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from teleoffice.bench.processes import LOOPBACK, free_port
from tests.e2e.calls_kit import (
    CallLab,
    Phone,
    event_reason,
    port_block,
    received,
    status_in,
    tracebacks,
)
from tests.e2e.harness import Server, parse_message
from tests.e2e.harness import options as sip_options

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ALICE = ("201", "secret201")
BOB = ("202", "secret202")
PASSWORDS = {
    "alice": "alice-portal-1",
    "bob": "bob-portal-12",
    "root": "root-portal-1",
    "carol": "carol-portal-1",
}
USERS_SETUP = [
    ["user", "set", "alice", "--password", PASSWORDS["alice"]],
    ["user", "set", "bob", "--password", PASSWORDS["bob"]],
    [
        "user", "add", "root", "--extension", "209", "--sip-password", "secret209",
        "--password", PASSWORDS["root"], "--admin",
    ],
    [
        "user", "add", "carol", "--extension", "203", "--sip-password", "secret203",
        "--password", PASSWORDS["carol"],
    ],
]  # fmt: skip
NATIONAL = "95551234"  # trunk prefix 9, then a national number: allowed by `default`
INTERNATIONAL = "900441234567"  # leaves the trunk as 00441234567: barred by `default`
DEFAULT_INTERNATIONAL = "Barred by restriction profile default: international"
INTERNAL_ONLY_OUTSIDE = "Barred by restriction profile internal-only: not an allowed number"
RING_WAIT = 10.0


def trunk_add(port: int) -> list[str]:
    return ["trunk", "add", "prov", "--host", LOOPBACK, "--port", str(port), "--prefix", "9"]


class Api:
    """Plain httpx against one server. The session cookie that `POST /api/login`
    sets for browsers is dropped after every request: these tests say which
    token (if any) each request carries."""

    def __init__(self, server: Server) -> None:
        self.base = f"http://{LOOPBACK}:{server.http_port}"
        self.client = httpx.Client(base_url=self.base, timeout=10.0, trust_env=False)

    def request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Any = None,
        **options: Any,
    ) -> httpx.Response:
        headers = dict(options.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            options["json"] = body
        try:
            return self.client.request(method, path, headers=headers, **options)
        finally:
            self.client.cookies.clear()

    def login(self, username: str) -> str:
        reply = self.request(
            "POST", "/api/login", body={"username": username, "password": PASSWORDS[username]}
        )
        assert reply.status_code == 200, reply.text
        return str(reply.json()["token"])

    def events_url(self, token: str | None) -> str:
        query = "" if token is None else f"?token={token}"
        return f"ws://{LOOPBACK}:{self.base.rsplit(':', 1)[1]}/api/events{query}"

    def close(self) -> None:
        self.client.close()


def error_of(reply: httpx.Response, status: int) -> dict[str, str]:
    """The `{"error": {"code", "message"}}` of a failed request with `status`."""
    assert reply.status_code == status, f"expected {status}: {reply.status_code} {reply.text}"
    assert reply.headers.get("content-type", "").startswith("application/json"), reply.headers
    error = reply.json().get("error")
    assert isinstance(error, dict), reply.text
    assert isinstance(error.get("code"), str), reply.text
    assert isinstance(error.get("message"), str), reply.text
    return error


def provider_socket(port: int) -> socket.socket:
    """A UDP socket where the provider would be, to see that nothing arrives."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, port))
    return sock


def assert_nothing_arrives(sock: socket.socket, seconds: float = 1.0) -> None:
    sock.settimeout(seconds)
    try:
        data, source = sock.recvfrom(65535)
    except TimeoutError:
        return
    raise AssertionError(f"the provider received from {source}:\n{data.decode(errors='replace')}")


def no_new_incoming(phone: Phone, mark: int) -> None:
    assert phone.wait_for("CALL_INCOMING", 0, after=mark) is None, phone.call_events()


# --- T11: restrictions through the API ----------------------------------------------------


def test_barred_number_from_the_api_places_no_call(lab: CallLab) -> None:
    trunk_port = free_port()
    provider = provider_socket(trunk_port)
    try:
        server = lab.server(setup=[*USERS_SETUP, trunk_add(trunk_port)])
        desk = lab.phone()
        desk.register(*ALICE, server.sip_port, answermode="manual")
        api = Api(server)
        token = api.login("alice")

        # A number she may dial: the PBX rings her desk phone first (showing whom
        # she is calling), and dials on only once she answers.  She does not.
        mark = desk.mark()
        placed = api.request("POST", "/api/calls", token, {"to": NATIONAL})
        assert placed.status_code == 201, placed.text
        incoming = desk.wait_for("CALL_INCOMING", RING_WAIT, after=mark)
        assert incoming is not None, desk.call_events()
        hung_up = api.request("DELETE", f"/api/calls/{placed.json()['id']}", token)
        assert hung_up.status_code == 204, hung_up.text
        assert desk.wait_for("CALL_CLOSED", 5, after=mark) is not None, desk.call_events()

        # A barred one: 403 with the profile's reason, and no call at all.
        mark = desk.mark()
        barred = api.request("POST", "/api/calls", token, {"to": INTERNATIONAL})
        error = error_of(barred, 403)
        assert error == {"code": "barred", "message": DEFAULT_INTERNATIONAL}, error
        listed = api.request("GET", "/api/calls", token)
        assert listed.status_code == 200, listed.text
        assert listed.json() == [], listed.json()
        assert_nothing_arrives(provider, 1.5)
        no_new_incoming(desk, mark)
        assert server.health()["calls"] == 0, server.health()
        api.close()
    finally:
        provider.close()
    lab.assert_idle(server)


def test_internal_only_profile_from_the_admin_api_bars_api_and_phone(lab: CallLab) -> None:
    trunk_port = free_port()
    provider = provider_socket(trunk_port)
    try:
        server = lab.server(setup=[*USERS_SETUP, trunk_add(trunk_port)])
        desk = lab.phone()
        desk.register(*ALICE, server.sip_port, answermode="manual")
        api = Api(server)
        admin, alice = api.login("root"), api.login("alice")

        assigned = api.request(
            "PATCH", "/api/admin/users/alice", admin, {"restriction": "internal-only"}
        )
        assert assigned.status_code == 200, assigned.text
        assert assigned.json()["restriction"] == "internal-only", assigned.json()
        me = api.request("GET", "/api/me", alice)
        assert me.json()["restriction"] == "internal-only", me.json()

        # It applies to the very next call: refused before her phone is rung.
        mark = desk.mark()
        barred = api.request("POST", "/api/calls", alice, {"to": NATIONAL})
        error = error_of(barred, 403)
        assert error == {"code": "barred", "message": INTERNAL_ONLY_OUTSIDE}, error

        # The desk phone is held to the same profile.
        desk.dial(NATIONAL, server.sip_port)
        closed = desk.wait_for("CALL_CLOSED", RING_WAIT, after=mark)
        assert closed is not None, desk.call_events()
        assert status_in(event_reason(closed)) == 403, closed
        assert INTERNAL_ONLY_OUTSIDE in event_reason(closed), closed
        assert_nothing_arrives(provider, 1.0)
        no_new_incoming(desk, mark)

        # Inside the PBX she may still call: the portal rings her phone first.
        mark = desk.mark()
        placed = api.request("POST", "/api/calls", alice, {"to": "202"})
        assert placed.status_code == 201, placed.text
        assert desk.wait_for("CALL_INCOMING", RING_WAIT, after=mark) is not None
        assert api.request("DELETE", f"/api/calls/{placed.json()['id']}", alice).status_code == 204
        assert desk.wait_for("CALL_CLOSED", 5, after=mark) is not None, desk.call_events()
    finally:
        provider.close()

    # And an emergency number always goes out from a phone.
    emergency = lab.sipp(
        "hd_emergency_provider", server, port=trunk_port, duration_ms=1000, timeout=20
    ).start()
    mark = desk.mark()
    desk.dial("9112", server.sip_port)
    assert desk.wait_for("CALL_ESTABLISHED", RING_WAIT, after=mark) is not None
    assert desk.wait_for("CALL_CLOSED", RING_WAIT, after=mark) is not None
    result = emergency.wait(15)
    assert result.returncode == 0, result.describe()
    api.close()
    lab.assert_idle(server)


def test_forward_to_a_barred_number_is_not_placed(lab: CallLab) -> None:
    trunk_port = free_port()
    server = lab.server(setup=[*USERS_SETUP, trunk_add(trunk_port)])
    alice, bob = lab.phone(), lab.phone()
    alice.register(*ALICE, server.sip_port, answermode="manual")
    bob.register(*BOB, server.sip_port)
    api = Api(server)
    token = api.login("alice")

    # First a forward she may set up: it leaves through the trunk (the provider
    # says busy, and so does bob's call).
    busy_provider = lab.sipp("call_uas_busy", server, port=trunk_port, timeout=20).start()
    changed = api.request("PATCH", "/api/me/settings", token, {"forward_always": NATIONAL})
    assert changed.status_code == 200, changed.text
    assert changed.json()["forward_always"] == NATIONAL, changed.json()
    mark_alice, mark_bob = alice.mark(), bob.mark()
    bob.dial("201", server.sip_port)
    closed = bob.wait_for("CALL_CLOSED", RING_WAIT, after=mark_bob)
    assert closed is not None, bob.call_events()
    assert status_in(event_reason(closed)) == 486, closed
    result = busy_provider.wait(10)
    assert result.returncode == 0, result.describe()
    (raw,) = received(result, "INVITE ")
    invite = parse_message(raw.encode())
    assert invite.start_line.startswith("INVITE sip:5551234@"), raw
    assert "sip:201@" in (invite.header("diversion") or ""), raw
    no_new_incoming(alice, mark_alice)

    # Then a barred one: accepted as a setting, but the forward is never placed
    # and the caller gets what an unreachable user gives.
    changed = api.request("PATCH", "/api/me/settings", token, {"forward_always": INTERNATIONAL})
    assert changed.status_code == 200, changed.text
    provider = provider_socket(trunk_port)
    try:
        mark_alice, mark_bob = alice.mark(), bob.mark()
        bob.dial("201", server.sip_port)
        closed = bob.wait_for("CALL_CLOSED", RING_WAIT, after=mark_bob)
        assert closed is not None, bob.call_events()
        assert status_in(event_reason(closed)) == 480, closed
        assert bob.wait_for("CALL_ESTABLISHED", 0, after=mark_bob) is None, bob.call_events()
        assert_nothing_arrives(provider, 1.0)
        no_new_incoming(alice, mark_alice)
    finally:
        provider.close()

    log = api.request("GET", "/api/me/call-log", token)
    assert log.status_code == 200, log.text
    newest = log.json()[0]
    assert (newest["to"]["number"], newest["status"]) == ("201", 480), newest
    assert newest["answered_at"] is None, newest
    api.close()
    lab.assert_idle(server)


# --- security --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def portal_server(tmp_path_factory: pytest.TempPathFactory, seeded_data: Path) -> Iterator[Server]:
    """One server for the security tests, with portal passwords for alice, bob and
    the administrator root."""
    low, high = port_block("server", 40)
    server = Server(
        tmp_path_factory.mktemp("portal-api"),
        env={"TELEOFFICE_RTP_PORT_MIN": str(low), "TELEOFFICE_RTP_PORT_MAX": str(high)},
    )
    server.prepare(seeded_data)
    for args in USERS_SETUP:
        server.cli(*args)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tokens(portal_server: Server) -> dict[str, str]:
    """One login of alice, bob and root for the module (logins are rate limited
    per address); carol's sessions are the logout test's."""
    api = Api(portal_server)
    try:
        return {name: api.login(name) for name in ("alice", "bob", "root")}
    finally:
        api.close()


@pytest.fixture
def api(portal_server: Server) -> Iterator[Api]:
    client = Api(portal_server)
    yield client
    client.close()


PATH_VALUES = {
    "username": "alice",
    "name": "default",
    "number": "5551234",
    "call_id": "c1",
    "action": "hold",
}


def api_routes(api: Api) -> list[tuple[str, str]]:
    """(method, path with its parameters filled in) of every documented /api route."""
    spec = api.request("GET", "/openapi.json").json()
    routes = []
    for template, operations in spec["paths"].items():
        if not template.startswith("/api/"):
            continue
        # Parameters nobody listed (routes added later) get a plain "1".
        path = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "1"), template)
        routes += [(method.upper(), path) for method in operations]
    return routes


def directory_state(api: Api, admin: str) -> list[Any]:
    """Everything an administrator can read about users and profiles."""
    state = []
    for path in ("/api/admin/users", "/api/admin/restrictions"):
        reply = api.request("GET", path, admin)
        assert reply.status_code == 200, reply.text
        state.append(reply.json())
    return state


def ws_closed_with(url: str, headers: dict[str, str] | None = None) -> int | None:
    """The close code the server sends a WebSocket client at once (None: it did not)."""
    with connect(url, open_timeout=5, proxy=None, additional_headers=headers) as ws:
        try:
            ws.recv(timeout=3)
        except ConnectionClosed as exc:
            return None if exc.rcvd is None else exc.rcvd.code
        except TimeoutError:
            return None
    return None


def test_every_route_but_login_needs_a_token(
    api: Api, tokens: dict[str, str], portal_server: Server
) -> None:
    before = directory_state(api, tokens["root"])
    routes = api_routes(api)
    assert len(routes) >= 30, routes
    bodies: dict[str, dict[str, Any]] = {"POST": {}, "PUT": {}, "PATCH": {}}
    for method, path in routes:
        if path == "/api/login":
            continue
        for auth in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eA=="}):
            reply = api.request(method, path, body=bodies.get(method), headers=auth)
            error = error_of(reply, 401)
            assert error["code"] == "unauthenticated", (method, path, auth, error)
            assert reply.headers.get("www-authenticate") == "Bearer", (method, path)
    assert ws_closed_with(api.events_url(None)) == 4401
    assert ws_closed_with(api.events_url("not-a-token")) == 4401
    assert directory_state(api, tokens["root"]) == before


def test_non_administrators_get_403_on_admin_routes(
    api: Api, tokens: dict[str, str], portal_server: Server
) -> None:
    before = directory_state(api, tokens["root"])
    admin_routes = [(m, p) for m, p in api_routes(api) if p.startswith("/api/admin/")]
    assert len(admin_routes) >= 10, admin_routes
    bodies = {
        "POST": {"username": "mallory", "extension": "266", "name": "mallory"},
        "PATCH": {"is_admin": True, "restriction": "unrestricted"},
    }
    for user in ("alice", "bob"):
        for method, path in admin_routes:
            reply = api.request(method, path, tokens[user], body=bodies.get(method))
            assert error_of(reply, 403)["code"] == "forbidden", (user, method, path)
    assert directory_state(api, tokens["root"]) == before
    me = api.request("GET", "/api/me", tokens["alice"]).json()
    assert (me["is_admin"], me["restriction"]) == (False, "default"), me


def test_wrong_password_and_unknown_user_look_the_same(api: Api) -> None:
    attempts = [
        {"username": "alice", "password": "not-her-password"},
        {"username": "nobody", "password": "not-her-password"},
        {"username": "alice' OR '1'='1", "password": "' OR '1'='1"},
    ]
    replies = [api.request("POST", "/api/login", body=body) for body in attempts]
    for reply in replies:
        assert error_of(reply, 401)["code"] == "unauthenticated", reply.text
        assert "token" not in reply.text
        assert "set-cookie" not in reply.headers, reply.headers
    assert len({r.text for r in replies}) == 1, [r.text for r in replies]
    # Still in force for the real password.
    assert api.request("GET", "/api/me", api.login("alice")).status_code == 200


def test_a_logged_out_token_no_longer_works(api: Api) -> None:
    first, second = api.login("carol"), api.login("carol")
    assert api.request("POST", "/api/logout", first).status_code == 204
    assert error_of(api.request("GET", "/api/me", first), 401)["code"] == "unauthenticated"
    assert error_of(api.request("POST", "/api/logout", first), 401)["code"] == "unauthenticated"
    assert ws_closed_with(api.events_url(first)) == 4401
    # The other session is untouched until the user logs out everywhere.
    assert api.request("GET", "/api/me", second).status_code == 200
    everywhere = api.request("POST", "/api/logout", second, params={"everywhere": "true"})
    assert everywhere.status_code == 204, everywhere.text
    assert error_of(api.request("GET", "/api/calls", second), 401)["code"] == "unauthenticated"


def test_a_user_cannot_see_or_end_anothers_call(
    api: Api, tokens: dict[str, str], portal_server: Server, tmp_path: Path
) -> None:
    server = portal_server
    desk = Phone(tmp_path / "alice-desk")
    desk.workdir.mkdir(parents=True, exist_ok=True)
    desk.start()
    try:
        desk.register(*ALICE, server.sip_port, answermode="manual")
        with connect(api.events_url(tokens["bob"]), open_timeout=5, proxy=None) as bob_events:
            hello = json.loads(bob_events.recv(timeout=5))
            assert hello["type"] == "hello", hello
            assert hello["state"]["calls"] == [], hello

            mark = desk.mark()
            placed = api.request("POST", "/api/calls", tokens["alice"], {"to": "202"})
            assert placed.status_code == 201, placed.text
            call_id = placed.json()["id"]
            assert desk.wait_for("CALL_INCOMING", RING_WAIT, after=mark) is not None

            assert api.request("GET", "/api/calls", tokens["bob"]).json() == []
            unknown = error_of(api.request("DELETE", "/api/calls/c0ffee", tokens["bob"]), 404)
            for who in ("bob", "root"):  # administrators neither
                for method, path in (
                    ("DELETE", f"/api/calls/{call_id}"),
                    ("POST", f"/api/calls/{call_id}/hold"),
                    ("POST", f"/api/calls/{call_id}/reject"),
                ):
                    error = error_of(api.request(method, path, tokens[who]), 404)
                    # Exactly as for a call that does not exist.
                    assert error["code"] == unknown["code"], (who, method, error)
                    assert error["message"] == unknown["message"].replace("c0ffee", call_id)

            # Alice's phone is still ringing: nothing bob did reached the call.
            assert desk.wait_for("CALL_CLOSED", 0.5, after=mark) is None, desk.call_events()
            mine = api.request("GET", "/api/calls", tokens["alice"]).json()
            assert [c["id"] for c in mine] == [call_id], mine
            assert (
                api.request("DELETE", f"/api/calls/{call_id}", tokens["alice"]).status_code == 204
            )
            assert desk.wait_for("CALL_CLOSED", 5, after=mark) is not None, desk.call_events()

            # Bob's live connection never heard of alice's call.
            seen = []
            deadline = time.monotonic() + 1.0
            while (left := deadline - time.monotonic()) > 0:
                try:
                    seen.append(json.loads(bob_events.recv(timeout=left)))
                except TimeoutError:
                    break
            assert not [e for e in seen if str(e.get("type", "")).startswith("call.")], seen
    finally:
        desk.stop()


def test_a_user_cannot_change_anothers_settings(
    api: Api, tokens: dict[str, str], portal_server: Server
) -> None:
    before = api.request("GET", "/api/admin/users/alice", tokens["root"]).json()
    # /api/me names nobody but the caller; naming somebody else is not a field.
    attempt = api.request(
        "PATCH", "/api/me/settings", tokens["bob"], {"username": "alice", "dnd": True}
    )
    assert error_of(attempt, 422)["code"] == "invalid_input"
    attempt = api.request("PATCH", "/api/admin/users/alice", tokens["bob"], {"dnd": True})
    assert error_of(attempt, 403)["code"] == "forbidden"

    own = api.request("PATCH", "/api/me/settings", tokens["bob"], {"dnd": True})
    assert own.status_code == 200, own.text
    assert (own.json()["username"], own.json()["dnd"]) == ("bob", True), own.json()
    try:
        assert api.request("GET", "/api/admin/users/alice", tokens["root"]).json() == before
    finally:
        api.request("PATCH", "/api/me/settings", tokens["bob"], {"dnd": False})


def hostile_requests(alice: str, admin: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(method, path, token, httpx options) of requests that must all fail with 4xx."""
    as_json = {"content-type": "application/json"}

    def chunks() -> Iterator[bytes]:
        for _ in range(40):  # 400 KB without a Content-Length
            yield b" " * 10_000

    return [
        ("POST", "/api/calls", alice, {"content": b"{", "headers": as_json}),
        ("POST", "/api/calls", alice, {"content": b"[]", "headers": as_json}),
        ("POST", "/api/calls", alice, {"content": b'{"to": "\xff\xfe"}', "headers": as_json}),
        ("POST", "/api/calls", alice, {"content": b"[" * 20_000 + b"]" * 20_000}),
        ("POST", "/api/calls", alice, {"content": b"x" * 1_000_000, "headers": as_json}),
        ("POST", "/api/calls", alice, {"content": chunks(), "headers": as_json}),
        ("POST", "/api/calls", alice, {"json": {"to": 202}}),
        ("POST", "/api/calls", alice, {"json": {"to": "20a2"}}),
        ("POST", "/api/calls", alice, {"json": {"to": "5551234abc"}}),
        ("POST", "/api/calls", alice, {"json": {"to": "202' OR '1'='1"}}),
        ("POST", "/api/calls", alice, {"json": {"to": "202\r\nVia: SIP/2.0/UDP evil"}}),
        ("POST", "/api/calls", alice, {"json": {"to": "<script>alert(1)</script>"}}),
        ("POST", "/api/calls", alice, {"json": {"to": "2" * 5000}}),
        ("POST", "/api/calls", alice, {"json": {"to": "202", "from": "209"}}),
        ("PATCH", "/api/me/settings", alice, {"content": b'{"dnd": true}'}),
        ("PATCH", "/api/me/settings", alice, {"json": {"dnd": "true"}}),
        ("PATCH", "/api/me/settings", alice, {"json": {"dnd": None}}),
        ("PATCH", "/api/me/settings", alice, {"json": {"is_admin": True}}),
        ("PATCH", "/api/me/settings", alice, {"json": {"no_answer_timeout": 10**40}}),
        ("PATCH", "/api/me/settings", alice, {"json": {"no_answer_timeout": 20.5}}),
        ("PATCH", "/api/me/settings", alice, {"json": {"forward_always": "0; DROP TABLE users"}}),
        ("PATCH", "/api/me/settings", alice, {"json": {"forward_busy": "202", "dnd": "x"}}),
        ("PUT", "/api/me/location", alice, {"json": {"phone": "../../etc/passwd"}}),
        ("PUT", "/api/me/location", alice, {"json": {"phone": "202' OR 1=1 --"}}),
        ("PUT", "/api/me/location", alice, {"json": {"phone": "299"}}),
        ("PUT", "/api/me/password", alice, {"json": {"current_password": ["x"]}}),
        ("GET", "/api/me/call-log?limit=-1", alice, {}),
        ("GET", "/api/me/call-log?limit=1e9", alice, {}),
        ("DELETE", "/api/calls/..%2F..%2Fadmin%2Fusers%2Fbob", alice, {}),
        ("POST", "/api/calls/c1/explode", alice, {}),
        ("GET", "/api/admin/users/alice'%20OR%20'1'='1", admin, {}),
        ("PATCH", "/api/admin/users/alice", admin, {"json": {"display_name": "Eve\u0000"}}),
        (
            "PATCH",
            "/api/admin/users/alice",
            admin,
            {"json": {"display_name": "Mallory", "restriction": "no-such-profile"}},
        ),
        (
            "PATCH",
            "/api/admin/users/alice",
            admin,
            {"json": {"display_name": "Mallory", "forward_always": "201"}},
        ),
        ("PATCH", "/api/admin/users/alice", admin, {"json": {"login_code": "12ab"}}),
        ("POST", "/api/admin/users", admin, {"json": {"username": "eve;rm", "extension": "266"}}),
        ("POST", "/api/admin/users", admin, {"json": {"username": "eve", "extension": "201"}}),
        ("POST", "/api/admin/users", admin, {"json": {"username": "alice", "extension": "266"}}),
        (
            "POST",
            "/api/admin/restrictions",
            admin,
            {"json": {"name": "evil", "barred": ['00.=intl"; DROP TABLE']}},
        ),
        ("DELETE", "/api/admin/restrictions/default", admin, {}),
        ("DELETE", "/api/admin/users/root", admin, {}),
        ("POST", "/api/login", "", {"json": {"username": "a" * 10_000, "password": "x"}}),
        ("POST", "/api/login", "", {"json": {"username": "alice", "password": "x" * 5000}}),
        ("POST", "/api/login", "", {"json": {"username": ["alice"], "password": "x"}}),
        ("GET", "/api/me", "x" * 4000, {}),
    ]


def test_hostile_input_gets_json_errors_and_changes_nothing(
    api: Api, tokens: dict[str, str], portal_server: Server
) -> None:
    server = portal_server
    alice, admin = tokens["alice"], tokens["root"]
    before = directory_state(api, admin)
    me_before = api.request("GET", "/api/me", alice).json()
    shown_before = server.cli("user", "show", "alice").stdout

    for method, path, token, options in hostile_requests(alice, admin):
        reply = api.request(method, path, token or None, **options)
        what = f"{method} {path} {str(options)[:120]}"
        assert 400 <= reply.status_code < 500, f"{what}: {reply.status_code} {reply.text}"
        error_of(reply, reply.status_code)

    # Nothing changed, and the server still serves the API, /healthz and SIP.
    assert directory_state(api, admin) == before
    assert api.request("GET", "/api/me", alice).json() == me_before
    assert server.cli("user", "show", "alice").stdout == shown_before
    assert server.health()["status"] == "ok"
    for transport in ("udp", "tcp"):
        answer = sip_options(server.sip_port, transport)
        assert answer is not None, f"no answer to OPTIONS over {transport}"
        assert answer.status == 200, answer.text()
    found = tracebacks(server)
    assert not found, "traceback in the server log:\n" + found[0]


def test_session_cookie_is_refused_from_another_site(
    api: Api, tokens: dict[str, str], portal_server: Server
) -> None:
    cookie = {"Cookie": f"teleoffice_session={tokens['alice']}"}
    foreign = {**cookie, "Origin": "http://evil.example"}
    assert api.request("GET", "/api/me", headers=cookie).status_code == 200
    refused = api.request("PATCH", "/api/me/settings", body={"dnd": True}, headers=foreign)
    assert error_of(refused, 403)["code"] == "cross_site"
    assert api.request("GET", "/api/me", tokens["alice"]).json()["dnd"] is False
    assert ws_closed_with(api.events_url(None), headers=foreign) == 4401
