"""Fixtures shared by the unit tests: a migrated SQLite database, and the CLI runner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from teleoffice.store import Sessions, make_engine, session_factory, upgrade
from tests.unit.cli_kit import Run, runner


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A fresh SQLite database file (not created yet)."""
    return f"sqlite:///{(tmp_path / 'data' / 'teleoffice.db').as_posix()}"


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    """The database at `url`, migrated to the newest revision."""
    upgrade(url)
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
