"""`teleoffice restriction ...` and `user set --restriction`, run in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from teleoffice import cli
from tests.unit.cli_kit import isolate


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate(monkeypatch, tmp_path)


def run(capsys: pytest.CaptureFixture[str], tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["--data", str(tmp_path / "site"), *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_restriction_commands(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    def go(*argv: str) -> tuple[int, str, str]:
        return run(capsys, tmp_path, *argv)

    assert go("init")[0] == 0
    assert go("user", "add", "alice", "--extension", "201", "--sip-password", "s")[0] == 0
    code, out, _ = go("restriction", "list")
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == [
        "PROFILE",
        "default",
        "internal-only",
        "unrestricted",
    ]
    code, out, _ = go("restriction", "check", "default", "00441234567")
    assert code == cli.EXIT_BARRED
    assert "barred" in out
    assert "Barred by restriction profile default: international" in out
    code, out, _ = go("restriction", "check", "default", "0201234567")
    assert (code, out.split(":")[0]) == (0, "allowed")
    code, out, _ = go("restriction", "check", "internal-only", "112")
    assert code == 0
    assert "emergency number" in out
    code, out, _ = go("restriction", "check", "internal-only", "112", "--not-from-phone")
    assert code == cli.EXIT_BARRED

    code, out, _ = go(
        "restriction", "add", "swiss", "--bar", "00.=international", "--allow", "0041.",
        "--emergency", "112", "--description", "Switzerland only",
    )  # fmt: skip
    assert code == 0
    assert "allowed: 0041." in out
    assert go("restriction", "set", "swiss", "--add-bar", "0041900.=premium")[0] == 0
    code, out, _ = go("restriction", "show", "swiss")
    assert "barred: 00.=international 0041900.=premium" in out
    assert "emergency numbers (always allowed from a phone): 112" in out

    code, out, _ = go("user", "set", "alice", "--restriction", "swiss")
    assert code == 0
    assert "restriction profile: swiss" in out
    code, out, _ = go("restriction", "check", "alice", "0041441234", "--user")
    assert code == 0
    assert "profile swiss" in out
    code, _, err = go("restriction", "del", "swiss")
    assert code == cli.EXIT_ERROR
    assert "assigned to 1 user(s) (alice)" in err
    code, _, err = go("restriction", "del", "default")
    assert code == cli.EXIT_ERROR
    assert "cannot be deleted" in err
    code, _, err = go("user", "set", "alice", "--restriction", "nope")
    assert code == cli.EXIT_ERROR
    assert "no restriction profile 'nope'" in err
    code, _, err = go("restriction", "add", "bad", "--bar", "0[9-1].")
    assert code == cli.EXIT_ERROR
    assert "bad range 9-1" in err
    assert go("user", "set", "alice", "--restriction", "default")[0] == 0
    assert go("restriction", "del", "swiss")[0] == 0


@pytest.mark.parametrize("action", ["add", "set", "list", "show", "del", "check"])
def test_every_restriction_command_has_help(
    capsys: pytest.CaptureFixture[str], action: str
) -> None:
    assert cli.main(["restriction", action, "--help"]) == 0
    assert "usage:" in capsys.readouterr().out
