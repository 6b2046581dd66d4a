"""Administration over the REST API: users, permissions and restriction profiles."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from teleoffice.store import Sessions
from tests.unit.portal_kit import PASSWORDS, Portal, error_of, open_portal


@pytest.fixture
def portal(sessions: Sessions) -> Iterator[Portal]:
    yield from open_portal(sessions)


@pytest.fixture
def admin(portal: Portal) -> dict[str, str]:
    return portal.as_user("admin")


# Every administrator route, as (method, path template): a new one must be added
# here, and so is checked for 401 and 403 below.
ADMIN_OPERATIONS = {
    ("GET", "/api/admin/users"),
    ("POST", "/api/admin/users"),
    ("GET", "/api/admin/users/{username}"),
    ("PATCH", "/api/admin/users/{username}"),
    ("DELETE", "/api/admin/users/{username}"),
    ("POST", "/api/admin/users/{username}/password"),
    ("GET", "/api/admin/users/{username}/voicemail"),
    ("PATCH", "/api/admin/users/{username}/voicemail"),
    ("GET", "/api/admin/restrictions"),
    ("POST", "/api/admin/restrictions"),
    ("GET", "/api/admin/restrictions/{name}"),
    ("PATCH", "/api/admin/restrictions/{name}"),
    ("DELETE", "/api/admin/restrictions/{name}"),
    ("POST", "/api/admin/restrictions/{name}/check"),
    ("GET", "/api/admin/trunks"),
    ("POST", "/api/admin/trunks"),
    ("GET", "/api/admin/trunks/{name}"),
    ("PATCH", "/api/admin/trunks/{name}"),
    ("DELETE", "/api/admin/trunks/{name}"),
    ("GET", "/api/admin/phones"),
    ("GET", "/api/admin/phones/{account}"),
    ("GET", "/api/admin/live"),
}


def admin_operations(portal: Portal) -> list[tuple[str, str]]:
    paths = portal.client.get("/openapi.json").json()["paths"]
    found = {
        (method.upper(), path)
        for path, item in paths.items()
        if path.startswith("/api/admin/")
        for method in item
    }
    assert found == ADMIN_OPERATIONS
    return [
        (
            method,
            path.replace("{username}", "bob")
            .replace("{name}", "default")
            .replace("{account}", "202"),
        )
        for method, path in sorted(found)
    ]


def test_admin_endpoints_are_forbidden_to_other_users(portal: Portal) -> None:
    before = (portal.users.list_users(), portal.context.restrictions.list_profiles())
    for method, path in admin_operations(portal):
        response = portal.client.request(
            method, path, json={"display_name": "x"}, headers=portal.as_user("alice")
        )
        assert response.status_code == 403, (method, path)
        assert error_of(response)["code"] == "forbidden"
    assert (portal.users.list_users(), portal.context.restrictions.list_profiles()) == before


def test_admin_endpoints_need_a_login(portal: Portal) -> None:
    for method, path in admin_operations(portal):
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            response = portal.client.request(method, path, json={}, headers=headers)
            assert response.status_code == 401, (method, path)
            assert error_of(response)["code"] == "unauthenticated"
    assert portal.users.get("bob").display_name == "bob"


# --- users --------------------------------------------------------------------------


def test_list_and_show_users(portal: Portal, admin: dict[str, str]) -> None:
    portal.context.restrictions.assign("bob", "unrestricted")
    portal.context.telecommuter.set_patterns("bob", ["0170."])
    listed = portal.client.get("/api/admin/users", headers=admin).json()
    assert [u["username"] for u in listed] == ["admin", "alice", "bob", "carol"]
    bob = next(u for u in listed if u["username"] == "bob")
    assert bob["restriction"] == "unrestricted"
    assert bob["telecommuter_patterns"] == ["0170."]
    assert bob["has_password"] is True
    assert next(u for u in listed if u["username"] == "carol")["has_password"] is False
    shown = portal.client.get("/api/admin/users/bob", headers=admin).json()
    assert shown == bob
    assert "password_hash" not in str(listed)


def test_unknown_and_malformed_usernames(portal: Portal, admin: dict[str, str]) -> None:
    missing = portal.client.get("/api/admin/users/nobody", headers=admin)
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"
    bad = portal.client.get("/api/admin/users/-bad", headers=admin)
    assert bad.status_code == 422


def test_create_a_user_with_everything(portal: Portal, admin: dict[str, str]) -> None:
    body = {
        "username": "dave",
        "extension": "204",
        "display_name": "Dave Davis",
        "password": "daves-password",
        "is_admin": False,
        "telecommuter_allowed": True,
        "telecommuter_patterns": ["0170.", "_+49."],
        "call_waiting": False,
        "voicemail_enabled": True,
        "no_answer_timeout": 30,
        "forward_no_answer": "202",
        "dnd": True,
        "restriction": "internal-only",
        "login_code": "4711",
    }
    response = portal.client.post("/api/admin/users", json=body, headers=admin)
    assert response.status_code == 201, response.text
    created = response.json()
    generated = created.pop("sip_password")
    assert isinstance(generated, str)
    assert len(generated) >= 12
    assert created["telecommuter_patterns"] == ["0170.", "+49."]
    assert created["has_login_code"] is True
    assert created["restriction"] == "internal-only"
    dave = portal.users.get("dave")
    assert (dave.display_name, dave.extension, dave.call_waiting) == ("Dave Davis", "204", False)
    assert (dave.voicemail_enabled, dave.no_answer_timeout, dave.dnd) == (True, 30, True)
    assert dave.forward_no_answer == "202"
    assert dave.telecommuter_allowed is True
    assert portal.context.telecommuter.verify_login_code("204", "4711") == "dave"
    assert portal.login("dave", "daves-password")


def test_a_given_sip_password_is_not_echoed(portal: Portal, admin: dict[str, str]) -> None:
    body = {"username": "erin", "extension": "205", "sip_password": "erins-sip-pass"}
    response = portal.client.post("/api/admin/users", json=body, headers=admin)
    assert response.status_code == 201
    assert response.json()["sip_password"] is None
    assert "erins-sip-pass" not in response.text
    erin = response.json()
    assert (erin["restriction"], erin["has_password"], erin["is_admin"]) == (
        "default",
        False,
        False,
    )


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"username": "alice", "extension": "299"}, 409),
        ({"username": "zed", "extension": "201"}, 409),
        ({"username": "zed", "extension": "299", "restriction": "nonesuch"}, 422),
        ({"username": "zed", "extension": "299", "telecommuter_patterns": ["0170.=x"]}, 422),
        ({"username": "zed", "extension": "299", "telecommuter_patterns": ["abc"]}, 422),
        ({"username": "zed", "extension": "299", "forward_busy": "299"}, 422),
        ({"username": "zed", "extension": "299", "login_code": "12"}, 422),
        ({"username": "zed", "extension": "2"}, 422),
        ({"username": "zed zed", "extension": "299"}, 422),
        ({"username": "zed", "extension": "299", "password": "short"}, 422),
        ({"username": "zed", "extension": "299", "sip_password": "has space"}, 422),
        ({"username": "zed", "extension": "299", "display_name": "a\u0007b"}, 422),
        ({"username": "zed", "extension": "299", "is_admin": "yes"}, 422),
        ({"username": "zed", "extension": "299", "role": "root"}, 422),
        ({"username": "zed"}, 422),
    ],
)
def test_bad_new_users_create_nothing(
    portal: Portal, admin: dict[str, str], body: dict[str, object], status: int
) -> None:
    before = portal.users.list_users()
    response = portal.client.post("/api/admin/users", json=body, headers=admin)
    assert response.status_code == status, response.text
    error_of(response)
    assert portal.users.list_users() == before


def test_patch_a_user(portal: Portal, admin: dict[str, str]) -> None:
    body = {
        "display_name": "Bob B.",
        "is_admin": True,
        "telecommuter_allowed": True,
        "telecommuter_patterns": ["0170."],
        "call_waiting": False,
        "voicemail_enabled": True,
        "no_answer_timeout": 20,
        "forward_always": "203",
        "dnd": True,
        "restriction": "unrestricted",
        "login_code": "1234",
        "sip_password": "new-sip-password",
    }
    response = portal.client.patch("/api/admin/users/bob", json=body, headers=admin)
    assert response.status_code == 200, response.text
    shown = response.json()
    assert shown["restriction"] == "unrestricted"
    assert shown["telecommuter_patterns"] == ["0170."]
    assert shown["has_login_code"] is True
    bob = portal.users.get("bob")
    assert (bob.display_name, bob.is_admin, bob.telecommuter_allowed) == ("Bob B.", True, True)
    assert (bob.call_waiting, bob.voicemail_enabled, bob.no_answer_timeout) == (False, True, 20)
    assert (bob.forward_always, bob.dnd) == ("203", True)
    # null switches off what can be switched off.
    cleared: dict[str, object] = {
        "forward_always": None,
        "login_code": None,
        "telecommuter_patterns": [],
    }
    response = portal.client.patch("/api/admin/users/bob", json=cleared, headers=admin)
    assert response.status_code == 200
    assert response.json()["has_login_code"] is False
    assert response.json()["telecommuter_patterns"] == []
    assert portal.users.get("bob").forward_always is None


def test_a_new_password_ends_the_users_sessions(portal: Portal, admin: dict[str, str]) -> None:
    bob = portal.as_user("bob")
    response = portal.client.patch(
        "/api/admin/users/bob", json={"password": "fresh-password"}, headers=admin
    )
    assert response.status_code == 200
    assert portal.client.get("/api/me", headers=bob).status_code == 401
    assert portal.client.get("/api/me", headers=admin).status_code == 200
    assert portal.login("bob", "fresh-password")


@pytest.mark.parametrize(
    "body",
    [
        {"display_name": "Changed", "telecommuter_patterns": ["0170.", "bad!pattern"]},
        {"display_name": "Changed", "restriction": "nonesuch"},
        {"display_name": "Changed", "forward_busy": "202"},  # bob's own extension
        {"display_name": "Changed", "login_code": "12ab"},
        {"display_name": "Changed", "dnd": None},
        {"display_name": "Changed", "no_answer_timeout": 1000},
        {"display_name": "Changed", "extension": "299"},
        {"display_name": None},
    ],
)
def test_a_refused_patch_changes_nothing(
    portal: Portal, admin: dict[str, str], body: dict[str, object]
) -> None:
    portal.context.telecommuter.set_patterns("bob", ["0171."])
    before = (
        portal.users.get("bob"),
        portal.context.telecommuter.get("bob"),
        portal.context.restrictions.profile_name_for("bob"),
    )
    body = {**body, "restriction": body.get("restriction", "unrestricted")}
    response = portal.client.patch("/api/admin/users/bob", json=body, headers=admin)
    assert response.status_code == 422, response.text
    assert error_of(response)["code"] == "invalid_input"
    after = (
        portal.users.get("bob"),
        portal.context.telecommuter.get("bob"),
        portal.context.restrictions.profile_name_for("bob"),
    )
    assert after == before


def test_patch_of_an_unknown_user_is_404(portal: Portal, admin: dict[str, str]) -> None:
    response = portal.client.patch("/api/admin/users/nobody", json={"dnd": True}, headers=admin)
    assert response.status_code == 404


def test_admins_cannot_demote_or_delete_themselves(portal: Portal, admin: dict[str, str]) -> None:
    demote = portal.client.patch("/api/admin/users/admin", json={"is_admin": False}, headers=admin)
    assert demote.status_code == 409
    assert error_of(demote)["code"] == "conflict"
    delete = portal.client.delete("/api/admin/users/admin", headers=admin)
    assert delete.status_code == 409
    assert portal.users.get("admin").is_admin is True
    # Another administrator may.
    portal.users.update("alice", is_admin=True)
    alice = portal.as_user("alice")
    assert (
        portal.client.patch(
            "/api/admin/users/admin", json={"is_admin": False}, headers=alice
        ).status_code
        == 200
    )
    assert portal.client.get("/api/admin/users", headers=admin).status_code == 403


def test_delete_a_user_ends_their_sessions(portal: Portal, admin: dict[str, str]) -> None:
    bob = portal.as_user("bob")
    response = portal.client.delete("/api/admin/users/bob", headers=admin)
    assert response.status_code == 204
    assert portal.users.find("bob") is None
    assert portal.client.get("/api/me", headers=bob).status_code == 401
    assert portal.client.delete("/api/admin/users/bob", headers=admin).status_code == 404


# --- restriction profiles -----------------------------------------------------------


def test_restriction_profiles_round_trip(portal: Portal, admin: dict[str, str]) -> None:
    listed = portal.client.get("/api/admin/restrictions", headers=admin).json()
    assert {"default", "internal-only", "unrestricted"} <= {p["name"] for p in listed}
    body = {
        "name": "sales",
        "description": "national and mobile",
        "allowed": ["internal", "0Z.", "01[5-7]."],
        "barred": ["0900.=premium"],
    }
    created = portal.client.post("/api/admin/restrictions", json=body, headers=admin)
    assert created.status_code == 201, created.text
    sales = created.json()
    assert sales["allowed"] == ["internal", "0Z.", "01[5-7]."]
    assert sales["emergency"] == ["112", "911", "999"]
    assert sales["users"] == []
    portal.client.patch("/api/admin/users/alice", json={"restriction": "sales"}, headers=admin)
    shown = portal.client.get("/api/admin/restrictions/sales", headers=admin).json()
    assert shown["users"] == ["alice"]
    patched = portal.client.patch(
        "/api/admin/restrictions/sales",
        json={"barred": ["0900.", "0137."], "emergency": ["112"], "description": "changed"},
        headers=admin,
    )
    assert patched.status_code == 200
    assert patched.json()["barred"] == ["0900.", "0137."]
    assert patched.json()["allowed"] == ["internal", "0Z.", "01[5-7]."]
    assert patched.json()["emergency"] == ["112"]
    assigned = portal.client.delete("/api/admin/restrictions/sales", headers=admin)
    assert assigned.status_code == 409
    portal.client.patch("/api/admin/users/alice", json={"restriction": "default"}, headers=admin)
    assert portal.client.delete("/api/admin/restrictions/sales", headers=admin).status_code == 204
    assert portal.client.get("/api/admin/restrictions/sales", headers=admin).status_code == 404


def test_the_default_profile_cannot_be_deleted(portal: Portal, admin: dict[str, str]) -> None:
    response = portal.client.delete("/api/admin/restrictions/default", headers=admin)
    assert response.status_code == 409
    assert portal.context.restrictions.find("default") is not None


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "default"}, 409),
        ({"name": "bad name"}, 422),
        ({"name": "p", "allowed": ["0Z.X"]}, 422),
        ({"name": "p", "barred": ["x" * 81]}, 422),
        ({"name": "p", "emergency": ["1"]}, 422),
        ({"name": "p", "description": "a\nb"}, 422),
        ({"name": "p", "allowed": "0Z."}, 422),
    ],
)
def test_bad_profiles_are_refused(
    portal: Portal, admin: dict[str, str], body: dict[str, object], status: int
) -> None:
    before = portal.context.restrictions.list_profiles()
    response = portal.client.post("/api/admin/restrictions", json=body, headers=admin)
    assert response.status_code == status, response.text
    error_of(response)
    assert portal.context.restrictions.list_profiles() == before


def test_bad_profile_patches_change_nothing(portal: Portal, admin: dict[str, str]) -> None:
    before = portal.context.restrictions.get("default")
    response = portal.client.patch(
        "/api/admin/restrictions/default",
        json={"description": "new", "barred": ["00.", "not a pattern"]},
        headers=admin,
    )
    assert response.status_code == 422
    assert portal.context.restrictions.get("default") == before
    missing = portal.client.patch("/api/admin/restrictions/nope", json={}, headers=admin)
    assert missing.status_code == 404


def test_check_a_number_against_a_profile(portal: Portal, admin: dict[str, str]) -> None:
    profile = {"name": "local", "allowed": ["internal", "0Z."], "barred": ["0900.=premium"]}
    assert (
        portal.client.post("/api/admin/restrictions", json=profile, headers=admin).status_code
        == 201
    )

    def check(body: dict[str, object]) -> dict[str, object]:
        response = portal.client.post(
            "/api/admin/restrictions/local/check", json=body, headers=admin
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    national = check({"number": "0301234567"})
    assert national["allowed"] is True
    premium = check({"number": "09001234"})
    assert premium["allowed"] is False
    assert "premium" in str(premium["reason"])
    assert check({"number": "0044123", "from_phone": True})["allowed"] is False
    assert check({"number": "112", "from_phone": True})["allowed"] is True
    assert check({"number": "112", "from_phone": False})["allowed"] is False
    assert check({"number": "202", "internal": True})["allowed"] is True
    missing = portal.client.post(
        "/api/admin/restrictions/nope/check", json={"number": "1"}, headers=admin
    )
    assert missing.status_code == 404
    bad = portal.client.post(
        "/api/admin/restrictions/local/check", json={"number": "12ab"}, headers=admin
    )
    assert bad.status_code == 422
    assert error_of(bad)["message"].startswith("number:")


# --- portal passwords ---------------------------------------------------------------


def test_reset_a_password_to_a_generated_one(portal: Portal, admin: dict[str, str]) -> None:
    bob = portal.as_user("bob")
    response = portal.client.post("/api/admin/users/bob/password", json={}, headers=admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["username"] == "bob"
    generated = body["password"]
    assert isinstance(generated, str)
    assert len(generated) >= 12
    # The old session is over, the old password no longer works, the new one does.
    assert portal.client.get("/api/me", headers=bob).status_code == 401
    old = portal.client.post("/api/login", json={"username": "bob", "password": PASSWORDS["bob"]})
    assert old.status_code == 401
    assert portal.login("bob", generated)
    # Two resets give two different passwords.
    again = portal.client.post("/api/admin/users/bob/password", json={}, headers=admin)
    assert again.json()["password"] != generated


def test_reset_a_password_to_a_given_one(portal: Portal, admin: dict[str, str]) -> None:
    # carol had no portal password at all: a reset lets her log in.
    assert portal.users.get("carol").has_password is False
    response = portal.client.post(
        "/api/admin/users/carol/password", json={"password": "carols-new-pass"}, headers=admin
    )
    assert response.status_code == 200
    assert response.json() == {"username": "carol", "password": None}
    assert "carols-new-pass" not in response.text
    assert portal.login("carol", "carols-new-pass")


@pytest.mark.parametrize(
    ("username", "body", "status"),
    [
        ("bob", {"password": "short"}, 422),
        ("bob", {"password": 12345678}, 422),
        ("bob", {"password": "long-enough", "extra": 1}, 422),
        ("nobody", {}, 404),
        ("admin", {}, 409),  # their own: PUT /api/me/password, with the current one
    ],
)
def test_refused_password_resets_change_nothing(
    portal: Portal, admin: dict[str, str], username: str, body: dict[str, object], status: int
) -> None:
    bob = portal.as_user("bob")
    response = portal.client.post(f"/api/admin/users/{username}/password", json=body, headers=admin)
    assert response.status_code == status, response.text
    error_of(response)
    assert portal.client.get("/api/me", headers=bob).status_code == 200
    assert portal.client.get("/api/me", headers=admin).status_code == 200
    assert portal.login("bob", PASSWORDS["bob"])
