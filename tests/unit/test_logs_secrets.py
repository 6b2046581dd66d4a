"""Logs never contain passwords, digest responses, nonces or tokens.

Everything that handles a secret is driven with logging at DEBUG for every
logger (as `log_level = "DEBUG"` would set it): portal logins, right and
wrong, a bearer API session with a password change and an administrator
resetting and creating passwords (portal and SIP) and a trunk's provider
password, the events WebSocket with its token in the URL, and digest
REGISTERs, failing and succeeding, through the sans-IO SIP service. Then no
captured record, message or traceback, holds any of the secrets seen on the
way, nor the HA1 of a SIP password (which is as good as the password to a
digest client).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from teleoffice.sip.digest import Algorithm, build_authorization, compute_ha1, parse_auth_params
from tests.unit.app_kit import World, open_world, seed_database
from tests.unit.portal_kit import PASSWORDS
from tests.unit.sipkit import REALM, exchange, make_service, register_bytes

# Loggers of the test's own HTTP client, not of the server.
CLIENT_LOGGERS = ("httpx", "httpcore")
NOW = 1_900_000_000.0


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from open_world(seed_database(tmp_path / "seeded"), tmp_path / "world")


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in logging.root.manager.loggerDict:
        if name.startswith(("teleoffice", "uvicorn", "fastapi", "starlette")):
            caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(
        formatter.format(record)
        for record in caplog.records
        if not record.name.startswith(CLIENT_LOGGERS)
    )


def assert_not_logged(caplog: pytest.LogCaptureFixture, secrets: dict[str, str]) -> str:
    text = logged_text(caplog)
    leaked = sorted(what for what, secret in secrets.items() if secret and secret in text)
    assert leaked == [], f"logged: {leaked}"
    return text


def test_portal_secrets_stay_out_of_the_logs(
    world: World, debug_logs: pytest.LogCaptureFixture
) -> None:
    client = world.client
    secrets: dict[str, str] = {f"{name}'s password": PASSWORDS[name] for name in PASSWORDS}
    # Right and wrong logins, and one over the limit of the username.
    wrong = "not-alice-secret-9f2c"
    secrets["a wrong password"] = wrong
    for _ in range(12):
        client.post("/api/login", json={"username": "alice", "password": wrong})
    world.clock.advance(3600)
    world.login("alice")
    alice = world.tokens["alice"]
    secrets["alice's token"] = alice
    headers = {"Authorization": f"Bearer {alice}"}
    assert client.get("/api/me", headers=headers).status_code == 200
    # Refused input that carries a password is not echoed anywhere either.
    short = {"current_password": PASSWORDS["alice"], "new_password": "short"}
    assert client.put("/api/me/password", json=short, headers=headers).status_code == 422
    new_password = "alice-new-secret-7d41"
    secrets["alice's new password"] = new_password
    changed = client.put(
        "/api/me/password",
        json={"current_password": PASSWORDS["alice"], "new_password": new_password},
        headers=headers,
    )
    assert changed.status_code == 200
    secrets["alice's second token"] = changed.json()["token"]
    # The token in the WebSocket URL (as browsers send it), then by cookie.
    with client.websocket_connect(f"/api/events?token={changed.json()['token']}") as socket:
        assert socket.receive_json()["type"] == "hello"
    with client.websocket_connect(f"/api/events?token={alice}") as socket:
        pass  # revoked by the password change: closed with 4401
    # An administrator's passwords: set, generated, a SIP password, a provider's.
    admin = {"Authorization": f"Bearer {world.tokens['admin']}"}
    secrets["admin's token"] = world.tokens["admin"]
    reset = client.post(
        "/api/admin/users/bob/password", json={"password": "bob-reset-secret-1"}, headers=admin
    )
    assert reset.status_code == 200, reset.text
    secrets["bob's reset password"] = "bob-reset-secret-1"
    generated = client.post("/api/admin/users/bob/password", json={}, headers=admin)
    assert generated.status_code == 200, generated.text
    secrets["bob's generated password"] = generated.json()["password"]
    created = client.post(
        "/api/admin/users",
        json={"username": "dave", "extension": "204", "password": "dave-secret-5b"},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    secrets["dave's password"] = "dave-secret-5b"
    secrets["dave's generated SIP password"] = created.json()["sip_password"]
    secrets["dave's SIP HA1"] = compute_ha1(
        "204", REALM, created.json()["sip_password"], Algorithm.MD5
    )
    sip = client.patch(
        "/api/admin/users/dave", json={"sip_password": "dave-sip-secret-3e"}, headers=admin
    )
    assert sip.status_code == 200, sip.text
    secrets["dave's SIP password"] = "dave-sip-secret-3e"
    trunk = client.post(
        "/api/admin/trunks",
        json={
            "name": "carrier",
            "host": "198.51.100.9",
            "prefix": "8",
            "username": "acct",
            "password": "provider-secret-8a",
        },
        headers=admin,
    )
    assert trunk.status_code == 201, trunk.text
    secrets["the provider's password"] = "provider-secret-8a"
    client.post("/api/logout", headers={"Authorization": f"Bearer {changed.json()['token']}"})

    text = assert_not_logged(debug_logs, secrets)
    # Not vacuous: the security events were logged, with the usernames.
    assert "portal login failed" in text
    assert "rate limited" in text


def test_digest_secrets_stay_out_of_the_logs(debug_logs: pytest.LogCaptureFixture) -> None:
    service = make_service({"201": "sip-secret-201"})
    secrets = {
        "the SIP password": "sip-secret-201",
        "the MD5 HA1": compute_ha1("201", REALM, "sip-secret-201", Algorithm.MD5),
        "the SHA-256 HA1": compute_ha1("201", REALM, "sip-secret-201", Algorithm.SHA256),
        "a wrong password": "guessed-password-1",
    }
    for password in ("guessed-password-1", "sip-secret-201"):
        (challenge,) = exchange(service, register_bytes("201"), NOW)
        assert challenge.status == 401
        offer = challenge.headers.get_all("WWW-Authenticate")[0]
        authorization = build_authorization(
            challenge=offer,
            method="REGISTER",
            uri="sip:127.0.0.1",
            username="201",
            password=password,
        )
        params = parse_auth_params(authorization)[1]
        secrets[f"the response for {password}"] = params["response"]
        secrets[f"the nonce answered with {password}"] = params["nonce"]
        (answer,) = exchange(service, register_bytes("201", authorization=authorization), NOW)
        expected = 200 if password == "sip-secret-201" else 401
        assert answer.status == expected
    # A replay of the good answer is refused, and logged as a failure too.
    (replayed,) = exchange(service, register_bytes("201", authorization=authorization), NOW)
    assert replayed.status == 401

    text = assert_not_logged(debug_logs, secrets)
    assert "digest authentication failed" in text  # the failures were logged, safely
