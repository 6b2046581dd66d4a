"""The store on real SQLite files: migrations, repositories, and their guarantees."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from argon2 import PasswordHasher
from sqlalchemy import Engine, insert, inspect, select, text

from teleoffice.sip.digest import Algorithm
from teleoffice.store import (
    AccountRepo,
    Conflict,
    InvalidInput,
    NotFound,
    NotInitialised,
    RegistrationRepo,
    Sessions,
    StoredBinding,
    UserRepo,
    current_revision,
    head_revision,
    make_engine,
    require_current,
    session_factory,
    upgrade,
)
from teleoffice.store.db import alembic_config
from teleoffice.store.models import Base, PhoneAccount, User

REALM = "teleoffice"


def cheap_hasher(time_cost: int = 1) -> PasswordHasher:
    # argon2id all the same, with parameters that keep the suite fast.
    return PasswordHasher(time_cost=time_cost, memory_cost=8, parallelism=1)


@pytest.fixture
def users(sessions: Sessions) -> UserRepo:
    return UserRepo(sessions, realm=REALM, hasher=cheap_hasher())


def table_rows(engine: Engine, table: str) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(f"SELECT * FROM {table}"))]


def binding(contact: str = "sip:201@192.0.2.10:5062", **changes: object) -> StoredBinding:
    base = StoredBinding(
        account="201",
        contact=f'<{contact}>;+sip.instance="<urn:uuid:1>"',
        uri=contact,
        expires_at=1_000.0,
        call_id="abc@192.0.2.10",
        cseq=7,
        q=0.5,
        transport="udp",
        source_host="192.0.2.10",
        source_port=5062,
        instance_id="<urn:uuid:00000000-0000-0000-0000-000000000001>",
        user_agent="TestPhone/1.0",
        path="<sip:edge.example;lr>",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


# --- migrations -------------------------------------------------------------------


def test_upgrade_creates_directory_and_is_idempotent(tmp_path: Path, url: str) -> None:
    db_file = tmp_path / "data" / "teleoffice.db"
    assert current_revision(url) is None
    assert not db_file.exists(), "looking must not create the database"
    with pytest.raises(NotInitialised, match="teleoffice init"):
        require_current(url)
    assert upgrade(url) == head_revision()
    assert upgrade(url) == head_revision()
    require_current(url)
    # HA1 values are password equivalents: the file must be private.
    assert stat.S_IMODE(db_file.stat().st_mode) == 0o600


def test_upgrade_keeps_existing_data(url: str) -> None:
    upgrade(url)
    engine = make_engine(url)
    UserRepo(session_factory(engine), realm=REALM, hasher=cheap_hasher()).add_user(
        "alice", extension="201", sip_password="s"
    )
    engine.dispose()
    upgrade(url)
    engine = make_engine(url)
    assert [u.username for u in UserRepo(session_factory(engine), realm=REALM).list_users()] == [
        "alice"
    ]
    engine.dispose()


def test_migrations_can_be_undone_and_redone(url: str) -> None:
    upgrade(url)
    engine = make_engine(url)
    try:
        command.downgrade(alembic_config(engine), "base")
        with engine.connect() as connection:
            names = set(inspect(connection).get_table_names())
        assert not names & {"users", "phone_accounts", "registrations"}
    finally:
        engine.dispose()
    assert upgrade(url) == head_revision()


def test_migrated_schema_matches_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, Base.metadata) == []


def test_sqlite_connections_get_pragmas(engine: Engine) -> None:
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL


# --- users and accounts -----------------------------------------------------------


def test_add_user_round_trip_with_defaults(users: UserRepo, sessions: Sessions) -> None:
    created = users.add_user(
        "alice", extension="201", sip_password="sip-secret", display_name="Alice Adams"
    )
    assert users.get("alice") == created
    assert users.find_by_extension("201") == created
    assert created.display_name == "Alice Adams"
    assert created.telecommuter_allowed is False
    assert created.call_waiting is True
    assert created.voicemail_enabled is False
    assert created.no_answer_timeout == 15
    assert created.is_admin is False
    assert created.has_password is False
    assert created.created_at.tzinfo is not None
    account = AccountRepo(sessions).find("201")
    assert account is not None
    assert account.owner == "alice"
    assert users.add_user("bob", extension="202", sip_password="x").display_name == "bob"
    assert [u.username for u in users.list_users()] == ["alice", "bob"]
    assert users.count() == 2


def test_ha1_is_stored_never_the_password(
    users: UserRepo, sessions: Sessions, engine: Engine
) -> None:
    users.add_user("alice", extension="201", sip_password="sip-secret", password="portal-pw")
    expected_md5 = hashlib.md5(f"201:{REALM}:sip-secret".encode()).hexdigest()
    expected_sha = hashlib.sha256(f"201:{REALM}:sip-secret".encode()).hexdigest()
    accounts = AccountRepo(sessions)
    assert accounts.get_ha1("201", Algorithm.MD5) == expected_md5
    assert accounts.get_ha1("201", Algorithm.MD5_SESS) == expected_md5
    assert accounts.get_ha1("201", Algorithm.SHA256) == expected_sha
    assert accounts.get_ha1("201", Algorithm.SHA256_SESS) == expected_sha
    assert accounts.get_ha1("999", Algorithm.MD5) is None
    everything = repr(table_rows(engine, "users")) + repr(table_rows(engine, "phone_accounts"))
    assert "sip-secret" not in everything
    assert "portal-pw" not in everything
    [(password_hash,)] = [row[4:5] for row in table_rows(engine, "users")]
    assert isinstance(password_hash, str)
    assert password_hash.startswith("$argon2id$")


def test_verify_password(users: UserRepo) -> None:
    users.add_user("alice", extension="201", sip_password="s", password="right")
    users.add_user("bob", extension="202", sip_password="s")
    found = users.verify_password("alice", "right")
    assert found is not None
    assert found.username == "alice"
    assert users.verify_password("alice", "wrong") is None
    assert users.verify_password("nobody", "right") is None
    assert users.verify_password("bob", "") is None  # no portal password: no login


def test_verify_upgrades_weak_hashes(sessions: Sessions, engine: Engine) -> None:
    UserRepo(sessions, realm=REALM, hasher=cheap_hasher(1)).add_user(
        "alice", extension="201", sip_password="s", password="pw"
    )
    stronger = UserRepo(sessions, realm=REALM, hasher=cheap_hasher(2))
    assert stronger.verify_password("alice", "pw") is not None
    with sessions() as session:
        stored = session.scalar(select(User.password_hash))
    assert stored is not None
    assert ",t=2," in stored
    assert stronger.verify_password("alice", "pw") is not None


@pytest.mark.parametrize(
    ("username", "extension", "message"),
    [
        ("alice", "301", "user 'alice' already exists"),
        ("bob", "201", "extension 201 already belongs to user 'alice'"),
        ("carol", "299", "phone account named 299"),
    ],
)
def test_conflicts_change_nothing(
    users: UserRepo, engine: Engine, username: str, extension: str, message: str
) -> None:
    users.add_user("alice", extension="201", sip_password="s")
    with engine.begin() as connection:  # an unassigned phone, e.g. a lobby phone
        connection.execute(
            insert(PhoneAccount).values(
                username="299", user_id=None, ha1_md5="0" * 32, ha1_sha256="0" * 64,
                created_at=users.get("alice").created_at,
            )
        )  # fmt: skip
    before = (table_rows(engine, "users"), table_rows(engine, "phone_accounts"))
    with pytest.raises(Conflict, match=message):
        users.add_user(username, extension=extension, sip_password="s")
    assert (table_rows(engine, "users"), table_rows(engine, "phone_accounts")) == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"extension": "2"}, "2 to 8 digits"),
        ({"extension": "123456789"}, "2 to 8 digits"),
        ({"extension": "20a"}, "2 to 8 digits"),
        ({"username": "bad name"}, "username"),
        ({"username": ""}, "username"),
        ({"sip_password": ""}, "SIP password"),
        ({"password": ""}, "password"),
        ({"no_answer_timeout": 0}, "no-answer time"),
        ({"display_name": "evil\r\nVia: x"}, "control characters"),
    ],
)
def test_invalid_users_are_refused(
    users: UserRepo, engine: Engine, kwargs: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"username": "alice", "extension": "201", "sip_password": "s"}
    args.update(kwargs)
    username = args.pop("username")
    assert isinstance(username, str)
    with pytest.raises(InvalidInput, match=message):
        users.add_user(username, **args)  # type: ignore[arg-type]
    assert table_rows(engine, "users") == []
    assert table_rows(engine, "phone_accounts") == []


def test_update_changes_only_what_is_given(users: UserRepo, sessions: Sessions) -> None:
    users.add_user("alice", extension="201", sip_password="old", display_name="Alice")
    updated = users.update(
        "alice", telecommuter_allowed=True, call_waiting=False, no_answer_timeout=25
    )
    assert updated.telecommuter_allowed is True
    assert updated.call_waiting is False
    assert updated.no_answer_timeout == 25
    assert updated.display_name == "Alice"
    assert updated.voicemail_enabled is False
    assert users.get("alice") == updated
    updated = users.update(
        "alice", voicemail_enabled=True, is_admin=True, display_name="A. Adams", password="pw"
    )
    assert (updated.voicemail_enabled, updated.is_admin, updated.has_password) == (
        True, True, True,
    )  # fmt: skip
    assert users.verify_password("alice", "pw") is not None


def test_update_sip_password_rekeys_base_account(users: UserRepo, sessions: Sessions) -> None:
    users.add_user("alice", extension="201", sip_password="old")
    accounts = AccountRepo(sessions)
    old = accounts.get_ha1("201", Algorithm.SHA256)
    users.update("alice", sip_password="new")
    new = accounts.get_ha1("201", Algorithm.SHA256)
    assert new != old
    assert new == hashlib.sha256(f"201:{REALM}:new".encode()).hexdigest()


def test_update_errors_change_nothing(users: UserRepo, engine: Engine) -> None:
    users.add_user("alice", extension="201", sip_password="s")
    before = table_rows(engine, "users")
    with pytest.raises(NotFound, match="no user 'bob'"):
        users.update("bob", call_waiting=False)
    with pytest.raises(InvalidInput):
        users.update("alice", call_waiting=False, no_answer_timeout=-1)
    assert table_rows(engine, "users") == before
    with pytest.raises(NotFound):
        users.get("bob")
    assert users.find("bob") is None


def test_delete_user_removes_base_phone_and_unlinks_others(
    users: UserRepo, sessions: Sessions, engine: Engine
) -> None:
    alice = users.add_user("alice", extension="201", sip_password="s")
    users.add_user("bob", extension="202", sip_password="s")
    with engine.begin() as connection:  # a second device of alice's
        connection.execute(
            insert(PhoneAccount).values(
                username="alice-mobile", user_id=alice.id, ha1_md5="0" * 32,
                ha1_sha256="0" * 64, created_at=alice.created_at,
            )
        )  # fmt: skip
    registrations = RegistrationRepo(sessions)
    registrations.save(binding())
    registrations.save(binding(account="202"))
    users.delete("alice")
    assert users.find("alice") is None
    accounts = AccountRepo(sessions)
    assert accounts.find("201") is None
    mobile = accounts.find("alice-mobile")
    assert mobile is not None
    assert mobile.owner is None
    assert [b.account for b in registrations.load_all()] == ["202"]
    with pytest.raises(NotFound):
        users.delete("alice")
    # The extension is free again.
    users.add_user("alice2", extension="201", sip_password="s")


# --- registrations ----------------------------------------------------------------


def test_registrations_round_trip_and_upsert(sessions: Sessions) -> None:
    repo = RegistrationRepo(sessions)
    first = binding()
    other = binding("sip:201@198.51.100.7", q=None, instance_id=None, user_agent=None, path=None)
    repo.save(first)
    repo.save(other)
    assert repo.load_all() == [first, other]
    refreshed = replace(first, expires_at=2_000.0, cseq=8, source_port=5064)
    repo.save(refreshed)
    assert repo.load_all() == [refreshed, other]


def test_registration_deletes_and_purge(sessions: Sessions) -> None:
    repo = RegistrationRepo(sessions)
    repo.save(binding("sip:a@h", expires_at=100.0))
    repo.save(binding("sip:b@h", expires_at=200.0))
    repo.save(binding("sip:c@h", account="202", expires_at=300.0))
    assert repo.delete("201", "sip:a@h") is True
    assert repo.delete("201", "sip:a@h") is False
    assert repo.purge_expired(199.0) == 0
    assert repo.purge_expired(200.0) == 1  # expiring exactly now counts as expired
    repo.save(binding("sip:d@h", expires_at=500.0))
    assert repo.delete_account("201") == 1
    assert [b.uri for b in repo.load_all()] == ["sip:c@h"]


def test_apply_is_all_or_nothing(sessions: Sessions) -> None:
    repo = RegistrationRepo(sessions)
    kept = binding("sip:kept@h")
    repo.save(kept)
    broken = binding("sip:new@h", call_id=None)  # violates NOT NULL
    with pytest.raises(Exception, match=r"(?i)not.null"):
        repo.apply(saves=[binding("sip:other@h"), broken], deletes=[("201", "sip:kept@h")])
    assert repo.load_all() == [kept]


def test_database_is_readable_by_plain_sqlite(engine: Engine, users: UserRepo, url: str) -> None:
    # WAL mode must leave the data visible to an independent reader once committed.
    users.add_user("alice", extension="201", sip_password="s")
    path = url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("SELECT username FROM users").fetchall() == [("alice",)]
