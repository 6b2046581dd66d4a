"""Administrators' control of a user's mailbox: on/off, PIN, unsolicited message waiting."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from teleoffice.store import Sessions, VoicemailStore
from tests.unit.portal_kit import Portal, cheap_hasher, error_of, open_portal
from tests.unit.test_portal_voicemail import Hook, RecordingHub, leave


@pytest.fixture
def store(sessions: Sessions, tmp_path: Path) -> VoicemailStore:
    return VoicemailStore(sessions, tmp_path / "voicemail", cheap_hasher())


@pytest.fixture
def hook() -> Hook:
    return Hook()


@pytest.fixture
def portal(sessions: Sessions, store: VoicemailStore, hook: Hook) -> Iterator[Portal]:
    yield from open_portal(sessions, voicemail=store, voicemail_changed=hook, hub=RecordingHub())


@pytest.fixture
def admin(portal: Portal) -> dict[str, str]:
    return portal.as_user("admin")


def published(portal: Portal) -> list[tuple[str, list[str]]]:
    hub = portal.context.hub
    assert isinstance(hub, RecordingHub)
    return [(str(event["type"]), users) for event, users in hub.published]


def test_show_a_mailbox(portal: Portal, admin: dict[str, str], store: VoicemailStore) -> None:
    portal.users.update("alice", voicemail_enabled=True)
    store.set_pin("alice", "2468")
    first = leave(store, "alice")
    leave(store, "alice")
    store.mark_heard("alice", first)
    response = portal.client.get("/api/admin/users/alice/voicemail", headers=admin)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "username": "alice",
        "enabled": True,
        "has_pin": True,
        "has_greeting": False,
        "unsolicited_mwi": False,
        "new": 1,
        "old": 1,
    }
    # Administrators see counts, never the messages.
    assert "Bob" not in response.text
    assert portal.client.get("/api/admin/users/nobody/voicemail", headers=admin).status_code == 404


def test_switch_the_mailbox_and_set_a_pin(
    portal: Portal, admin: dict[str, str], store: VoicemailStore, hook: Hook
) -> None:
    response = portal.client.patch(
        "/api/admin/users/bob/voicemail",
        json={"enabled": True, "pin": "135790", "unsolicited_mwi": True},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["enabled"], body["has_pin"], body["unsolicited_mwi"]) == (True, True, True)
    assert "135790" not in response.text
    assert portal.users.get("bob").voicemail_enabled is True
    assert store.verify_pin("bob", "135790")
    assert store.box("bob").unsolicited_mwi is True
    # bob's portal tabs and phones are told.
    assert ("voicemail.changed", ["bob"]) in published(portal)
    assert ("settings.changed", ["bob"]) in published(portal)
    assert hook.calls == ["bob"]


def test_reset_the_pin(portal: Portal, admin: dict[str, str], store: VoicemailStore) -> None:
    store.set_pin("bob", "1111")
    response = portal.client.patch(
        "/api/admin/users/bob/voicemail", json={"pin": None}, headers=admin
    )
    assert response.status_code == 200
    assert response.json()["has_pin"] is False
    assert not store.verify_pin("bob", "1111")
    # The settings did not change, so no settings event; the mailbox one goes out.
    assert ("settings.changed", ["bob"]) not in published(portal)
    assert ("voicemail.changed", ["bob"]) in published(portal)


def test_switching_off_keeps_the_messages(
    portal: Portal, admin: dict[str, str], store: VoicemailStore
) -> None:
    portal.users.update("bob", voicemail_enabled=True)
    leave(store, "bob")
    body = portal.client.patch(
        "/api/admin/users/bob/voicemail", json={"enabled": False}, headers=admin
    ).json()
    assert (body["enabled"], body["new"]) == (False, 1)


@pytest.mark.parametrize(
    "body",
    [
        {"enabled": True, "pin": "12"},
        {"enabled": True, "pin": "12ab"},
        {"enabled": True, "pin": 1234},
        {"enabled": True, "unsolicited_mwi": None},
        {"enabled": None},
        {"enabled": True, "greeting": None},
        {"enabled": "yes"},
    ],
)
def test_refused_changes_change_nothing(
    portal: Portal, admin: dict[str, str], store: VoicemailStore, body: dict[str, object]
) -> None:
    store.set_pin("bob", "1111")
    before = (store.box("bob"), portal.users.get("bob"))
    response = portal.client.patch("/api/admin/users/bob/voicemail", json=body, headers=admin)
    assert response.status_code == 422, response.text
    assert error_of(response)["code"] == "invalid_input"
    assert (store.box("bob"), portal.users.get("bob")) == before
    assert store.verify_pin("bob", "1111")
    assert published(portal) == []


def test_unknown_user_is_404(portal: Portal, admin: dict[str, str]) -> None:
    response = portal.client.patch(
        "/api/admin/users/nobody/voicemail", json={"enabled": True}, headers=admin
    )
    assert response.status_code == 404


def test_without_mailboxes_the_routes_say_so(sessions: Sessions) -> None:
    for portal in open_portal(sessions):
        admin = portal.as_user("admin")
        response = portal.client.get("/api/admin/users/bob/voicemail", headers=admin)
        assert response.status_code == 503
        assert error_of(response)["code"] == "unavailable"
