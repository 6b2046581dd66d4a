"""The current user's own settings, password, call log and saved numbers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from teleoffice.portal import LoginLimiter, LoginLimits
from teleoffice.portal.deps import CSRF_HEADER, CSRF_VALUE
from teleoffice.store import CallDirection, CallOutcome, CallRecord, Sessions
from teleoffice.store.telecommuter import MAX_SAVED_NUMBERS
from tests.unit.portal_kit import PASSWORDS, Portal, error_of, open_portal


@pytest.fixture
def portal(sessions: Sessions) -> Iterator[Portal]:
    yield from open_portal(sessions)


def test_me_shows_the_callers_own_settings(portal: Portal) -> None:
    portal.users.update("alice", forward_busy="202", dnd=True)
    portal.context.restrictions.assign("alice", "internal-only")
    me = portal.client.get("/api/me", headers=portal.as_user("alice")).json()
    assert me == {
        "username": "alice",
        "display_name": "alice",
        "extension": "201",
        "is_admin": False,
        "telecommuter_allowed": False,
        "call_waiting": True,
        "voicemail_enabled": False,
        "no_answer_timeout": 15,
        "forward_always": None,
        "forward_busy": "202",
        "forward_no_answer": None,
        "dnd": True,
        "restriction": "internal-only",
    }
    assert portal.client.get("/api/me", headers=portal.as_user("bob")).json()["username"] == "bob"


# --- settings -----------------------------------------------------------------------


def test_patch_settings_changes_only_what_is_given(portal: Portal) -> None:
    headers = portal.as_user("alice")
    response = portal.client.patch(
        "/api/me/settings",
        json={"forward_always": "+4930123456", "dnd": True, "no_answer_timeout": 25},
        headers=headers,
    )
    assert response.status_code == 200
    assert response.json()["forward_always"] == "+4930123456"
    alice = portal.users.get("alice")
    assert (alice.forward_always, alice.dnd, alice.no_answer_timeout) == ("+4930123456", True, 25)
    assert alice.call_waiting is True  # untouched
    response = portal.client.patch(
        "/api/me/settings",
        json={"call_waiting": False, "forward_busy": "202", "forward_no_answer": "9012"},
        headers=headers,
    )
    alice = portal.users.get("alice")
    assert (alice.call_waiting, alice.forward_busy, alice.forward_no_answer) == (
        False,
        "202",
        "9012",
    )
    assert alice.forward_always == "+4930123456"
    assert portal.users.get("bob").forward_busy is None  # nobody else changed


def test_null_switches_a_forward_off(portal: Portal) -> None:
    portal.users.update("alice", forward_always="202", forward_busy="203")
    response = portal.client.patch(
        "/api/me/settings", json={"forward_always": None}, headers=portal.as_user("alice")
    )
    assert response.status_code == 200
    alice = portal.users.get("alice")
    assert (alice.forward_always, alice.forward_busy) == (None, "203")


@pytest.mark.parametrize(
    "body",
    [
        {"dnd": None},
        {"call_waiting": None},
        {"no_answer_timeout": None},
        {"dnd": "true"},
        {"dnd": 1},
        {"no_answer_timeout": 0},
        {"no_answer_timeout": 601},
        {"no_answer_timeout": "20"},
        {"forward_always": ""},
        {"forward_always": "abc"},
        {"forward_always": "1" * 40},
        {"forward_always": "202;evil"},
        {"forward_always": 202},
        {"forward_busy": "202", "dnd": True, "unknown": 1},
        {"forward_busy": "202", "dnd": True, "no_answer_timeout": -5},
        {"is_admin": True},
        {"telecommuter_allowed": True},
    ],
)
def test_bad_settings_are_422_and_change_nothing(portal: Portal, body: dict[str, object]) -> None:
    before = portal.users.get("alice")
    response = portal.client.patch("/api/me/settings", json=body, headers=portal.as_user("alice"))
    assert response.status_code == 422, response.text
    assert error_of(response)["code"] == "invalid_input"
    assert portal.users.get("alice") == before


def test_forward_to_own_extension_is_refused_by_the_store(portal: Portal) -> None:
    before = portal.users.get("alice")
    response = portal.client.patch(
        "/api/me/settings",
        json={"dnd": True, "forward_busy": "201"},
        headers=portal.as_user("alice"),
    )
    assert response.status_code == 422
    assert "own extension" in error_of(response)["message"]
    assert portal.users.get("alice") == before


# --- password -----------------------------------------------------------------------


def test_changing_the_password_ends_other_sessions(portal: Portal) -> None:
    old = portal.login("alice")
    other = portal.login("alice")
    response = portal.client.put(
        "/api/me/password",
        json={"current_password": PASSWORDS["alice"], "new_password": "a-new-passphrase"},
        headers={"Authorization": f"Bearer {old}"},
    )
    assert response.status_code == 200
    new = response.json()["token"]
    for token, status in ((old, 401), (other, 401), (new, 200)):
        me = portal.client.get("/api/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == status
    wrong = {"username": "alice", "password": PASSWORDS["alice"]}
    assert portal.client.post("/api/login", json=wrong).status_code == 401
    right = {"username": "alice", "password": "a-new-passphrase"}
    assert portal.client.post("/api/login", json=right).status_code == 200


def test_a_cookie_session_gets_a_new_cookie(portal: Portal) -> None:
    portal.client.post("/api/login", json={"username": "bob", "password": PASSWORDS["bob"]})
    response = portal.client.put(
        "/api/me/password",
        json={"current_password": PASSWORDS["bob"], "new_password": "bobs-new-passphrase"},
        headers={CSRF_HEADER: CSRF_VALUE},
    )
    assert response.status_code == 200
    assert response.json()["token"] in response.headers["set-cookie"]
    assert portal.client.get("/api/me").status_code == 200


def test_a_wrong_current_password_is_403_and_counts_as_a_failure(sessions: Sessions) -> None:
    limits = LoginLimits(username_failures=2, address_attempts=100)
    for portal in open_portal(sessions, limiter=LoginLimiter(limits)):
        headers = portal.as_user("alice")
        body = {"current_password": "guess", "new_password": "whatever-long"}
        for _ in range(2):
            response = portal.client.put("/api/me/password", json=body, headers=headers)
            assert response.status_code == 403
            assert error_of(response)["code"] == "wrong_password"
        right = {"current_password": PASSWORDS["alice"], "new_password": "whatever-long"}
        limited = portal.client.put("/api/me/password", json=right, headers=headers)
        assert limited.status_code == 429
        assert "retry-after" in limited.headers
        # Nothing changed: the old password still logs in once the window passes.
        portal.clock.advance(301)
        assert portal.login("alice")


@pytest.mark.parametrize(
    "body",
    [
        {"current_password": "alice-secret", "new_password": "short"},
        {"current_password": "alice-secret", "new_password": "x" * 2000},
        {"current_password": "alice-secret"},
        {"new_password": "long-enough-pass"},
    ],
)
def test_bad_password_changes_are_422(portal: Portal, body: dict[str, str]) -> None:
    response = portal.client.put("/api/me/password", json=body, headers=portal.as_user("alice"))
    assert response.status_code == 422
    assert portal.users.verify_password("alice", PASSWORDS["alice"]) is not None


# --- call log -----------------------------------------------------------------------


def log_call(
    portal: Portal, call_id: str, caller: str | None, callee: str | None, minute: int
) -> None:
    start = datetime(2030, 1, 1, 9, minute, tzinfo=UTC)
    log = portal.context.call_log
    log.start(
        CallRecord(
            call_id=call_id,
            direction=CallDirection.INTERNAL,
            caller_number="201" if caller == "alice" else "202",
            caller_name=caller,
            callee_number="202" if callee == "bob" else "201",
            callee_name=callee,
            started_at=start,
            caller_user=caller,
            callee_user=callee,
        )
    )
    log.update(call_id, answered_at=start + timedelta(seconds=5))
    log.finish(
        call_id, outcome=CallOutcome.ANSWERED, ended_at=start + timedelta(seconds=65), status=200
    )


def test_call_log_shows_only_the_users_own_calls(portal: Portal) -> None:
    log_call(portal, "c1", "alice", "bob", 1)
    log_call(portal, "c2", "bob", "alice", 2)
    log_call(portal, "c3", "bob", "carol", 3)
    response = portal.client.get("/api/me/call-log", headers=portal.as_user("alice"))
    assert response.status_code == 200
    calls = response.json()
    assert [c["id"] for c in calls] == ["c2", "c1"]  # newest first
    assert calls[1]["side"] == "caller"
    assert calls[0]["side"] == "callee"
    assert calls[1]["from"] == {"number": "201", "name": "alice"}
    assert calls[1]["to"] == {"number": "202", "name": "bob"}
    assert calls[1]["outcome"] == "answered"
    assert calls[1]["duration"] == 60.0
    assert calls[1]["status"] == 200
    bob = portal.client.get("/api/me/call-log", headers=portal.as_user("bob")).json()
    assert [c["id"] for c in bob] == ["c3", "c2", "c1"]
    limited = portal.client.get("/api/me/call-log?limit=1", headers=portal.as_user("bob")).json()
    assert [c["id"] for c in limited] == ["c3"]


@pytest.mark.parametrize("limit", ["0", "501", "-1", "ten"])
def test_call_log_limit_is_checked(portal: Portal, limit: str) -> None:
    response = portal.client.get(f"/api/me/call-log?limit={limit}", headers=portal.as_user("alice"))
    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_input"


# --- saved numbers ------------------------------------------------------------------


def test_saved_numbers_round_trip(portal: Portal) -> None:
    headers = portal.as_user("alice")
    added = portal.client.post(
        "/api/me/saved-numbers", json={"number": "+4930111", "label": "home"}, headers=headers
    )
    assert added.status_code == 201
    assert added.json() == {"number": "+4930111", "label": "home"}
    portal.client.post("/api/me/saved-numbers", json={"number": "0170222"}, headers=headers)
    relabel = portal.client.post(
        "/api/me/saved-numbers", json={"number": "+4930111", "label": "flat"}, headers=headers
    )
    assert relabel.status_code == 201
    listed = portal.client.get("/api/me/saved-numbers", headers=headers).json()
    assert listed == [{"number": "+4930111", "label": "flat"}, {"number": "0170222", "label": ""}]
    # Bob sees his own (none), and cannot delete Alice's.
    bob = portal.as_user("bob")
    assert portal.client.get("/api/me/saved-numbers", headers=bob).json() == []
    assert portal.client.delete("/api/me/saved-numbers/0170222", headers=bob).status_code == 404
    deleted = portal.client.delete("/api/me/saved-numbers/%2B4930111", headers=headers)
    assert deleted.status_code == 204
    listed = portal.client.get("/api/me/saved-numbers", headers=headers).json()
    assert listed == [{"number": "0170222", "label": ""}]
    missing = portal.client.delete("/api/me/saved-numbers/999", headers=headers)
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"


@pytest.mark.parametrize(
    "body",
    [
        {"number": "abc"},
        {"number": ""},
        {"number": "0170", "label": "x" * 65},
        {"number": "0170", "label": "bad\nlabel"},
        {"number": 170},
        {"label": "home"},
    ],
)
def test_bad_saved_numbers_are_422(portal: Portal, body: dict[str, object]) -> None:
    headers = portal.as_user("alice")
    response = portal.client.post("/api/me/saved-numbers", json=body, headers=headers)
    assert response.status_code == 422
    assert portal.context.telecommuter.saved_numbers("alice") == []


def test_saved_numbers_are_limited(portal: Portal) -> None:
    headers = portal.as_user("alice")
    for i in range(MAX_SAVED_NUMBERS):
        number = f"0170{i:04d}"
        response = portal.client.post(
            "/api/me/saved-numbers", json={"number": number}, headers=headers
        )
        assert response.status_code == 201
    full = portal.client.post("/api/me/saved-numbers", json={"number": "0999"}, headers=headers)
    assert full.status_code == 409
    assert error_of(full)["code"] == "conflict"
    assert len(portal.context.telecommuter.saved_numbers("alice")) == MAX_SAVED_NUMBERS


def test_bad_number_in_the_path_is_422(portal: Portal) -> None:
    response = portal.client.delete("/api/me/saved-numbers/12ab", headers=portal.as_user("alice"))
    assert response.status_code == 422
