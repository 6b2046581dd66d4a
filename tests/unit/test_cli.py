"""The command line, run in-process against temporary data directories."""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from teleoffice import cli
from teleoffice.config import Settings
from teleoffice.sip.digest import Algorithm
from teleoffice.store import (
    AccountRepo,
    RegistrationRepo,
    StoredBinding,
    UserRepo,
    make_engine,
    session_factory,
)
from tests.unit.cli_kit import Run, isolate


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


@pytest.fixture
def initialised(run: Run) -> Run:
    assert run("init").code == 0
    return run


def repos(data: Path) -> Iterator[tuple[UserRepo, AccountRepo, RegistrationRepo]]:
    engine = make_engine(f"sqlite:///{(data / 'teleoffice.db').as_posix()}")
    sessions = session_factory(engine)
    try:
        yield (
            UserRepo(sessions, realm="teleoffice"),
            AccountRepo(sessions),
            RegistrationRepo(sessions),
        )
    finally:
        engine.dispose()


# --- help and usage ---------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["init", "--help"],
        ["user", "--help"],
        ["user", "add", "--help"],
        ["user", "set", "--help"],
        ["user", "list", "--help"],
        ["user", "del", "--help"],
        ["registrations", "--help"],
        ["serve", "--help"],
    ],
)
def test_help_works_everywhere(run: Run, argv: list[str]) -> None:
    result = run(*argv, data_dir=None)
    assert result.code == 0
    assert "usage: teleoffice" in result.out


def test_every_option_has_help() -> None:
    def check(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            assert action.help, f"{parser.prog}: {action.option_strings or action.dest}"
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    check(sub)

    check(cli.build_parser())


def test_user_set_help_lists_switches(run: Run) -> None:
    out = run("user", "set", "--help", data_dir=None).out
    for switch in ("--telecommuter", "--no-telecommuter", "--call-waiting", "--no-call-waiting",
                   "--voicemail", "--no-voicemail", "--admin", "--no-admin", "--no-answer-time",
                   "--sip-password", "--display-name"):  # fmt: skip
        assert switch in out


def test_usage_errors_exit_2(run: Run) -> None:
    assert run(data_dir=None).code == 2
    result = run("user", "add", "alice", "--extension", "1")
    assert result.code == 2
    assert "2 to 8 digits" in result.err
    assert run("user", "add", "alice").code == 2  # --extension is required
    assert run("frobnicate").code == 2


def test_version(run: Run) -> None:
    assert run("--version", data_dir=None).code == 0


# --- init -------------------------------------------------------------------------


def test_init_is_idempotent(run: Run, data: Path) -> None:
    first = run("init")
    assert first.code == 0, first.err
    assert str(data / "teleoffice.db") in first.out
    assert (data / "teleoffice.db").exists()
    assert (data / "secret.key").exists()
    second = run("init")
    assert second.code == 0, second.err
    assert "revision" in second.out


def test_commands_before_init_say_what_to_do(run: Run, data: Path) -> None:
    result = run("user", "list")
    assert result.code == 2
    assert result.err.startswith("teleoffice: error: ")
    assert "teleoffice init" in result.err
    assert "Traceback" not in result.err
    assert not (data / "teleoffice.db").exists()


def test_data_dir_from_environment(
    run: Run, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TELEOFFICE_DATA", str(tmp_path / "from-env"))
    assert run("init", data_dir=None).code == 0
    assert (tmp_path / "from-env" / "teleoffice.db").exists()


def test_global_options_after_the_command(run: Run, tmp_path: Path) -> None:
    assert run("init", "--data", str(tmp_path / "late"), data_dir=None).code == 0
    assert (tmp_path / "late" / "teleoffice.db").exists()
    result = run("user", "list", "--data", str(tmp_path / "late"), data_dir=None)
    assert result.code == 0, result.err


def test_config_file_option(run: Run, tmp_path: Path) -> None:
    config = tmp_path / "pbx.toml"
    config.write_text(f'data_dir = "{(tmp_path / "cfg").as_posix()}"\n')
    result = run("--config", str(config), "init", data_dir=None)
    assert result.code == 0, result.err
    assert (tmp_path / "cfg" / "teleoffice.db").exists()
    assert str(config) in result.out


def test_bad_configuration_is_one_clear_line(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEOFFICE_SIP_PORT", "99999")
    result = run("init")
    assert result.code == 2
    assert result.err.strip().splitlines() == [
        "teleoffice: error: setting sip_port: Input should be less than or equal to 65535"
    ]
    missing = run("--config", "nowhere.toml", "init")
    assert missing.code == 2
    assert "nowhere.toml does not exist" in missing.err


# --- users ------------------------------------------------------------------------


def test_user_add_generates_and_prints_sip_password_once(initialised: Run, data: Path) -> None:
    result = initialised("user", "add", "alice", "--extension", "201", "--display-name", "Alice A")
    assert result.code == 0, result.err
    match = re.search(r"SIP password (\S+)", result.out)
    assert match is not None
    printed = match.group(1)
    for _users, accounts, _regs in repos(data):
        expected = hashlib.sha256(f"201:teleoffice:{printed}".encode()).hexdigest()
        assert accounts.get_ha1("201", Algorithm.SHA256) == expected
    assert printed not in initialised("user", "list").out


def test_user_add_with_passwords(initialised: Run, data: Path) -> None:
    result = initialised(
        "user", "add", "bob", "--extension", "202", "--password", "-", "--sip-password", "-",
        "--admin", stdin="portal-pw\nsip-pw\n",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "sip-pw" not in result.out
    assert "administrator" in result.out
    for users, accounts, _regs in repos(data):
        bob = users.verify_password("bob", "portal-pw")
        assert bob is not None
        assert bob.is_admin
        assert (
            accounts.get_ha1("202", Algorithm.MD5)
            == hashlib.md5(b"202:teleoffice:sip-pw").hexdigest()
        )


def test_user_add_conflicts(initialised: Run) -> None:
    assert initialised("user", "add", "alice", "--extension", "201").code == 0
    same_name = initialised("user", "add", "alice", "--extension", "209")
    assert same_name.code == 2
    assert same_name.err == "teleoffice: error: user 'alice' already exists\n"
    same_ext = initialised("user", "add", "bob", "--extension", "201")
    assert same_ext.code == 2
    assert "extension 201 already belongs to user 'alice'" in same_ext.err
    listing = initialised("user", "list").out
    assert "bob" not in listing
    assert "209" not in listing
    bad_name = initialised("user", "add", "no spaces", "--extension", "205")
    assert bad_name.code == 2
    assert "username" in bad_name.err


def test_user_set_and_list(initialised: Run, data: Path) -> None:
    initialised("user", "add", "alice", "--extension", "201")
    result = initialised(
        "user", "set", "alice", "--telecommuter", "--no-call-waiting", "--voicemail",
        "--no-answer-time", "25", "--display-name", "Alice Adams", "--password", "pw",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert "telecommuter allowed: yes" in result.out
    assert "call waiting: no" in result.out
    assert "no-answer time: 25s" in result.out
    assert "pw" not in result.out.replace("password", "")
    for users, _accounts, _regs in repos(data):
        alice = users.get("alice")
        assert alice.telecommuter_allowed
        assert not alice.call_waiting
        assert alice.voicemail_enabled
        assert alice.no_answer_timeout == 25
        assert alice.display_name == "Alice Adams"
        assert users.verify_password("alice", "pw") is not None
    lines = initialised("user", "list").out.splitlines()
    assert lines[0].split()[:3] == ["USER", "EXT", "NAME"]
    assert lines[1].split() == ["alice", "201", "Alice", "Adams", "no", "yes", "no", "yes",
                                "25s", "yes"]  # fmt: skip
    back = initialised("user", "set", "alice", "--no-telecommuter", "--call-waiting")
    assert back.code == 0
    for users, _accounts, _regs in repos(data):
        alice = users.get("alice")
        assert not alice.telecommuter_allowed
        assert alice.call_waiting


def test_user_set_errors(initialised: Run) -> None:
    initialised("user", "add", "alice", "--extension", "201")
    unknown = initialised("user", "set", "bob", "--telecommuter")
    assert (unknown.code, unknown.err) == (2, "teleoffice: error: no user 'bob'\n")
    nothing = initialised("user", "set", "alice")
    assert nothing.code == 2
    assert "nothing to change" in nothing.err
    bad_time = initialised("user", "set", "alice", "--no-answer-time", "soon")
    assert bad_time.code == 2
    assert "whole number" in bad_time.err
    too_long = initialised("user", "set", "alice", "--no-answer-time", "9999")
    assert too_long.code == 2
    assert "no-answer time" in too_long.err


def stored(
    uri: str, expires_at: float, transport: str, host: str, port: int, agent: str | None = None
) -> StoredBinding:
    return StoredBinding(
        account="201",
        contact=f"<{uri}>",
        uri=uri,
        expires_at=expires_at,
        call_id="c",
        cseq=1,
        q=None,
        transport=transport,
        source_host=host,
        source_port=port,
        user_agent=agent,
    )


def test_user_list_empty_and_del(initialised: Run, data: Path) -> None:
    assert "no users" in initialised("user", "list").out
    initialised("user", "add", "alice", "--extension", "201")
    for _users, _accounts, regs in repos(data):
        regs.save(stored("sip:201@192.0.2.1", time.time() + 60, "udp", "192.0.2.1", 5060))
    result = initialised("user", "del", "alice")
    assert result.code == 0, result.err
    assert "deleted user alice" in result.out
    assert "no users" in initialised("user", "list").out
    assert "no phones registered" in initialised("registrations").out
    again = initialised("user", "del", "alice")
    assert (again.code, again.err) == (2, "teleoffice: error: no user 'alice'\n")


def test_registrations_lists_current_bindings(initialised: Run, data: Path) -> None:
    initialised("user", "add", "alice", "--extension", "201")
    now = time.time()
    for _users, _accounts, regs in repos(data):
        regs.save(
            stored("sip:201@192.0.2.1:5062", now + 120, "udp", "192.0.2.1", 5062, "DeskPhone 9")
        )
        regs.save(stored("sip:201@192.0.2.2", now - 5, "tcp", "192.0.2.2", 5060))
    out = initialised("registrations").out
    assert "sip:201@192.0.2.1:5062" in out
    assert "alice" in out
    assert "DeskPhone 9" in out
    assert "udp 192.0.2.1:5062" in out
    assert "192.0.2.2" not in out  # expired


# --- serve ------------------------------------------------------------------------


@pytest.fixture
def fake_app(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Settings, bool]]:
    calls: list[tuple[Settings, bool]] = []

    def serve(settings: Settings, *, demo: bool) -> int:
        calls.append((settings, demo))
        return 0

    module = types.ModuleType("teleoffice.app")
    module.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "teleoffice.app", module)
    return calls


def test_serve_passes_settings(run: Run, fake_app: list[tuple[Settings, bool]], data: Path) -> None:
    result = run("serve", "--sip", "0.0.0.0:5070", "--http", ":8081")
    assert result.code == 0, result.err
    [(settings, demo)] = fake_app
    assert demo is False
    assert (settings.sip_host, settings.sip_port) == ("0.0.0.0", 5070)
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8081)
    assert settings.data_dir == data
    assert (data / "teleoffice.db").exists(), "serve creates or upgrades the database"


def test_serve_demo_seeds_only_an_empty_database(
    run: Run, fake_app: list[tuple[Settings, bool]], data: Path
) -> None:
    result = run("serve", "--demo", "--http", "127.0.0.1:8090")
    assert result.code == 0, result.err
    assert fake_app[0][1] is True
    assert "http://127.0.0.1:8090/" in result.out
    assert "alice" in result.out
    assert "user 201" in result.out
    for users, _accounts, _regs in repos(data):
        assert [u.extension for u in users.list_users()] == ["200", "201", "202", "203"]
        admin = users.verify_password("admin", "admin")
        assert admin is not None
        assert admin.is_admin
        alice = users.verify_password("alice", "alice")
        assert alice is not None
        assert alice.telecommuter_allowed
    again = run("serve", "--demo")
    assert again.code == 0
    assert "nothing was seeded" in again.out
    assert len(fake_app) == 2


def test_serve_reports_server_errors(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    def serve(settings: Settings, *, demo: bool) -> int:
        raise OSError(98, "Address already in use")

    module = types.ModuleType("teleoffice.app")
    module.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "teleoffice.app", module)
    result = run("serve")
    assert result.code == 2
    assert "Address already in use" in result.err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5060", ("127.0.0.1", 5060)),
        ("[::1]:5061", ("::1", 5061)),
        ("[::]", ("::", None)),
        (":5062", (None, 5062)),
        ("5063", (None, 5063)),
        ("pbx.example", ("pbx.example", None)),
        ("::1", ("::1", None)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
    ],
)
def test_parse_hostport(text: str, expected: tuple[str | None, int | None]) -> None:
    assert cli.parse_hostport(text) == expected


@pytest.mark.parametrize("text", ["host:99999", "host:port", "[::1", "[::1]x", ":", ""])
def test_parse_hostport_rejects(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        cli.parse_hostport(text)


def test_python_dash_m(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "teleoffice", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0
    assert "usage: teleoffice" in result.stdout
