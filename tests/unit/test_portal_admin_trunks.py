"""Trunks over the administrators' REST API: what `teleoffice trunk` does, on both databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from teleoffice.portal.admin_live import LiveSources, attach_live
from teleoffice.store import Sessions, TrunkRepo
from tests.unit.portal_kit import Portal, error_of, open_portal


@pytest.fixture
def portal(sessions: Sessions) -> Iterator[Portal]:
    yield from open_portal(sessions)


@pytest.fixture
def admin(portal: Portal) -> dict[str, str]:
    return portal.as_user("admin")


def trunks(portal: Portal) -> TrunkRepo:
    return TrunkRepo(portal.users.sessions)


PROVIDER = {
    "name": "provider",
    "host": "SIP.Example.NET.",
    "port": 5070,
    "transport": "tcp",
    "prefix": "9",
    "username": "acct-42",
    "password": "provider-secret",
    "outside_number": "+4930123456",
    "use_pai": True,
    "register": True,
    "register_expires": 600,
}


def test_create_list_show_a_trunk(portal: Portal, admin: dict[str, str]) -> None:
    response = portal.client.post("/api/admin/trunks", json=PROVIDER, headers=admin)
    assert response.status_code == 201, response.text
    created = response.json()
    assert "provider-secret" not in response.text
    assert "ha1" not in response.text
    assert created["host"] == "sip.example.net"  # the canonical spelling
    assert created["realm"] == "sip.example.net"  # the host, when not given
    assert created["has_credentials"] is True
    assert (created["register"], created["register_expires"]) == (True, 600)
    assert created["registration"] is None  # no live state in this server
    assert (created["prefix"], created["outside_number"], created["use_pai"]) == (
        "9",
        "+4930123456",
        True,
    )
    stored = trunks(portal).get("provider")
    assert (stored.port, stored.transport, stored.username) == (5070, "tcp", "acct-42")
    assert trunks(portal).credentials("provider") is not None
    listed = portal.client.get("/api/admin/trunks", headers=admin).json()
    assert listed == [created]
    assert portal.client.get("/api/admin/trunks/provider", headers=admin).json() == created


def test_defaults_match_the_cli(portal: Portal, admin: dict[str, str]) -> None:
    response = portal.client.post(
        "/api/admin/trunks", json={"name": "inbound", "host": "10.0.0.9"}, headers=admin
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["port"], body["transport"], body["prefix"]) == (5060, "udp", None)
    assert (body["username"], body["has_credentials"], body["register"]) == (None, False, False)
    assert body["register_expires"] == 3600


def test_patch_a_trunk(portal: Portal, admin: dict[str, str]) -> None:
    portal.client.post("/api/admin/trunks", json=PROVIDER, headers=admin)
    response = portal.client.patch(
        "/api/admin/trunks/provider",
        json={"port": 5080, "prefix": "8", "use_pai": False, "register": False},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["port"], body["prefix"], body["use_pai"], body["register"]) == (
        5080,
        "8",
        False,
        False,
    )
    # Left out: unchanged. null: removed.
    assert body["outside_number"] == "+4930123456"
    assert body["has_credentials"] is True
    cleared = portal.client.patch(
        "/api/admin/trunks/provider",
        json={"prefix": None, "outside_number": None, "username": None},
        headers=admin,
    ).json()
    assert (cleared["prefix"], cleared["outside_number"], cleared["username"]) == (None, None, None)
    assert cleared["has_credentials"] is False
    assert trunks(portal).credentials("provider") is None


def test_a_new_password_is_hashed_for_the_realm(portal: Portal, admin: dict[str, str]) -> None:
    portal.client.post("/api/admin/trunks", json=PROVIDER, headers=admin)
    response = portal.client.patch(
        "/api/admin/trunks/provider",
        json={"password": "rotated-secret", "realm": "voip.example"},
        headers=admin,
    )
    assert response.status_code == 200
    assert response.json()["realm"] == "voip.example"
    creds = trunks(portal).credentials("provider")
    assert creds is not None
    assert creds.realm == "voip.example"


def test_delete_a_trunk(portal: Portal, admin: dict[str, str]) -> None:
    portal.client.post("/api/admin/trunks", json=PROVIDER, headers=admin)
    assert portal.client.delete("/api/admin/trunks/provider", headers=admin).status_code == 204
    assert trunks(portal).find("provider") is None
    again = portal.client.delete("/api/admin/trunks/provider", headers=admin)
    assert again.status_code == 404
    assert error_of(again)["code"] == "not_found"
    assert portal.client.get("/api/admin/trunks/provider", headers=admin).status_code == 404


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({**PROVIDER, "name": "provider"}, 409, None),  # the name is taken
        ({**PROVIDER, "name": "other", "prefix": "7"}, 409, None),  # same host and port
        ({**PROVIDER, "name": "other", "port": 5071, "prefix": "90"}, 409, None),  # overlaps 9
        ({"name": "x", "host": "not a host"}, 422, "host"),
        ({"name": "x", "host": "bad_host!"}, 422, None),
        ({"name": "x", "host": "h", "port": 70000}, 422, "port"),
        ({"name": "x", "host": "h", "transport": "tls"}, 422, "transport"),
        ({"name": "x", "host": "h", "prefix": "12345"}, 422, "prefix"),
        ({"name": "x", "host": "h", "outside_number": "call me"}, 422, "outside_number"),
        ({"name": "x", "host": "h", "password": "secret"}, 422, None),  # no username
        ({"name": "x", "host": "h", "register": True}, 422, None),  # no username
        ({"name": "x", "host": "h", "register_expires": 10}, 422, "register_expires"),
        ({"name": "x", "host": "h", "username": "a\nb"}, 422, "username"),
        ({"name": "x y", "host": "h"}, 422, "name"),
        ({"name": "x", "host": "h", "registers": True}, 422, "registers"),
        ({"host": "h"}, 422, "name"),
    ],
)
def test_bad_trunks_are_refused(
    portal: Portal,
    admin: dict[str, str],
    body: dict[str, object],
    status: int,
    field: str | None,
) -> None:
    portal.client.post("/api/admin/trunks", json=PROVIDER, headers=admin)
    before = trunks(portal).list_trunks()
    response = portal.client.post("/api/admin/trunks", json=body, headers=admin)
    assert response.status_code == status, response.text
    message = error_of(response)["message"]
    if field is not None:
        # Field errors name the field first, so the portal can show them beside it.
        assert message.startswith(f"{field}:"), message
    assert trunks(portal).list_trunks() == before


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"port": 5080, "realm": "other"}, 422),  # a new realm needs the password
        ({"port": 5080, "username": "renamed"}, 422),  # so does a new username
        ({"port": 5080, "host": None}, 422),
        ({"port": 5080, "password": None}, 422),
        ({"port": 5080, "name": "renamed"}, 422),
        ({"port": 5060, "host": "10.0.0.9"}, 409),  # the other trunk's address
        ({"port": 5080, "prefix": "5"}, 409),  # the other trunk's prefix
    ],
)
def test_refused_patches_change_nothing(
    portal: Portal, admin: dict[str, str], body: dict[str, object], status: int
) -> None:
    portal.client.post("/api/admin/trunks", json=PROVIDER, headers=admin)
    other = {"name": "other", "host": "10.0.0.9", "prefix": "5"}
    assert portal.client.post("/api/admin/trunks", json=other, headers=admin).status_code == 201
    before = trunks(portal).list_trunks()
    response = portal.client.patch("/api/admin/trunks/provider", json=body, headers=admin)
    assert response.status_code == status, response.text
    error_of(response)
    assert trunks(portal).list_trunks() == before


def test_patch_of_an_unknown_trunk_is_404(portal: Portal, admin: dict[str, str]) -> None:
    response = portal.client.patch("/api/admin/trunks/nope", json={"port": 5061}, headers=admin)
    assert response.status_code == 404


def test_registration_state_comes_from_the_live_system(
    portal: Portal, admin: dict[str, str]
) -> None:
    portal.client.post("/api/admin/trunks", json=PROVIDER, headers=admin)
    portal.client.post("/api/admin/trunks", json={"name": "plain", "host": "h2"}, headers=admin)
    attach_live(
        portal.app,
        LiveSources(
            bindings=lambda account, now: [],
            calls=list,
            telecommuters=dict,
            occupant=lambda account: None,
            trunk_states=lambda: {"provider": "registered"},
            clock=portal.clock,
        ),
    )
    listed = {t["name"]: t for t in portal.client.get("/api/admin/trunks", headers=admin).json()}
    assert listed["provider"]["registration"] == "registered"
    assert listed["plain"]["registration"] is None
