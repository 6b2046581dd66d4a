"""`teleoffice user set/show` for voicemail: the PIN, unsolicited message waiting,
and the mailbox lines of `user show`, run in-process."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from teleoffice.store import Sessions, UserRepo, VoicemailStore, make_engine, session_factory
from tests.unit.cli_kit import Run, isolate

PIN = "80417"


def cheap_hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)
    # PINs are hashed by the voicemail store with its own default.
    monkeypatch.setattr("teleoffice.store.voicemail.PasswordHasher", cheap_hasher)


def shown(out: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines())}


@pytest.fixture
def site(run: Run, data: Path) -> Iterator[Sessions]:
    """An initialised site with alice (201) and bob (202), and sessions on its
    database for looking behind the command line."""
    assert run("init").code == 0
    for name, extension in (("alice", "201"), ("bob", "202")):
        assert run("user", "add", name, "--extension", extension, "--sip-password", "s").code == 0
    engine = make_engine(f"sqlite:///{(data / 'teleoffice.db').as_posix()}")
    yield session_factory(engine)
    engine.dispose()


def mailboxes(site: Sessions, data: Path) -> VoicemailStore:
    return VoicemailStore(site, data / "voicemail", cheap_hasher())


def one_second() -> bytes:
    return struct.pack(
        "<8000h", *(round(4000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(8000))
    )


def test_show_a_mailbox_with_defaults(run: Run, site: Sessions) -> None:
    result = run("user", "show", "alice")
    assert result.code == 0
    settings = shown(result.out)
    assert settings["voicemail"] == "no"
    assert settings["voicemail PIN"] == "not set"
    assert settings["voicemail greeting"] == "system"
    assert settings["voicemail messages"] == "0 new, 0 old"
    assert settings["unsolicited message waiting"] == "no"


def test_set_and_remove_the_pin(run: Run, site: Sessions, data: Path) -> None:
    result = run("user", "set", "alice", "--voicemail", "--voicemail-pin", PIN)
    assert result.code == 0, result.err
    assert "voicemail PIN: set" in result.out
    assert "voicemail: yes" in result.out
    assert PIN not in result.out
    store = mailboxes(site, data)
    assert store.verify_pin("alice", PIN)
    assert not store.verify_pin("bob", PIN)
    settings = shown(run("user", "show", "alice").out)
    assert (settings["voicemail"], settings["voicemail PIN"]) == ("yes", "set")
    assert PIN not in run("user", "show", "alice").out

    result = run("user", "set", "alice", "--no-voicemail-pin")
    assert result.code == 0
    assert "voicemail PIN: removed" in result.out
    assert not store.verify_pin("alice", PIN)
    assert shown(run("user", "show", "alice").out)["voicemail PIN"] == "not set"


def test_the_pin_from_standard_input(run: Run, site: Sessions, data: Path) -> None:
    result = run("user", "set", "bob", "--voicemail-pin", "-", stdin=f"{PIN}\n")
    assert result.code == 0, result.err
    assert mailboxes(site, data).verify_pin("bob", PIN)
    result = run("user", "set", "bob", "--voicemail-pin", "-", stdin="")
    assert result.code == 2
    assert "voicemail PIN on standard input" in result.err


@pytest.mark.parametrize("pin", ["123", "1234567890123", "12a45", "", "12 34"])
def test_a_bad_pin_changes_nothing(run: Run, site: Sessions, data: Path, pin: str) -> None:
    result = run("user", "set", "alice", "--dnd", "--voicemail-pin", pin)
    assert result.code == 2
    assert "4 to 12 digits" in result.err
    settings = shown(run("user", "show", "alice").out)
    assert settings["do not disturb"] == "no"  # checked before anything was written
    assert settings["voicemail PIN"] == "not set"


def test_pin_and_no_pin_exclude_each_other(run: Run, site: Sessions) -> None:
    result = run("user", "set", "alice", "--voicemail-pin", PIN, "--no-voicemail-pin")
    assert result.code == 2
    assert "not allowed with argument" in result.err
    assert shown(run("user", "show", "alice").out)["voicemail PIN"] == "not set"


def test_unsolicited_message_waiting(run: Run, site: Sessions, data: Path) -> None:
    result = run("user", "set", "bob", "--unsolicited-mwi")
    assert result.code == 0, result.err
    assert "unsolicited message waiting: yes" in result.out
    assert mailboxes(site, data).box("bob").unsolicited_mwi is True
    assert shown(run("user", "show", "bob").out)["unsolicited message waiting"] == "yes"
    assert mailboxes(site, data).box("alice").unsolicited_mwi is False
    assert run("user", "set", "bob", "--no-unsolicited-mwi").code == 0
    assert mailboxes(site, data).box("bob").unsolicited_mwi is False


def test_show_counts_messages_and_the_greeting(run: Run, site: Sessions, data: Path) -> None:
    store = mailboxes(site, data)
    ids = []
    for _ in range(3):
        pending = store.new_message_writer("alice")
        pending.write(one_second() * 2)
        record = store.commit_message(pending, caller_number="202")
        assert record is not None
        ids.append(record.id)
    store.mark_heard("alice", ids[0])
    greeting = store.new_greeting_writer("alice")
    greeting.write(one_second() * 2)
    assert store.commit_greeting(greeting)
    settings = shown(run("user", "show", "alice").out)
    assert settings["voicemail messages"] == "2 new, 1 old"
    assert settings["voicemail greeting"] == "recorded"
    assert shown(run("user", "show", "bob").out)["voicemail messages"] == "0 new, 0 old"


def test_voicemail_options_for_an_unknown_user(run: Run, site: Sessions) -> None:
    for argv in (("--voicemail-pin", PIN), ("--no-voicemail-pin",), ("--unsolicited-mwi",)):
        result = run("user", "set", "nobody", *argv)
        assert result.code == 2
        assert "no user 'nobody'" in result.err


def test_nothing_to_change_is_still_an_error(run: Run, site: Sessions) -> None:
    result = run("user", "set", "alice")
    assert result.code == 2
    assert "nothing to change" in result.err


def test_the_pin_survives_other_changes(run: Run, site: Sessions, data: Path) -> None:
    assert run("user", "set", "alice", "--voicemail-pin", PIN).code == 0
    UserRepo(site, realm="teleoffice", hasher=cheap_hasher()).update("alice", dnd=True)
    assert run("user", "set", "alice", "--no-dnd", "--call-waiting").code == 0
    assert mailboxes(site, data).verify_pin("alice", PIN)
