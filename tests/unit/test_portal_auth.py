"""Portal login, sessions, the error shape and the limits on login attempts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from teleoffice.http.app import create_http_app
from teleoffice.portal import LoginLimiter, LoginLimits
from teleoffice.portal.deps import CSRF_HEADER, CSRF_VALUE, DEFAULT_TOKEN_TTL, SESSION_COOKIE
from teleoffice.portal.ratelimit import RateLimited, SlidingWindow
from teleoffice.portal.ui import STATIC_DIR
from teleoffice.store import Sessions
from tests.unit.portal_kit import PASSWORDS, START, Portal, error_of, open_portal


@pytest.fixture
def portal(sessions: Sessions) -> Iterator[Portal]:
    yield from open_portal(sessions)


def protected_routes(portal: Portal) -> list[tuple[str, str]]:
    """(method, path) of every REST route under /api except login, from OpenAPI."""
    paths = portal.client.get("/openapi.json").json()["paths"]
    out: list[tuple[str, str]] = []
    for template, item in paths.items():
        if template.startswith("/api/") and template != "/api/login":
            path = template.replace("{username}", "alice").replace("{name}", "default")
            out.extend((method.upper(), path.replace("{number}", "123")) for method in item)
    return out


# --- logging in ---------------------------------------------------------------------


def test_login_returns_a_token_its_expiry_and_the_user(portal: Portal) -> None:
    response = portal.client.post(
        "/api/login", json={"username": "alice", "password": "alice-secret"}
    )
    assert response.status_code == 200
    body = response.json()
    assert len(body["token"]) >= 32
    expires = datetime.fromisoformat(body["expires_at"])
    assert expires.timestamp() == pytest.approx(START + DEFAULT_TOKEN_TTL)
    assert body["user"]["username"] == "alice"
    assert body["user"]["extension"] == "201"
    assert body["user"]["restriction"] == "default"
    assert "password" not in str(body["user"])
    me = portal.client.get("/api/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200
    assert me.json()["username"] == "alice"


def test_login_sets_an_httponly_strict_cookie_that_authenticates(portal: Portal) -> None:
    response = portal.client.post("/api/login", json={"username": "bob", "password": "bob-secret"})
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}={response.json()['token']};")
    lowered = cookie.lower()
    assert "httponly" in lowered
    assert "samesite=strict" in lowered
    assert "path=/api" in lowered
    assert f"max-age={int(DEFAULT_TOKEN_TTL)}" in lowered
    assert "secure" not in lowered  # plain HTTP here; https gets Secure
    # No Authorization header: the cookie jar carries the session.
    assert portal.client.get("/api/me").json()["username"] == "bob"


def test_cookie_is_secure_over_https(sessions: Sessions) -> None:
    for portal in open_portal(sessions):
        client = TestClient(portal.app, base_url="https://testserver")
        response = client.post("/api/login", json={"username": "bob", "password": "bob-secret"})
        assert "secure" in response.headers["set-cookie"].lower()


def test_unknown_user_and_wrong_password_get_the_same_401(portal: Portal) -> None:
    wrong = portal.client.post("/api/login", json={"username": "alice", "password": "nope"})
    unknown = portal.client.post("/api/login", json={"username": "mallory", "password": "nope"})
    no_password = portal.client.post("/api/login", json={"username": "carol", "password": "x"})
    for response in (wrong, unknown, no_password):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert "set-cookie" not in response.headers
    assert wrong.json() == unknown.json() == no_password.json()
    assert error_of(wrong)["code"] == "unauthenticated"


@pytest.mark.parametrize(
    "body",
    [
        {"username": "alice"},
        {"password": "alice-secret"},
        {"username": "alice", "password": ""},
        {"username": "alice", "password": 12345678},
        {"username": "alice", "password": "alice-secret", "remember": True},
        {"username": "a" * 65, "password": "alice-secret"},
        ["alice", "alice-secret"],
    ],
)
def test_malformed_login_is_422_and_does_not_echo_the_password(
    portal: Portal, body: object
) -> None:
    response = portal.client.post("/api/login", json=body)
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "invalid_input"
    assert "alice-secret" not in response.text


def test_invalid_json_is_422(portal: Portal) -> None:
    response = portal.client.post(
        "/api/login", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_input"


# --- sessions -----------------------------------------------------------------------


def test_every_endpoint_but_login_needs_a_session(portal: Portal) -> None:
    routes = protected_routes(portal)
    assert len(routes) >= 18
    for method, path in routes:
        response = portal.client.request(method, path, json={})
        assert response.status_code == 401, (method, path, response.text)
        assert error_of(response)["code"] == "unauthenticated"


@pytest.mark.parametrize(
    "header",
    ["Bearer not-a-token", "Bearer " + "A" * 43, "Basic YWxpY2U6YWxpY2Utc2VjcmV0", "Bearer"],
)
def test_bad_tokens_are_refused(portal: Portal, header: str) -> None:
    response = portal.client.get("/api/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthenticated"


def test_tokens_expire_after_the_configured_ttl(sessions: Sessions) -> None:
    for portal in open_portal(sessions, token_ttl=600.0):
        headers = portal.as_user("alice")
        portal.clock.advance(599)
        assert portal.client.get("/api/me", headers=headers).status_code == 200
        portal.clock.advance(1)
        assert portal.client.get("/api/me", headers=headers).status_code == 401


def test_logout_revokes_the_token_and_clears_the_cookie(portal: Portal) -> None:
    first = portal.login("alice")
    second = portal.login("alice")
    response = portal.client.post("/api/logout", headers={"Authorization": f"Bearer {first}"})
    assert response.status_code == 204
    assert f'{SESSION_COOKIE}=""' in response.headers["set-cookie"]
    assert "max-age=0" in response.headers["set-cookie"].lower()
    assert (
        portal.client.get("/api/me", headers={"Authorization": f"Bearer {first}"}).status_code
        == 401
    )
    # Only that session ended.
    assert (
        portal.client.get("/api/me", headers={"Authorization": f"Bearer {second}"}).status_code
        == 200
    )


def test_logout_everywhere_ends_all_sessions_of_the_user_only(portal: Portal) -> None:
    first, second = portal.login("alice"), portal.login("alice")
    bob = portal.login("bob")
    response = portal.client.post(
        "/api/logout?everywhere=true", headers={"Authorization": f"Bearer {first}"}
    )
    assert response.status_code == 204
    for token, status in ((first, 401), (second, 401), (bob, 200)):
        me = portal.client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == status


def test_cookie_writes_from_another_site_are_refused(portal: Portal) -> None:
    portal.client.post("/api/login", json={"username": "alice", "password": "alice-secret"})
    evil = {"Origin": "https://evil.example"}
    response = portal.client.patch("/api/me/settings", json={"dnd": True}, headers=evil)
    assert response.status_code == 403
    assert error_of(response)["code"] == "cross_site"
    assert portal.users.get("alice").dnd is False
    # Reading is harmless (the browser does not show another site the answer).
    assert portal.client.get("/api/me", headers=evil).status_code == 200
    # Our own pages may write (they send the CSRF header); so may any client
    # with a bearer token.
    same = {"Origin": "http://testserver", CSRF_HEADER: CSRF_VALUE}
    assert (
        portal.client.patch("/api/me/settings", json={"dnd": True}, headers=same).status_code == 200
    )
    token = portal.login("alice")
    bearer = {"Authorization": f"Bearer {token}", **evil}
    assert (
        portal.client.patch("/api/me/settings", json={"dnd": False}, headers=bearer).status_code
        == 200
    )


# --- rate limiting ------------------------------------------------------------------


def test_failures_for_one_username_are_limited_with_retry_after(sessions: Sessions) -> None:
    limits = LoginLimits(username_failures=3, username_window=60.0, address_attempts=100)
    for portal in open_portal(sessions, limiter=LoginLimiter(limits)):
        for _ in range(3):
            wrong = portal.client.post("/api/login", json={"username": "alice", "password": "x"})
            assert wrong.status_code == 401
        portal.clock.advance(10)
        right = {"username": "alice", "password": PASSWORDS["alice"]}
        limited = portal.client.post("/api/login", json=right)
        assert limited.status_code == 429
        assert error_of(limited)["code"] == "rate_limited"
        assert limited.headers["retry-after"] == "50"
        # Other users are not affected, and unknown names are limited alike.
        assert (
            portal.client.post(
                "/api/login", json={"username": "bob", "password": PASSWORDS["bob"]}
            ).status_code
            == 200
        )
        portal.clock.advance(50)
        assert portal.client.post("/api/login", json=right).status_code == 200


def test_unknown_usernames_are_limited_like_real_ones(sessions: Sessions) -> None:
    limits = LoginLimits(username_failures=2, address_attempts=100)
    for portal in open_portal(sessions, limiter=LoginLimiter(limits)):
        statuses = [
            portal.client.post("/api/login", json={"username": name, "password": "x"}).status_code
            for name in ("mallory", "mallory", "mallory", "alice", "alice", "alice")
        ]
        assert statuses == [401, 401, 429, 401, 401, 429]


def test_attempts_from_one_address_are_limited(sessions: Sessions) -> None:
    limits = LoginLimits(address_attempts=4, address_window=30.0, username_failures=100)
    for portal in open_portal(sessions, limiter=LoginLimiter(limits)):
        for name in ("alice", "bob", "admin", "alice"):
            body = {"username": name, "password": PASSWORDS[name]}
            assert portal.client.post("/api/login", json=body).status_code == 200
        body = {"username": "bob", "password": PASSWORDS["bob"]}
        limited = portal.client.post("/api/login", json=body)
        assert limited.status_code == 429
        assert limited.headers["retry-after"] == "30"
        portal.clock.advance(30)
        assert portal.client.post("/api/login", json=body).status_code == 200


def test_a_successful_login_clears_the_username_failures(sessions: Sessions) -> None:
    limits = LoginLimits(username_failures=2, address_attempts=100)
    for portal in open_portal(sessions, limiter=LoginLimiter(limits)):
        bad = {"username": "alice", "password": "x"}
        assert portal.client.post("/api/login", json=bad).status_code == 401
        portal.login("alice")
        assert portal.client.post("/api/login", json=bad).status_code == 401
        assert portal.client.post("/api/login", json=bad).status_code == 401
        assert portal.client.post("/api/login", json=bad).status_code == 429


def test_sliding_window_memory_is_bounded() -> None:
    window = SlidingWindow(limit=3, window=10.0, max_keys=100)
    for i in range(1000):
        for _ in range(10):
            window.hit(f"10.0.{i // 256}.{i % 256}", 1.0)
    assert len(window) == 100
    # The most recent keys are the ones kept, each with at most `limit` times.
    assert window.retry_after("10.0.3.231", 1.0) == pytest.approx(10.0)
    assert window.retry_after("10.0.0.0", 1.0) is None


def test_limiter_counts_nothing_for_a_refused_attempt() -> None:
    limiter = LoginLimiter(LoginLimits(address_attempts=2, address_window=10.0))
    limiter.admit("192.0.2.1", "alice", 0.0)
    limiter.admit("192.0.2.1", "alice", 1.0)
    for now in (2.0, 5.0, 9.0):
        with pytest.raises(RateLimited) as refused:
            limiter.admit("192.0.2.1", "alice", now)
        assert refused.value.retry_after == int(10.0 - now)
    # Refusals did not extend the block: the first attempt ages out at 10 s.
    limiter.admit("192.0.2.1", "alice", 10.0)


# --- the error shape and the rest of the HTTP app -----------------------------------


def test_unknown_paths_and_methods_use_the_error_shape(portal: Portal) -> None:
    missing = portal.client.get("/api/nothing-here", headers=portal.as_user("alice"))
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"
    wrong_method = portal.client.put("/api/login", json={})
    assert wrong_method.status_code == 405
    assert error_of(wrong_method)["code"] == "method_not_allowed"


def test_large_bodies_are_refused_before_they_are_read(portal: Portal) -> None:
    body = {"username": "alice", "password": "x" * 100_000}
    response = portal.client.post("/api/login", json=body)
    assert response.status_code == 413
    assert error_of(response)["code"] == "too_large"

    def chunks() -> Iterator[bytes]:
        yield b'{"username": "alice", "password": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'

    chunked = portal.client.post(
        "/api/login", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert chunked.status_code == 413
    assert error_of(chunked)["code"] == "too_large"


def test_unexpected_errors_are_a_bare_500(sessions: Sessions) -> None:
    for portal in open_portal(sessions):

        @portal.app.get("/api/boom")
        def boom() -> None:
            raise RuntimeError("secret internals")

        client = TestClient(portal.app, raise_server_exceptions=False)
        response = client.get("/api/boom")
        assert response.status_code == 500
        assert error_of(response) == {"code": "internal_error", "message": "internal error"}
        assert "secret" not in response.text
        assert "Traceback" not in response.text


def test_health_and_metrics_need_no_login(portal: Portal) -> None:
    health = portal.client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    assert portal.client.get("/metrics").status_code == 200


def test_http_app_without_a_portal_has_no_api() -> None:
    app = create_http_app(registry=CollectorRegistry(), status=dict)
    client = TestClient(app)
    assert client.get("/healthz").status_code == 200
    assert client.post("/api/login", json={}).status_code == 404
    # app.routes groups included routers, so ask the OpenAPI document instead.
    paths = client.get("/openapi.json").json()["paths"]
    assert "/healthz" in paths
    assert not [path for path in paths if path.startswith("/api")]


def test_openapi_documents_every_endpoint_and_the_bearer_scheme(portal: Portal) -> None:
    schema = portal.client.get("/openapi.json").json()
    assert "bearer" in schema["info"]["description"].lower()
    schemes = schema["components"]["securitySchemes"]
    assert any(s.get("scheme") == "bearer" for s in schemes.values())
    operations = [
        (path, method, op)
        for path, item in schema["paths"].items()
        if path.startswith("/api/")
        for method, op in item.items()
    ]
    assert len(operations) >= 19
    for path, method, op in operations:
        assert op.get("summary"), (path, method)
        if path != "/api/login":
            assert "security" in op, (path, method)
            assert "401" in op["responses"], (path, method)


def test_expiry_in_the_response_matches_the_clock(portal: Portal) -> None:
    portal.clock.advance(3600)
    body = portal.client.post(
        "/api/login", json={"username": "alice", "password": "alice-secret"}
    ).json()
    expires = datetime.fromisoformat(body["expires_at"])
    assert expires - datetime.fromtimestamp(START + 3600, expires.tzinfo) == timedelta(
        seconds=DEFAULT_TOKEN_TTL
    )


@pytest.mark.parametrize("headers", [{}, {"Origin": "http://testserver"}, {CSRF_HEADER: "0"}])
def test_cookie_writes_without_the_csrf_header_are_refused(
    portal: Portal, headers: dict[str, str]
) -> None:
    portal.client.post("/api/login", json={"username": "alice", "password": "alice-secret"})
    response = portal.client.patch("/api/me/settings", json={"dnd": True}, headers=headers)
    assert response.status_code == 403
    assert error_of(response)["code"] == "csrf"
    assert CSRF_HEADER in error_of(response)["message"]
    assert portal.users.get("alice").dnd is False
    # Logging out is a write too: a page of another site must not end the session.
    assert portal.client.post("/api/logout", headers=headers).status_code == 403
    assert portal.client.get("/api/me").status_code == 200
    assert portal.client.post("/api/logout", headers={CSRF_HEADER: CSRF_VALUE}).status_code == 204


# --- hardening (issue 9): CSRF on every write, limits, expiry, headers ----------------


def _writes(portal: Portal) -> list[tuple[str, str]]:
    return [(m, p) for m, p in protected_routes(portal) if m not in ("GET", "HEAD", "OPTIONS")]


def _directory_state(portal: Portal) -> object:
    context = portal.context
    return (
        context.users.list_users(),
        context.restrictions.list_profiles(),
        [context.telecommuter.saved_numbers(name) for name in ("admin", "alice", "bob")],
    )


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"Origin": "https://evil.example", CSRF_HEADER: CSRF_VALUE}, "cross_site"),
        ({"Origin": "http://testserver.evil.example", CSRF_HEADER: CSRF_VALUE}, "cross_site"),
        ({"Origin": "http://testserver:8443", CSRF_HEADER: CSRF_VALUE}, "cross_site"),
        # What sandboxed frames and some redirects send.
        ({"Origin": "null", CSRF_HEADER: CSRF_VALUE}, "cross_site"),
        ({"Origin": "http://testserver"}, "csrf"),
    ],
    ids=["other-site", "look-alike-host", "other-port", "null-origin", "no-csrf-header"],
)
def test_cookie_writes_to_every_route_need_our_origin_and_header(
    portal: Portal, headers: dict[str, str], code: str
) -> None:
    """A page of another site can make the browser send the session cookie; no
    write through the API may come of it, on any route (the administrator's
    cookie, so the admin routes are reached too)."""
    writes = _writes(portal)
    assert len(writes) >= 15
    portal.client.post("/api/login", json={"username": "admin", "password": PASSWORDS["admin"]})
    before = _directory_state(portal)
    for method, path in writes:
        response = portal.client.request(method, path, json={}, headers=headers)
        assert response.status_code == 403, (method, path, response.text)
        assert error_of(response)["code"] == code, (method, path)
    assert _directory_state(portal) == before
    # The session itself survived every attempt (logout included).
    assert portal.client.get("/api/me").json()["username"] == "admin"


def test_the_username_limit_ignores_the_spelling_of_the_name(sessions: Sessions) -> None:
    limits = LoginLimits(username_failures=3, address_attempts=100)
    for portal in open_portal(sessions, limiter=LoginLimiter(limits)):
        for name in ("ALICE", "Alice", "aLiCe"):
            wrong = portal.client.post("/api/login", json={"username": name, "password": "x"})
            assert wrong.status_code == 401
        right = {"username": "alice", "password": PASSWORDS["alice"]}
        limited = portal.client.post("/api/login", json=right)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) > 0


def test_password_checks_running_at_once_are_bounded(sessions: Sessions) -> None:
    """argon2 costs memory: when every check slot stays taken, a login is
    turned away with 503 and Retry-After instead of queueing without bound."""
    limiter = LoginLimiter(LoginLimits(concurrent_checks=1, check_wait=0.05))
    for portal in open_portal(sessions, limiter=limiter):
        right = {"username": "alice", "password": PASSWORDS["alice"]}
        with limiter.password_check():  # the one slot, taken by "another login"
            busy = portal.client.post("/api/login", json=right)
        assert busy.status_code == 503
        assert error_of(busy)["code"] == "busy"
        assert busy.headers["retry-after"] == "1"
        assert "set-cookie" not in busy.headers
        assert portal.client.post("/api/login", json=right).status_code == 200


def test_an_expired_cookie_session_is_refused_everywhere(sessions: Sessions) -> None:
    for portal in open_portal(sessions, token_ttl=600.0):
        portal.client.post("/api/login", json={"username": "bob", "password": PASSWORDS["bob"]})
        assert portal.client.get("/api/me").status_code == 200
        portal.clock.advance(600)
        same_site = {"Origin": "http://testserver", CSRF_HEADER: CSRF_VALUE}
        for method, path in [("GET", "/api/me"), ("PATCH", "/api/me/settings")]:
            response = portal.client.request(method, path, json={"dnd": True}, headers=same_site)
            assert response.status_code == 401, (method, path)
            assert error_of(response)["code"] == "unauthenticated"
        assert portal.users.get("bob").dnd is False
        # Logging in again is the only way back.
        portal.client.post("/api/login", json={"username": "bob", "password": PASSWORDS["bob"]})
        assert portal.client.get("/api/me").status_code == 200


def test_a_revoked_token_stays_revoked_by_bearer_and_by_cookie(portal: Portal) -> None:
    response = portal.client.post(
        "/api/login", json={"username": "alice", "password": PASSWORDS["alice"]}
    )
    token = response.json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert portal.client.post("/api/logout", headers=bearer).status_code == 204
    # A copy of the cookie kept from before the logout does not bring it back.
    portal.client.cookies.set(SESSION_COOKIE, token, path="/api")
    assert portal.client.get("/api/me").status_code == 401
    assert portal.client.get("/api/me", headers=bearer).status_code == 401
    assert portal.client.post("/api/logout", headers=bearer).status_code == 401


def _assert_security_headers(response: httpx.Response, what: str) -> None:
    headers = response.headers
    policy = headers.get("content-security-policy", "")
    directives = {part.split()[0]: part for part in (p.strip() for p in policy.split(";")) if part}
    assert directives.get("default-src") == "default-src 'self'", (what, policy)
    assert "frame-ancestors 'none'" in policy, (what, policy)
    assert "object-src 'none'" in policy, (what, policy)
    # Scripts from our own origin only: no inline script, no eval.
    script = directives.get("script-src", directives["default-src"])
    assert "'unsafe-inline'" not in script, (what, policy)
    assert "'unsafe-eval'" not in script, (what, policy)
    assert headers.get("x-content-type-options") == "nosniff", what
    assert headers.get("x-frame-options") == "DENY", what
    assert headers.get("referrer-policy"), what


def test_every_kind_of_response_carries_the_security_headers(sessions: Sessions) -> None:
    limits = LoginLimits(username_failures=1, address_attempts=100)
    for portal in open_portal(sessions, limiter=LoginLimiter(limits)):
        client = portal.client
        alice = portal.as_user("alice")
        static = next(
            path
            for path in sorted(STATIC_DIR.rglob("*"))
            if path.is_file() and path.suffix in (".js", ".css")
        )
        client.post("/api/login", json={"username": "bob", "password": "wrong"})
        responses = {
            "the portal page": client.get("/"),
            "a static file": client.get(f"/static/{static.relative_to(STATIC_DIR).as_posix()}"),
            "an API answer": client.get("/api/me", headers=alice),
            "401": client.get("/api/me"),
            "404": client.get("/api/nothing-here", headers=alice),
            "405": client.put("/api/login", json={}),
            "422": client.post("/api/login", json={}),
            "413": client.post("/api/login", json={"username": "a", "password": "x" * 70_000}),
            "429": client.post("/api/login", json={"username": "bob", "password": "wrong"}),
            "health": client.get("/healthz"),
            "metrics": client.get("/metrics"),
            "the API description": client.get("/openapi.json"),
        }
        for what, response in responses.items():
            _assert_security_headers(response, what)
        assert responses["429"].status_code == 429
        assert responses["413"].status_code == 413


def test_a_server_error_carries_the_security_headers_too(sessions: Sessions) -> None:
    for portal in open_portal(sessions):

        @portal.app.get("/api/boom")
        def boom() -> None:
            raise RuntimeError("secret internals")

        response = TestClient(portal.app, raise_server_exceptions=False).get("/api/boom")
        assert response.status_code == 500
        _assert_security_headers(response, "500")
