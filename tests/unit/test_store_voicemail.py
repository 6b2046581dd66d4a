"""The voicemail store on a real migrated SQLite database and real files: messages
written atomically, crash recovery, PINs, greetings, and hostile input."""

from __future__ import annotations

import logging
import math
import struct
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
from alembic import command
from argon2 import PasswordHasher
from sqlalchemy import Engine, inspect, text

from teleoffice.store import (
    BoxRecord,
    InvalidInput,
    NotFound,
    Sessions,
    UserRepo,
    VoicemailStore,
    head_revision,
    upgrade,
)
from teleoffice.store.db import alembic_config
from teleoffice.store.voicemail import PendingMessage, validate_pin

START = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)


def cheap_hasher(time_cost: int = 1) -> PasswordHasher:
    # argon2id all the same, with parameters that keep the suite fast.
    return PasswordHasher(time_cost=time_cost, memory_cost=8, parallelism=1)


class CountingHasher(PasswordHasher):
    """Counts argon2 verifications, to show that every path does the same work."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verified = 0

    def verify(self, hash: str | bytes, password: str | bytes) -> Literal[True]:
        self.verified += 1
        return super().verify(hash, password)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


def tone(seconds: float, frequency: float = 440.0) -> bytes:
    """16-bit 8 kHz mono PCM of a sine tone."""
    count = round(seconds * 8000)
    samples = (round(8000 * math.sin(2 * math.pi * frequency * n / 8000)) for n in range(count))
    return struct.pack(f"<{count}h", *samples)


def read_wav(path: Path) -> tuple[tuple[int, int, int], bytes]:
    with wave.open(str(path), "rb") as wav:
        return (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()), wav.readframes(
            wav.getnframes()
        )


def files(folder: Path) -> list[str]:
    """Every file under `folder`, relative, hidden ones included."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def users(sessions: Sessions) -> UserRepo:
    repo = UserRepo(sessions, realm="teleoffice", hasher=cheap_hasher())
    repo.add_user("alice", extension="201", sip_password="s", voicemail_enabled=True)
    repo.add_user("bob", extension="202", sip_password="s")
    return repo


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "voicemail"


@pytest.fixture
def store(sessions: Sessions, users: UserRepo, root: Path) -> VoicemailStore:
    return VoicemailStore(sessions, root, cheap_hasher(), clock=Clock())


def leave(
    store: VoicemailStore, username: str = "alice", seconds: float = 1.5, **caller: Any
) -> int:
    pending = store.new_message_writer(username)
    pending.write(tone(seconds))
    record = store.commit_message(
        pending,
        caller_number=caller.get("number", "202"),
        caller_name=caller.get("name", "Bob"),
    )
    assert record is not None
    return record.id


# --- messages -----------------------------------------------------------------------


def test_a_message_is_a_wav_file_and_a_row(store: VoicemailStore, root: Path) -> None:
    pending = store.new_message_writer("alice")
    audio = tone(1.5)
    pending.write(audio[:4000])
    pending.write(audio[4000:])
    assert pending.duration == pytest.approx(1.5)
    assert store.messages("alice") == []  # nothing visible before the commit
    record = store.commit_message(pending, caller_number="202", caller_name="Bob")
    assert record is not None
    assert (record.username, record.caller_number, record.caller_name) == ("alice", "202", "Bob")
    assert record.duration == pytest.approx(1.5)
    assert record.heard is False
    assert record.created_at == START + timedelta(minutes=1)  # when recording started
    assert store.messages("alice") == [record]
    assert store.message("alice", record.id) == record
    path = store.audio_path("alice", record.id)
    assert path.parent == root.resolve() / "alice"
    assert read_wav(path) == ((1, 2, 8000), audio)
    assert files(root) == [f"alice/{path.name}"]  # no partial file left behind
    assert store.counts("alice") == (1, 0)
    assert store.counts("bob") == (0, 0)


def test_file_names_are_the_stores_own(store: VoicemailStore) -> None:
    first = store.audio_path("alice", leave(store, number="../../etc/passwd", name="/tmp/x"))
    second = store.audio_path("alice", leave(store))
    assert first.name != second.name
    for path in (first, second):
        assert path.name.startswith("msg-")
        assert path.suffix == ".wav"
        assert "passwd" not in path.name


def test_a_message_shorter_than_the_minimum_is_discarded(store: VoicemailStore, root: Path) -> None:
    pending = store.new_message_writer("alice")
    pending.write(tone(0.9))
    assert store.commit_message(pending, caller_number="202", caller_name=None) is None
    assert store.messages("alice") == []
    assert files(root) == []
    assert pending.finished
    # The threshold is the caller's to choose.
    pending = store.new_message_writer("alice")
    pending.write(tone(0.9))
    record = store.commit_message(pending, caller_number="202", min_duration=0.5)
    assert record is not None
    assert record.caller_name is None


def test_a_recording_is_committed_once(store: VoicemailStore, sessions: Sessions) -> None:
    pending = store.new_message_writer("alice")
    pending.write(tone(1.2))
    assert store.commit_message(pending, caller_number="202") is not None
    with pytest.raises(InvalidInput, match="already committed"):
        store.commit_message(pending, caller_number="202")
    store.discard(pending)  # harmless after a commit
    assert len(store.messages("alice")) == 1

    greeting = store.new_greeting_writer("alice")
    greeting.write(tone(1.2))
    with pytest.raises(InvalidInput, match="PendingMessage"):
        store.commit_message(greeting, caller_number="202")  # type: ignore[arg-type]
    store.discard(greeting)

    other = VoicemailStore(sessions, store.root.parent / "elsewhere", cheap_hasher())
    foreign = other.new_message_writer("alice")
    foreign.write(tone(1.2))
    with pytest.raises(InvalidInput, match="does not belong"):
        store.commit_message(foreign, caller_number="202")
    other.discard(foreign)
    assert len(store.messages("alice")) == 1


def test_caller_details_are_cleaned_not_refused(store: VoicemailStore) -> None:
    message_id = leave(store, number="2\r\n02" + "9" * 100, name="Evil\x00\x1b[31m Caller")
    record = store.message("alice", message_id)
    assert record.caller_number == "202" + "9" * 61  # 64 characters
    assert record.caller_name == "Evil[31m Caller"
    anonymous = store.message("alice", leave(store, number="", name=""))
    assert (anonymous.caller_number, anonymous.caller_name) == ("", None)


def test_messages_newest_first_heard_and_counts(store: VoicemailStore) -> None:
    first, second, third = leave(store), leave(store), leave(store)
    assert [m.id for m in store.messages("alice")] == [third, second, first]
    assert store.counts("alice") == (3, 0)
    assert store.mark_heard("alice", second).heard is True
    assert store.counts("alice") == (2, 1)
    store.mark_heard("alice", second)  # idempotent
    assert store.counts("alice") == (2, 1)
    assert store.mark_heard("alice", second, heard=False).heard is False
    assert store.counts("alice") == (3, 0)
    store.mark_heard("alice", first)
    leave(store, "bob")
    assert store.all_counts() == {"alice": (2, 1), "bob": (1, 0)}


def test_delete_removes_the_row_and_the_file(store: VoicemailStore, root: Path) -> None:
    keep, gone = leave(store), leave(store)
    path = store.audio_path("alice", gone)
    store.delete_message("alice", gone)
    assert not path.exists()
    assert [m.id for m in store.messages("alice")] == [keep]
    assert files(root) == [f"alice/{store.audio_path('alice', keep).name}"]
    with pytest.raises(NotFound):
        store.delete_message("alice", gone)
    with pytest.raises(NotFound):
        store.audio_path("alice", gone)


def test_nobody_reaches_another_users_messages(store: VoicemailStore) -> None:
    alices = leave(store)
    before = store.message("alice", alices)
    for attempt in (
        lambda: store.message("bob", alices),
        lambda: store.audio_path("bob", alices),
        lambda: store.mark_heard("bob", alices),
        lambda: store.delete_message("bob", alices),
    ):
        with pytest.raises(NotFound) as caught:
            attempt()
        # The same words as for an id nobody has: nothing tells bob it exists.
        assert str(caught.value) == f"no voicemail message {alices}"
    assert store.message("alice", alices) == before
    assert store.audio_path("alice", alices).is_file()


@pytest.mark.parametrize("bad_id", [0, -1, 2**63, 2**200, True, "1", "../1", 1.0, None])
def test_ids_that_cannot_be_messages(store: VoicemailStore, bad_id: Any) -> None:
    leave(store)
    for method in (store.message, store.audio_path, store.mark_heard, store.delete_message):
        with pytest.raises(NotFound):
            method("alice", bad_id)
    assert len(store.messages("alice")) == 1


@pytest.mark.parametrize("name", ["", "..", "../bob", "alice/../bob", ".hidden", "a b", "nobody"])
def test_hostile_or_unknown_usernames_touch_no_file(
    store: VoicemailStore, root: Path, tmp_path: Path, name: str
) -> None:
    with pytest.raises(NotFound):
        store.new_message_writer(name)
    with pytest.raises(NotFound):
        store.new_greeting_writer(name)
    with pytest.raises(NotFound):
        store.messages(name)
    with pytest.raises(NotFound):
        store.counts(name)
    assert not root.exists()
    # The SQLite database's folder (none on PostgreSQL), nothing else.
    assert {p.name for p in tmp_path.iterdir()} <= {"data"}


def test_a_row_naming_a_foreign_path_is_never_followed(
    store: VoicemailStore, engine: Engine, tmp_path: Path
) -> None:
    message_id = leave(store)
    secret = tmp_path / "secret.wav"
    secret.write_bytes(b"not yours")
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE voicemail_messages SET file = :f WHERE id = :id"),
            {"f": "../../secret.wav", "id": message_id},
        )
    with pytest.raises(NotFound):
        store.audio_path("alice", message_id)
    store.delete_message("alice", message_id)
    assert secret.read_bytes() == b"not yours"


# --- crashes and recovery -------------------------------------------------------------


def test_a_recording_never_committed_leaves_only_a_partial_file(
    store: VoicemailStore, sessions: Sessions, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pending = store.new_message_writer("alice")
    pending.write(tone(5))
    # The process dies here. After the restart:
    restarted = VoicemailStore(sessions, root, cheap_hasher())
    assert restarted.messages("alice") == []
    leftovers = files(root)
    assert len(leftovers) == 1
    assert leftovers[0].endswith(".part")
    with caplog.at_level(logging.INFO, logger="teleoffice.store.voicemail"):
        assert restarted.recover() == 1
    assert "partial" in caplog.text
    assert files(root) == []
    assert restarted.recover() == 0  # nothing left to do
    pending.writer.abort()  # the dead process's handle; nothing left to remove


def test_a_file_without_a_row_is_removed(
    store: VoicemailStore, sessions: Sessions, root: Path
) -> None:
    kept = leave(store)
    pending = store.new_message_writer("alice")
    pending.write(tone(2))
    orphan = pending.writer.commit()  # published, then the process died before the insert
    assert orphan.exists()
    restarted = VoicemailStore(sessions, root, cheap_hasher())
    assert restarted.recover() == 1
    assert not orphan.exists()
    assert [m.id for m in restarted.messages("alice")] == [kept]
    assert restarted.audio_path("alice", kept).is_file()


def test_a_row_without_a_file_is_removed(store: VoicemailStore, root: Path) -> None:
    lost, kept = leave(store), leave(store)
    store.audio_path("alice", lost).unlink()
    with pytest.raises(NotFound, match="missing"):
        store.audio_path("alice", lost)
    assert store.recover() == 1
    assert [m.id for m in store.messages("alice")] == [kept]
    assert store.counts("alice") == (1, 0)


def test_a_failed_insert_removes_the_published_file(
    store: VoicemailStore, users: UserRepo, root: Path
) -> None:
    pending = store.new_message_writer("bob")
    pending.write(tone(2))
    users.delete("bob")  # meanwhile
    with pytest.raises(NotFound):
        store.commit_message(pending, caller_number="201")
    assert files(root) == []


def test_recovery_clears_deleted_users_and_leaves_foreign_files(
    store: VoicemailStore, users: UserRepo, root: Path
) -> None:
    leave(store, "bob")
    users.delete("bob")  # CASCADE takes the rows; the files wait for recovery
    kept = leave(store)
    foreign = root / "alice" / "notes.txt"
    foreign.write_text("an administrator's file")
    (root / "stray.txt").write_text("not a mailbox")
    assert store.recover() == 1
    assert not (root / "bob").exists()
    assert foreign.exists()
    assert (root / "stray.txt").exists()
    assert store.audio_path("alice", kept).is_file()


def test_recovery_of_a_lost_greeting(store: VoicemailStore) -> None:
    greeting = store.new_greeting_writer("alice")
    greeting.write(tone(2))
    assert store.commit_greeting(greeting)
    path = store.greeting_path("alice")
    assert path is not None
    path.unlink()
    assert store.greeting_path("alice") is None
    assert store.recover() == 1
    assert store.box("alice").has_greeting is False


def test_recovery_without_a_root_does_nothing(
    store: VoicemailStore, root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert store.recover() == 0
    assert not root.exists()
    leave(store)
    # The folder moved away (or is not mounted): that is no reason to forget messages.
    root.rename(tmp_path / "moved")
    assert store.recover() == 0
    assert "missing but 1 messages are indexed" in caplog.text
    assert len(store.messages("alice")) == 1


def test_folders_and_files_are_private(store: VoicemailStore, root: Path) -> None:
    path = store.audio_path("alice", leave(store))
    assert root.stat().st_mode & 0o077 == 0
    assert path.parent.stat().st_mode & 0o077 == 0
    assert path.stat().st_mode & 0o077 == 0


# --- mailbox settings and PINs ----------------------------------------------------------


def test_box_defaults_and_settings(store: VoicemailStore, users: UserRepo) -> None:
    assert store.box("alice") == BoxRecord("alice", True, False, False, False)
    assert store.box("bob") == BoxRecord("bob", False, False, False, False)
    assert store.set_unsolicited_mwi("bob", True).unsolicited_mwi is True
    users.update("bob", voicemail_enabled=True)
    assert store.box("bob") == BoxRecord("bob", True, False, False, True)
    store.set_unsolicited_mwi("bob", False)
    assert store.box("bob").unsolicited_mwi is False
    with pytest.raises(NotFound):
        store.box("nobody")
    with pytest.raises(NotFound):
        store.set_unsolicited_mwi("nobody", True)


@pytest.mark.parametrize("pin", ["123", "1234567890123", "12a4", "12 34", "", "١٢٣٤", "1234\n"])
def test_bad_pins_are_refused_and_change_nothing(store: VoicemailStore, pin: str) -> None:
    store.set_pin("alice", "2468")
    with pytest.raises(InvalidInput, match="4 to 12 digits"):
        store.set_pin("alice", pin)
    assert store.verify_pin("alice", "2468")
    with pytest.raises(InvalidInput):
        validate_pin(pin)


def test_pin_set_verify_and_clear(store: VoicemailStore, engine: Engine) -> None:
    assert store.verify_pin("alice", "1234") is False  # no PIN yet
    store.set_pin("alice", "1234")
    assert store.box("alice").has_pin
    assert store.verify_pin("alice", "1234")
    assert not store.verify_pin("alice", "4321")
    assert not store.verify_pin("bob", "1234")
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT pin_hash FROM voicemail_boxes")).scalar()
    assert isinstance(stored, str)
    assert stored.startswith("$argon2id$")
    assert "1234" not in stored
    store.set_pin("alice", "000000000000")
    assert not store.verify_pin("alice", "1234")
    assert store.verify_pin("alice", "000000000000")
    store.clear_pin("alice")
    assert store.box("alice").has_pin is False
    assert not store.verify_pin("alice", "000000000000")
    store.clear_pin("bob")  # no box row: nothing to clear, no error
    with pytest.raises(NotFound):
        store.set_pin("nobody", "1234")
    with pytest.raises(NotFound):
        store.clear_pin("nobody")


def test_pin_checks_cost_the_same_whoever_asks(
    sessions: Sessions, users: UserRepo, root: Path
) -> None:
    hasher = CountingHasher()
    store = VoicemailStore(sessions, root, hasher)
    store.set_pin("alice", "1234")
    for username, pin in (("alice", "1234"), ("alice", "9999"), ("bob", "1234"), ("x", "1234")):
        hasher.verified = 0
        store.verify_pin(username, pin)
        assert hasher.verified == 1, username
    hasher.verified = 0
    assert store.verify_pin("alice", "12") is False  # not a PIN's shape: refused at once
    assert hasher.verified == 0


def test_a_weak_pin_hash_is_upgraded_on_use(
    sessions: Sessions, users: UserRepo, root: Path, engine: Engine
) -> None:
    VoicemailStore(sessions, root, cheap_hasher(time_cost=1)).set_pin("alice", "1234")
    stronger = VoicemailStore(sessions, root, cheap_hasher(time_cost=2))
    assert stronger.verify_pin("alice", "1234")
    with engine.connect() as connection:
        stored = connection.execute(text("SELECT pin_hash FROM voicemail_boxes")).scalar()
    assert isinstance(stored, str)
    assert ",t=2," in stored
    assert stronger.verify_pin("alice", "1234")


# --- greetings --------------------------------------------------------------------------


def test_greeting_record_replace_and_delete(store: VoicemailStore, root: Path) -> None:
    assert store.greeting_path("alice") is None
    first = store.new_greeting_writer("alice")
    first.write(tone(2, 440))
    assert store.commit_greeting(first)
    first_path = store.greeting_path("alice")
    assert first_path is not None
    assert first_path.name.startswith("greeting-")
    assert store.box("alice").has_greeting

    second = store.new_greeting_writer("alice")
    second.write(tone(3, 880))
    assert store.commit_greeting(second)
    second_path = store.greeting_path("alice")
    assert second_path is not None
    assert second_path != first_path
    assert not first_path.exists()  # the old one is gone
    assert read_wav(second_path)[1] == tone(3, 880)

    short = store.new_greeting_writer("alice")
    short.write(tone(0.3))
    assert store.commit_greeting(short) is False
    assert store.greeting_path("alice") == second_path  # unchanged

    store.delete_greeting("alice")
    assert store.greeting_path("alice") is None
    assert files(root) == []
    with pytest.raises(NotFound, match="no recorded greeting"):
        store.delete_greeting("alice")
    with pytest.raises(NotFound):
        store.delete_greeting("bob")  # never had a box


def test_a_pending_message_is_not_a_greeting(store: VoicemailStore) -> None:
    pending = store.new_message_writer("alice")
    pending.write(tone(2))
    assert isinstance(pending, PendingMessage)
    with pytest.raises(InvalidInput, match="PendingGreeting"):
        store.commit_greeting(pending)  # type: ignore[arg-type]
    store.discard(pending)
    assert store.box("alice").has_greeting is False


# --- the schema -----------------------------------------------------------------------


def test_deleting_a_user_takes_their_mailbox_rows(
    store: VoicemailStore, users: UserRepo, engine: Engine
) -> None:
    leave(store, "bob")
    store.set_pin("bob", "1234")
    leave(store, "alice")
    users.delete("bob")
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM voicemail_boxes")).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM voicemail_messages")).scalar() == 1


def test_migration_0006_goes_down_and_up_keeping_users(
    store: VoicemailStore, users: UserRepo, engine: Engine, url: str
) -> None:
    leave(store)
    command.downgrade(alembic_config(engine), "0005")
    with engine.connect() as connection:
        names = set(inspect(connection).get_table_names())
        assert not names & {"voicemail_boxes", "voicemail_messages"}
        assert connection.execute(text("SELECT count(*) FROM users")).scalar() == 2
        assert connection.execute(text("SELECT count(*) FROM dids")).scalar() == 0
    assert upgrade(url) == head_revision()
    assert store.messages("alice") == []
    assert store.recover() == 1  # the file of the dropped index
    assert [u.username for u in users.list_users()] == ["alice", "bob"]
