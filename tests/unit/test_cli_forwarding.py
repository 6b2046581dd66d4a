"""Forwarding and do-not-disturb in the store and `teleoffice user set/show`."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from teleoffice import cli
from teleoffice.server.directory import Directory, Repos
from teleoffice.store import (
    AccountRepo,
    DidRepo,
    InvalidInput,
    TrunkRepo,
    UserRepo,
    head_revision,
    make_engine,
    session_factory,
    upgrade,
)
from teleoffice.store.db import alembic_config
from teleoffice.store.repos import FORWARD_OFF
from tests.unit.cli_kit import isolate


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


def run(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["--data", str(tmp_path / "site"), *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def shown(out: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines())}


def test_user_set_and_show_forwarding(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def go(*argv: str) -> tuple[int, str, str]:
        return run(capsys, tmp_path, *argv)

    assert go("init")[0] == 0
    assert go("user", "add", "bob", "--extension", "202", "--sip-password", "s")[0] == 0
    code, out, _ = go("user", "show", "bob")
    assert code == 0
    settings = shown(out)
    assert settings["forward always"] == "off"
    assert settings["do not disturb"] == "no"
    assert settings["restriction profile"] == "default"

    code, out, _ = go(
        "user", "set", "bob", "--forward-busy", "203", "--forward-no-answer", "+4930123",
        "--no-answer-time", "20", "--dnd",
    )  # fmt: skip
    assert code == 0, out
    assert "forward on busy: 203" in out
    assert "do not disturb: yes" in out
    settings = shown(go("user", "show", "bob")[1])
    assert settings["forward on busy"] == "203"
    assert settings["forward on no answer"] == "+4930123"
    assert settings["forward always"] == "off"
    assert settings["no-answer time"] == "20s"
    assert settings["do not disturb"] == "yes"

    code, out, _ = go("user", "set", "bob", "--no-forward-busy", "--no-dnd")
    assert code == 0
    assert "forward on busy: off" in out
    settings = shown(go("user", "show", "bob")[1])
    assert (settings["forward on busy"], settings["do not disturb"]) == ("off", "no")
    assert settings["forward on no answer"] == "+4930123"  # untouched


@pytest.mark.parametrize(
    "argv",
    [
        ("--forward-always", "202"),  # the user's own extension
        ("--forward-always", "20x"),
        ("--forward-busy", "++1"),
        ("--forward-no-answer", "1" * 33),
        ("--forward-no-answer", ""),
    ],
)
def test_bad_forwards_are_refused_and_change_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: tuple[str, str]
) -> None:
    assert run(capsys, tmp_path, "init")[0] == 0
    assert (
        run(capsys, tmp_path, "user", "add", "bob", "--extension", "202", "--sip-password", "s")[0]
        == 0
    )
    code, _, err = run(capsys, tmp_path, "user", "set", "bob", "--dnd", *argv)
    assert code != 0
    assert err
    settings = shown(run(capsys, tmp_path, "user", "show", "bob")[1])
    assert settings["do not disturb"] == "no"
    assert settings["forward always"] == "off"


def test_forward_and_its_off_switch_are_exclusive(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(
        capsys, tmp_path, "user", "set", "bob", "--forward-busy", "203", "--no-forward-busy"
    )
    assert code == 2
    assert "not allowed with" in err


def test_show_unknown_user(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert run(capsys, tmp_path, "init")[0] == 0
    code, _, err = run(capsys, tmp_path, "user", "show", "nobody")
    assert code != 0
    assert "nobody" in err


def test_settings_reach_the_engine_through_the_directory(tmp_path: Path) -> None:
    url = f"sqlite:///{(tmp_path / 'db.sqlite').as_posix()}"
    upgrade(url)
    engine = make_engine(url)
    try:
        sessions = session_factory(engine)
        users = UserRepo(sessions, realm="teleoffice")
        users.add_user("bob", extension="202", sip_password="s")
        users.update("bob", forward_always="9555", forward_busy="203", dnd=True)
        directory = Directory(
            Repos(users, AccountRepo(sessions), TrunkRepo(sessions), DidRepo(sessions))
        )
        view = directory.user_by_number("202")
        assert view is not None
        assert (view.forward_always, view.forward_busy, view.forward_no_answer, view.dnd) == (
            "9555", "203", None, True,
        )  # fmt: skip
        users.update("bob", forward_always=FORWARD_OFF)
        assert users.get("bob").forward_always is None
        with pytest.raises(InvalidInput):
            users.update("bob", forward_busy="202")
    finally:
        engine.dispose()


def test_migration_0004_keeps_users_and_dids_both_ways(tmp_path: Path) -> None:
    url = f"sqlite:///{(tmp_path / 'db.sqlite').as_posix()}"
    # Up to the newest revision and down past 0004 again: later revisions must
    # come down cleanly too.
    assert upgrade(url) == head_revision()
    engine = make_engine(url)
    try:
        sessions = session_factory(engine)
        users = UserRepo(sessions, realm="teleoffice")
        users.add_user("bob", extension="202", sip_password="s")
        DidRepo(sessions).add("555", user="bob")
        users.update("bob", forward_busy="203")
        command.downgrade(alembic_config(engine), "0003")
        with engine.connect() as connection:
            columns = {r[1] for r in connection.execute(text("PRAGMA table_info(users)"))}
            assert not columns & {"forward_always", "forward_busy", "forward_no_answer", "dnd"}
            # Dropping columns must not rebuild `users`: that would cascade to DIDs.
            assert connection.execute(text("SELECT count(*) FROM dids")).scalar() == 1
        assert upgrade(url) == head_revision()
        bob = users.get("bob")
        assert (bob.forward_busy, bob.dnd) == (None, False)
    finally:
        engine.dispose()
