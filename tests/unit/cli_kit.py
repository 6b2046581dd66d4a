"""Running the CLI in-process for tests: an isolated environment and a runner."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from teleoffice import cli


def isolate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No TELEOFFICE_* settings from outside, the test's own working directory,
    and real argon2id with parameters that keep the suite fast."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.upper().startswith("TELEOFFICE_"):
            monkeypatch.delenv(name)
    for module in (
        "teleoffice.store.repos",
        "teleoffice.store.telecommuter",
        "teleoffice.store.voicemail",
    ):
        monkeypatch.setattr(
            f"{module}.PasswordHasher",
            lambda: PasswordHasher(time_cost=1, memory_cost=8, parallelism=1),
        )


@dataclass
class Result:
    code: int
    out: str
    err: str


Run = Callable[..., Result]


def runner(capsys: pytest.CaptureFixture[str], data: Path) -> Run:
    """`run(*argv, stdin=None, data_dir=data)`: `teleoffice --data DATA_DIR argv...`
    in-process (no --data when data_dir is None), with `stdin` as standard input."""

    def run(*argv: str, stdin: str | None = None, data_dir: Path | None = data) -> Result:
        capsys.readouterr()
        args = ["--data", str(data_dir), *argv] if data_dir is not None else list(argv)
        saved = sys.stdin
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        try:
            code = cli.main(args)
        finally:
            sys.stdin = saved
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
