"""`teleoffice user set/show` for telecommuter patterns, login codes, locations
and saved numbers, run in-process."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from teleoffice import cli
from teleoffice.store import (
    LocationKind,
    LocationRepo,
    Sessions,
    StoredLocation,
    TelecommuterRepo,
    make_engine,
    session_factory,
)
from tests.unit.cli_kit import isolate

CODE = "470815"


def cheap_hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)
    # Login codes are hashed by the telecommuter repository with its own default.
    monkeypatch.setattr("teleoffice.store.telecommuter.PasswordHasher", cheap_hasher)


def run(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["--data", str(tmp_path / "site"), *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def shown(out: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines())}


@pytest.fixture
def site(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Iterator[Sessions]:
    """An initialised site with alice (201), bob (202) and carol (203), and
    sessions on its database for looking behind the command line."""
    assert run(capsys, tmp_path, "init")[0] == 0
    for name, extension in (("alice", "201"), ("bob", "202"), ("carol", "203")):
        argv = ("user", "add", name, "--extension", extension, "--sip-password", "s")
        assert run(capsys, tmp_path, *argv)[0] == 0
    engine = make_engine(f"sqlite:///{(tmp_path / 'site' / 'teleoffice.db').as_posix()}")
    yield session_factory(engine)
    engine.dispose()


def show(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str) -> dict[str, str]:
    code, out, err = run(capsys, tmp_path, "user", "show", name)
    assert code == 0, err
    return shown(out)


def test_defaults_are_shown(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, site: Sessions
) -> None:
    settings = show(capsys, tmp_path, "alice")
    assert settings["telecommuter allowed"] == "no"
    assert settings["telecommuter patterns"] == "any number the user may dial"
    assert settings["login code"] == "not set"
    assert settings["location"] == "base phone (default)"
    assert settings["saved numbers"] == "none"


def test_set_and_show_patterns_and_login_code(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, site: Sessions
) -> None:
    code, out, err = run(
        capsys, tmp_path, "user", "set", "alice", "--telecommuter", "--login-code", CODE,
        "--telecommuter-pattern", "_0[1-9]X.", "--telecommuter-pattern", "+4930.",
    )  # fmt: skip
    assert code == 0, err
    assert "telecommuter allowed: yes" in out
    assert "telecommuter patterns: 0[1-9]X., +4930." in out
    assert "login code: set" in out
    assert CODE not in out
    code, out, _ = run(capsys, tmp_path, "user", "show", "alice")
    assert CODE not in out
    settings = shown(out)
    assert settings["telecommuter allowed"] == "yes"
    assert settings["telecommuter patterns"] == "0[1-9]X., +4930."
    assert settings["login code"] == "set"
    # What the command stored is what the PBX checks.
    repo = TelecommuterRepo(site, cheap_hasher())
    assert repo.verify_login_code("201", CODE) == "alice"
    assert repo.snapshot() == {"alice": ("0[1-9]X.", "+4930.")}

    # A new pattern list replaces the old one; the code stays.
    assert run(capsys, tmp_path, "user", "set", "alice", "--telecommuter-pattern", "0171!")[0] == 0
    assert show(capsys, tmp_path, "alice")["telecommuter patterns"] == "0171!"
    assert show(capsys, tmp_path, "alice")["login code"] == "set"

    code, out, _ = run(
        capsys, tmp_path, "user", "set", "alice", "--no-login-code", "--no-telecommuter-patterns"
    )
    assert code == 0
    assert "login code: removed" in out
    assert "telecommuter patterns: any number the user may dial" in out
    settings = show(capsys, tmp_path, "alice")
    assert settings["login code"] == "not set"
    assert settings["telecommuter patterns"] == "any number the user may dial"
    assert repo.verify_login_code("201", CODE) is None


def test_login_code_from_standard_input(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    site: Sessions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(CODE + "\n"))
    code, out, err = run(capsys, tmp_path, "user", "set", "bob", "--login-code", "-")
    assert code == 0, err
    assert CODE not in out
    assert TelecommuterRepo(site, cheap_hasher()).verify_login_code("202", CODE) == "bob"


@pytest.mark.parametrize(
    "argv",
    [
        ("--login-code", "123"),
        ("--login-code", "1234567890123"),
        ("--login-code", "12a4"),
        ("--login-code", ""),
        ("--login-code", "١٢٣٤"),
        ("--telecommuter-pattern", "0.=home"),
        ("--telecommuter-pattern", "030.", "--telecommuter-pattern", "0.1"),
        ("--telecommuter-pattern", ""),
        ("--telecommuter-pattern", "abc"),
        ("--login-code", "4711", "--telecommuter-pattern", "[9-1]"),  # one bad, one good
        ("--telecommuter-pattern", "030.", "--login-code", "12"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, site: Sessions, argv: tuple[str, ...]
) -> None:
    before_argv = ("--login-code", CODE, "--telecommuter-pattern", "040.")
    assert run(capsys, tmp_path, "user", "set", "alice", *before_argv)[0] == 0
    code, out, err = run(capsys, tmp_path, "user", "set", "alice", "--dnd", *argv)
    assert code != 0
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    settings = show(capsys, tmp_path, "alice")
    assert settings["do not disturb"] == "no"
    assert settings["telecommuter patterns"] == "040."
    assert TelecommuterRepo(site, cheap_hasher()).verify_login_code("201", CODE) == "alice"


@pytest.mark.parametrize(
    "argv",
    [
        ("--login-code", "1234", "--no-login-code"),
        ("--telecommuter-pattern", "0.", "--no-telecommuter-patterns"),
    ],
)
def test_an_option_and_its_off_switch_are_exclusive(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: tuple[str, ...]
) -> None:
    code, _, err = run(capsys, tmp_path, "user", "set", "alice", *argv)
    assert code == 2
    assert "not allowed with" in err


def test_unknown_user(capsys: pytest.CaptureFixture[str], tmp_path: Path, site: Sessions) -> None:
    for argv in (("--login-code", "1234"), ("--no-telecommuter-patterns",)):
        code, _, err = run(capsys, tmp_path, "user", "set", "nobody", *argv)
        assert code != 0
        assert "nobody" in err


def test_locations_and_saved_numbers_are_shown(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, site: Sessions
) -> None:
    since = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    local = since.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    LocationRepo(site).apply(
        {
            # alice sits at carol's desk; carol, without a row, has lost her phone.
            "alice": StoredLocation(LocationKind.PHONE, "203", None, since),
            "bob": StoredLocation(LocationKind.TELECOMMUTER, None, "+4930123456", since),
        }
    )
    assert show(capsys, tmp_path, "alice")["location"] == f"logged in on phone 203 (since {local})"
    assert (
        show(capsys, tmp_path, "bob")["location"] == f"telecommuter at +4930123456 (since {local})"
    )
    assert show(capsys, tmp_path, "carol")["location"] == (
        "base phone (default), but alice is logged in on it: logged out"
    )
    LocationRepo(site).apply(
        {
            "alice": StoredLocation(LocationKind.PHONE, "201", None, since),
            "carol": StoredLocation(LocationKind.LOGGED_OUT, None, None, since),
        }
    )
    assert show(capsys, tmp_path, "alice")["location"] == (
        f"logged in on phone 201 (their base phone) (since {local})"
    )
    assert show(capsys, tmp_path, "carol")["location"] == f"logged out (since {local})"

    repo = TelecommuterRepo(site, cheap_hasher())
    repo.add_saved_number("bob", "0301234", "home")
    repo.add_saved_number("bob", "+491711234")
    assert show(capsys, tmp_path, "bob")["saved numbers"] == "0301234 (home), +491711234"


def test_help_explains_the_new_options(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run(capsys, tmp_path, "user", "set", "--help")
    assert code == 0
    text = " ".join(out.split())
    for option in (
        "--login-code CODE",
        "--no-login-code",
        "--telecommuter-pattern P",
        "--no-telecommuter-patterns",
    ):
        assert option in text
    assert "4 to 12 digits" in text
    code, out, _ = run(capsys, tmp_path, "user", "show", "--help")
    assert code == 0
    assert "login code" in " ".join(out.split())
