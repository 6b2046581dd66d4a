"""Presence in the store: chosen states and notes, blocks, and migration 0007,
on a real migrated database."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic import command
from argon2 import PasswordHasher
from sqlalchemy import Engine, inspect, text

from teleoffice.calls.presence import PresenceState
from teleoffice.store import (
    InvalidInput,
    NotFound,
    PresenceRepo,
    Sessions,
    StoredPresence,
    UserRepo,
    head_revision,
    upgrade,
)
from teleoffice.store.db import alembic_config

T0 = datetime(2026, 12, 11, 9, 30, tzinfo=UTC)
AWAY = PresenceState.AWAY


@pytest.fixture
def users(sessions: Sessions) -> UserRepo:
    repo = UserRepo(
        sessions,
        realm="teleoffice",
        hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
    )
    for name, extension in (("alice", "201"), ("bob", "202"), ("carol", "203")):
        repo.add_user(name, extension=extension, sip_password="s")
    return repo


@pytest.fixture
def repo(sessions: Sessions, users: UserRepo) -> PresenceRepo:
    return PresenceRepo(sessions)


def count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        value = connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
    assert isinstance(value, int)
    return value


# --- chosen states --------------------------------------------------------------------------


def test_nobody_has_chosen_anything_at_first(repo: PresenceRepo) -> None:
    assert repo.load_all() == {}
    assert repo.get("alice") is None
    assert repo.clear("alice") is False


@pytest.mark.parametrize(
    "note",
    [
        "Ушёл на обед",
        "会議中です",
        "🌴 on vacation 👨‍👩‍👧",
        "في اجتماع",
        "🎉" * 200,  # 200 characters of 4-byte UTF-8: the column counts characters
        None,
    ],
)
def test_a_choice_round_trips_in_any_language(repo: PresenceRepo, note: str | None) -> None:
    saved = repo.save("alice", "away", note, T0)
    assert saved == StoredPresence(AWAY, note, T0)
    assert repo.get("alice") == saved
    assert repo.load_all() == {"alice": saved}
    assert repo.get("alice").updated_at.tzinfo is not None  # type: ignore[union-attr]


def test_saving_again_replaces_and_clear_forgets(repo: PresenceRepo) -> None:
    repo.save("alice", AWAY, "lunch", T0)
    repo.save("bob", "dnd", None, T0)
    later = T0 + timedelta(minutes=5)
    repo.save("alice", "busy", "  call me later  ", later)
    assert repo.load_all() == {
        "alice": StoredPresence(PresenceState.BUSY, "call me later", later),
        "bob": StoredPresence(PresenceState.DND, None, T0),
    }
    assert repo.clear("alice") is True
    assert repo.get("alice") is None
    assert set(repo.load_all()) == {"bob"}


def test_times_are_kept_in_utc(repo: PresenceRepo) -> None:
    berlin = timezone(timedelta(hours=1))
    repo.save("alice", AWAY, None, datetime(2026, 12, 11, 10, 30, tzinfo=berlin))
    stored = repo.get("alice")
    assert stored is not None
    assert stored.updated_at == T0
    assert stored.updated_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("state", "note", "at", "message"),
    [
        ("gone", None, T0, "must be one of"),
        ("AWAY", None, T0, "must be one of"),
        ("away", "x" * 201, T0, "at most 200"),
        ("away", "a\nb", T0, "control"),
        ("away", "evil\u202etxet", T0, "control"),
        ("away", "\ud800", T0, "control"),
        ("away", None, datetime(2026, 12, 11, 9, 30), "timezone-aware"),
    ],
)
def test_what_cannot_be_stored_is_refused_and_changes_nothing(
    repo: PresenceRepo, state: str, note: str | None, at: datetime, message: str
) -> None:
    repo.save("alice", AWAY, "lunch", T0)
    with pytest.raises(InvalidInput, match=message):
        repo.save("alice", state, note, at)
    assert repo.get("alice") == StoredPresence(AWAY, "lunch", T0)


def test_unknown_users_are_not_found(repo: PresenceRepo) -> None:
    with pytest.raises(NotFound, match="dave"):
        repo.save("dave", AWAY, None, T0)
    with pytest.raises(NotFound):
        repo.get("dave")
    with pytest.raises(NotFound):
        repo.clear("dave")
    assert repo.load_all() == {}


def test_rows_that_make_no_sense_are_skipped_with_a_warning(
    repo: PresenceRepo, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    repo.save("alice", AWAY, None, T0)
    repo.save("bob", AWAY, None, T0)
    with engine.begin() as connection:
        connection.execute(text("UPDATE user_presence SET state = 'sleeping'"))
        connection.execute(
            text(
                "UPDATE user_presence SET state = 'away', note = :note "
                "WHERE user_id = (SELECT id FROM users WHERE username = 'bob')"
            ),
            {"note": "line\nbreak"},
        )
    with caplog.at_level(logging.WARNING, logger="teleoffice.store.presence"):
        assert repo.load_all() == {}
        assert repo.get("alice") is None
    assert "sleeping" in caplog.text
    assert "control" in caplog.text


# --- blocks ----------------------------------------------------------------------------------


def test_blocking_and_unblocking(repo: PresenceRepo) -> None:
    assert repo.block("alice", "bob", T0) is True
    assert repo.block("alice", "bob", T0) is False  # once is enough
    assert repo.block("alice", "carol", T0) is True
    assert repo.block("carol", "bob", T0) is True
    assert repo.blocked("alice") == {"bob", "carol"}
    assert repo.blocked("bob") == set()
    assert repo.blockers("bob") == {"alice", "carol"}
    assert repo.blockers("alice") == set()
    assert repo.is_blocked("alice", "bob") is True
    assert repo.is_blocked("bob", "alice") is False  # not symmetric
    assert repo.all_blocks() == {"alice": {"bob", "carol"}, "carol": {"bob"}}
    assert repo.unblock("alice", "bob") is True
    assert repo.unblock("alice", "bob") is False
    assert repo.blocked("alice") == {"carol"}
    assert repo.is_blocked("alice", "bob") is False


def test_blocking_needs_two_real_users(repo: PresenceRepo) -> None:
    with pytest.raises(InvalidInput, match="themselves"):
        repo.block("alice", "alice", T0)
    with pytest.raises(NotFound, match="dave"):
        repo.block("alice", "dave", T0)
    with pytest.raises(NotFound, match="dave"):
        repo.block("dave", "alice", T0)
    with pytest.raises(NotFound):
        repo.unblock("alice", "dave")
    with pytest.raises(NotFound):
        repo.blocked("dave")
    with pytest.raises(NotFound):
        repo.blockers("dave")
    with pytest.raises(InvalidInput, match="timezone-aware"):
        repo.block("alice", "bob", datetime(2026, 1, 1))
    # A SIP subscriber's name is only asked about, never an error.
    assert repo.is_blocked("dave", "alice") is False
    assert repo.is_blocked("alice", "dave") is False
    assert repo.all_blocks() == {}


def test_deleting_a_user_takes_their_presence_and_blocks_both_ways(
    repo: PresenceRepo, users: UserRepo, engine: Engine
) -> None:
    repo.save("bob", AWAY, "lunch", T0)
    repo.save("alice", AWAY, None, T0)
    repo.block("bob", "alice", T0)  # bob blocks alice
    repo.block("carol", "bob", T0)  # bob is blocked by carol
    repo.block("alice", "carol", T0)
    users.delete("bob")
    assert set(repo.load_all()) == {"alice"}
    assert repo.all_blocks() == {"alice": {"carol"}}
    assert count(engine, "user_presence") == 1
    assert count(engine, "presence_blocks") == 1


# --- the migration ------------------------------------------------------------------------------


def test_migration_0007_goes_down_and_up_keeping_users(
    repo: PresenceRepo, users: UserRepo, engine: Engine, url: str
) -> None:
    repo.save("alice", AWAY, "lunch", T0)
    repo.block("alice", "bob", T0)
    command.downgrade(alembic_config(engine), "0006")
    tables = set(inspect(engine).get_table_names())
    assert not tables & {"user_presence", "presence_blocks"}
    assert {"users", "phone_accounts", "voicemail_boxes"} <= tables
    assert count(engine, "users") == 3
    assert count(engine, "phone_accounts") == 3
    assert upgrade(url) == head_revision()
    assert repo.load_all() == {}
    assert repo.all_blocks() == {}
    repo.save("alice", AWAY, "back", T0)
    assert [u.username for u in users.list_users()] == ["alice", "bob", "carol"]


def test_migration_0007_names_its_constraints(engine: Engine) -> None:
    inspector = inspect(engine)
    assert inspector.get_pk_constraint("user_presence")["name"] == "pk_user_presence"
    foreign = {fk["name"]: fk for fk in inspector.get_foreign_keys("presence_blocks")}
    assert set(foreign) == {
        "fk_presence_blocks_user_id_users",
        "fk_presence_blocks_watcher_user_id_users",
    }
    assert all(fk["options"].get("ondelete") == "CASCADE" for fk in foreign.values())
    (presence_fk,) = inspector.get_foreign_keys("user_presence")
    assert presence_fk["name"] == "fk_user_presence_user_id_users"
    assert presence_fk["options"].get("ondelete") == "CASCADE"
    unique = {u["name"] for u in inspector.get_unique_constraints("presence_blocks")}
    assert unique == {"uq_presence_blocks_user_id_watcher_user_id"}
