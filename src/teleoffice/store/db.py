"""Engines, sessions and schema migrations.

The Alembic configuration is built in code from the URL, so an installed package
needs no alembic.ini and no working-directory conventions: `upgrade(url)` is all
`teleoffice init` (and the server at start-up) has to call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.orm import Session, sessionmaker

from teleoffice.store.repos import StoreError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# How long an SQLite writer waits for another one (the CLI next to a running
# server) before giving up with "database is locked", in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 5000


class NotInitialised(StoreError):
    """The database does not exist or its schema is not the current one."""


def _sqlite_file(url: URL) -> Path | None:
    """The file behind an SQLite URL, or None for memory databases and other engines."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Set per connection, since SQLite forgets all of these when a connection closes.
    # WAL lets the server keep reading while the CLI writes; NORMAL synchronous is
    # durable across application crashes (only a power cut may lose the last
    # commits), which suits registrations that phones refresh anyway; foreign keys
    # are off by default in SQLite and ON DELETE SET NULL depends on them.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for `url`, with the SQLite pragmas every connection needs.

    Extra keyword arguments go to `sqlalchemy.create_engine`.
    """
    parsed = make_url(url)
    engine = create_engine(parsed, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _on_sqlite_connect)
    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to `engine`.

    expire_on_commit is off because repositories copy rows into plain records
    before returning; reloading attributes after commit would only cost queries.
    """
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic configuration pointing at the packaged migrations.

    With `engine`, env.py migrates through it instead of creating its own.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    """The newest revision shipped with this version of teleoffice."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations directory has no revisions"
    return head


def current_revision(url: str | URL) -> str | None:
    """The revision the database at `url` is at; None when it was never migrated
    (including an SQLite file that does not exist, which is not created)."""
    parsed = make_url(url)
    path = _sqlite_file(parsed)
    if path is not None and not path.exists():
        return None
    engine = make_engine(parsed)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def upgrade(url: str | URL) -> str:
    """Create the schema or bring it up to date; safe to run any number of times.

    For an SQLite file the parent directory is created first. Returns the revision
    the database is at afterwards.
    """
    parsed = make_url(url)
    path = _sqlite_file(parsed)
    if path is not None:
        _create_private_file(path)
    engine = make_engine(parsed)
    try:
        command.upgrade(alembic_config(engine), "head")
        with engine.connect() as connection:
            revision = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    assert revision is not None
    return revision


def _create_private_file(path: Path) -> None:
    """Create the SQLite file (and its directory) readable by the owner only.

    The database holds HA1 values, which are as good as SIP passwords to anyone who
    can read them. SQLite gives its -wal and -shm files the database file's mode,
    so creating the (empty, hence valid) file ourselves covers all three.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        # O_CREAT without O_TRUNC: harmless if another process created it meanwhile.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def require_current(url: str | URL) -> None:
    """Raise `NotInitialised` unless the database is at the newest revision.

    Commands that only read or edit data call this instead of migrating behind
    the administrator's back.
    """
    revision = current_revision(url)
    where = describe_url(url)
    if revision is None:
        raise NotInitialised(f"no teleoffice database at {where}; run `teleoffice init` first")
    if revision != head_revision():
        raise NotInitialised(
            f"the database at {where} is at revision {revision}, this version needs "
            f"{head_revision()}; run `teleoffice init` to upgrade it"
        )


def describe_url(url: str | URL) -> str:
    """A printable location of the database: the file for SQLite, else the URL
    with its password hidden (it ends up in terminal output and error messages)."""
    parsed = make_url(url)
    path = _sqlite_file(parsed)
    if path is not None:
        return str(path)
    return parsed.render_as_string(hide_password=True)
