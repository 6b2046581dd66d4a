"""Limits of the portal (issue 9): live connections per user, and the rate of REST
API requests per session and per address."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry
from starlette.websockets import WebSocketDisconnect

from teleoffice.http.app import create_http_app
from teleoffice.portal import EventHub
from teleoffice.portal.deps import SESSION_COOKIE
from teleoffice.portal.hub import CLOSE_TOO_MANY, TooManyConnections
from teleoffice.portal.request_limit import (
    ADDRESS_FACTOR,
    RequestLimiter,
    RequestLimits,
    RequestRateLimit,
    TokenBuckets,
    session_of,
)
from teleoffice.store import Sessions
from tests.unit.portal_kit import FakeClock, Portal, error_of, make_context, open_portal, seed_users

# ---- WebSocket connections per user ------------------------------------------------------


def test_the_hub_refuses_connections_over_the_limit_per_user() -> None:
    async def scenario() -> None:
        hub = EventHub(max_per_user=2)
        first, _ = hub.subscribe("alice"), hub.subscribe("alice")
        with pytest.raises(TooManyConnections, match="alice has 2 portal connections"):
            hub.subscribe("alice")
        assert hub.connection_count("alice") == 2
        hub.subscribe("bob")  # each user has their own allowance
        hub.unsubscribe(first)
        hub.subscribe("alice")
        assert hub.connection_count() == 3

    asyncio.run(scenario())
    with pytest.raises(ValueError, match="max_per_user"):
        EventHub(max_per_user=0)


@pytest.fixture
def small_portal(sessions: Sessions) -> Iterator[Portal]:
    yield from open_portal(sessions, hub=EventHub(max_per_user=2))


def test_a_websocket_over_the_limit_is_closed_with_4409(small_portal: Portal) -> None:
    portal = small_portal
    url = f"/api/events?token={portal.login('alice')}"
    with ExitStack() as open_ones:
        for _ in range(2):
            ws = open_ones.enter_context(portal.client.websocket_connect(url))
            assert ws.receive_json()["type"] == "hello"
        with (
            portal.client.websocket_connect(url) as refused,
            pytest.raises(WebSocketDisconnect) as closed,
        ):
            refused.receive_json()
        assert closed.value.code == CLOSE_TOO_MANY
        assert portal.context.hub.connection_count("alice") == 2
        # Bob is not affected by Alice's connections.
        with portal.client.websocket_connect(f"/api/events?token={portal.login('bob')}") as bob:
            assert bob.receive_json()["type"] == "hello"
    # Once hers are closed, Alice may connect again.
    with portal.client.websocket_connect(url) as again:
        assert again.receive_json()["type"] == "hello"


# ---- token buckets ----------------------------------------------------------------------


def test_a_bucket_allows_a_burst_then_the_rate() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3, max_keys=10)
    for _ in range(3):
        assert buckets.wait("k", 0.0) == 0
        buckets.take("k", 0.0)
    assert buckets.wait("k", 0.0) == pytest.approx(0.5)
    assert buckets.wait("k", 0.25) == pytest.approx(0.25)
    assert buckets.wait("k", 0.5) == 0
    buckets.take("k", 0.5)
    # A long quiet spell refills up to the burst, not beyond.
    for _ in range(3):
        buckets.take("k", 100.0)
    assert buckets.wait("k", 100.0) > 0
    # A clock that goes backwards adds nothing.
    assert buckets.wait("k", 50.0) > 0


def test_buckets_are_bounded_least_recently_used_first() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, max_keys=2)
    buckets.take("a", 0.0)
    buckets.take("b", 0.0)
    buckets.wait("a", 0.0)  # a is used again: b is now the oldest
    buckets.take("c", 0.0)
    assert len(buckets) == 2
    assert buckets.wait("a", 0.0) > 0  # remembered
    assert buckets.wait("b", 0.0) == 0  # forgotten: comes back full


def test_the_limiter_counts_sessions_and_their_address() -> None:
    limiter = RequestLimiter(RequestLimits(rate=1.0, burst=2))
    assert [limiter.admit("198.51.100.1", "tok-a", 0.0) for _ in range(3)] == [0, 0, 1.0]
    # Another session from the same address has its own allowance...
    assert limiter.admit("198.51.100.1", "tok-b", 0.0) == 0
    # ...but made-up tokens do not escape the address's (4x) bucket.
    burst = 2 * ADDRESS_FACTOR
    waits = [limiter.admit("198.51.100.1", f"fresh-{n}", 0.0) for n in range(burst)]
    assert waits.count(0) == burst - 3  # three went to tok-a and tok-b
    assert waits[-1] > 0
    assert limiter.admit("203.0.113.9", "tok-c", 0.0) == 0  # another address: fine
    # A refused request took nothing: the wait does not grow by retrying.
    assert limiter.admit("198.51.100.1", "tok-a", 0.0) == limiter.admit(
        "198.51.100.1", "tok-a", 0.0
    )
    with pytest.raises(ValueError, match="rate"):
        RequestLimits(rate=0)


def test_the_session_is_the_bearer_token_else_the_cookie() -> None:
    def scope(*headers: tuple[bytes, bytes]) -> dict[str, object]:
        return {"type": "http", "headers": list(headers)}

    assert session_of(scope((b"authorization", b"Bearer abc"))) == "abc"
    assert session_of(scope((b"cookie", f"x=1; {SESSION_COOKIE}=def".encode()))) == "def"
    assert (
        session_of(
            scope((b"cookie", f"{SESSION_COOKIE}=def".encode()), (b"authorization", b"Bearer abc"))
        )
        == "abc"
    )
    assert session_of(scope((b"authorization", b"Basic Zm9vOmJhcg=="))) is None
    assert session_of(scope()) is None


# ---- the middleware ---------------------------------------------------------------------


def test_requests_over_the_rate_get_429_with_retry_after(sessions: Sessions) -> None:
    clock = FakeClock()
    context = make_context(sessions, clock)
    seed_users(context.users)
    app = create_http_app(registry=CollectorRegistry(), status=dict, portal=context)
    ticks = FakeClock(now=0.0)
    app.add_middleware(RequestRateLimit, limits=RequestLimits(rate=1.0, burst=3), clock=ticks)
    with TestClient(app) as client:
        reply = client.post("/api/login", json={"username": "alice", "password": "alice-secret"})
        assert reply.status_code == 200, reply.text
        alice = {"Authorization": f"Bearer {reply.json()['token']}"}
        client.cookies.clear()
        # The login counted for the address only: the session has its whole burst.
        assert [client.get("/api/me", headers=alice).status_code for _ in range(3)] == [200] * 3
        refused = client.get("/api/me", headers=alice)
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "1"
        assert error_of(refused)["code"] == "rate_limited"
        # Outside /api, nothing is counted.
        assert client.get("/healthz").status_code == 200
        ticks.advance(1.0)
        assert client.get("/api/me", headers=alice).status_code == 200
