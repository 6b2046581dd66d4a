"""A portal on a real migrated SQLite database, driven through FastAPI's TestClient."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from teleoffice.http.app import create_http_app
from teleoffice.portal import EventHub, LoginLimiter, LoginLimits, PortalContext
from teleoffice.store import CallLogRepo, RestrictionRepo, Sessions, UserRepo
from teleoffice.store.telecommuter import TelecommuterRepo
from teleoffice.store.tokens import TokenRepo

REALM = "teleoffice"
START = 1_900_000_000.0  # a fixed "now" for the fake clock (2030)
PASSWORDS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}


def cheap_hasher() -> PasswordHasher:
    # Real argon2id, with parameters that keep the suite fast.
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@dataclass
class FakeClock:
    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Portal:
    app: FastAPI
    client: TestClient
    context: PortalContext
    clock: FakeClock
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def users(self) -> UserRepo:
        return self.context.users

    def login(self, username: str, password: str | None = None) -> str:
        response = self.client.post(
            "/api/login",
            json={"username": username, "password": password or PASSWORDS[username]},
        )
        assert response.status_code == 200, response.text
        token = response.json()["token"]
        assert isinstance(token, str)
        # Tests pass tokens explicitly; the cookie would authenticate every request.
        self.client.cookies.clear()
        return token

    def as_user(self, username: str) -> dict[str, str]:
        """Authorization headers of a (cached) session of `username`."""
        if username not in self.tokens:
            self.tokens[username] = self.login(username)
        return {"Authorization": f"Bearer {self.tokens[username]}"}


def seed_users(users: UserRepo) -> None:
    users.add_user(
        "admin",
        extension="200",
        sip_password="sip-admin",
        display_name="Administrator",
        password=PASSWORDS["admin"],
        is_admin=True,
    )
    users.add_user("alice", extension="201", sip_password="sip-alice", password=PASSWORDS["alice"])
    users.add_user("bob", extension="202", sip_password="sip-bob", password=PASSWORDS["bob"])
    users.add_user("carol", extension="203", sip_password="sip-carol")  # cannot log in


def make_context(sessions: Sessions, clock: FakeClock, **overrides: Any) -> PortalContext:
    context = PortalContext(
        users=UserRepo(sessions, realm=REALM, hasher=cheap_hasher()),
        tokens=TokenRepo(sessions),
        telecommuter=TelecommuterRepo(sessions, hasher=cheap_hasher()),
        restrictions=RestrictionRepo(sessions),
        call_log=CallLogRepo(sessions),
        hub=EventHub(),
        clock=clock,
        limiter=LoginLimiter(LoginLimits()),
        ping_interval=60.0,
    )
    return replace(context, **overrides)


def open_portal(sessions: Sessions, **overrides: Any) -> Iterator[Portal]:
    """A portal with the users of `seed_users`; `overrides` replace context fields."""
    clock = FakeClock()
    context = make_context(sessions, clock, **overrides)
    seed_users(context.users)
    app = create_http_app(registry=CollectorRegistry(), status=dict, portal=context)
    with TestClient(app) as client:
        yield Portal(app=app, client=client, context=context, clock=clock)


def error_of(response: Any) -> dict[str, str]:
    """The `error` object of a failed response, after checking the shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return dict(body["error"])
