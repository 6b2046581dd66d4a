"""The voicemail routes of the portal: listing, audio with byte ranges, marking,
deleting, PIN and greeting, on a real migrated SQLite database and real files."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from teleoffice.portal import EventHub
from teleoffice.portal.voicemail import ByteRange, parse_range
from teleoffice.store import Sessions, VoicemailStore
from tests.unit.portal_kit import Portal, cheap_hasher, error_of, open_portal


class RecordingHub(EventHub):
    """The real hub, remembering what was published to whom."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[dict[str, Any], list[str]]] = []

    def publish(self, event: Mapping[str, Any], users: Iterable[str]) -> int:
        users = list(users)
        self.published.append((dict(event), users))
        return super().publish(event, users)


class Hook:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[str] = []
        self.fail = fail

    def __call__(self, username: str) -> None:
        self.calls.append(username)
        if self.fail:
            raise RuntimeError("the SIP side is unwell")


def tone(seconds: float) -> bytes:
    count = round(seconds * 8000)
    return struct.pack(
        f"<{count}h", *(round(6000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(count))
    )


@pytest.fixture
def store(sessions: Sessions, tmp_path: Path) -> VoicemailStore:
    return VoicemailStore(sessions, tmp_path / "voicemail", cheap_hasher())


@pytest.fixture
def hook() -> Hook:
    return Hook()


@pytest.fixture
def portal(sessions: Sessions, store: VoicemailStore, hook: Hook) -> Iterator[Portal]:
    yield from open_portal(sessions, voicemail=store, voicemail_changed=hook, hub=RecordingHub())


def hub_of(portal: Portal) -> RecordingHub:
    hub = portal.context.hub
    assert isinstance(hub, RecordingHub)
    return hub


def leave(store: VoicemailStore, username: str, seconds: float = 1.5, number: str = "202") -> int:
    pending = store.new_message_writer(username)
    pending.write(tone(seconds))
    record = store.commit_message(pending, caller_number=number, caller_name="Bob")
    assert record is not None
    return record.id


def audio_url(message_id: int | str) -> str:
    return f"/api/me/voicemail/{message_id}/audio"


# --- listing ------------------------------------------------------------------------


def test_an_empty_mailbox(portal: Portal) -> None:
    response = portal.client.get("/api/me/voicemail", headers=portal.as_user("alice"))
    assert response.status_code == 200
    assert response.json() == {
        "enabled": False,
        "has_pin": False,
        "has_greeting": False,
        "new": 0,
        "old": 0,
        "messages": [],
    }


def test_the_list_shows_the_callers_messages_newest_first(
    portal: Portal, store: VoicemailStore
) -> None:
    portal.users.update("alice", voicemail_enabled=True)
    store.set_pin("alice", "1234")
    first = leave(store, "alice", number="202")
    second = leave(store, "alice", seconds=2.25, number="+4930123")
    leave(store, "bob")
    store.mark_heard("alice", first)
    body = portal.client.get("/api/me/voicemail", headers=portal.as_user("alice")).json()
    assert {k: body[k] for k in ("enabled", "has_pin", "has_greeting", "new", "old")} == {
        "enabled": True,
        "has_pin": True,
        "has_greeting": False,
        "new": 1,
        "old": 1,
    }
    assert [m["id"] for m in body["messages"]] == [second, first]
    newest = body["messages"][0]
    assert set(newest) == {"id", "from", "created_at", "duration", "heard"}
    assert newest["from"] == {"number": "+4930123", "name": "Bob"}
    assert newest["duration"] == pytest.approx(2.25)
    assert newest["heard"] is False
    assert body["messages"][1]["heard"] is True
    bobs = portal.client.get("/api/me/voicemail", headers=portal.as_user("bob")).json()
    assert len(bobs["messages"]) == 1
    assert bobs["messages"][0]["id"] not in (first, second)


# --- audio and byte ranges ------------------------------------------------------------


def test_audio_download(portal: Portal, store: VoicemailStore) -> None:
    message_id = leave(store, "alice")
    data = store.audio_path("alice", message_id).read_bytes()
    response = portal.client.get(audio_url(message_id), headers=portal.as_user("alice"))
    assert response.status_code == 200
    assert response.content == data
    assert data[:4] == b"RIFF"
    assert data[8:12] == b"WAVE"
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["accept-ranges"] == "bytes"
    assert (
        response.headers["content-disposition"]
        == f'attachment; filename="voicemail-{message_id}.wav"'
    )
    assert "no-store" in response.headers["cache-control"]
    assert response.headers["etag"].startswith('"')
    assert "msg-" not in response.headers["etag"]  # the file name stays inside


# Each case with what it should return (a slice of the file).
GOOD_RANGES = [
    ("bytes=0-43", slice(0, 44)),  # the WAV header
    ("bytes=0-0", slice(0, 1)),
    ("bytes=1000-", slice(1000, None)),  # open-ended
    ("bytes=-100", slice(-100, None)),  # the last 100 bytes
    ("bytes=-99999999", slice(0, None)),  # a suffix longer than the file
    ("bytes=10-99999999", slice(10, None)),  # a last byte past the end
    ("bytes=10-" + "9" * 40, slice(10, None)),
    ("BYTES = 5 - 9", slice(5, 10)),
    ("bytes=0-9,", slice(0, 10)),  # an empty list element is no second range
]
BAD_RANGES = [
    "bytes={size}-",  # starts past the last byte
    "bytes={size}-{size}",
    "bytes=99999999999999999999999999-",
    "bytes=-0",  # an empty suffix
    "bytes=5-2",  # last before first
    "bytes=abc",
    "bytes=1-x",
    "bytes=-",
    "bytes=",
    "bytes=--5",
    "bytes=0x10-",
    "bytes=\u0663-\u0664",  # digits of another script
]
IGNORED_RANGES = ["items=0-10", "bytes=0-1,5-6", "bytes=0-1, -5", "bytes 0-10", "nonsense"]


def test_range_requests(portal: Portal, store: VoicemailStore) -> None:
    message_id = leave(store, "alice")
    data = store.audio_path("alice", message_id).read_bytes()
    size = len(data)
    for header, expected in GOOD_RANGES:
        response = portal.client.get(
            audio_url(message_id), headers={**portal.as_user("alice"), "Range": header}
        )
        assert response.status_code == 206, header
        part = data[expected]
        start = expected.indices(size)[0]
        assert response.content == part, header
        assert response.headers["content-range"] == f"bytes {start}-{start + len(part) - 1}/{size}"
        assert response.headers["content-length"] == str(len(part))
        assert response.headers["content-type"] == "audio/wav"


def test_bad_ranges_are_416(portal: Portal, store: VoicemailStore) -> None:
    message_id = leave(store, "alice")
    size = store.audio_path("alice", message_id).stat().st_size
    for header in BAD_RANGES:
        response = portal.client.get(
            audio_url(message_id),
            # Bytes, so that the non-ASCII case reaches the server as UTF-8.
            headers={**portal.as_user("alice"), "Range": header.format(size=size).encode()},
        )
        assert response.status_code == 416, header
        assert error_of(response)["code"] == "range_not_satisfiable"
        assert response.headers["content-range"] == f"bytes */{size}"


def test_ranges_to_ignore_get_the_whole_file(portal: Portal, store: VoicemailStore) -> None:
    message_id = leave(store, "alice")
    data = store.audio_path("alice", message_id).read_bytes()
    for header in IGNORED_RANGES:
        response = portal.client.get(
            audio_url(message_id), headers={**portal.as_user("alice"), "Range": header}
        )
        assert response.status_code == 200, header
        assert response.content == data
        assert "content-range" not in response.headers


def test_if_range(portal: Portal, store: VoicemailStore) -> None:
    message_id = leave(store, "alice")
    headers = portal.as_user("alice")
    etag = portal.client.get(audio_url(message_id), headers=headers).headers["etag"]
    matching = portal.client.get(
        audio_url(message_id), headers={**headers, "Range": "bytes=0-9", "If-Range": etag}
    )
    assert matching.status_code == 206
    assert len(matching.content) == 10
    for stale in ('"something-else"', f"W/{etag}", "Wed, 21 Oct 2015 07:28:00 GMT"):
        whole = portal.client.get(
            audio_url(message_id), headers={**headers, "Range": "bytes=0-9", "If-Range": stale}
        )
        assert whole.status_code == 200
        assert len(whole.content) > 10


def test_audio_whose_file_is_gone_is_404(portal: Portal, store: VoicemailStore) -> None:
    message_id = leave(store, "alice")
    store.audio_path("alice", message_id).unlink()
    response = portal.client.get(audio_url(message_id), headers=portal.as_user("alice"))
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_parse_range_directly() -> None:
    assert parse_range("bytes=0-499") == ByteRange(0, 499)
    assert parse_range("bytes=500-") == ByteRange(500, None)
    assert parse_range("bytes=-500") == ByteRange(None, 500)
    assert parse_range("pages=1-2") is None
    assert ByteRange(0, 499).resolve(100) == (0, 100)
    assert ByteRange(None, 500).resolve(100) == (0, 100)
    assert ByteRange(100, None).resolve(100) is None
    assert ByteRange(None, 1).resolve(0) is None


# --- authorization and hostile input --------------------------------------------------


def test_everything_needs_a_login(portal: Portal, store: VoicemailStore) -> None:
    message_id = leave(store, "alice")
    client = portal.client
    for response in (
        client.get("/api/me/voicemail"),
        client.get(audio_url(message_id)),
        client.patch(f"/api/me/voicemail/{message_id}", json={"heard": True}),
        client.delete(f"/api/me/voicemail/{message_id}"),
        client.put("/api/me/voicemail/pin", json={"pin": "1234"}),
        client.delete("/api/me/voicemail/greeting"),
        client.get(audio_url(message_id), headers={"Authorization": "Bearer not-a-token-at-all"}),
    ):
        assert response.status_code == 401
        assert error_of(response)["code"] == "unauthenticated"
    assert store.message("alice", message_id).heard is False
    assert store.box("alice").has_pin is False


def test_another_users_message_is_404_like_no_message(
    portal: Portal, store: VoicemailStore, hook: Hook
) -> None:
    alices = leave(store, "alice")
    nobodys = alices + 1000
    bob = portal.as_user("bob")
    for message_id in (alices, nobodys):
        answers = [
            portal.client.get(audio_url(message_id), headers=bob),
            portal.client.patch(
                f"/api/me/voicemail/{message_id}", json={"heard": True}, headers=bob
            ),
            portal.client.delete(f"/api/me/voicemail/{message_id}", headers=bob),
        ]
        for response in answers:
            assert response.status_code == 404
            assert error_of(response) == {
                "code": "not_found",
                "message": f"no voicemail message {message_id}",
            }
    assert store.message("alice", alices).heard is False
    assert store.audio_path("alice", alices).is_file()
    assert hook.calls == []
    assert hub_of(portal).published == []


def attempts(portal: Portal, message_id: str) -> list[Any]:
    """Every route that takes a message id, called by alice with `message_id`."""
    headers = portal.as_user("alice")
    url = f"/api/me/voicemail/{message_id}"
    return [
        portal.client.get(f"{url}/audio", headers=headers),
        portal.client.patch(url, json={"heard": True}, headers=headers),
        portal.client.delete(url, headers=headers),
    ]


def test_ids_that_cannot_exist_are_404(portal: Portal, store: VoicemailStore) -> None:
    leave(store, "alice")
    for message_id in ("0", "-1", str(2**63), str(2**64), "9" * 40):
        for response in attempts(portal, message_id):
            assert response.status_code == 404, message_id
            assert error_of(response)["code"] == "not_found"
    assert len(store.messages("alice")) == 1


PATH_LIKE_IDS = ["abc", "1.5", "1e3", "..", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "..%2F..%2Fsecret"]


def test_path_looking_ids_reach_no_file(
    portal: Portal, store: VoicemailStore, tmp_path: Path
) -> None:
    (tmp_path / "secret").write_bytes(b"top secret")
    leave(store, "alice")
    for message_id in [*PATH_LIKE_IDS, "1%00"]:
        for response in attempts(portal, message_id):
            assert response.status_code in (404, 405, 422), (message_id, response.text)
            assert b"top secret" not in response.content
            assert b"RIFF" not in response.content
    assert len(store.messages("alice")) == 1


# --- changes and their announcements ----------------------------------------------------


def test_mark_heard_and_back(portal: Portal, store: VoicemailStore, hook: Hook) -> None:
    message_id = leave(store, "alice")
    leave(store, "alice")
    headers = portal.as_user("alice")
    response = portal.client.patch(
        f"/api/me/voicemail/{message_id}", json={"heard": True}, headers=headers
    )
    assert response.status_code == 200
    assert response.json()["id"] == message_id
    assert response.json()["heard"] is True
    assert store.counts("alice") == (1, 1)
    portal.client.patch(f"/api/me/voicemail/{message_id}", json={"heard": False}, headers=headers)
    assert store.counts("alice") == (2, 0)
    assert hub_of(portal).published == [
        ({"type": "voicemail.changed", "new": 1, "old": 1}, ["alice"]),
        ({"type": "voicemail.changed", "new": 2, "old": 0}, ["alice"]),
    ]
    assert hook.calls == ["alice", "alice"]


@pytest.mark.parametrize(
    "body", [{}, {"heard": "yes"}, {"heard": 1}, {"heard": None}, {"heard": True, "extra": 1}]
)
def test_bad_patches_change_nothing(
    portal: Portal, store: VoicemailStore, hook: Hook, body: dict[str, Any]
) -> None:
    message_id = leave(store, "alice")
    response = portal.client.patch(
        f"/api/me/voicemail/{message_id}", json=body, headers=portal.as_user("alice")
    )
    assert response.status_code == 422
    assert store.message("alice", message_id).heard is False
    assert hook.calls == []


def test_delete_a_message(portal: Portal, store: VoicemailStore, hook: Hook) -> None:
    gone, kept = leave(store, "alice"), leave(store, "alice")
    path = store.audio_path("alice", gone)
    headers = portal.as_user("alice")
    response = portal.client.delete(f"/api/me/voicemail/{gone}", headers=headers)
    assert response.status_code == 204
    assert response.content == b""
    assert not path.exists()
    assert [m.id for m in store.messages("alice")] == [kept]
    assert portal.client.get(audio_url(gone), headers=headers).status_code == 404
    assert portal.client.delete(f"/api/me/voicemail/{gone}", headers=headers).status_code == 404
    assert hub_of(portal).published == [
        ({"type": "voicemail.changed", "new": 1, "old": 0}, ["alice"])
    ]
    assert hook.calls == ["alice"]


def test_set_the_pin(portal: Portal, store: VoicemailStore, hook: Hook) -> None:
    headers = portal.as_user("alice")
    response = portal.client.put("/api/me/voicemail/pin", json={"pin": "4711"}, headers=headers)
    assert response.status_code == 204
    assert store.verify_pin("alice", "4711")
    assert hook.calls == ["alice"]
    for bad in ("123", "1234567890123", "12a4", 1234, "", None):
        response = portal.client.put("/api/me/voicemail/pin", json={"pin": bad}, headers=headers)
        assert response.status_code == 422
        assert "4711" not in response.text
    assert store.verify_pin("alice", "4711")
    assert hook.calls == ["alice"]
    body = portal.client.get("/api/me/voicemail", headers=headers).json()
    assert body["has_pin"] is True


def test_delete_the_greeting(portal: Portal, store: VoicemailStore, hook: Hook) -> None:
    headers = portal.as_user("alice")
    response = portal.client.delete("/api/me/voicemail/greeting", headers=headers)
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    pending = store.new_greeting_writer("alice")
    pending.write(tone(2))
    assert store.commit_greeting(pending)
    path = store.greeting_path("alice")
    assert path is not None
    assert portal.client.get("/api/me/voicemail", headers=headers).json()["has_greeting"]
    assert portal.client.delete("/api/me/voicemail/greeting", headers=headers).status_code == 204
    assert not path.exists()
    assert store.greeting_path("alice") is None
    assert hook.calls == ["alice"]


def test_listen_to_the_greeting_whole_or_in_ranges(portal: Portal, store: VoicemailStore) -> None:
    headers = portal.as_user("alice")
    response = portal.client.get("/api/me/voicemail/greeting", headers=headers)
    assert response.status_code == 404
    assert "system greeting" in error_of(response)["message"]
    pending = store.new_greeting_writer("alice")
    pending.write(tone(2))
    assert store.commit_greeting(pending)
    path = store.greeting_path("alice")
    assert path is not None
    whole = portal.client.get("/api/me/voicemail/greeting", headers=headers)
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "audio/wav"
    assert whole.headers["cache-control"] == "private, no-store"
    assert whole.content == path.read_bytes()
    part = portal.client.get(
        "/api/me/voicemail/greeting", headers={**headers, "Range": "bytes=0-43"}
    )
    assert part.status_code == 206
    assert part.content == path.read_bytes()[:44]
    # Bob has none of his own, and never hears alice's.
    bob = portal.client.get("/api/me/voicemail/greeting", headers=portal.as_user("bob"))
    assert bob.status_code == 404
    assert portal.client.get("/api/me/voicemail/greeting").status_code == 401


def test_a_failing_hook_does_not_fail_the_change(
    sessions: Sessions, store: VoicemailStore, caplog: pytest.LogCaptureFixture
) -> None:
    failing = Hook(fail=True)
    for portal in open_portal(sessions, voicemail=store, voicemail_changed=failing):
        message_id = leave(store, "alice")
        response = portal.client.delete(
            f"/api/me/voicemail/{message_id}", headers=portal.as_user("alice")
        )
        assert response.status_code == 204
        assert store.messages("alice") == []
        assert failing.calls == ["alice"]
        assert "could not announce the voicemail change of alice" in caplog.text


def test_without_a_store_the_routes_say_so(sessions: Sessions) -> None:
    for portal in open_portal(sessions):
        headers = portal.as_user("alice")
        for response in (
            portal.client.get("/api/me/voicemail", headers=headers),
            portal.client.get(audio_url(1), headers=headers),
            portal.client.put("/api/me/voicemail/pin", json={"pin": "1234"}, headers=headers),
        ):
            assert response.status_code == 503
            assert error_of(response)["code"] == "unavailable"


def test_the_routes_are_documented(portal: Portal) -> None:
    schema = portal.client.get("/openapi.json").json()
    paths = schema["paths"]
    assert set(paths["/api/me/voicemail/{message_id}"]) == {"patch", "delete"}
    audio = paths["/api/me/voicemail/{message_id}/audio"]["get"]
    assert "audio/wav" in audio["responses"]["206"]["content"]
    assert "416" in audio["responses"]
    assert "voicemail" in {tag["name"] for tag in schema["tags"]}


def test_an_administrator_sets_and_clears_a_users_voicemail_pin(
    portal: Portal, store: VoicemailStore, hook: Hook
) -> None:
    admin = portal.as_user("admin")
    response = portal.client.patch(
        "/api/admin/users/alice", json={"voicemail_pin": "4321"}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert "4321" not in response.text  # write only
    assert store.verify_pin("alice", "4321")
    assert "alice" in hook.calls
    assert any(e["type"] == "voicemail.changed" for e, _ in hub_of(portal).published)
    cleared = portal.client.patch(
        "/api/admin/users/alice", json={"voicemail_pin": None}, headers=admin
    )
    assert cleared.status_code == 200, cleared.text
    assert not store.box("alice").has_pin


def test_a_bad_voicemail_pin_from_an_administrator_changes_nothing(
    portal: Portal, store: VoicemailStore
) -> None:
    admin = portal.as_user("admin")
    store.set_pin("alice", "1111")
    response = portal.client.patch(
        "/api/admin/users/alice",
        json={"voicemail_pin": "12", "display_name": "Changed"},
        headers=admin,
    )
    assert response.status_code == 422, response.text
    assert store.verify_pin("alice", "1111")
    assert portal.context.users.get("alice").display_name != "Changed"


def test_only_administrators_set_pins_of_others(portal: Portal, store: VoicemailStore) -> None:
    response = portal.client.patch(
        "/api/admin/users/alice", json={"voicemail_pin": "4321"}, headers=portal.as_user("bob")
    )
    assert response.status_code == 403, response.text
    assert not store.box("alice").has_pin
