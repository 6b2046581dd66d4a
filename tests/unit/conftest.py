"""Fixtures shared by the unit tests: a migrated database on SQLite and on
PostgreSQL, and the CLI runner.

Every test that uses `url`, `engine` or `sessions` (directly or through other
fixtures) runs twice, with ids "sqlite" and "postgresql": the store is one schema
for both (DESIGN.md section 2), so both are tested for real. PostgreSQL is a
throwaway server per test process (tests/pg.py) with a fresh database per test.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from teleoffice.store import Sessions, make_engine, session_factory, upgrade
from tests.pg import PostgresCluster
from tests.unit.cli_kit import Run, runner

BACKENDS = ("sqlite", "postgresql")

# Tests of SQLite itself (its file, its pragmas, reading it with the sqlite3
# module), which have no PostgreSQL counterpart: they run on SQLite only.
SQLITE_ONLY = frozenset(
    {
        "test_store.py::test_upgrade_creates_directory_and_is_idempotent",
        "test_store.py::test_sqlite_connections_get_pragmas",
        "test_store.py::test_database_is_readable_by_plain_sqlite",
    }
)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "url" not in metafunc.fixturenames:
        return
    name = f"{metafunc.definition.path.name}::{metafunc.function.__name__}"
    backends = ["sqlite"] if name in SQLITE_ONLY else list(BACKENDS)
    metafunc.parametrize("url", backends, indirect=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """This test process's own PostgreSQL server, started on first use."""
    with PostgresCluster.start() as cluster:
        yield cluster


# Migrating takes about 0.1 s; copying a database migrated once per test process
# takes a few milliseconds (SQLite) or 30 (PostgreSQL). The migrations themselves
# are tested from empty databases (tests that use `url` without `engine`).


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An SQLite file at the newest revision, to copy."""
    path = tmp_path_factory.mktemp("migrated") / "teleoffice.db"
    upgrade(f"sqlite:///{path.as_posix()}")
    # Every connection is closed, so the WAL was checkpointed into the file.
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture(scope="session")
def migrated_postgres(postgres: PostgresCluster) -> str:
    """A PostgreSQL database at the newest revision, used as a template."""
    name = "teleoffice_migrated"
    upgrade(postgres.create_database(name))
    return name


_database_numbers = itertools.count(1)


@pytest.fixture
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of the test's own: an SQLite file in tmp_path, or a PostgreSQL
    database dropped after the test. Empty (for SQLite, not even created) unless
    the test uses `engine`: then it is already at the newest revision."""
    migrated = "engine" in request.fixturenames
    if getattr(request, "param", "sqlite") == "sqlite":
        path = tmp_path / "data" / "teleoffice.db"
        if migrated:
            # As `upgrade` would leave it: a private folder and file.
            path.parent.mkdir(mode=0o700)
            shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
            path.chmod(0o600)
        yield f"sqlite:///{path.as_posix()}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    template = request.getfixturevalue("migrated_postgres") if migrated else "template0"
    name = f"test_{next(_database_numbers)}"
    yield cluster.create_database(name, template=template)
    cluster.drop_database(name)


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    """The database at `url`, at the newest revision (see `url`)."""
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> Sessions:
    return session_factory(engine)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """The data directory the CLI tests pass with --data."""
    return tmp_path / "site"


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], data: Path) -> Run:
    return runner(capsys, data)
