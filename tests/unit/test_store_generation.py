"""The directory generation (migration 0008): database triggers bump it on every
change to what the server's in-memory directory holds, and nothing else; the
server reloads the directory only when it moved. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from argon2 import PasswordHasher
from sqlalchemy import Engine, inspect, text

from teleoffice.server.directory import Directory, Repos
from teleoffice.store import (
    AccountRepo,
    DidRepo,
    RestrictionRepo,
    TrunkRepo,
    UserRepo,
    head_revision,
    session_factory,
    upgrade,
)
from teleoffice.store.db import alembic_config
from teleoffice.store.generation import directory_generation
from teleoffice.store.presence import PresenceRepo
from teleoffice.store.repos import Sessions

HASHER = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture
def store(engine: Engine) -> Sessions:
    return session_factory(engine)


def test_every_directory_table_bumps_it(store: Sessions) -> None:
    users = UserRepo(store, realm="teleoffice", hasher=HASHER)
    readings = [directory_generation(store)]

    def step() -> None:
        now = directory_generation(store)
        assert now != readings[-1], "this change did not move the generation"
        readings.append(now)

    users.add_user("alice", extension="201", sip_password="s")
    step()
    users.update("alice", display_name="Alice A.")
    step()
    DidRepo(store).add("5550100", user="alice")
    step()
    TrunkRepo(store).add("pstn", host="192.0.2.10", prefix="9")
    step()
    RestrictionRepo(store).add("night", barred=["0X."])
    step()
    RestrictionRepo(store).assign("alice", "night")
    step()
    AccountRepo(store).list_accounts()  # a read moves nothing
    assert directory_generation(store) == readings[-1]
    users.delete("alice")
    step()


def test_what_the_directory_does_not_hold_leaves_it(store: Sessions) -> None:
    users = UserRepo(store, realm="teleoffice", hasher=HASHER)
    users.add_user("alice", extension="201", sip_password="s")
    users.add_user("bob", extension="202", sip_password="s")
    before = directory_generation(store)
    presence = PresenceRepo(store)
    presence.save("alice", "away", "lunch", datetime.now(UTC))
    presence.block("alice", "bob", datetime.now(UTC))
    assert directory_generation(store) == before


def test_the_server_reloads_only_when_it_moved(store: Sessions, engine: Engine) -> None:
    users = UserRepo(store, realm="teleoffice", hasher=HASHER)
    users.add_user("alice", extension="201", sip_password="s")
    directory = Directory(Repos(users, AccountRepo(store), TrunkRepo(store), DidRepo(store)))
    assert directory.reload_if_changed() is True  # the first load
    assert directory.reload_if_changed() is False
    assert directory.user("bob") is None
    # Another process (the CLI) adds a user: the next poll sees it.
    users.add_user("bob", extension="202", sip_password="s")
    assert directory.reload_if_changed() is True
    assert directory.user("bob") is not None
    assert directory.reload_if_changed() is False
    # A change by hand in SQL is seen too: the triggers are in the database.
    with engine.begin() as connection:
        connection.execute(text("UPDATE users SET display_name = 'Bobby' WHERE username = 'bob'"))
    assert directory.reload_if_changed() is True
    bob = directory.user("bob")
    assert bob is not None
    assert bob.display_name == "Bobby"


def test_migration_0008_goes_down_and_up(store: Sessions, engine: Engine, url: str) -> None:
    users = UserRepo(store, realm="teleoffice", hasher=HASHER)
    users.add_user("alice", extension="201", sip_password="s")
    command.downgrade(alembic_config(engine), "0007")
    assert "directory_generation" not in set(inspect(engine).get_table_names())
    # No trigger is left behind pointing at the dropped table.
    users.add_user("bob", extension="202", sip_password="s")
    assert upgrade(url) == head_revision()
    before = directory_generation(store)
    users.delete("bob")
    assert directory_generation(store) != before
