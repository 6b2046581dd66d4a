"""Restriction profiles in the store: migration 0003 on a real SQLite file, the
built-in profiles, assignment, deletion rules, and the server's directory."""

from __future__ import annotations

import pytest
from alembic import command
from argon2 import PasswordHasher
from sqlalchemy import Engine, inspect, text

from teleoffice.calls.restrictions import BUILTIN_PROFILES, DEFAULT_PROFILE, Barred, check
from teleoffice.server.directory import Directory, Repos
from teleoffice.store import (
    AccountRepo,
    Conflict,
    DidRepo,
    InvalidInput,
    NotFound,
    RestrictionRepo,
    TrunkRepo,
    UserRepo,
    current_revision,
    head_revision,
    make_engine,
    session_factory,
    upgrade,
)
from teleoffice.store.db import alembic_config


@pytest.fixture
def users(engine: Engine) -> UserRepo:
    return UserRepo(
        session_factory(engine),
        realm="teleoffice",
        hasher=PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
    )


@pytest.fixture
def repo(engine: Engine) -> RestrictionRepo:
    return RestrictionRepo(session_factory(engine))


def test_upgrade_from_0002_keeps_users_and_adds_the_builtins(url: str) -> None:
    engine = make_engine(url)
    try:
        upgrade(url)
        command.downgrade(alembic_config(engine), "0002")
        assert current_revision(url) == "0002"
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO users (id, username, display_name, extension, is_admin, "
                    "telecommuter_allowed, call_waiting, voicemail_enabled, no_answer_timeout, "
                    "created_at) VALUES (7, 'alice', 'Alice', '201', false, true, true, false, 20, "
                    "'2025-01-01 00:00:00')"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO dids (number, user_id, created_at) VALUES ('555', 7, '2025-01-01')"
                )
            )
        assert upgrade(url) == head_revision()
        sessions = session_factory(engine)
        repo = RestrictionRepo(sessions)
        assert UserRepo(sessions, realm="teleoffice").get("alice").id == 7
        assert DidRepo(sessions).user_for("555") is not None
        # Existing users get the safe default without a row of their own.
        assert repo.profile_name_for("alice") == "default"
        assert repo.profile_for("alice") == DEFAULT_PROFILE
        # The migration's literal text agrees with the code's built-ins.
        stored = {r.name: r.profile() for r in repo.list()}
        assert stored == {p.name: p for p in BUILTIN_PROFILES}
        repo.assign("alice", "unrestricted")
        # And back: the user stays, the profiles and assignment go.
        command.downgrade(alembic_config(engine), "0002")
        with engine.connect() as connection:
            names = set(inspect(connection).get_table_names())
            assert connection.execute(text("SELECT count(*) FROM dids")).scalar() == 1
        assert not names & {"restriction_profiles", "user_restrictions"}
        assert upgrade(url) == head_revision()
    finally:
        engine.dispose()


def test_add_update_and_show(repo: RestrictionRepo) -> None:
    added = repo.add(
        "sales", allowed=["_0[1-9].", "0[1-9]."], barred=["0900.= premium"], description="x"
    )
    assert (added.allowed, added.barred, added.emergency) == (
        ("0[1-9].",),
        ("0900.=premium",),
        ("112", "911", "999"),
    )
    changed = repo.update("sales", add_barred=["0137."], emergency=["112"])
    assert changed.barred == ("0900.=premium", "0137.")
    assert changed.emergency == ("112",)
    assert changed.allowed == ("0[1-9].",)
    replaced = repo.update("sales", allowed=[], description="y")
    assert (replaced.allowed, replaced.description) == ((), "y")
    assert isinstance(check(repo.get("sales").profile(), "01371234", from_phone=True), Barred)


def test_bad_input_and_conflicts(repo: RestrictionRepo, users: UserRepo) -> None:
    with pytest.raises(InvalidInput, match=r"barred pattern.*bad range"):
        repo.add("p", barred=["0[9-1]"])
    with pytest.raises(InvalidInput, match="emergency number"):
        repo.add("p", emergency=["1"])
    with pytest.raises(InvalidInput, match="profile name"):
        repo.add("no spaces")
    with pytest.raises(Conflict, match="already exists"):
        repo.add("default")
    with pytest.raises(NotFound):
        repo.update("nope", description="x")
    with pytest.raises(InvalidInput):
        repo.update("default", add_barred=["Q"])
    assert repo.get("default").profile() == DEFAULT_PROFILE  # nothing changed
    with pytest.raises(NotFound, match="no user"):
        repo.assign("nobody", "default")
    users.add_user("alice", extension="201", sip_password="s")
    with pytest.raises(NotFound, match="no restriction profile"):
        repo.assign("alice", "nope")


def test_assignment_and_delete_in_use(repo: RestrictionRepo, users: UserRepo) -> None:
    users.add_user("alice", extension="201", sip_password="s")
    users.add_user("bob", extension="202", sip_password="s")
    repo.add("lobby", allowed=["internal"])
    repo.assign("alice", "lobby")
    assert repo.profile_name_for("alice") == "lobby"
    assert repo.profile_name_for("bob") == "default"
    assert repo.get("lobby").users == ("alice",)
    with pytest.raises(Conflict, match=r"assigned to 1 user\(s\) \(alice\)"):
        repo.delete("lobby")
    with pytest.raises(Conflict, match="cannot be deleted"):
        repo.delete("default")
    repo.assign("alice", "unrestricted")
    repo.delete("lobby")
    assert repo.find("lobby") is None
    # The assignment goes with its user.
    users.delete("alice")
    assert repo.get("unrestricted").users == ()


def test_the_database_refuses_deleting_a_profile_in_use(
    engine: Engine, repo: RestrictionRepo, users: UserRepo
) -> None:
    users.add_user("alice", extension="201", sip_password="s")
    repo.assign("alice", "internal-only")
    with pytest.raises(Exception, match=r"(?i)foreign key"), engine.begin() as connection:
        connection.execute(text("DELETE FROM restriction_profiles WHERE name = 'internal-only'"))


def test_directory_knows_everyones_profile(engine: Engine, repo: RestrictionRepo) -> None:
    sessions = session_factory(engine)
    user_repo = UserRepo(
        sessions, realm="teleoffice", hasher=PasswordHasher(time_cost=1, memory_cost=8)
    )
    user_repo.add_user("alice", extension="201", sip_password="s")
    user_repo.add_user("bob", extension="202", sip_password="s")
    repo.assign("bob", "internal-only")
    # Without an explicit repository, as app.py builds it today.
    directory = Directory(
        Repos(user_repo, AccountRepo(sessions), TrunkRepo(sessions), DidRepo(sessions))
    )
    assert directory.restriction_for("alice") == DEFAULT_PROFILE
    assert directory.restriction_for("bob").name == "internal-only"
    assert directory.restriction_for("ghost") == DEFAULT_PROFILE
    repo.assign("bob", "unrestricted")
    directory.reload()
    assert directory.restriction_for("bob").name == "unrestricted"
