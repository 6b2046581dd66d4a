"""The event hub and the live events WebSocket."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from teleoffice.portal import EventHub
from teleoffice.portal.deps import SESSION_COOKIE
from teleoffice.portal.hub import (
    CLOSE_FELL_BEHIND,
    CLOSE_NO_PONG,
    CLOSE_UNAUTHENTICATED,
    Close,
    encode_event,
)
from teleoffice.store import CallDirection, Sessions
from tests.unit.portal_kit import PASSWORDS, Portal, open_portal

# --- the hub on its own -------------------------------------------------------------


def test_events_reach_only_the_users_named() -> None:
    async def scenario() -> None:
        hub = EventHub()
        alice1, alice2 = hub.subscribe("alice"), hub.subscribe("alice")
        bob = hub.subscribe("bob")
        assert hub.publish({"type": "call.ringing", "id": "c1"}, ["alice"]) == 2
        assert hub.publish({"type": "presence.changed"}, ["bob", "bob", "nobody"]) == 1
        assert alice1.queue.get_nowait() == '{"type":"call.ringing","id":"c1"}'
        assert alice2.queue.get_nowait() == '{"type":"call.ringing","id":"c1"}'
        assert bob.queue.get_nowait() == '{"type":"presence.changed"}'
        assert alice1.queue.empty()
        assert bob.queue.empty()
        assert hub.connection_count() == 3
        assert hub.online_users() == {"alice", "bob"}
        hub.unsubscribe(bob)
        assert hub.publish({"type": "x"}, ["bob"]) == 0
        assert hub.online_users() == {"alice"}

    asyncio.run(scenario())


def test_a_connection_that_falls_behind_is_closed_and_its_queue_freed() -> None:
    async def scenario() -> None:
        hub = EventHub(queue_size=3)
        slow, fast = hub.subscribe("alice"), hub.subscribe("alice")
        for i in range(3):
            hub.publish({"type": "tick", "n": i}, ["alice"])
        fast.queue.get_nowait()  # fast keeps up
        hub.publish({"type": "tick", "n": 3}, ["alice"])
        assert slow.closing == Close(CLOSE_FELL_BEHIND, "too many unread events")
        assert slow.queue.qsize() == 1
        assert slow.queue.get_nowait() == slow.closing
        assert fast.closing is None
        assert fast.queue.qsize() == 3
        # Nothing more is queued for a closing connection.
        fast.queue.get_nowait()
        hub.publish({"type": "tick", "n": 4}, ["alice"])
        assert slow.queue.empty()
        assert fast.closing is None
        assert [fast.queue.get_nowait() for _ in range(3)][-1] == encode_event(
            {"type": "tick", "n": 4}
        )

    asyncio.run(scenario())


def test_publish_from_another_thread_is_handed_to_the_loop() -> None:
    async def scenario() -> None:
        hub = EventHub()
        sub = hub.subscribe("alice")
        threads = [
            threading.Thread(target=hub.publish, args=({"type": "t", "n": n}, ["alice"]))
            for n in range(20)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        received = [str(await asyncio.wait_for(sub.queue.get(), 1)) for _ in range(20)]
        assert sorted(received) == sorted(encode_event({"type": "t", "n": n}) for n in range(20))

    asyncio.run(scenario())


def test_disconnect_closes_one_token_or_all_connections_of_a_user() -> None:
    async def scenario() -> None:
        hub = EventHub()
        one, two = hub.subscribe("alice", token="t1"), hub.subscribe("alice", token="t2")
        bob = hub.subscribe("bob", token="t3")
        assert hub.disconnect("alice", token="t1") == 1
        assert one.queue.get_nowait() == Close(CLOSE_UNAUTHENTICATED, "logged out")
        assert two.queue.empty()
        assert hub.disconnect("alice", code=4000, reason="bye") == 2
        assert two.queue.get_nowait() == Close(4000, "bye")
        assert one.queue.empty()  # already closing: told once
        assert bob.closing is None

    asyncio.run(scenario())


@pytest.mark.parametrize("event", [{}, {"type": 3}, {"type": "x", "bad": object()}])
def test_unsendable_events_fail_at_the_publisher(event: dict[str, Any]) -> None:
    hub = EventHub()
    with pytest.raises((TypeError, ValueError)):
        hub.publish(event, ["alice"])


def test_events_may_carry_times_and_enums() -> None:
    text = encode_event(
        {"type": "call.ended", "at": datetime(2030, 1, 1, tzinfo=UTC), "dir": CallDirection.INBOUND}
    )
    assert text == '{"type":"call.ended","at":"2030-01-01T00:00:00+00:00","dir":"inbound"}'


# --- the WebSocket ------------------------------------------------------------------


def snapshot(username: str) -> Mapping[str, Any]:
    return {"calls": [], "telecommuter": {"active": False}, "for": username}


@pytest.fixture
def portal(sessions: Sessions) -> Iterator[Portal]:
    yield from open_portal(sessions, snapshot=snapshot)


def wait_for_connections(portal: Portal, username: str, count: int) -> None:
    deadline = time.monotonic() + 5
    while portal.context.hub.connection_count(username) != count:
        assert time.monotonic() < deadline, "connections did not reach the expected count"
        time.sleep(0.01)


def close_code(ws: WebSocketTestSession, *, answer_pings: bool = False) -> int:
    """Read pings (answering them if asked) until the server closes; its code."""
    while True:
        try:
            message = ws.receive_json()
        except WebSocketDisconnect as closed:
            return closed.code
        assert message == {"type": "ping"}
        if answer_pings:
            ws.send_json({"type": "pong"})


def test_hello_carries_the_users_state_then_events_follow(portal: Portal) -> None:
    token = portal.login("alice")
    with portal.client.websocket_connect(f"/api/events?token={token}") as ws:
        hello = ws.receive_json()
        assert hello["type"] == "hello"
        assert hello["user"] == "alice"
        assert hello["state"] == {"calls": [], "telecommuter": {"active": False}, "for": "alice"}
        assert hello["ping_interval"] == 60.0
        wait_for_connections(portal, "alice", 1)
        # Published from this thread: the hub hands it to the server's loop.
        portal.context.hub.publish({"type": "call.ringing", "id": "c9"}, ["bob"])
        portal.context.hub.publish({"type": "call.ringing", "id": "c1"}, ["alice"])
        assert ws.receive_json() == {"type": "call.ringing", "id": "c1"}
    wait_for_connections(portal, "alice", 0)


def test_an_async_snapshot_is_awaited(sessions: Sessions) -> None:
    async def async_snapshot(username: str) -> Mapping[str, Any]:
        await asyncio.sleep(0)
        return {"presence": "available"}

    for portal in open_portal(sessions, snapshot=async_snapshot):
        token = portal.login("bob")
        with portal.client.websocket_connect(f"/api/events?token={token}") as ws:
            assert ws.receive_json()["state"] == {"presence": "available"}


def test_the_session_cookie_authenticates_same_origin_only(portal: Portal) -> None:
    portal.client.post("/api/login", json={"username": "bob", "password": PASSWORDS["bob"]})
    assert SESSION_COOKIE in portal.client.cookies
    with portal.client.websocket_connect("/api/events") as ws:
        assert ws.receive_json()["user"] == "bob"
    with portal.client.websocket_connect(
        "/api/events", headers={"Origin": "http://testserver"}
    ) as ws:
        assert ws.receive_json()["user"] == "bob"
    with (
        portal.client.websocket_connect(
            "/api/events", headers={"Origin": "https://evil.example"}
        ) as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_json()
    assert closed.value.code == CLOSE_UNAUTHENTICATED


@pytest.mark.parametrize("query", ["", "?token=", "?token=nonsense", "?token=" + "A" * 43])
def test_bad_tokens_are_closed_with_4401(portal: Portal, query: str) -> None:
    with (
        portal.client.websocket_connect(f"/api/events{query}") as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_json()
    assert closed.value.code == CLOSE_UNAUTHENTICATED
    assert portal.context.hub.connection_count() == 0


def test_an_expired_token_is_refused(sessions: Sessions) -> None:
    for portal in open_portal(sessions, token_ttl=60.0):
        token = portal.login("alice")
        portal.clock.advance(61)
        with (
            portal.client.websocket_connect(f"/api/events?token={token}") as ws,
            pytest.raises(WebSocketDisconnect) as closed,
        ):
            ws.receive_json()
        assert closed.value.code == CLOSE_UNAUTHENTICATED


def test_client_pings_get_pongs_and_junk_is_ignored(portal: Portal) -> None:
    token = portal.login("alice")
    with portal.client.websocket_connect(f"/api/events?token={token}") as ws:
        ws.receive_json()
        ws.send_text("not json")
        ws.send_bytes(b"\x00\x01")
        ws.send_json({"type": "subscribe", "to": "bob"})
        ws.send_json({"type": "ping"})
        assert ws.receive_json() == {"type": "pong"}


def test_logout_closes_the_sessions_connections(portal: Portal) -> None:
    token = portal.login("alice")
    other = portal.login("alice")
    with (
        portal.client.websocket_connect(f"/api/events?token={token}") as ws,
        portal.client.websocket_connect(f"/api/events?token={other}") as ws_other,
    ):
        ws.receive_json()
        ws_other.receive_json()
        wait_for_connections(portal, "alice", 2)
        response = portal.client.post("/api/logout", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 204
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.receive_json()
        assert closed.value.code == CLOSE_UNAUTHENTICATED
        # The other session is still live.
        ws_other.send_json({"type": "ping"})
        assert ws_other.receive_json() == {"type": "pong"}


def test_settings_changes_reach_the_users_other_tabs(portal: Portal) -> None:
    token = portal.login("alice")
    with portal.client.websocket_connect(f"/api/events?token={token}") as ws:
        ws.receive_json()
        wait_for_connections(portal, "alice", 1)
        response = portal.client.patch(
            "/api/me/settings", json={"dnd": True}, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200
        event = ws.receive_json()
        assert event["type"] == "settings.changed"
        assert event["settings"]["dnd"] is True
        assert event["settings"]["username"] == "alice"


def test_the_server_pings_and_drops_a_silent_client(sessions: Sessions) -> None:
    for portal in open_portal(sessions, ping_interval=0.05):
        token = portal.login("alice")
        with portal.client.websocket_connect(f"/api/events?token={token}") as ws:
            assert ws.receive_json()["ping_interval"] == 0.05
            assert ws.receive_json() == {"type": "ping"}
            assert close_code(ws) == CLOSE_NO_PONG


def test_answering_pings_keeps_the_connection(sessions: Sessions) -> None:
    for portal in open_portal(sessions, ping_interval=0.2):
        token = portal.login("alice")
        with portal.client.websocket_connect(f"/api/events?token={token}") as ws:
            ws.receive_json()
            started = time.monotonic()
            pings = 0
            while time.monotonic() - started < 0.9:
                assert ws.receive_json() == {"type": "ping"}
                ws.send_json({"type": "pong"})
                pings += 1
            assert pings >= 3
            portal.context.hub.publish({"type": "still.here"}, ["alice"])
            while (message := ws.receive_json())["type"] == "ping":
                ws.send_json({"type": "pong"})
            assert message == {"type": "still.here"}


def test_a_session_that_expires_is_closed_at_the_next_ping(sessions: Sessions) -> None:
    for portal in open_portal(sessions, ping_interval=0.05, token_ttl=60.0):
        token = portal.login("alice")
        with portal.client.websocket_connect(f"/api/events?token={token}") as ws:
            ws.receive_json()
            assert ws.receive_json() == {"type": "ping"}
            ws.send_json({"type": "pong"})
            portal.clock.advance(61)
            assert close_code(ws, answer_pings=True) == CLOSE_UNAUTHENTICATED


def test_a_client_that_falls_behind_is_disconnected(sessions: Sessions) -> None:
    hub = EventHub(queue_size=4)

    def flooding_snapshot(username: str) -> Mapping[str, Any]:
        # Runs on the server's loop after the subscription and before the
        # first send: ten events arrive while the client has read nothing.
        for n in range(10):
            hub.publish({"type": "tick", "n": n}, [username])
        return {}

    for portal in open_portal(sessions, hub=hub, snapshot=flooding_snapshot):
        token = portal.login("alice")
        with portal.client.websocket_connect(f"/api/events?token={token}") as ws:
            assert ws.receive_json()["type"] == "hello"
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_json()
            assert closed.value.code == CLOSE_FELL_BEHIND
        wait_for_connections(portal, "alice", 0)


def broken_snapshot(username: str) -> Mapping[str, Any]:
    raise LookupError("engine state unavailable")


def unsendable_snapshot(username: str) -> Mapping[str, Any]:
    return {"call": object()}


@pytest.mark.parametrize("snapshot", [broken_snapshot, unsendable_snapshot])
def test_a_failing_snapshot_closes_with_1011(
    sessions: Sessions, snapshot: Callable[[str], Mapping[str, Any]]
) -> None:
    for portal in open_portal(sessions, snapshot=snapshot):
        token = portal.login("alice")
        with (
            portal.client.websocket_connect(f"/api/events?token={token}") as ws,
            pytest.raises(WebSocketDisconnect) as closed,
        ):
            ws.receive_json()
        assert closed.value.code == 1011
        wait_for_connections(portal, "alice", 0)
